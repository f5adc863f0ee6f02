/**
 * Parsing and checking of PEM material before anything listens, so that a
 * broken resource fails start-up with its URI instead of failing handshakes.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto"
import { createSecureContext, type SecureContextOptions } from "node:tls"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import {
  CertificateExpired,
  CertificateNotYetValid,
  InvalidPem,
  KeyMismatch,
  NotACaCertificate,
  RefusedByOpenSsl,
} from "./errors.ts"

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

export interface CertificateInfo {
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  readonly fingerprint256: string
  readonly subjectAltName: string | undefined
  readonly validFrom: Date
  readonly validTo: Date
}

export const describe = (cert: X509Certificate): CertificateInfo => ({
  subject: oneLine(cert.subject),
  issuer: oneLine(cert.issuer),
  serialNumber: cert.serialNumber,
  fingerprint256: cert.fingerprint256,
  subjectAltName: cert.subjectAltName,
  validFrom: new Date(cert.validFromDate.getTime()),
  validTo: new Date(cert.validToDate.getTime()),
})

/** Node prints subjects one attribute per line; logs and errors want `CN=x, O=y`. */
export const oneLine = (dn: string): string => dn.split("\n").filter(Boolean).join(", ")

const text = (bytes: Uint8Array): string => new TextDecoder("utf-8").decode(bytes)

/** The CERTIFICATE blocks of a PEM bundle, in order. */
export const pemBlocks = (pem: string): Array<string> => pem.match(CERT_BLOCK) ?? []

/** Every CERTIFICATE block in a PEM bundle, parsed. */
export const parseCertificates = (
  bytes: Uint8Array,
  uri: string,
  what: string,
): Result.Result<
  { readonly pem: string; readonly certs: readonly [X509Certificate, ...Array<X509Certificate>] },
  InvalidPem
> => {
  const pem = text(bytes)
  const blocks = pemBlocks(pem)
  if (blocks.length === 0) {
    return Result.fail(
      new InvalidPem({
        uri,
        what,
        reason: `no PEM CERTIFICATE block found (${bytes.length} bytes received)`,
      }),
    )
  }
  const certs: Array<X509Certificate> = []
  for (const [index, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block))
    } catch (error) {
      return Result.fail(
        new InvalidPem({
          uri,
          what,
          reason: `certificate #${index + 1} does not parse (${errorText(error)})`,
        }),
      )
    }
  }
  const [leaf, ...rest] = certs
  if (leaf === undefined) return Result.fail(new InvalidPem({ uri, what, reason: "no certificate" }))
  return Result.succeed({ pem: blocks.join("\n"), certs: [leaf, ...rest] })
}

/** The key's own parse errors are kept out: they may quote key bytes. */
export const parsePrivateKey = (
  bytes: Uint8Array,
  uri: string,
): Result.Result<{ readonly pem: Redacted.Redacted<string>; readonly key: KeyObject }, InvalidPem> => {
  const pem = text(bytes)
  if (!/-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    return Result.fail(
      new InvalidPem({
        uri,
        what: "private key",
        reason: `no PEM PRIVATE KEY block found (${bytes.length} bytes received; PKCS#1, PKCS#8 or SEC1 expected)`,
      }),
    )
  }
  if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") || /Proc-Type: 4,ENCRYPTED/.test(pem)) {
    return Result.fail(
      new InvalidPem({ uri, what: "private key", reason: "encrypted private keys are not supported" }),
    )
  }
  try {
    const key = createPrivateKey({ key: pem, format: "pem" })
    return Result.succeed({ pem: Redacted.make(pem, { label: "private key" }), key })
  } catch {
    return Result.fail(
      new InvalidPem({ uri, what: "private key", reason: "the PEM block does not decode as a private key" }),
    )
  }
}

export const checkKeyMatches = (
  cert: X509Certificate,
  key: KeyObject,
  certUri: string,
  keyUri: string,
): Result.Result<void, KeyMismatch> =>
  cert.checkPrivateKey(key) ? Result.void : Result.fail(new KeyMismatch({ certUri, keyUri }))

