import { X509Certificate } from "node:crypto"
import type { AddressInfo } from "node:net"
import * as tls from "node:tls"
import type * as X509 from "@peculiar/x509"
import { beforeAll, describe, expect, it } from "vitest"
import { type Authority, createCa, createDevPki, type DevPki, issue, issueCa } from "../../src/dev/DevPki.ts"
import {
  type ClientCertificate,
  formatDn,
  fromX509,
  parseDn,
  splitAltNames,
} from "../../src/gateway/clientCertificate.ts"

let pki: DevPki
beforeAll(async () => {
  pki = await createDevPki()
})

const leafWith = async (subject: X509.JsonName, sans: { dnsNames?: string[]; uris?: string[] } = {}) =>
  issue(pki.ca, { cn: "unused", kind: "client", subject, ...sans })

/** Node's own unescaped view of a subject, for comparison: `{ CN: "a" | ["a", "b"], … }`. */
const legacySubject = (pem: string) => new X509Certificate(pem).toLegacyObject().subject

const asLegacy = (rdns: ReadonlyArray<ReadonlyArray<readonly [string, string]>>) => {
  const out: Record<string, string | Array<string>> = {}
  for (const rdn of rdns)
    for (const [name, value] of rdn) {
      const seen = out[name]
      out[name] = seen === undefined ? value : Array.isArray(seen) ? [...seen, value] : [seen, value]
    }
  return out
}

describe("parseDn", () => {
  it.each<[string, X509.JsonName]>([
    ["UTF-8 names", [{ C: ["PL"] }, { O: ["Škoda"] }, { CN: ["Łukasz Nowak"] }]],
    ["Cyrillic and CJK", [{ O: ["Роснефть"] }, { CN: ["山田太郎"] }]],
    ["control characters", [{ CN: ["a\u001b[31mred\r\nnext\u0000\u007f"] }]],
    ["RFC 2253 specials", [{ CN: ['a,b+c"d\\e<f>g;h=i'] }]],
    // (@peculiar/x509 reads a value starting with "#" as hex DER: formatDn tests that case.)
    ["leading and trailing spaces", [{ O: [" spaced "] }, { CN: ["in#side"] }]],
    ["several CNs", [{ CN: ["first"] }, { CN: ["second"] }, { CN: ["third"] }]],
    ["a multi-valued RDN", [{ O: ["org"] }, { CN: ["cn"], OU: ["unit"] }]],
    ["a value with ' + ' in it", [{ CN: ["a + b"] }]],
    ["an empty value", [{ O: [""] }, { CN: ["x"] }]],
  ])("reads %s exactly as Node's legacy object has them", async (_, subject) => {
    const leaf = await leafWith(subject)
    const rdns = parseDn(new X509Certificate(leaf.certPem).subject)
    expect(asLegacy(rdns)).toEqual(legacySubject(leaf.certPem))
  })

  it("keeps the certificate's order and the RDN grouping", async () => {
    const leaf = await leafWith([{ C: ["US"] }, { O: ["org"], OU: ["unit"] }, { CN: ["cn"] }])
    expect(parseDn(new X509Certificate(leaf.certPem).subject)).toEqual([
      [["C", "US"]],
      [
        ["O", "org"],
        ["OU", "unit"],
      ],
      [["CN", "cn"]],
    ])
  })
})

describe("formatDn", () => {
  it.each<[string, Array<Array<readonly [string, string]>>, string]>([
    ["most specific first", [[["C", "US"]], [["O", "Org"]], [["CN", "dev"]]], "CN=dev,O=Org,C=US"],
    [
      "multi-valued RDNs with +",
      [
        [["O", "o"]],
        [
          ["CN", "c"],
          ["OU", "u"],
        ],
      ],
      "CN=c+OU=u,O=o",
    ],
    ["RFC 4514 specials", [[["CN", 'a,b+c"d\\e<f>g;h=i']]], 'CN=a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i'],
    ["a leading # or space, a trailing space", [[["CN", "#x"]], [["O", " y "]]], "O=\\ y\\ ,CN=\\#x"],
  ])("%s", (_, rdns, text) => {
    expect(formatDn(rdns)).toBe(text)
  })
})

