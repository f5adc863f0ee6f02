import type { AddressInfo } from "node:net"
import * as tls from "node:tls"
import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  type AllowEnv,
  type AllowRules,
  authorize,
  identityOf,
  isRestricted,
  NO_RULES,
  type PeerIdentity,
  parseRules,
} from "../../src/auth/ClientAuthorization.ts"
import { createCa, issue } from "../../src/tls/DevPki.ts"

const rules = (env: AllowEnv): AllowRules => {
  const parsed = parseRules(env)
  if (Result.isFailure(parsed)) throw new Error(`unexpected parse failure: ${JSON.stringify(parsed.failure)}`)
  return parsed.success
}

const peer = (overrides: Partial<PeerIdentity>): PeerIdentity => ({
  cn: [],
  ous: [],
  dnsNames: [],
  uris: [],
  ...overrides,
})

describe("NO_RULES", () => {
  it("is not restricted", () => {
    expect(isRestricted(NO_RULES)).toBe(false)
    expect(isRestricted(rules({}))).toBe(false)
    expect(isRestricted(rules({ ALLOW_CN: " , ,", ALLOW_DNS: "" }))).toBe(false)
    expect(isRestricted(rules({ ALLOW_URI: "spiffe://x/y" }))).toBe(true)
  })

  it.each<[string, PeerIdentity]>([
    ["an empty identity", peer({})],
    ["any CN", peer({ cn: ["anyone"] })],
    ["any SANs", peer({ dnsNames: ["x.example.com"], uris: ["spiffe://x/y"] })],
  ])("allows %s", (_, identity) => {
    expect(authorize(NO_RULES, identity)).toEqual({ allowed: true })
  })
})

