import { createPrivateKey, X509Certificate } from "node:crypto"
import * as fs from "node:fs"
import type { AddressInfo } from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import * as tls from "node:tls"
import { describe, expect, it } from "vitest"
import {
  createCa,
  createDevPki,
  DEV_PKI_FILES,
  type DevPki,
  fromPem,
  type Issued,
  issue,
  loadOrCreateDevPki,
} from "../../src/dev/DevPki.ts"

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"
const DAY_MS = 24 * 60 * 60 * 1000

const node = (issued: Issued): X509Certificate => new X509Certificate(issued.certPem)

/** Asserts that the key PEM parses, belongs to the certificate and the certificate was signed by `ca`. */
const expectSignedPair = (issued: Issued, ca: Issued): void => {
  const cert = node(issued)
  const caCert = node(ca)
  expect(cert.checkPrivateKey(createPrivateKey(issued.keyPem))).toBe(true)
  expect(cert.verify(caCert.publicKey)).toBe(true)
  expect(cert.checkIssued(caCert)).toBe(true)
}

interface HandshakeResult {
  /** The server completed the handshake incl. client-certificate verification. */
  readonly serverSecure: boolean
  readonly serverAuthorized: boolean | undefined
  readonly serverPeerCn: string | undefined
  readonly serverTlsError: (Error & { code?: string }) | undefined
  /**
   * Why the server refused the client certificate (e.g. "CERT_HAS_EXPIRED"). Node destroys the socket
   * without an error in that case, so `tlsClientError` only reports a hang-up; the verify result is on the socket.
   */
  readonly serverAuthorizationError: string | undefined
  readonly clientAuthorized: boolean | undefined
  readonly clientProtocol: string | null | undefined
  readonly clientError: (Error & { code?: string }) | undefined
  /** What came back from the echo server for "ping" (undefined if nothing). */
  readonly echo: string | undefined
}

/**
 * Runs an mTLS 1.3 echo round-trip on 127.0.0.1 with an ephemeral port. In TLS 1.3 the client sees
 * `secureConnect` before the server has verified the client certificate, so success is judged by the
 * server's view plus an application-data round trip.
 */