describe("splitAltNames (Node's subjectAltName text)", () => {
  it.each<[string, string, ReadonlyArray<string> | undefined]>([
    [
      "a quoted SAN among plain ones",
      'DNS:a.example.com, DNS:"we,ird", URI:spiffe://x/y, IP Address:127.0.0.1',
      ["DNS:a.example.com", "DNS:we,ird", "URI:spiffe://x/y", "IP Address:127.0.0.1"],
    ],
    [
      "a quoted value with ', ' and escapes",
      'URI:"spiffe://x/a, b", DNS:"q\\"uote", email:a@b.c',
      ["URI:spiffe://x/a, b", 'DNS:q"uote', "email:a@b.c"],
    ],
    [
      "a quoted value that looks like another entry",
      'DNS:"x, URI:spiffe://admin"',
      ["DNS:x, URI:spiffe://admin"],
    ],
    ["control characters, JSON-escaped", 'URI:"a\\u000d\\u000ab\\u007f"', ["URI:a\r\nb\u007f"]],
    ["a malformed quoted value", 'DNS:a.example.com, DNS:"unterminated', undefined],
  ])("%s", (_, text, expected) => {
    expect(splitAltNames(text)).toEqual(expected)
  })
})

/** The server-side view of a real mTLS connection made with `client` (its chain: `sent`). */
const seenBy = async (
  ca: Authority,
  client: { certPem: string; keyPem: string },
  sent: ReadonlyArray<string> = [],
): Promise<ClientCertificate> => {
  const server = await issue(ca, { cn: "localhost", kind: "server", dnsNames: ["localhost"] })
  const anchors = new Set([new X509Certificate(ca.certPem).fingerprint256])
  let seen: ClientCertificate | undefined
  const tlsServer = tls.createServer(
    { cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true, rejectUnauthorized: true },
    (socket) => {
      const x509 = socket.getPeerX509Certificate()
      if (x509 !== undefined) seen = fromX509(x509, anchors)
      socket.on("error", () => {})
      socket.end("ok")
    },
  )
  await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve))
  const { port } = tlsServer.address() as AddressInfo
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port,
        servername: "localhost",
        cert: [client.certPem, ...sent].join(""),
        key: client.keyPem,
        ca: ca.certPem,
      })
      socket.on("data", () => {})
      socket.on("end", () => resolve())
      socket.on("error", reject)
    })
  } finally {
    await new Promise<void>((resolve) => tlsServer.close(() => resolve()))
  }
  if (seen === undefined) throw new Error("the server saw no certificate")
  return seen
}

describe("fromX509", () => {
  it("takes the most specific (last) CN as the client's name, and every OU", async () => {
    const leaf = await leafWith([
      { O: ["org"] },
      { OU: ["eng"] },
      { OU: ["ops"] },
      { CN: ["admin"] },
      { CN: ["bob"] },
    ])
    const cert = fromX509(new X509Certificate(leaf.certPem), new Set())
    expect(cert.commonName).toBe("bob")
    expect(cert.organizationalUnits).toEqual(["eng", "ops"])
    expect(cert.subject).toBe("CN=bob,CN=admin,OU=ops,OU=eng,O=org")
  })

  it("has no CN when the subject has none", async () => {
    const leaf = await leafWith([{ O: ["org"] }])
    expect(fromX509(new X509Certificate(leaf.certPem), new Set()).commonName).toBeUndefined()
  })

  it("reads DNS and URI SANs with control characters as they are", async () => {
    const leaf = await leafWith([{ CN: ["svc"] }], {
      dnsNames: ["ok.example", "bad\r\nname"],
      uris: ["spiffe://td/a\r\nb\u007f", 'https://e/"q",x'],
    })
    const cert = fromX509(new X509Certificate(leaf.certPem), new Set())
    expect(cert.dnsNames).toEqual(["ok.example", "bad\r\nname"])
    expect(cert.uris).toEqual(["spiffe://td/a\r\nb\u007f", 'https://e/"q",x'])
  })

  it("carries validity, serial, fingerprint and DER", async () => {
    const x509 = new X509Certificate(pki.client.certPem)
    const cert = fromX509(x509, new Set())
    expect(cert.validTo.getTime()).toBe(x509.validToDate.getTime())
    expect(cert.validFrom.getTime()).toBe(x509.validFromDate.getTime())
    expect(cert.serialNumber).toBe(x509.serialNumber)
    expect(cert.fingerprint256).toBe(x509.fingerprint256)
    expect(cert.der.equals(x509.raw)).toBe(true)
  })

  it("on a real connection: no chain when the client sent its leaf alone", async () => {
    const cert = await seenBy(pki.ca, pki.client)
    expect(cert.commonName).toBe("developer")
    expect(cert.chain).toEqual([])
  })

  it("on a real connection: the intermediate the client sent, without the sidecar's own CA", async () => {
    const root = await createCa({ cn: "Root" })
    const intermediate = await issueCa(root, { cn: "Team Intermediate" })
    const client = await issue(intermediate, { cn: "alice", kind: "client" })
    const cert = await seenBy(root, client, [intermediate.certPem])
    expect(cert.commonName).toBe("alice")
    expect(cert.chain.map((der) => new X509Certificate(der).subject)).toEqual(["C=US\nCN=Team Intermediate"])
  })
})