export const checkValidity = (
  cert: X509Certificate,
  uri: string,
  now: Date,
): Result.Result<void, CertificateExpired | CertificateNotYetValid> => {
  const subject = oneLine(cert.subject)
  if (now < cert.validFromDate) {
    return Result.fail(
      new CertificateNotYetValid({ uri, subject, notBefore: cert.validFromDate.toISOString() }),
    )
  }
  if (now > cert.validToDate) {
    return Result.fail(new CertificateExpired({ uri, subject, notAfter: cert.validToDate.toISOString() }))
  }
  return Result.void
}

/**
 * Every certificate of the client CA bundle must be a CA; at least one must be
 * valid now (an expired one next to a fresh one is normal during a rollover).
 */
export const checkClientCas = (
  certs: ReadonlyArray<X509Certificate>,
  uri: string,
  now: Date,
): Result.Result<void, NotACaCertificate | CertificateExpired | CertificateNotYetValid> => {
  for (const cert of certs) {
    if (!cert.ca) return Result.fail(new NotACaCertificate({ uri, subject: oneLine(cert.subject) }))
  }
  let firstProblem: Result.Result<void, CertificateExpired | CertificateNotYetValid> = Result.void
  for (const cert of certs) {
    const validity = checkValidity(cert, uri, now)
    if (Result.isSuccess(validity)) return Result.void
    if (Result.isSuccess(firstProblem)) firstProblem = validity
  }
  return firstProblem
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** OpenSSL's reason in words, with what to do for the refusals users meet. */
const openSslReason = (error: unknown): string => {
  const code = (error as { readonly code?: unknown }).code
  switch (code) {
    case "ERR_SSL_EE_KEY_TOO_SMALL":
    case "ERR_SSL_CA_KEY_TOO_SMALL":
      return "the key is too small for its security level (RSA needs at least 2048 bits, EC at least 224)"
    case "ERR_SSL_CA_MD_TOO_WEAK":
      return "the certificate is signed with a digest too weak for its security level (SHA-1 or MD5; use SHA-256)"
    default:
      // OpenSSL's own text, without the "error:0A00018F:SSL routines::" prefix; it never quotes key bytes.
      return errorText(error).replace(/^error:[0-9A-F]+:[^:]*:[^:]*:/, "")
  }
}

const refusedBy = (
  attempt: () => unknown,
  uri: string,
  what: string,
): Result.Result<void, RefusedByOpenSsl> => {
  try {
    attempt()
    return Result.void
  } catch (error) {
    return Result.fail(new RefusedByOpenSsl({ uri, what, reason: openSslReason(error) }))
  }
}

/**
 * Builds the secure context exactly as the server will (tls.createSecureContext): material that
 * parses but that OpenSSL refuses (a 1024-bit RSA key at Node's default security level, a SHA-1
 * signature) fails here, naming its URI, instead of in the server or at every handshake. Each
 * client CA is also loaded as a certificate of its own, so that OpenSSL applies its key-size
 * policy to it: as a trust anchor it is accepted at load time and only fails client handshakes.
 */
export const checkAcceptedByOpenSsl = (
  options: SecureContextOptions,
  clientCas: ReadonlyArray<{ readonly pem: string; readonly subject: string }>,
  uris: { readonly cert: string; readonly key: string; readonly ca: string },
): Result.Result<void, RefusedByOpenSsl> =>
  Result.gen(function* () {
    const { cert, key, minVersion } = options
    const keyProblem = refusedBy(
      () => createSecureContext({ cert, key, minVersion }),
      uris.key,
      "private key",
    )
    if (Result.isFailure(keyProblem)) {
      // Blame the key for its size, the certificate for anything else (its signature, its encoding).
      const blamed = keyProblem.failure.reason.startsWith("the key")
        ? keyProblem.failure
        : new RefusedByOpenSsl({ ...keyProblem.failure, uri: uris.cert, what: "server certificate" })
      return yield* Result.fail(blamed)
    }
    for (const { pem, subject } of clientCas) {
      yield* refusedBy(() => createSecureContext({ cert: pem }), uris.ca, `client CA certificate ${subject}`)
    }
    yield* refusedBy(() => createSecureContext(options), uris.ca, "client CA certificate")
  })
