import { createHash, X509Certificate } from "node:crypto"
import type * as X509 from "@peculiar/x509"
import { beforeAll, describe, expect, it } from "vitest"
import { createCa, createDevPki, type DevPki, issue, issueCa } from "../../src/dev/DevPki.ts"
import { fromX509 } from "../../src/gateway/clientCertificate.ts"
import {
  CLIENT_CERT,
  CLIENT_CERT_CHAIN,
  identityHeaders,
  XFCC,
  xfcc,
} from "../../src/gateway/identityHeaders.ts"

let pki: DevPki
beforeAll(async () => {
  pki = await createDevPki()
})

const certOf = (pem: string) => fromX509(new X509Certificate(pem), new Set())
const xfccOf = (pem: string) => xfcc(certOf(pem))
const sha256Hex = (pem: string) => createHash("sha256").update(new X509Certificate(pem).raw).digest("hex")
const leafWith = (subject: X509.JsonName, sans: { dnsNames?: string[]; uris?: string[] } = {}) =>
  issue(pki.ca, { cn: "unused", kind: "client", subject, ...sans })

/** What Node accepts in a header value without throwing ERR_INVALID_CHAR: here, printable ASCII only. */
const PRINTABLE_ASCII = /^[\u0020-\u007e]*$/

describe("X-Forwarded-Client-Cert", () => {
  it("is Hash and the RFC 4514 Subject, most specific first", () => {
    expect(xfccOf(pki.client.certPem)).toBe(
      `Hash=${sha256Hex(pki.client.certPem)};Subject="CN=developer,O=Confidential Containers,C=US"`,
    )
  })

  it("hashes the DER as 64 lowercase hex digits, different per certificate", () => {
    const hashOf = (pem: string) => /^Hash=([^;]*);/.exec(xfccOf(pem))?.[1]
    expect(hashOf(pki.client.certPem)).toMatch(/^[0-9a-f]{64}$/)
    expect(hashOf(pki.client.certPem)).not.toBe(hashOf(pki.server.certPem))
  })

  it("lists DNS SANs in order and leaves IP SANs out", () => {
    expect(xfccOf(pki.server.certPem)).toBe(
      `Hash=${sha256Hex(pki.server.certPem)};Subject="CN=localhost,O=Confidential Containers,C=US";DNS="localhost"`,
    )
  })

  it("lists URI SANs, then DNS SANs", async () => {
    const leaf = await leafWith([{ CN: ["svc"] }], {
      dnsNames: ["web.shop.svc", "*.c.example"],
      uris: ["spiffe://cluster.local/ns/shop/sa/web", "https://id.example/u/42"],
    })
    expect(xfccOf(leaf.certPem)).toBe(
      `Hash=${sha256Hex(leaf.certPem)};Subject="CN=svc";URI="spiffe://cluster.local/ns/shop/sa/web";URI="https://id.example/u/42";DNS="web.shop.svc";DNS="*.c.example"`,
    )
  })

  it.each([
    {
      label: "a comma in O",
      subject: [{ C: ["US"] }, { O: ["Example, Inc."] }, { CN: ["dev"] }],
      dn: "CN=dev,O=Example\\, Inc.,C=US",
    },
    {
      label: "RFC 4514 specials in CN",
      subject: [{ CN: ['a,b+c"d<e>f;g'] }],
      dn: 'CN=a\\,b\\+c\\"d\\<e\\>f\\;g',
    },
  ])("escapes $label for the DN, then for the quotes", async ({ subject, dn }) => {
    const leaf = await leafWith(subject)
    const quoted = `"${dn.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`
    expect(xfccOf(leaf.certPem)).toBe(`Hash=${sha256Hex(leaf.certPem)};Subject=${quoted}`)
  })

  it.each([
    { label: "a comma in a DNS name", sans: { dnsNames: ["a, b"] }, part: 'DNS="a, b"' },
    { label: "a quote in a DNS name", sans: { dnsNames: ['we"ird'] }, part: 'DNS="we\\"ird"' },
    { label: "a comma in a URI", sans: { uris: ["spiffe://x/a,b"] }, part: 'URI="spiffe://x/a,b"' },
  ])("quotes $label once", async ({ sans, part }) => {
    const leaf = await leafWith([{ CN: ["odd"] }], sans)
    expect(xfccOf(leaf.certPem)).toBe(`Hash=${sha256Hex(leaf.certPem)};Subject="CN=odd";${part}`)
  })

  it("works with an RSA certificate", async () => {
    const ca = await createCa({ algorithm: "rsa-2048" })
    const leaf = await issue(ca, { cn: "rsa-client", kind: "client", algorithm: "rsa-2048", org: "Org" })
    expect(xfccOf(leaf.certPem)).toBe(`Hash=${sha256Hex(leaf.certPem)};Subject="CN=rsa-client,O=Org,C=US"`)
  })

  // Finding 1: such names used to reach setHeader raw and throw ERR_INVALID_CHAR, ending the process.
  it.each<[string, X509.JsonName, string]>([
    [
      "Polish",
      [{ C: ["PL"] }, { O: ["Škoda"] }, { CN: ["Łukasz Nowak"] }],
      "CN=\\C5\\81ukasz Nowak,O=\\C5\\A0koda,C=PL",
    ],
    ["Cyrillic", [{ CN: ["Иван"] }], "CN=\\D0\\98\\D0\\B2\\D0\\B0\\D0\\BD"],
    ["CJK", [{ CN: ["山田"] }], "CN=\\E5\\B1\\B1\\E7\\94\\B0"],
    ["an ESC and a DEL", [{ CN: ["a\u001b[31mb\u007f"] }], "CN=a\\1B[31mb\\7F"],
    ["CR and LF", [{ CN: ["line\r\nX-Injected: 1"] }], "CN=line\\0D\\0AX-Injected: 1"],
  ])(
    "finding 1: writes a %s subject in printable ASCII, UTF-8 bytes as \\XX pairs",
    async (_, subject, dn) => {
      const leaf = await leafWith(subject)
      const value = xfccOf(leaf.certPem)
      expect(value).toMatch(PRINTABLE_ASCII)
      expect(value).toBe(`Hash=${sha256Hex(leaf.certPem)};Subject="${dn.replaceAll("\\", "\\\\")}"`)
    },
  )

  it("finding 1: percent-encodes control characters and non-ASCII bytes in SANs", async () => {
    const leaf = await leafWith([{ CN: ["svc"] }], {
      dnsNames: ["bad\r\nname"],
      uris: ["spiffe://td/a\r\nb\u007f"],
    })
    const value = xfccOf(leaf.certPem)
    expect(value).toMatch(PRINTABLE_ASCII)
    expect(value).toContain('URI="spiffe://td/a%0D%0Ab%7F"')
    expect(value).toContain('DNS="bad%0D%0Aname"')
  })
})

