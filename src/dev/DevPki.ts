/**
 * Development / test PKI: generates X.509 CA, server and client certificates with `@peculiar/x509` on top of
 * Node's WebCrypto (no openssl). The certificate profile mirrors what kubectl-coco generates for real users:
 *
 * - CA: basicConstraints critical CA:true, keyUsage critical keyCertSign+cRLSign, subjectKeyIdentifier.
 * - leaf: basicConstraints critical CA:false, keyUsage critical digitalSignature (+keyEncipherment for RSA),
 *   extKeyUsage serverAuth|clientAuth, SANs, authorityKeyIdentifier + subjectKeyIdentifier.
 * - random positive 128-bit serial, ECDSA-SHA256 or RSASSA-PKCS1-v1_5-SHA256 (decided by the issuer's key).
 *
 * Besides good material, the options allow deliberately broken material for tests (expired / not yet valid
 * certificates, self-signed non-CA "CAs", PKCS#1 keys, leaves signed by non-CA certificates).
 */
import {
  createPrivateKey,
  createPublicKey,
  KeyObject,
  X509Certificate as NodeX509,
  webcrypto,
} from "node:crypto"
import * as fs from "node:fs/promises"
import { isIP } from "node:net"
import * as path from "node:path"
// tsyringe, under @peculiar/x509, needs the Reflect metadata API at load time: keep this import first.
import "reflect-metadata"
import * as X509 from "@peculiar/x509"

type CryptoKey = webcrypto.CryptoKey
type CryptoKeyPair = webcrypto.CryptoKeyPair

X509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof X509.cryptoProvider.set>[0])

/** `rsa-1024` and `rsa-512` are too weak for OpenSSL's default security level: for tests of refused material. */
export type KeyAlgorithm = "ec-p256" | "rsa-2048" | "rsa-4096" | "rsa-1024" | "rsa-512"

export type KeyFormat = "pkcs8" | "pkcs1"

/** A certificate together with its private key (PEM) and the WebCrypto key pair (for signing children). */
export interface Issued {
  /** `-----BEGIN CERTIFICATE-----` PEM, terminated by a newline. */
  readonly certPem: string
  /** Private key PEM: PKCS#8 (`-----BEGIN PRIVATE KEY-----`) or PKCS#1 (`-----BEGIN RSA PRIVATE KEY-----`). */
  readonly keyPem: string
  readonly cert: X509.X509Certificate
  readonly keys: CryptoKeyPair
  readonly algorithm: KeyAlgorithm
}

/**
 * Anything that can sign certificates. Deliberately just an `Issued`: a leaf (or an `isCa: false` self-signed
 * certificate) can be used as issuer too, which is how tests build chains through a non-CA "intermediate".
 */
export type Authority = Issued

export interface CaOptions {
  /** Default "CoCo Sidecar Dev CA". */
  readonly cn?: string
  readonly org?: string
  /** Default "ec-p256". */
  readonly algorithm?: KeyAlgorithm
  /** Default now - 5 minutes. */
  readonly notBefore?: Date
  /** Default now + 2 years. */
  readonly notAfter?: Date
  /**
   * Default true. False makes a self-signed NON-CA certificate (basicConstraints CA:false, keyUsage
   * digitalSignature) for "client CA is not a CA" tests.
   */
  readonly isCa?: boolean
  /** Default "pkcs8". */
  readonly keyFormat?: KeyFormat
}

export interface LeafOptions {
  readonly cn: string
  readonly kind: "server" | "client"
  readonly dnsNames?: ReadonlyArray<string>
  readonly ipAddresses?: ReadonlyArray<string>
  /** URI SANs, as they are (tests put control characters in them). */
  readonly uris?: ReadonlyArray<string>
  /**
   * The whole subject, in certificate order, instead of `C=US[, O=org], CN=cn`: for tests of odd
   * names (UTF-8, control characters, several CNs, multi-valued RDNs).
   */
  readonly subject?: X509.JsonName
  /** Default "ec-p256". */
  readonly algorithm?: KeyAlgorithm
  /** Default now - 5 minutes. */
  readonly notBefore?: Date
  /** Default now + 365 days. */
  readonly notAfter?: Date
  /** Default "pkcs8"; "pkcs1" only for RSA keys. */
  readonly keyFormat?: KeyFormat
  readonly org?: string
}