const handshake = async (opts: {
  readonly server: Issued
  readonly client: Issued
  /** The CA the server trusts for client certificates. */
  readonly ca: Issued
  /** The CA the client trusts for the server certificate (default: `ca`). */
  readonly serverCa?: Issued
  readonly servername?: string
}): Promise<HandshakeResult> => {
  let serverSecure = false
  let serverAuthorized: boolean | undefined
  let serverPeerCn: string | undefined
  let serverTlsError: (Error & { code?: string }) | undefined
  let serverAuthorizationError: string | undefined
  const server = tls.createServer(
    {
      cert: opts.server.certPem,
      key: opts.server.keyPem,
      ca: opts.ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: "TLSv1.3",
    },
    (socket) => {
      serverSecure = true
      serverAuthorized = socket.authorized
      const cn = socket.getPeerCertificate().subject?.CN
      serverPeerCn = Array.isArray(cn) ? cn.join(",") : cn
      socket.on("data", (data) => socket.write(data))
      socket.on("error", () => {})
    },
  )
  server.on("tlsClientError", (error, socket) => {
    serverTlsError ??= error
    serverAuthorizationError ??= socket.authorizationError?.toString()
  })
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve))
  const { port } = server.address() as AddressInfo
  try {
    return await new Promise<HandshakeResult>((resolve) => {
      let clientAuthorized: boolean | undefined
      let clientProtocol: string | null | undefined
      let clientError: (Error & { code?: string }) | undefined
      let echo: string | undefined
      const socket = tls.connect({
        host: "127.0.0.1",
        port,
        servername: opts.servername ?? "localhost",
        cert: opts.client.certPem,
        key: opts.client.keyPem,
        ca: (opts.serverCa ?? opts.ca).certPem,
        minVersion: "TLSv1.3",
      })
      const timer = setTimeout(() => socket.destroy(new Error("test timeout")), 5_000)
      const finish = () => {
        clearTimeout(timer)
        // Give the server's tlsClientError a moment to be emitted before reporting.
        setTimeout(
          () =>
            resolve({
              serverSecure,
              serverAuthorized,
              serverPeerCn,
              serverTlsError,
              serverAuthorizationError,
              clientAuthorized,
              clientProtocol,
              clientError,
              echo,
            }),
          50,
        )
      }
      socket.on("secureConnect", () => {
        clientAuthorized = socket.authorized
        clientProtocol = socket.getProtocol()
        socket.write("ping")
      })
      socket.on("data", (data: Buffer) => {
        echo = (echo ?? "") + data.toString("utf8")
        if (echo === "ping") socket.end()
      })
      socket.on("error", (error) => {
        clientError = error
      })
      socket.on("close", finish)
    })
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

describe("DevPki", () => {
  // One shared dev set for the read-only assertions (EC P-256 keeps this fast).
  const devPki: Promise<DevPki> = createDevPki()

  it("createDevPki produces a CA, a server and a client certificate Node accepts", async () => {
    const { ca, server, client } = await devPki
    const caCert = node(ca)
    const serverCert = node(server)
    const clientCert = node(client)

    expect(ca.certPem.startsWith("-----BEGIN CERTIFICATE-----")).toBe(true)
    expect(server.keyPem.startsWith("-----BEGIN PRIVATE KEY-----")).toBe(true)
    expect(caCert.ca).toBe(true)
    expect(serverCert.ca).toBe(false)
    expect(clientCert.ca).toBe(false)
    expect(caCert.subject).toContain("CN=CoCo Sidecar Dev CA")
    expect(caCert.subject).toContain("O=Confidential Containers")
    expect(caCert.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true)
    expect(caCert.verify(caCert.publicKey)).toBe(true)

    expect(serverCert.subject).toContain("CN=localhost")
    expect(serverCert.subject).toContain("O=Confidential Containers")
    expect(serverCert.issuer).toBe(caCert.subject)
    expect(serverCert.subjectAltName).toContain("DNS:localhost")
    expect(serverCert.subjectAltName).toContain("IP Address:127.0.0.1")
    expect(serverCert.subjectAltName).toMatch(/IP Address:(0:0:0:0:0:0:0:1|::1)/)
    expect(serverCert.checkHost("localhost")).toBe("localhost")
    expect(serverCert.checkIP("127.0.0.1")).toBe("127.0.0.1")
    expect(serverCert.keyUsage).toEqual([SERVER_AUTH])
    expectSignedPair(server, ca)

    expect(clientCert.subject).toContain("CN=developer")
    expect(clientCert.subjectAltName).toBeUndefined()
    expect(clientCert.keyUsage).toEqual([CLIENT_AUTH])
    expectSignedPair(client, ca)

    // Serial: 128-bit positive (first byte < 0x80, no leading zero byte).
    for (const cert of [caCert, serverCert, clientCert]) {
      expect(cert.serialNumber).toMatch(/^[0-7][0-9A-F]{31}$/)
      expect(cert.serialNumber.startsWith("00")).toBe(false)
    }
    expect(serverCert.serialNumber).not.toBe(clientCert.serialNumber)

    // Default validity: leaf ~1 year starting 5 minutes ago, CA ~2 years.
    const now = Date.now()
    expect(now - serverCert.validFromDate.getTime()).toBeGreaterThanOrEqual(4 * 60 * 1000)
    expect(now - serverCert.validFromDate.getTime()).toBeLessThan(6 * 60 * 1000)
    expect(Math.round((serverCert.validToDate.getTime() - now) / DAY_MS)).toBe(365)
    expect(Math.round((caCert.validToDate.getTime() - now) / DAY_MS)).toBe(730)
  })

  it("uses the profile extensions (criticality, key identifiers, signature algorithm)", async () => {
    const { ca, server, client } = await devPki
    const caSki = ca.cert.getExtension("2.5.29.14")
    expect(caSki).not.toBeNull()
    expect(ca.cert.getExtension("2.5.29.19")?.critical).toBe(true)
    expect(ca.cert.getExtension("2.5.29.15")?.critical).toBe(true)
    expect(ca.cert.signatureAlgorithm).toMatchObject({ name: "ECDSA", hash: { name: "SHA-256" } })
    expect(node(ca).signatureAlgorithm).toBe("ecdsa-with-SHA256")
    for (const leaf of [server, client]) {
      const legacy = node(leaf).toLegacyObject()
      expect(legacy.ca).toBe(false)
      expect(leaf.cert.getExtension("2.5.29.15")?.critical).toBe(true)
      expect(leaf.cert.getExtension("2.5.29.14")).not.toBeNull()
      // authorityKeyIdentifier of the leaf == subjectKeyIdentifier of the CA
      const aki = leaf.cert.getExtension("2.5.29.35")
      expect(aki).not.toBeNull()
      expect(Buffer.from(aki?.value ?? new ArrayBuffer(0)).toString("hex")).toContain(
        Buffer.from(caSki?.value ?? new ArrayBuffer(1))
          .toString("hex")
          .slice(4),
      )
      expect(await leaf.cert.verify({ publicKey: ca.cert.publicKey, signatureOnly: true })).toBe(true)
    }
  })

  it("completes a real mTLS 1.3 handshake with the dev certificates", async () => {
    const { ca, server, client } = await devPki
    const result = await handshake({ server, client, ca })
    expect(result.clientError).toBeUndefined()
    expect(result.serverTlsError).toBeUndefined()
    expect(result.serverAuthorizationError).toBeUndefined()
    expect(result.clientProtocol).toBe("TLSv1.3")
    expect(result.clientAuthorized).toBe(true)
    expect(result.serverSecure).toBe(true)
    expect(result.serverAuthorized).toBe(true)
    expect(result.serverPeerCn).toBe("developer")
    expect(result.echo).toBe("ping")
  })

  it("rejects a client certificate signed by a different CA (control for the handshake helper)", async () => {
    const { ca, server } = await devPki
    const otherCa = await createCa({ cn: "Other CA" })
    const stranger = await issue(otherCa, { cn: "stranger", kind: "client" })
    const result = await handshake({ server, client: stranger, ca })
    expect(result.serverSecure).toBe(false)
    expect(result.serverAuthorizationError).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE")
    expect(result.echo).toBeUndefined()
  })

  it("issues expired certificates that the TLS server rejects", async () => {
    const { ca, server } = await devPki
    const notBefore = new Date(Date.now() - 10 * DAY_MS)
    const notAfter = new Date(Date.now() - DAY_MS)
    const expired = await issue(ca, { cn: "developer", kind: "client", notBefore, notAfter })
    const cert = node(expired)
    expect(cert.validToDate.getTime()).toBeLessThan(Date.now())
    expect(new Date(cert.validTo).getTime()).toBe(Math.floor(notAfter.getTime() / 1000) * 1000)
    expectSignedPair(expired, ca) // well-formed and correctly signed, just expired

    const result = await handshake({ server, client: expired, ca })
    expect(result.serverSecure).toBe(false)
    expect(result.serverAuthorizationError).toBe("CERT_HAS_EXPIRED")
    expect(result.echo).toBeUndefined()
  })

  it("issues not-yet-valid certificates", async () => {
    const { ca } = await devPki
    const notBefore = new Date(Date.now() + DAY_MS)
    const future = await issue(ca, { cn: "future", kind: "server", dnsNames: ["localhost"], notBefore })
    expect(node(future).validFromDate.getTime()).toBeGreaterThan(Date.now())
    expectSignedPair(future, ca)
  })

  it("createCa with isCa: false makes a self-signed non-CA certificate", async () => {
    const notCa = await createCa({ cn: "Not A CA", isCa: false })
    const cert = node(notCa)
    expect(cert.ca).toBe(false)
    expect(cert.subject).toBe(cert.issuer)
    expect(cert.verify(cert.publicKey)).toBe(true)
    expect(cert.checkPrivateKey(createPrivateKey(notCa.keyPem))).toBe(true)
    // keyUsage digitalSignature only: bit string 0x80 (03 02 07 80)
    const ku = notCa.cert.getExtension("2.5.29.15")
    expect(Buffer.from(ku?.value ?? new ArrayBuffer(0)).toString("hex")).toBe("03020780")

    // A leaf "issued" by it verifies cryptographically, but TLS must refuse the chain.
    // OpenSSL's issuer check also looks at keyUsage (no keyCertSign), so checkIssued is false.
    const leaf = await issue(notCa, { cn: "developer", kind: "client" })
    expect(node(leaf).verify(cert.publicKey)).toBe(true)
    expect(node(leaf).checkIssued(cert)).toBe(false)
    const { ca, server } = await devPki
    const result = await handshake({ server, client: leaf, ca: notCa, serverCa: ca })
    expect(result.clientAuthorized).toBe(true)
    expect(result.serverSecure).toBe(false)
    // The exact code varies across OpenSSL versions (Node 24 / OpenSSL 3.x reports "UNSPECIFIED").
    expect(result.serverAuthorizationError).toMatch(/^[A-Z_]+$/)
    expect(result.echo).toBeUndefined()
  })

  it("exports RSA keys as PKCS#1 on request and signs with the issuer's algorithm", async () => {
    const rsaCa = await createCa({ algorithm: "rsa-2048" })
    expect(node(rsaCa).signatureAlgorithm).toBe("sha256WithRSAEncryption")
    const leaf = await issue(rsaCa, {
      cn: "rsa-leaf",
      kind: "server",
      algorithm: "rsa-2048",
      keyFormat: "pkcs1",
    })
    expect(leaf.keyPem.startsWith("-----BEGIN RSA PRIVATE KEY-----\n")).toBe(true)
    const key = createPrivateKey(leaf.keyPem)
    expect(key.asymmetricKeyType).toBe("rsa")
    expect(key.asymmetricKeyDetails?.modulusLength).toBe(2048)
    expect(node(leaf).checkPrivateKey(key)).toBe(true)
    expectSignedPair(leaf, rsaCa)

    // RSA CA signing an EC leaf, and an EC CA signing an RSA leaf.
    const ecLeaf = await issue(rsaCa, { cn: "ec-leaf", kind: "client" })
    expect(node(ecLeaf).signatureAlgorithm).toBe("sha256WithRSAEncryption")
    expect(node(ecLeaf).publicKey.asymmetricKeyType).toBe("ec")
    expectSignedPair(ecLeaf, rsaCa)
    const { ca } = await devPki
    const rsaLeaf = await issue(ca, { cn: "rsa-leaf", kind: "client", algorithm: "rsa-2048" })
    expect(node(rsaLeaf).signatureAlgorithm).toBe("ecdsa-with-SHA256")
    expectSignedPair(rsaLeaf, ca)

    await expect(issue(ca, { cn: "x", kind: "client", keyFormat: "pkcs1" })).rejects.toThrow(/pkcs1.*RSA/)
    await expect(issue(ca, { cn: "x", kind: "server", ipAddresses: ["not-an-ip"] })).rejects.toThrow(
      /not an IP address/,
    )
  })

  it("fromPem round-trips material and can sign children", async () => {
    const { ca } = await devPki
    const loaded = fromPem(ca.certPem, ca.keyPem)
    expect(loaded.algorithm).toBe("ec-p256")
    const child = await issue(loaded, { cn: "child", kind: "client" })
    expectSignedPair(child, ca)
    const other = await createCa()
    expect(() => fromPem(ca.certPem, other.keyPem)).toThrow(/does not match/)
  })

  it("loadOrCreateDevPki creates, reuses and renews the on-disk set", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "devpki-"))
    const dir = path.join(root, "pki")
    try {
      const first = await loadOrCreateDevPki(dir)
      expect(first.created).toBe(true)
      expect(fs.statSync(dir).mode & 0o777).toBe(0o700)
      for (const name of Object.values(DEV_PKI_FILES)) {
        expect(fs.existsSync(path.join(dir, name))).toBe(true)
      }
      for (const name of [DEV_PKI_FILES.caKey, DEV_PKI_FILES.serverKey, DEV_PKI_FILES.clientKey]) {
        expect(fs.statSync(path.join(dir, name)).mode & 0o777).toBe(0o600)
      }
      expect(fs.readFileSync(path.join(dir, DEV_PKI_FILES.serverCert), "utf8")).toBe(first.server.certPem)
      expect(fs.readdirSync(dir).sort()).toEqual(Object.values(DEV_PKI_FILES).sort())

      const second = await loadOrCreateDevPki(dir)
      expect(second.created).toBe(false)
      expect(second.ca.certPem).toBe(first.ca.certPem)
      expect(second.ca.keyPem).toBe(first.ca.keyPem)
      expect(second.server.certPem).toBe(first.server.certPem)
      expect(second.server.keyPem).toBe(first.server.keyPem)
      expect(second.client.certPem).toBe(first.client.certPem)
      expect(second.client.keyPem).toBe(first.client.keyPem)
      // The loaded CA can still sign.
      expectSignedPair(await issue(second.ca, { cn: "extra", kind: "client" }), first.ca)

      // A server certificate with less than a day left forces a new set.
      const shortLived = await issue(second.ca, {
        cn: "localhost",
        kind: "server",
        dnsNames: ["localhost"],
        notAfter: new Date(Date.now() + DAY_MS / 2),
      })
      fs.writeFileSync(path.join(dir, DEV_PKI_FILES.serverCert), shortLived.certPem)
      fs.writeFileSync(path.join(dir, DEV_PKI_FILES.serverKey), shortLived.keyPem, { mode: 0o644 })
      fs.chmodSync(path.join(dir, DEV_PKI_FILES.serverKey), 0o644)
      const third = await loadOrCreateDevPki(dir)
      expect(third.created).toBe(true)
      expect(third.ca.certPem).not.toBe(first.ca.certPem)
      expect(fs.readFileSync(path.join(dir, DEV_PKI_FILES.serverKey), "utf8")).toBe(third.server.keyPem)
      expect(fs.statSync(path.join(dir, DEV_PKI_FILES.serverKey)).mode & 0o777).toBe(0o600)
      expect(node(third.server).validToDate.getTime() - Date.now()).toBeGreaterThan(300 * DAY_MS)

      // A missing file also forces a new set.
      fs.rmSync(path.join(dir, DEV_PKI_FILES.clientKey))
      const fourth = await loadOrCreateDevPki(dir)
      expect(fourth.created).toBe(true)
      expect((await loadOrCreateDevPki(dir)).created).toBe(false)
    } finally {
      fs.rmSync(root, { recursive: true, force: true })
    }
  })
})