describe("authorize (allow-list table)", () => {
  it.each<[string, AllowEnv, PeerIdentity, boolean]>([
    // CN: exact, case-sensitive
    ["CN developer on the list", { ALLOW_CN: "developer,ops" }, peer({ cn: ["developer"] }), true],
    ["CN ops on the list", { ALLOW_CN: "developer,ops" }, peer({ cn: ["ops"] }), true],
    ["CN Developer (case differs)", { ALLOW_CN: "developer,ops" }, peer({ cn: ["Developer"] }), false],
    ["CN dev (prefix only)", { ALLOW_CN: "developer,ops" }, peer({ cn: ["dev"] }), false],
    ["no CN at all", { ALLOW_CN: "developer" }, peer({}), false],
    ["one of several CNs", { ALLOW_CN: "developer" }, peer({ cn: ["x", "developer"] }), true],
    // OU
    ["OU ops among [eng, ops]", { ALLOW_OU: "ops" }, peer({ ous: ["eng", "ops"] }), true],
    ["OU [eng] only", { ALLOW_OU: "ops" }, peer({ ous: ["eng"] }), false],
    ["OU Ops (case differs)", { ALLOW_OU: "ops" }, peer({ ous: ["Ops"] }), false],
    ["CN equal to an allowed OU", { ALLOW_OU: "ops" }, peer({ cn: ["ops"] }), false],
    // DNS
    [
      "a.example.com by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["a.example.com"] }),
      true,
    ],
    [
      "example.com by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["example.com"] }),
      false,
    ],
    [
      "a.b.example.com by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["a.b.example.com"] }),
      false,
    ],
    [
      "A.EXAMPLE.COM by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["A.EXAMPLE.COM"] }),
      true,
    ],
    [
      "a.example.org by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["a.example.org"] }),
      false,
    ],
    [
      "aexample.com by *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["aexample.com"] }),
      false,
    ],
    [
      "wildcard SAN *.example.com",
      { ALLOW_DNS: "*.example.com" },
      peer({ dnsNames: ["*.example.com"] }),
      false,
    ],
    [
      "A.EXAMPLE.COM by a.example.com",
      { ALLOW_DNS: "a.example.com" },
      peer({ dnsNames: ["A.EXAMPLE.COM"] }),
      true,
    ],
    [
      "a.example.com by A.Example.Com",
      { ALLOW_DNS: "A.Example.Com" },
      peer({ dnsNames: ["a.example.com"] }),
      true,
    ],
    [
      "b.example.com by a.example.com",
      { ALLOW_DNS: "a.example.com" },
      peer({ dnsNames: ["b.example.com"] }),
      false,
    ],
    [
      "exact svc.ns.svc.cluster.local",
      { ALLOW_DNS: "svc.ns.svc.cluster.local" },
      peer({ dnsNames: ["svc.ns.svc.cluster.local"] }),
      true,
    ],
    [
      "other.ns.svc.cluster.local by exact svc.ns.svc.cluster.local",
      { ALLOW_DNS: "svc.ns.svc.cluster.local" },
      peer({ dnsNames: ["other.ns.svc.cluster.local"] }),
      false,
    ],
    ["DNS rule vs CN", { ALLOW_DNS: "a.example.com" }, peer({ cn: ["a.example.com"] }), false],
    // URI
    [
      "exact URI",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/sa/web" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/sa/web"] }),
      true,
    ],
    [
      "exact URI, different case",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/sa/web" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/sa/Web"] }),
      false,
    ],
    [
      "exact URI, longer",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/sa/web" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/sa/web/x"] }),
      false,
    ],
    [
      "prefix /* allows a URI below it",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/sa/web"] }),
      true,
    ],
    [
      "prefix /* allows one segment below it",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/x"] }),
      true,
    ],
    [
      "prefix /* denies a sibling sharing the text prefix",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shopping/x"] }),
      false,
    ],
    [
      "prefix /* denies the bare prefix",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop"] }),
      false,
    ],
    [
      "prefix /* denies the prefix with trailing slash",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/"] }),
      false,
    ],
    [
      "prefix /* denies a dot-dot escape",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/../admin"] }),
      false,
    ],
    [
      "prefix /* denies an encoded dot-dot escape",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop/%2e%2E/admin"] }),
      false,
    ],
    [
      "prefix /* denies an empty segment",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://cluster.local/ns/shop//x"] }),
      false,
    ],
    [
      "prefix /* denies another trust domain",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/*" },
      peer({ uris: ["spiffe://evil.local/ns/shop/sa/web"] }),
      false,
    ],
    // OR semantics across lists
    [
      "CN bob, DNS x.example.com (DNS matches)",
      { ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" },
      peer({ cn: ["bob"], dnsNames: ["x.example.com"] }),
      true,
    ],
    [
      "CN alice, no DNS (CN matches)",
      { ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" },
      peer({ cn: ["alice"] }),
      true,
    ],
    [
      "CN bob, DNS x.example.org (nothing matches)",
      { ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" },
      peer({ cn: ["bob"], dnsNames: ["x.example.org"] }),
      false,
    ],
    [
      "URI match with unrelated CN/OU lists",
      { ALLOW_CN: "alice", ALLOW_OU: "ops", ALLOW_URI: "spiffe://td/*" },
      peer({ cn: ["bob"], ous: ["eng"], uris: ["spiffe://td/w"] }),
      true,
    ],
  ])("%s", (_, env, identity, allowed) => {
    expect(authorize(rules(env), identity).allowed).toBe(allowed)
  })

  it("names only the CN in the denial reason", () => {
    const decision = authorize(
      rules({ ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" }),
      peer({ cn: ["bob"], ous: ["secret-ou"], dnsNames: ["x.example.org"], uris: ["spiffe://td/w"] }),
    )
    expect(decision).toEqual({ allowed: false, reason: "client certificate CN=bob is not on the allow-list" })
  })

  it.each<[string, PeerIdentity, string]>([
    ["no CN", peer({}), "client certificate without a CN is not on the allow-list"],
    ["two CNs", peer({ cn: ["a", "b"] }), "client certificate CN=a+b is not on the allow-list"],
    ["a control character", peer({ cn: ["a\nb"] }), "client certificate CN=a?b is not on the allow-list"],
    [
      "a long CN",
      peer({ cn: ["x".repeat(100)] }),
      `client certificate CN=${"x".repeat(64)}… is not on the allow-list`,
    ],
  ])("denial reason with %s", (_, identity, reason) => {
    expect(authorize(rules({ ALLOW_CN: "alice" }), identity)).toEqual({ allowed: false, reason })
  })
})

describe("parseRules", () => {
  it.each<[string, AllowEnv, AllowRules]>([
    ["nothing", {}, NO_RULES],
    ["empty strings", { ALLOW_CN: "", ALLOW_OU: "", ALLOW_DNS: "", ALLOW_URI: "" }, NO_RULES],
    ["empty entries between commas", { ALLOW_CN: "a,,b," }, { ...NO_RULES, cns: ["a", "b"] }],
    ["whitespace trimmed", { ALLOW_OU: "  eng , ops\t" }, { ...NO_RULES, ous: ["eng", "ops"] }],
    ["CN keeps inner spaces", { ALLOW_CN: " Jane Doe " }, { ...NO_RULES, cns: ["Jane Doe"] }],
    ["duplicates collapsed", { ALLOW_CN: "a,a,b" }, { ...NO_RULES, cns: ["a", "b"] }],
    [
      "DNS lower-cased",
      { ALLOW_DNS: "A.Example.COM, *.Svc.Cluster.Local" },
      { ...NO_RULES, dnsNames: ["a.example.com", "*.svc.cluster.local"] },
    ],
    [
      "DNS with underscore and digits",
      { ALLOW_DNS: "_svc.x-1.io" },
      { ...NO_RULES, dnsNames: ["_svc.x-1.io"] },
    ],
    [
      "URIs exact and prefix",
      { ALLOW_URI: "spiffe://cluster.local/ns/shop/sa/web, spiffe://cluster.local/ns/shop/*" },
      { ...NO_RULES, uris: ["spiffe://cluster.local/ns/shop/sa/web", "spiffe://cluster.local/ns/shop/*"] },
    ],
    ["URI trust-domain prefix", { ALLOW_URI: "spiffe://td/*" }, { ...NO_RULES, uris: ["spiffe://td/*"] }],
    [
      "non-spiffe URI",
      { ALLOW_URI: "https://example.com/x" },
      { ...NO_RULES, uris: ["https://example.com/x"] },
    ],
  ])("accepts %s", (_, env, expected) => {
    expect(parseRules(env)).toEqual(Result.succeed(expected))
  })

  it.each<[string, AllowEnv, string, string]>([
    ["a wildcard inside a label", { ALLOW_DNS: "a*.example.com" }, "ALLOW_DNS", "a*.example.com"],
    ["a bare wildcard", { ALLOW_DNS: "ok.example.com, *" }, "ALLOW_DNS", "*"],
    ["a wildcard over a TLD", { ALLOW_DNS: "*.com" }, "ALLOW_DNS", "*.com"],
    ["a wildcard not left-most", { ALLOW_DNS: "a.*.example.com" }, "ALLOW_DNS", "a.*.example.com"],
    ["two wildcards", { ALLOW_DNS: "*.*.example.com" }, "ALLOW_DNS", "*.*.example.com"],
    ["an empty label", { ALLOW_DNS: "a..example.com" }, "ALLOW_DNS", "a..example.com"],
    ["a space in a name", { ALLOW_DNS: "a b.example.com" }, "ALLOW_DNS", "a b.example.com"],
    ["a label ending in -", { ALLOW_DNS: "a-.example.com" }, "ALLOW_DNS", "a-.example.com"],
    [
      "a label over 63 characters",
      { ALLOW_DNS: `${"a".repeat(64)}.io` },
      "ALLOW_DNS",
      `${"a".repeat(64)}.io`,
    ],
    ["a wildcard mid-path", { ALLOW_URI: "spiffe://x/*/y" }, "ALLOW_URI", "spiffe://x/*/y"],
    ["a partial-segment wildcard", { ALLOW_URI: "spiffe://x/a*" }, "ALLOW_URI", "spiffe://x/a*"],
    ["a wildcard authority", { ALLOW_URI: "spiffe://*" }, "ALLOW_URI", "spiffe://*"],
    ["not a URI", { ALLOW_URI: "not a uri" }, "ALLOW_URI", "not a uri"],
    ["a relative path", { ALLOW_URI: "/ns/shop/*" }, "ALLOW_URI", "/ns/shop/*"],
    ["a control character in a CN", { ALLOW_CN: "a\u0001b" }, "ALLOW_CN", "a\u0001b"],
  ])("rejects %s", (_, env, variable, value) => {
    const parsed = parseRules(env)
    expect(Result.isFailure(parsed)).toBe(true)
    if (Result.isFailure(parsed)) {
      expect(parsed.failure.variable).toBe(variable)
      expect(parsed.failure.value).toBe(value)
      expect(parsed.failure.reason.length).toBeGreaterThan(0)
    }
  })
})

