import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto"
import { assert, beforeAll, describe, expect, it } from "@effect/vitest"
import { Redacted, Result } from "effect"
import { createCa, type Issued, issue } from "../../src/dev/DevPki.ts"
import {
  CertificateExpired,
  CertificateNotYetValid,
  InvalidPem,
  KeyMismatch,
  NotACaCertificate,
  type TlsMaterialError,
} from "../../src/tls/errors.ts"
import { type Material, type Sources, validate } from "../../src/tls/TlsMaterial.ts"
import * as Validate from "../../src/tls/validate.ts"

const CERT_URI = "kbs:///shop/sidecar-tls-web/server-cert"
const KEY_URI = "kbs:///shop/sidecar-tls-web/server-key"
const CA_URI = "kbs:///default/sidecar-tls/client-ca"
const ORG = "Confidential Containers"
const DAY_MS = 86_400_000

const bytes = (text: string): Uint8Array => new TextEncoder().encode(text)
const node = (issued: Issued): X509Certificate => new X509Certificate(issued.certPem)

interface Pki {
  readonly ca: Issued
  readonly server: Issued
  readonly otherServer: Issued
  readonly expiredServer: Issued
  readonly futureServer: Issued
  readonly client: Issued
  readonly selfSignedNonCa: Issued
  readonly expiredCa: Issued
  readonly futureCa: Issued
  readonly intermediate: Issued
  readonly chainLeaf: Issued
  /** kubectl-coco-shaped: RSA 2048, PKCS#1 `RSA PRIVATE KEY`. */
  readonly rsaServer: Issued
}

let pki: Pki

beforeAll(async () => {
  const now = Date.now()
  const [ca, expiredCa, futureCa, intermediate, selfSignedNonCa] = await Promise.all([
    createCa({ cn: "CoCo Sidecar Client CA", org: ORG }),
    createCa({
      cn: "Old CA",
      org: ORG,
      notBefore: new Date(now - 800 * DAY_MS),
      notAfter: new Date(now - DAY_MS),
    }),
    createCa({
      cn: "Future CA",
      org: ORG,
      notBefore: new Date(now + DAY_MS),
      notAfter: new Date(now + 800 * DAY_MS),
    }),
    createCa({ cn: "Intermediate CA", org: ORG }),
    createCa({ cn: "Not A CA", org: ORG, isCa: false }),
  ])
  const [server, otherServer, expiredServer, futureServer, client, chainLeaf, rsaServer] = await Promise.all([
    issue(ca, {
      cn: "web",
      kind: "server",
      org: ORG,
      dnsNames: ["web.shop.svc.cluster.local"],
      ipAddresses: ["10.0.0.7"],
    }),
    issue(ca, { cn: "other", kind: "server", org: ORG }),
    issue(ca, {
      cn: "expired",
      kind: "server",
      org: ORG,
      notBefore: new Date(now - 400 * DAY_MS),
      notAfter: new Date(now - DAY_MS),
    }),
    issue(ca, {
      cn: "future",
      kind: "server",
      org: ORG,
      notBefore: new Date(now + DAY_MS),
      notAfter: new Date(now + 400 * DAY_MS),
    }),
    issue(ca, { cn: "developer", kind: "client", org: ORG }),
    issue(intermediate, { cn: "chained", kind: "server", org: ORG, dnsNames: ["chained.example"] }),
    issue(ca, { cn: "web-rsa", kind: "server", org: ORG, algorithm: "rsa-2048", keyFormat: "pkcs1" }),
  ])
  pki = {
    ca,
    server,
    otherServer,
    expiredServer,
    futureServer,
    client,
    selfSignedNonCa,
    expiredCa,
    futureCa,
    intermediate,
    chainLeaf,
    rsaServer,
  }
})

interface SourceTexts {
  readonly cert?: string | Uint8Array
  readonly key?: string | Uint8Array
  readonly ca?: string | Uint8Array
}

/** Good material by default; override any of the three resources. */
const sources = (over: SourceTexts = {}): Sources => {
  const toBytes = (v: string | Uint8Array): Uint8Array => (typeof v === "string" ? bytes(v) : v)
  return {
    cert: { uri: CERT_URI, bytes: toBytes(over.cert ?? pki.server.certPem) },
    key: { uri: KEY_URI, bytes: toBytes(over.key ?? pki.server.keyPem) },
    ca: { uri: CA_URI, bytes: toBytes(over.ca ?? pki.ca.certPem) },
  }
}