describe("Client-Cert and Client-Cert-Chain (RFC 9440)", () => {
  it("carries the DER as a byte sequence, and no chain for a leaf alone", () => {
    const headers = identityHeaders(certOf(pki.client.certPem))
    expect(headers[CLIENT_CERT]).toBe(`:${new X509Certificate(pki.client.certPem).raw.toString("base64")}:`)
    expect(headers[CLIENT_CERT_CHAIN]).toBeUndefined()
    expect(headers[XFCC]).toBe(xfccOf(pki.client.certPem))
  })

  it("lists the intermediates, the leaf's issuer first, as byte sequences", async () => {
    const root = await createCa({ cn: "Root" })
    const outer = await issueCa(root, { cn: "Outer" })
    const inner = await issueCa(outer, { cn: "Inner" })
    const cert = {
      ...certOf(pki.client.certPem),
      chain: [inner, outer].map((ca) => new X509Certificate(ca.certPem).raw),
    }
    const chain = identityHeaders(cert)[CLIENT_CERT_CHAIN] ?? ""
    expect(
      chain.split(", ").map((item) => new X509Certificate(Buffer.from(item.slice(1, -1), "base64")).subject),
    ).toEqual(["C=US\nCN=Inner", "C=US\nCN=Outer"])
  })

  it("finding 1: every identity header of an odd certificate is printable ASCII", async () => {
    const leaf = await leafWith([{ O: ["Škoda\u001b"] }, { CN: ["Łukasz\r\n"] }], { uris: ["x:\u007f"] })
    for (const value of Object.values(identityHeaders(certOf(leaf.certPem))))
      expect(value).toMatch(PRINTABLE_ASCII)
  })
})