describe("identityOf", () => {
  it.each<[string, Parameters<typeof identityOf>[0], PeerIdentity]>([
    [
      "the getPeerCertificate shape with a quoted SAN",
      {
        subject: { CN: "developer", O: "Confidential Containers" },
        subjectaltname: 'DNS:a.example.com, DNS:"we,ird", URI:spiffe://x/y, IP Address:127.0.0.1',
      },
      { cn: ["developer"], ous: [], dnsNames: ["a.example.com", "we,ird"], uris: ["spiffe://x/y"] },
    ],
    [
      "CN and OU as arrays",
      { subject: { CN: ["a", "b"], OU: ["eng", "ops"] }, subjectaltname: "DNS:x.example.com" },
      { cn: ["a", "b"], ous: ["eng", "ops"], dnsNames: ["x.example.com"], uris: [] },
    ],
    [
      "a quoted value with ', ' and escapes",
      { subject: { OU: "eng" }, subjectaltname: 'URI:"spiffe://x/a, b", DNS:"q\\"uote", email:a@b.c' },
      { cn: [], ous: ["eng"], dnsNames: ['q"uote'], uris: ["spiffe://x/a, b"] },
    ],
    [
      "a quoted value that looks like another entry",
      { subjectaltname: 'DNS:"x, URI:spiffe://admin"' },
      { cn: [], ous: [], dnsNames: ["x, URI:spiffe://admin"], uris: [] },
    ],
    ["an empty certificate ({})", {}, { cn: [], ous: [], dnsNames: [], uris: [] }],
    [
      "a malformed quoted value (fails closed)",
      { subject: { CN: "c" }, subjectaltname: 'DNS:a.example.com, DNS:"unterminated' },
      { cn: ["c"], ous: [], dnsNames: [], uris: [] },
    ],
  ])("%s", (_, cert, expected) => {
    expect(identityOf(cert)).toEqual(expected)
  })
})

