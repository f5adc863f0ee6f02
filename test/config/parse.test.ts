import { assert, describe, expect, it } from "@effect/vitest"
import { Duration, Result } from "effect"
import * as Parse from "../../src/config/parse.ts"

const ok = <A>(result: Result.Result<A, string>): A => {
  if (Result.isFailure(result)) throw new Error(`expected success, got failure: ${result.failure}`)
  return result.success
}

const err = <A>(result: Result.Result<A, string>): string => {
  if (Result.isSuccess(result)) throw new Error(`expected failure, got ${String(result.success)}`)
  return result.failure
}

describe("port", () => {
  it.each([
    { raw: "8443", expected: 8443 },
    { raw: "1", expected: 1 },
    { raw: "65535", expected: 65535 },
    { raw: "8006", expected: 8006 },
  ])("accepts $raw", ({ raw, expected }) => {
    assert.strictEqual(ok(Parse.port(raw)), expected)
  })

  it.each([
    "0",
    "00000",
    "65536",
    "70000",
    "123456",
    "abc",
    "",
    "80.5",
    "-1",
    "+80",
    " 80",
    "80 ",
    "0x50",
    "1e3",
    "８０",
  ])("rejects %j", (raw) => {
    expect(err(Parse.port(raw))).toContain("1 to 65535")
  })
})

describe("duration", () => {
  it.each([
    { raw: "250ms", millis: 250 },
    { raw: "30s", millis: 30_000 },
    { raw: "5m", millis: 300_000 },
    { raw: "1m30s", millis: 90_000 },
    { raw: "1h", millis: 3_600_000 },
    { raw: "1h30m", millis: 5_400_000 },
    { raw: "1.5s", millis: 1_500 },
    { raw: "2s500ms", millis: 2_500 },
    { raw: "0s", millis: 0 },
  ])("parses $raw as $millis ms", ({ raw, millis }) => {
    assert.strictEqual(Duration.toMillis(ok(Parse.duration(raw))), millis)
  })

  it.each(["5", "5 minutes", "-1s", "", "s", "1d", "1.s", ".5s", "1 s", "30S", "5m ", "1m30"])(
    "rejects %j",
    (raw) => {
      expect(err(Parse.duration(raw))).toContain("duration")
    },
  )

  it("finding 10: accepts the longest timer Node can set, and refuses one millisecond more", () => {
    assert.strictEqual(Duration.toMillis(ok(Parse.duration("596h31m23s647ms"))), 2 ** 31 - 1)
    expect(err(Parse.duration("596h31m23s648ms"))).toContain("must be at most 2147483647ms")
    expect(err(Parse.duration("1000h"))).toContain("the longest timer Node can set")
  })
})

describe("positiveDuration", () => {
  it("accepts a positive duration", () => {
    assert.strictEqual(Duration.toMillis(ok(Parse.positiveDuration("10ms"))), 10)
  })
  it.each(["0s", "0ms", "0m0s"])("rejects zero (%j)", (raw) => {
    assert.strictEqual(err(Parse.positiveDuration(raw)), "must be greater than zero")
  })
  it("passes on the syntax error", () => {
    expect(err(Parse.positiveDuration("soon"))).toContain("duration")
  })
})

describe("httpBaseUrl", () => {
  it.each([
    { raw: "http://127.0.0.1:8006", expected: "http://127.0.0.1:8006" },
    { raw: "http://127.0.0.1:8006/", expected: "http://127.0.0.1:8006" },
    { raw: "http://127.0.0.1:8006//", expected: "http://127.0.0.1:8006" },
    { raw: "https://cdh.local:8443/", expected: "https://cdh.local:8443" },
    { raw: "http://[::1]:8006/", expected: "http://[::1]:8006" },
    { raw: "http://localhost:8006/prefix/", expected: "http://localhost:8006/prefix" },
  ])("accepts $raw as $expected", ({ raw, expected }) => {
    assert.strictEqual(ok(Parse.httpBaseUrl(raw)), expected)
  })

  it.each([
    { raw: "http://user:pw@127.0.0.1:8006", reason: "credentials" },
    { raw: "http://user@127.0.0.1:8006", reason: "credentials" },
    { raw: "http://127.0.0.1:8006/?x=1", reason: "query or fragment" },
    { raw: "http://127.0.0.1:8006/#top", reason: "query or fragment" },
    { raw: "ftp://127.0.0.1:8006", reason: "http:// or https://" },
    { raw: "file:///tmp/cdh", reason: "http:// or https://" },
    { raw: "127.0.0.1:8006", reason: "http" },
    { raw: "", reason: "http:// URL" },
    { raw: "not a url", reason: "http:// URL" },
  ])("rejects $raw", ({ raw, reason }) => {
    expect(err(Parse.httpBaseUrl(raw))).toContain(reason)
  })

  it.each([{ raw: "http://127.0.0.1:8006/?" }, { raw: "http://127.0.0.1:8006#" }])(
    "rejects an empty query or fragment marker in $raw",
    ({ raw }) => {
      expect(err(Parse.httpBaseUrl(raw))).toContain("query or fragment")
    },
  )
})

describe("logLevel / oneOf / host", () => {
  it.each([
    { raw: "info", expected: "info" },
    { raw: "DEBUG", expected: "debug" },
    { raw: "Warn", expected: "warn" },
  ])("logLevel accepts $raw", ({ raw, expected }) => {
    assert.strictEqual(ok(Parse.logLevel(raw)), expected)
  })
  it("logLevel rejects an unknown level, listing the valid ones", () => {
    assert.strictEqual(err(Parse.logLevel("verbose")), "must be one of trace, debug, info, warn, error")
  })
  it("oneOf", () => {
    const format = Parse.oneOf(["json", "logfmt"] as const)
    assert.strictEqual(ok(format("logfmt")), "logfmt")
    assert.strictEqual(err(format("JSON")), "must be one of json, logfmt")
  })
  it.each(["0.0.0.0", "::", "127.0.0.1", "my-host.example"])("host accepts %j", (raw) => {
    assert.strictEqual(ok(Parse.host(raw)), raw)
  })
  it.each(["", "http://0.0.0.0", "a b", "host/path"])("host rejects %j", (raw) => {
    expect(err(Parse.host(raw))).toContain("address to listen on")
  })
})

describe("pathPrefix", () => {
  it.each([
    "/.sidecar",
    "/coco/sidecar",
    "/a-b_c~d",
    "/a",
    "/A1/b2/c3",
    "/...",
    "/.well-known/sidecar",
    "/a..b",
  ])("accepts %j", (raw) => {
    assert.strictEqual(ok(Parse.pathPrefix(raw)), raw)
  })

  it.each([
    "",
    "/",
    "//",
    "/a/",
    "/coco/sidecar/",
    "sidecar",
    ".sidecar",
    "/..",
    "/.",
    "/a/..",
    "/a/.",
    "/./a",
    "/../a",
    "/a/../b",
    "/a/./b",
    "/a b",
    " /a",
    "/a ",
    "/%2e",
    "/%2e%2e",
    "/a%2Fb",
    "//a",
    "/a//b",
    "/a?x",
    "/a#x",
    "/a\\b",
    "/ä",
    "/a\n",
    "http://host/a",
  ])("rejects %j", (raw) => {
    expect(err(Parse.pathPrefix(raw))).toContain("/.sidecar")
  })
})
