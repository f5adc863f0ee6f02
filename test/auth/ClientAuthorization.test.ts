import { Result } from "effect"
import { describe, expect, it } from "vitest"
import {
  type AllowEnv,
  type AllowRules,
  authorize,
  isRestricted,
  NO_RULES,
  type PeerIdentity,
  parseRules,
} from "../../src/auth/ClientAuthorization.ts"

const rules = (env: AllowEnv): AllowRules => {
  const parsed = parseRules(env)
  if (Result.isFailure(parsed)) throw new Error(`unexpected parse failure: ${JSON.stringify(parsed.failure)}`)
  return parsed.success
}

const peer = (overrides: Partial<PeerIdentity>): PeerIdentity => ({
  commonName: undefined,
  organizationalUnits: [],
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
    ["any CN", peer({ commonName: "anyone" })],
    ["any SANs", peer({ dnsNames: ["x.example.com"], uris: ["spiffe://x/y"] })],
  ])("allows %s", (_, identity) => {
    expect(authorize(NO_RULES, identity)).toEqual({ allowed: true })
  })
})

describe("authorize (allow-list table)", () => {
  it.each<[string, AllowEnv, PeerIdentity, boolean]>([
    // CN: exact, case-sensitive
    ["CN developer on the list", { ALLOW_CN: "developer,ops" }, peer({ commonName: "developer" }), true],
    ["CN ops on the list", { ALLOW_CN: "developer,ops" }, peer({ commonName: "ops" }), true],
    ["CN Developer (case differs)", { ALLOW_CN: "developer,ops" }, peer({ commonName: "Developer" }), false],
    ["CN dev (prefix only)", { ALLOW_CN: "developer,ops" }, peer({ commonName: "dev" }), false],
    ["no CN at all", { ALLOW_CN: "developer" }, peer({}), false],
    // OU
    ["OU ops among [eng, ops]", { ALLOW_OU: "ops" }, peer({ organizationalUnits: ["eng", "ops"] }), true],
    ["OU [eng] only", { ALLOW_OU: "ops" }, peer({ organizationalUnits: ["eng"] }), false],
    ["OU Ops (case differs)", { ALLOW_OU: "ops" }, peer({ organizationalUnits: ["Ops"] }), false],
    ["CN equal to an allowed OU", { ALLOW_OU: "ops" }, peer({ commonName: "ops" }), false],
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
    ["DNS rule vs CN", { ALLOW_DNS: "a.example.com" }, peer({ commonName: "a.example.com" }), false],
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
      peer({ commonName: "bob", dnsNames: ["x.example.com"] }),
      true,
    ],
    [
      "CN alice, no DNS (CN matches)",
      { ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" },
      peer({ commonName: "alice" }),
      true,
    ],
    [
      "CN bob, DNS x.example.org (nothing matches)",
      { ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" },
      peer({ commonName: "bob", dnsNames: ["x.example.org"] }),
      false,
    ],
    [
      "URI match with unrelated CN/OU lists",
      { ALLOW_CN: "alice", ALLOW_OU: "ops", ALLOW_URI: "spiffe://td/*" },
      peer({ commonName: "bob", organizationalUnits: ["eng"], uris: ["spiffe://td/w"] }),
      true,
    ],
  ])("%s", (_, env, identity, allowed) => {
    expect(authorize(rules(env), identity).allowed).toBe(allowed)
  })

  it("names only the CN in the denial reason", () => {
    const decision = authorize(
      rules({ ALLOW_CN: "alice", ALLOW_DNS: "*.example.com" }),
      peer({
        commonName: "bob",
        organizationalUnits: ["secret-ou"],
        dnsNames: ["x.example.org"],
        uris: ["spiffe://td/w"],
      }),
    )
    expect(decision).toEqual({ allowed: false, reason: "client certificate CN=bob is not on the allow-list" })
  })

  it.each<[string, PeerIdentity, string]>([
    ["no CN", peer({}), "client certificate without a CN is not on the allow-list"],
    // Escaped where it leaves (logs, pages), not here: the reason keeps the name as it is.
    [
      "a control character",
      peer({ commonName: "a\nb" }),
      "client certificate CN=a\nb is not on the allow-list",
    ],
    [
      "a long CN",
      peer({ commonName: "x".repeat(100) }),
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