export interface DevPki {
  readonly ca: Authority
  readonly server: Issued
  readonly client: Issued
}

export interface DevPkiOptions {
  /** Default "localhost". */
  readonly serverCn?: string
  /** Default "developer". */
  readonly clientCn?: string
  /** Default "ec-p256" (for all three keys). */
  readonly algorithm?: KeyAlgorithm
}

export const DEV_CA_CN = "CoCo Sidecar Dev CA"
export const DEV_ORG = "Confidential Containers"
export const DEV_SERVER_CN = "localhost"
export const DEV_CLIENT_CN = "developer"
export const DEV_SERVER_DNS_NAMES: ReadonlyArray<string> = ["localhost"]
export const DEV_SERVER_IP_ADDRESSES: ReadonlyArray<string> = ["127.0.0.1", "::1"]

/** File names used by {@link loadOrCreateDevPki}. */
export const DEV_PKI_FILES = {
  caCert: "ca-cert.pem",
  caKey: "ca-key.pem",
  serverCert: "server-cert.pem",
  serverKey: "server-key.pem",
  clientCert: "client-cert.pem",
  clientKey: "client-key.pem",
} as const

const MINUTE_MS = 60_000
const DAY_MS = 24 * 60 * MINUTE_MS
const CLOCK_SKEW_MS = 5 * MINUTE_MS
const LEAF_LIFETIME_MS = 365 * DAY_MS
const CA_LIFETIME_MS = 2 * 365 * DAY_MS
/** Stored material is reused only while the leaves stay valid for more than this. */
const MIN_REMAINING_VALIDITY_MS = DAY_MS

// ---------------------------------------------------------------------------------------------------------
// keys

const generationParams = (
  algorithm: KeyAlgorithm,
): webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams => {
  switch (algorithm) {
    case "ec-p256":
      return { name: "ECDSA", namedCurve: "P-256" }
    case "rsa-512":
    case "rsa-1024":
    case "rsa-2048":
    case "rsa-4096":
      return {
        name: "RSASSA-PKCS1-v1_5",
        modulusLength: Number(algorithm.slice("rsa-".length)),
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: "SHA-256",
      }
  }
}

const importParams = (
  algorithm: KeyAlgorithm,
): webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams =>
  algorithm === "ec-p256"
    ? { name: "ECDSA", namedCurve: "P-256" }
    : { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" }

const generateKeys = (algorithm: KeyAlgorithm): Promise<CryptoKeyPair> =>
  webcrypto.subtle.generateKey(generationParams(algorithm), true, ["sign", "verify"])

/** Classifies a Node key object as one of the supported {@link KeyAlgorithm}s. */
const keyAlgorithmOf = (key: KeyObject): KeyAlgorithm => {
  const details = key.asymmetricKeyDetails
  if (key.asymmetricKeyType === "ec" && details?.namedCurve === "prime256v1") return "ec-p256"
  if (key.asymmetricKeyType === "rsa" && details?.modulusLength === 2048) return "rsa-2048"
  if (key.asymmetricKeyType === "rsa" && details?.modulusLength === 4096) return "rsa-4096"
  const what = details?.namedCurve ?? details?.modulusLength ?? "?"
  throw new Error(
    `DevPki: unsupported key (${key.asymmetricKeyType ?? "unknown"} ${what}); ` +
      "supported: EC P-256, RSA 2048, RSA 4096",
  )
}

const exportPrivateKey = (privateKey: CryptoKey, algorithm: KeyAlgorithm, format: KeyFormat): string => {
  if (format === "pkcs1" && algorithm === "ec-p256") {
    throw new Error(`DevPki: keyFormat "pkcs1" is only valid for RSA keys, not ${algorithm}`)
  }
  const keyObject = KeyObject.from(privateKey)
  // PKCS#8 straight from WebCrypto; PKCS#1 via Node's re-encoding (`-----BEGIN RSA PRIVATE KEY-----`).
  return format === "pkcs1"
    ? keyObject.export({ type: "pkcs1", format: "pem" }).toString()
    : keyObject.export({ type: "pkcs8", format: "pem" }).toString()
}

// ---------------------------------------------------------------------------------------------------------
// certificates

/** Random positive 128-bit serial number as hex; the first byte is in 0x01..0x7f (positive, full length). */
export const randomSerialNumber = (): string => {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16))
  bytes[0] = (bytes[0] ?? 0) & 0x7f || 0x01
  return Buffer.from(bytes).toString("hex")
}