describe("identityOf on a real mTLS connection", () => {
  it("reads CN and DNS SANs from getPeerCertificate() on the server side", async () => {
    const ca = await createCa()
    const server = await issue(ca, { cn: "localhost", kind: "server", dnsNames: ["localhost"] })
    const client = await issue(ca, {
      cn: "developer",
      kind: "client",
      dnsNames: ["a.example.com", "svc.ns.svc.cluster.local"],
      org: "Confidential Containers",
    })
    let seen: PeerIdentity | undefined
    const tlsServer = tls.createServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: ca.certPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) => {
        seen = identityOf(socket.getPeerCertificate())
        socket.end("ok")
        socket.on("error", () => {})
      },
    )
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve))
    const { port } = tlsServer.address() as AddressInfo
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          servername: "localhost",
          cert: client.certPem,
          key: client.keyPem,
          ca: ca.certPem,
        })
        let data = ""
        socket.setEncoding("utf8")
        socket.on("data", (chunk: string) => {
          data += chunk
        })
        socket.on("end", () => resolve(data))
        socket.on("error", reject)
      })
      expect(reply).toBe("ok")
    } finally {
      await new Promise<void>((resolve) => tlsServer.close(() => resolve()))
    }
    expect(seen).toEqual({
      cn: ["developer"],
      ous: [],
      dnsNames: ["a.example.com", "svc.ns.svc.cluster.local"],
      uris: [],
    })
    const identity = seen ?? peer({})
    expect(authorize(rules({ ALLOW_DNS: "*.example.com" }), identity)).toEqual({ allowed: true })
    expect(authorize(rules({ ALLOW_CN: "developer" }), identity)).toEqual({ allowed: true })
    expect(authorize(rules({ ALLOW_CN: "ops", ALLOW_DNS: "*.svc.cluster.local" }), identity)).toEqual({
      allowed: false,
      reason: "client certificate CN=developer is not on the allow-list",
    })
  })
})