const validateOk = (s: Sources, now = new Date()): Material => {
  const result = validate(s, now)
  if (Result.isFailure(result)) throw new Error(`expected valid material, got ${result.failure.message}`)
  return result.success
}

const validateErr = (s: Sources, now = new Date()): TlsMaterialError => {
  const result = validate(s, now)
  if (Result.isSuccess(result)) throw new Error("expected the material to be rejected")
  return result.failure
}

/** A PRIVATE KEY block whose body is not a key. */
const corruptKeyPem = (): string => {
  const body = Buffer.from(new Uint8Array(96).map((_, i) => (i * 37 + 11) % 256)).toString("base64")
  return `-----BEGIN PRIVATE KEY-----\n${body.slice(0, 64)}\n${body.slice(64)}\n-----END PRIVATE KEY-----\n`
}

const keyLines = (pem: string): Array<string> =>
  pem
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)

describe("validate (TlsMaterial)", () => {
  it("accepts good EC material and describes the server certificate", () => {
    const now = new Date()
    const m = validateOk(sources(), now)
    const cert = node(pki.server)
    assert.strictEqual(m.certPem, pki.server.certPem.trimEnd())
    assert.strictEqual(m.caPem, pki.ca.certPem.trimEnd())
    assert.strictEqual(Redacted.value(m.keyPem), pki.server.keyPem)
    assert.strictEqual(m.fetchedAt, now)
    assert.strictEqual(m.server.subject, `C=US, O=${ORG}, CN=web`)
    assert.strictEqual(m.server.issuer, `C=US, O=${ORG}, CN=CoCo Sidecar Client CA`)
    assert.strictEqual(m.server.serialNumber.toLowerCase(), pki.server.cert.serialNumber.toLowerCase())
    assert.strictEqual(m.server.fingerprint256, cert.fingerprint256)
    expect(m.server.subjectAltName).toContain("DNS:web.shop.svc.cluster.local")
    expect(m.server.subjectAltName).toContain("IP Address:10.0.0.7")
    assert.strictEqual(m.server.validTo.getTime(), cert.validToDate.getTime())
    assert.strictEqual(m.server.validFrom.getTime(), cert.validFromDate.getTime())
    assert.strictEqual(m.clientCas.length, 1)
    assert.strictEqual(m.clientCas[0]?.subject, `C=US, O=${ORG}, CN=CoCo Sidecar Client CA`)
    assert.strictEqual(m.clientCas[0]?.subjectAltName, undefined)
  })

  it("accepts a kubectl-coco-shaped RSA 2048 PKCS#1 key", () => {
    expect(pki.rsaServer.keyPem).toMatch(/^-----BEGIN RSA PRIVATE KEY-----\n/)
    const m = validateOk(sources({ cert: pki.rsaServer.certPem, key: pki.rsaServer.keyPem }))
    assert.strictEqual(m.server.subject, `C=US, O=${ORG}, CN=web-rsa`)
    assert.strictEqual(Redacted.value(m.keyPem), pki.rsaServer.keyPem)
  })

  it("accepts a SEC1 EC key preceded by EC PARAMETERS (openssl ecparam -genkey output)", () => {
    const sec1 = createPrivateKey(pki.server.keyPem).export({ type: "sec1", format: "pem" }).toString()
    const key = `-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n${sec1}`
    const m = validateOk(sources({ key }))
    assert.strictEqual(Redacted.value(m.keyPem), key)
  })

  it("accepts CRLF line endings", () => {
    const crlf = (s: string) => s.replace(/\n/g, "\r\n")
    const m = validateOk(
      sources({ cert: crlf(pki.server.certPem), key: crlf(pki.server.keyPem), ca: crlf(pki.ca.certPem) }),
    )
    assert.strictEqual(m.server.subject, `C=US, O=${ORG}, CN=web`)
  })

  it("keeps the leaf first in a leaf + intermediate chain", () => {
    const m = validateOk(
      sources({
        cert: `${pki.chainLeaf.certPem}${pki.intermediate.certPem}`,
        key: pki.chainLeaf.keyPem,
        ca: pki.intermediate.certPem,
      }),
    )
    const blocks = m.certPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []
    assert.deepStrictEqual(blocks, [pki.chainLeaf.certPem.trimEnd(), pki.intermediate.certPem.trimEnd()])
    assert.strictEqual(m.server.subject, `C=US, O=${ORG}, CN=chained`)
  })

  it.each([
    {
      name: "random bytes",
      value: () => new Uint8Array([0x00, 0xff, 0x13, 0x37, 0x80]),
      reason: "no PEM CERTIFICATE block",
    },
    { name: "empty", value: () => new Uint8Array(), reason: "(0 bytes received)" },
    { name: "text", value: () => "not a certificate", reason: "no PEM CERTIFICATE block" },
    {
      name: "a key instead of a certificate",
      value: () => pki.server.keyPem,
      reason: "no PEM CERTIFICATE block",
    },
    {
      name: "a broken CERTIFICATE block",
      value: () => "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      reason: "certificate #1 does not parse",
    },
  ])("rejects a server certificate that is $name as InvalidPem naming the cert URI", ({ value, reason }) => {
    const error = validateErr(sources({ cert: value() }))
    if (!(error instanceof InvalidPem)) return assert.fail(`expected InvalidPem, got ${error._tag}`)
    assert.strictEqual(error._tag, "InvalidPem")
    assert.strictEqual(error.uri, CERT_URI)
    assert.strictEqual(error.what, "server certificate")
    expect(error.reason).toContain(reason)
    expect(error.message).toContain(CERT_URI)
    expect(error.message.startsWith(`${CERT_URI}: the server certificate is not usable: `)).toBe(true)
  })

  it("names the failing block of a bundle", () => {
    const error = validateErr(
      sources({
        cert: `${pki.server.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n`,
      }),
    )
    if (!(error instanceof InvalidPem)) return assert.fail(`expected InvalidPem, got ${error._tag}`)
    expect(error.reason).toContain("certificate #2 does not parse")
  })

  it.each([
    {
      name: "random bytes",
      value: () => new Uint8Array([0x30, 0x82, 0x01, 0x22, 0xff]),
      reason: "no PEM PRIVATE KEY",
    },
    { name: "empty", value: () => "", reason: "(0 bytes received" },
    { name: "a certificate", value: () => pki.server.certPem, reason: "no PEM PRIVATE KEY" },
    {
      name: "a public key",
      value: () => createPublicKey(pki.server.keyPem).export({ type: "spki", format: "pem" }).toString(),
      reason: "no PEM PRIVATE KEY",
    },
    { name: "a corrupt PRIVATE KEY block", value: corruptKeyPem, reason: "does not decode as a private key" },
    {
      name: "a truncated real key",
      value: () => {
        const lines = pki.server.keyPem.split("\n")
        return [lines[0], lines[1]?.slice(0, 20), lines.at(-2)].join("\n")
      },
      reason: "does not decode as a private key",
    },
  ])(
    "rejects a key that is $name as InvalidPem naming the key URI, without quoting it",
    ({ value, reason }) => {
      const key = value()
      const error = validateErr(sources({ key }))
      if (!(error instanceof InvalidPem)) return assert.fail(`expected InvalidPem, got ${error._tag}`)
      assert.strictEqual(error.uri, KEY_URI)
      assert.strictEqual(error.what, "private key")
      expect(error.reason).toContain(reason)
      expect(error.message).toContain(KEY_URI)
      if (typeof key === "string") {
        for (const line of keyLines(key)) expect(error.message).not.toContain(line)
      }
      for (const line of keyLines(pki.server.keyPem)) expect(error.message).not.toContain(line)
    },
  )

  it.each([
    {
      name: "PKCS#8 ENCRYPTED PRIVATE KEY",
      encrypt: (pem: string) =>
        createPrivateKey(pem)
          .export({ type: "pkcs8", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" })
          .toString(),
      header: "-----BEGIN ENCRYPTED PRIVATE KEY-----",
    },
    {
      name: "legacy SEC1 Proc-Type: 4,ENCRYPTED",
      encrypt: (pem: string) =>
        createPrivateKey(pem)
          .export({ type: "sec1", format: "pem", cipher: "aes-256-cbc", passphrase: "secret" })
          .toString(),
      header: "Proc-Type: 4,ENCRYPTED",
    },
  ])("rejects an encrypted key ($name) as InvalidPem", ({ encrypt, header }) => {
    const key = encrypt(pki.server.keyPem)
    expect(key).toContain(header)
    const error = validateErr(sources({ key }))
    if (!(error instanceof InvalidPem)) return assert.fail(`expected InvalidPem, got ${error._tag}`)
    assert.strictEqual(error.uri, KEY_URI)
    assert.strictEqual(error.reason, "encrypted private keys are not supported")
    for (const line of keyLines(key)) expect(error.message).not.toContain(line)
  })

  it("rejects the key of another certificate as KeyMismatch naming both URIs", () => {
    const error = validateErr(sources({ key: pki.otherServer.keyPem }))
    if (!(error instanceof KeyMismatch)) return assert.fail(`expected KeyMismatch, got ${error._tag}`)
    assert.strictEqual(error.certUri, CERT_URI)
    assert.strictEqual(error.keyUri, KEY_URI)
    expect(error.message).toContain(CERT_URI)
    expect(error.message).toContain(KEY_URI)
    for (const line of keyLines(pki.otherServer.keyPem)) expect(error.message).not.toContain(line)
  })

  it("rejects an RSA key for an EC certificate as KeyMismatch", () => {
    const error = validateErr(sources({ key: pki.rsaServer.keyPem }))
    assert.strictEqual(error._tag, "KeyMismatch")
  })

  it("rejects an expired server certificate as CertificateExpired with notAfter", () => {
    const error = validateErr(sources({ cert: pki.expiredServer.certPem, key: pki.expiredServer.keyPem }))
    if (!(error instanceof CertificateExpired))
      return assert.fail(`expected CertificateExpired, got ${error._tag}`)
    const notAfter = node(pki.expiredServer).validToDate.toISOString()
    assert.strictEqual(error.uri, CERT_URI)
    assert.strictEqual(error.notAfter, notAfter)
    assert.strictEqual(error.subject, `C=US, O=${ORG}, CN=expired`)
    expect(error.message).toContain(CERT_URI)
    expect(error.message).toContain(notAfter)
  })

  it("rejects a not-yet-valid server certificate as CertificateNotYetValid with notBefore", () => {
    const error = validateErr(sources({ cert: pki.futureServer.certPem, key: pki.futureServer.keyPem }))
    if (!(error instanceof CertificateNotYetValid)) {
      return assert.fail(`expected CertificateNotYetValid, got ${error._tag}`)
    }
    const notBefore = node(pki.futureServer).validFromDate.toISOString()
    assert.strictEqual(error.uri, CERT_URI)
    assert.strictEqual(error.notBefore, notBefore)
    expect(error.message).toContain(notBefore)
    expect(error.message).toContain("check the clock")
  })

  it("judges validity at the given instant", () => {
    const cert = node(pki.server)
    const before = new Date(cert.validFromDate.getTime() - 1_000)
    const after = new Date(cert.validToDate.getTime() + 1_000)
    assert.strictEqual(validateErr(sources(), before)._tag, "CertificateNotYetValid")
    // The client CA outlives the server certificate, so the server certificate is what fails.
    assert.strictEqual(validateErr(sources(), after)._tag, "CertificateExpired")
    assert.strictEqual(validateOk(sources(), cert.validToDate).server.subject, `C=US, O=${ORG}, CN=web`)
  })

  it.each([
    { name: "a leaf client certificate", ca: () => pki.client.certPem, cn: "developer" },
    { name: "a self-signed isCa:false certificate", ca: () => pki.selfSignedNonCa.certPem, cn: "Not A CA" },
    { name: "the server certificate", ca: () => pki.server.certPem, cn: "web" },
    {
      name: "a bundle of a valid CA and a leaf",
      ca: () => `${pki.ca.certPem}${pki.client.certPem}`,
      cn: "developer",
    },
  ])("rejects $name as client CA with NotACaCertificate naming the CA URI", ({ ca, cn }) => {
    const error = validateErr(sources({ ca: ca() }))
    if (!(error instanceof NotACaCertificate))
      return assert.fail(`expected NotACaCertificate, got ${error._tag}`)
    assert.strictEqual(error.uri, CA_URI)
    assert.strictEqual(error.subject, `C=US, O=${ORG}, CN=${cn}`)
    expect(error.message).toContain(CA_URI)
    expect(error.message).toContain("CA:TRUE")
  })

  it.each([
    { name: "expired CA + valid CA", ca: () => `${pki.expiredCa.certPem}${pki.ca.certPem}` },
    { name: "valid CA + expired CA", ca: () => `${pki.ca.certPem}${pki.expiredCa.certPem}` },
    { name: "not-yet-valid CA + valid CA", ca: () => `${pki.futureCa.certPem}${pki.ca.certPem}` },
  ])("accepts a client CA bundle during a rollover: $name", ({ ca }) => {
    const m = validateOk(sources({ ca: ca() }))
    assert.strictEqual(m.clientCas.length, 2)
    expect(m.clientCas.map((c) => c.subject)).toContain(`C=US, O=${ORG}, CN=CoCo Sidecar Client CA`)
  })

  it("rejects a client CA bundle of only an expired CA as CertificateExpired naming the CA URI", () => {
    const error = validateErr(sources({ ca: pki.expiredCa.certPem }))
    if (!(error instanceof CertificateExpired))
      return assert.fail(`expected CertificateExpired, got ${error._tag}`)
    assert.strictEqual(error.uri, CA_URI)
    assert.strictEqual(error.notAfter, node(pki.expiredCa).validToDate.toISOString())
    expect(error.message).toContain(CA_URI)
  })

  it("rejects a client CA bundle of an expired and a not-yet-valid CA with the first problem", () => {
    const error = validateErr(sources({ ca: `${pki.expiredCa.certPem}${pki.futureCa.certPem}` }))
    assert.strictEqual(error._tag, "CertificateExpired")
  })

  it("rejects a client CA bundle of only a not-yet-valid CA", () => {
    const error = validateErr(sources({ ca: pki.futureCa.certPem }))
    if (!(error instanceof CertificateNotYetValid)) {
      return assert.fail(`expected CertificateNotYetValid, got ${error._tag}`)
    }
    assert.strictEqual(error.uri, CA_URI)
  })

  it("rejects a garbage client CA as InvalidPem naming the CA URI", () => {
    const error = validateErr(sources({ ca: "garbage" }))
    if (!(error instanceof InvalidPem)) return assert.fail(`expected InvalidPem, got ${error._tag}`)
    assert.strictEqual(error.uri, CA_URI)
    assert.strictEqual(error.what, "client CA certificate")
    expect(error.message).toContain(CA_URI)
  })
})

describe("validate.ts helpers", () => {
  it("oneLine joins a Node distinguished name", () => {
    assert.strictEqual(Validate.oneLine("C=US\nO=Org\nCN=x\n"), "C=US, O=Org, CN=x")
    assert.strictEqual(Validate.oneLine(""), "")
  })

  it("parseCertificates returns every block, in order", () => {
    const result = Validate.parseCertificates(
      bytes(`junk before\n${pki.server.certPem}between\n${pki.ca.certPem}after`),
      CA_URI,
      "bundle",
    )
    if (Result.isFailure(result)) return assert.fail(result.failure.message)
    assert.deepStrictEqual(
      result.success.certs.map((c) => c.fingerprint256),
      [node(pki.server).fingerprint256, node(pki.ca).fingerprint256],
    )
    assert.strictEqual(result.success.pem, `${pki.server.certPem.trimEnd()}\n${pki.ca.certPem.trimEnd()}`)
  })

  it("parsePrivateKey keeps the PEM redacted", () => {
    const result = Validate.parsePrivateKey(bytes(pki.server.keyPem), KEY_URI)
    if (Result.isFailure(result)) return assert.fail(result.failure.message)
    const { pem, key } = result.success
    assert.strictEqual(key.asymmetricKeyType, "ec")
    assert.strictEqual(Redacted.value(pem), pki.server.keyPem)
    for (const shown of [String(pem), JSON.stringify({ pem }), `${pem}`]) {
      for (const line of keyLines(pki.server.keyPem)) expect(shown).not.toContain(line)
    }
  })

  it("checkClientCas needs at least one currently valid CA", () => {
    assert.isTrue(Result.isSuccess(Validate.checkClientCas([node(pki.ca)], CA_URI, new Date())))
    assert.isTrue(Result.isFailure(Validate.checkClientCas([node(pki.expiredCa)], CA_URI, new Date())))
  })
})