const subjectName = (cn: string, org: string | undefined): X509.JsonName => [
  { C: ["US"] },
  ...(org === undefined ? [] : [{ O: [org] }]),
  { CN: [cn] },
]

const toPem = (cert: X509.X509Certificate): string => {
  const pem = cert.toString("pem").replace(/\r\n/g, "\n")
  return pem.endsWith("\n") ? pem : `${pem}\n`
}

const authorityKeyId = async (issuer: Issued): Promise<string> => {
  const ski = issuer.cert.getExtension(X509.SubjectKeyIdentifierExtension)
  if (ski !== null) return ski.keyId
  // Issuer without SKI (foreign material): derive the identifier from its public key, like SKI.create does.
  const created = await X509.SubjectKeyIdentifierExtension.create(issuer.keys.publicKey)
  return created.keyId
}

const validity = (notBefore: Date | undefined, notAfter: Date | undefined, lifetimeMs: number) => {
  const now = Date.now()
  return {
    notBefore: notBefore ?? new Date(now - CLOCK_SKEW_MS),
    notAfter: notAfter ?? new Date(now + lifetimeMs),
  }
}

/** A CA: self-signed, or signed by `parent` (an intermediate); `isCa: false` makes a non-CA "CA". */
const makeCa = async (options: CaOptions, parent: Authority | undefined): Promise<Authority> => {
  const algorithm = options.algorithm ?? "ec-p256"
  const isCa = options.isCa ?? true
  const keys = await generateKeys(algorithm)
  const name = subjectName(options.cn ?? DEV_CA_CN, options.org)
  const extensions = [
    new X509.BasicConstraintsExtension(isCa, undefined, true),
    new X509.KeyUsagesExtension(
      isCa
        ? X509.KeyUsageFlags.keyCertSign | X509.KeyUsageFlags.cRLSign
        : X509.KeyUsageFlags.digitalSignature,
      true,
    ),
    ...(parent === undefined
      ? []
      : [new X509.AuthorityKeyIdentifierExtension(await authorityKeyId(parent), false)]),
    await X509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  const dates = validity(options.notBefore, options.notAfter, CA_LIFETIME_MS)
  const cert =
    parent === undefined
      ? await X509.X509CertificateGenerator.createSelfSigned({
          serialNumber: randomSerialNumber(),
          name,
          ...dates,
          keys,
          extensions,
        })
      : await X509.X509CertificateGenerator.create({
          serialNumber: randomSerialNumber(),
          subject: name,
          issuer: parent.cert.subjectName,
          ...dates,
          publicKey: keys.publicKey,
          signingKey: parent.keys.privateKey,
          extensions,
        })
  return {
    certPem: toPem(cert),
    keyPem: exportPrivateKey(keys.privateKey, algorithm, options.keyFormat ?? "pkcs8"),
    cert,
    keys,
    algorithm,
  }
}

/** Creates a self-signed CA (or, with `isCa: false`, a self-signed non-CA certificate). */
export const createCa = (options: CaOptions = {}): Promise<Authority> => makeCa(options, undefined)

/** An intermediate CA signed by `parent` (for chains a client sends in full). */
export const issueCa = (parent: Authority, options: CaOptions = {}): Promise<Authority> =>
  makeCa({ cn: "CoCo Sidecar Dev Intermediate CA", ...options }, parent)

/**
 * Issues a server or client leaf certificate signed by `ca`. The signature algorithm follows the issuer's key
 * (ECDSA-SHA256 for EC, RSASSA-PKCS1-v1_5-SHA256 for RSA), independently of the leaf's own key algorithm.
 */
export const issue = async (ca: Authority, options: LeafOptions): Promise<Issued> => {
  const algorithm = options.algorithm ?? "ec-p256"
  const keyFormat = options.keyFormat ?? "pkcs8"
  if (keyFormat === "pkcs1" && algorithm === "ec-p256") {
    throw new Error(`DevPki: keyFormat "pkcs1" is only valid for RSA keys, not ${algorithm}`)
  }
  const dnsNames = options.dnsNames ?? []
  const ipAddresses = options.ipAddresses ?? []
  const uris = options.uris ?? []
  for (const ip of ipAddresses) {
    if (isIP(ip) === 0) throw new Error(`DevPki: not an IP address: ${JSON.stringify(ip)}`)
  }
  const keys = await generateKeys(algorithm)
  const keyUsage =
    algorithm === "ec-p256"
      ? X509.KeyUsageFlags.digitalSignature
      : X509.KeyUsageFlags.digitalSignature | X509.KeyUsageFlags.keyEncipherment
  const extensions: Array<X509.Extension> = [
    new X509.BasicConstraintsExtension(false, undefined, true),
    new X509.KeyUsagesExtension(keyUsage, true),
    new X509.ExtendedKeyUsageExtension(
      [options.kind === "server" ? X509.ExtendedKeyUsage.serverAuth : X509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    new X509.AuthorityKeyIdentifierExtension(await authorityKeyId(ca), false),
    await X509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ]
  if (dnsNames.length > 0 || ipAddresses.length > 0 || uris.length > 0) {
    extensions.push(
      new X509.SubjectAlternativeNameExtension(
        [
          ...dnsNames.map((value) => ({ type: "dns" as const, value })),
          ...ipAddresses.map((value) => ({ type: "ip" as const, value })),
          ...uris.map((value) => ({ type: "url" as const, value })),
        ],
        false,
      ),
    )
  }
  const cert = await X509.X509CertificateGenerator.create({
    serialNumber: randomSerialNumber(),
    subject: options.subject ?? subjectName(options.cn, options.org),
    issuer: ca.cert.subjectName,
    ...validity(options.notBefore, options.notAfter, LEAF_LIFETIME_MS),
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions,
  })
  return {
    certPem: toPem(cert),
    keyPem: exportPrivateKey(keys.privateKey, algorithm, keyFormat),
    cert,
    keys,
    algorithm,
  }
}

/** The standard dev set: CA, server cert for localhost/127.0.0.1/::1, client cert "developer". */
export const createDevPki = async (options: DevPkiOptions = {}): Promise<DevPki> => {
  const algorithm = options.algorithm ?? "ec-p256"
  const ca = await createCa({ cn: DEV_CA_CN, org: DEV_ORG, algorithm })
  const [server, client] = await Promise.all([
    issue(ca, {
      cn: options.serverCn ?? DEV_SERVER_CN,
      kind: "server",
      dnsNames: DEV_SERVER_DNS_NAMES,
      ipAddresses: DEV_SERVER_IP_ADDRESSES,
      algorithm,
      org: DEV_ORG,
    }),
    issue(ca, { cn: options.clientCn ?? DEV_CLIENT_CN, kind: "client", algorithm, org: DEV_ORG }),
  ])
  return { ca, server, client }
}

/**
 * Rebuilds an {@link Issued} from PEM (PKCS#8 or PKCS#1 key). Throws if the key is unsupported or does not
 * belong to the certificate.
 */
export const fromPem = (certPem: string, keyPem: string): Issued => {
  const nodeCert = new NodeX509(certPem)
  const privateKey = createPrivateKey(keyPem)
  if (!nodeCert.checkPrivateKey(privateKey)) {
    throw new Error(`DevPki: private key does not match certificate ${nodeCert.subject.replace(/\n/g, ", ")}`)
  }
  const algorithm = keyAlgorithmOf(privateKey)
  const params = importParams(algorithm)
  const keys: CryptoKeyPair = {
    privateKey: privateKey.toCryptoKey(params, true, ["sign"]),
    publicKey: createPublicKey(privateKey).toCryptoKey(params, true, ["verify"]),
  }
  return { certPem, keyPem, cert: new X509.X509Certificate(certPem), keys, algorithm }
}

// ---------------------------------------------------------------------------------------------------------
// on-disk dev set

const readIfExists = async (file: string): Promise<string | undefined> => {
  try {
    return await fs.readFile(file, "utf8")
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined
    throw error
  }
}

/** Atomic write (temp file + rename) so a pre-existing file's permissions never leak onto a new key. */
const writeFileAtomic = async (file: string, contents: string, mode: number): Promise<void> => {
  const tmp = `${file}.${process.pid}.${randomSerialNumber().slice(0, 8)}.tmp`
  try {
    await fs.writeFile(tmp, contents, { mode, flag: "wx" })
    await fs.chmod(tmp, mode)
    await fs.rename(tmp, file)
  } catch (error) {
    await fs.rm(tmp, { force: true })
    throw error
  }
}

/**
 * Loads a reusable dev set from `dir`, or `undefined` when any file is missing, unparsable, mismatched, or
 * any certificate is not valid for more than another day.
 */
const loadDevPki = async (dir: string): Promise<DevPki | undefined> => {
  const names = Object.values(DEV_PKI_FILES)
  const contents = await Promise.all(names.map((name) => readIfExists(path.join(dir, name))))
  const [caCert, caKey, serverCert, serverKey, clientCert, clientKey] = contents
  if (
    caCert === undefined ||
    caKey === undefined ||
    serverCert === undefined ||
    serverKey === undefined ||
    clientCert === undefined ||
    clientKey === undefined
  ) {
    return undefined
  }
  try {
    const ca = fromPem(caCert, caKey)
    const server = fromPem(serverCert, serverKey)
    const client = fromPem(clientCert, clientKey)
    const now = Date.now()
    const caNode = new NodeX509(caCert)
    if (!caNode.ca) return undefined
    for (const issued of [ca, server, client]) {
      const node = new NodeX509(issued.certPem)
      if (node.validFromDate.getTime() > now) return undefined
      if (node.validToDate.getTime() - now <= MIN_REMAINING_VALIDITY_MS) return undefined
      if (issued !== ca && !(node.checkIssued(caNode) && node.verify(caNode.publicKey))) return undefined
    }
    return { ca, server, client }
  } catch {
    return undefined
  }
}

/**
 * Reads `dir/{ca,server,client}-{cert,key}.pem` when all exist, belong together and stay valid for more than
 * a day; otherwise generates a fresh {@link createDevPki} set and writes it (dir mode 0700 when created, key
 * files 0600, certificates 0644).
 */
export const loadOrCreateDevPki = async (dir: string): Promise<DevPki & { readonly created: boolean }> => {
  const existing = await loadDevPki(dir)
  if (existing !== undefined) return { ...existing, created: false }

  const createdDir = await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  if (createdDir !== undefined) await fs.chmod(dir, 0o700)
  const pki = await createDevPki()
  const writes: Array<[string, string, number]> = [
    [DEV_PKI_FILES.caKey, pki.ca.keyPem, 0o600],
    [DEV_PKI_FILES.serverKey, pki.server.keyPem, 0o600],
    [DEV_PKI_FILES.clientKey, pki.client.keyPem, 0o600],
    [DEV_PKI_FILES.caCert, pki.ca.certPem, 0o644],
    [DEV_PKI_FILES.serverCert, pki.server.certPem, 0o644],
    [DEV_PKI_FILES.clientCert, pki.client.certPem, 0o644],
  ]
  for (const [name, contents, mode] of writes) {
    await writeFileAtomic(path.join(dir, name), contents, mode)
  }
  return { ...pki, created: true }
}
