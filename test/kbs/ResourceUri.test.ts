import { assert, describe, expect, it } from "@effect/vitest"
import { Result } from "effect"
import * as ResourceUri from "../../src/kbs/ResourceUri.ts"

const parseOk = (input: string): ResourceUri.ResourceUri => {
  const result = ResourceUri.parse(input)
  if (Result.isFailure(result)) throw new Error(`expected ${input} to parse: ${result.failure.message}`)
  return result.success
}

const parseErr = (input: string): ResourceUri.InvalidResourceUri => {
  const result = ResourceUri.parse(input)
  if (Result.isSuccess(result)) throw new Error(`expected ${JSON.stringify(input)} to be rejected`)
  return result.failure
}

describe("ResourceUri.parse", () => {
  it.each([
    {
      input: "kbs:///default/attestation-status/status",
      repository: "default",
      type: "attestation-status",
      tag: "status",
    },
    {
      input: "kbs:///shop/sidecar-tls-web/server-key",
      repository: "shop",
      type: "sidecar-tls-web",
      tag: "server-key",
    },
    {
      input: "kbs:///default/sidecar-tls/client-ca",
      repository: "default",
      type: "sidecar-tls",
      tag: "client-ca",
    },
    { input: "kbs:///my_repo/a.b-c/tag_1.2-x", repository: "my_repo", type: "a.b-c", tag: "tag_1.2-x" },
    { input: "kbs:///_a/-b/9.", repository: "_a", type: "-b", tag: "9." },
    { input: "kbs:///A/B/C", repository: "A", type: "B", tag: "C" },
  ])("accepts $input", ({ input, repository, type, tag }) => {
    const uri = parseOk(input)
    assert.deepStrictEqual(uri, { uri: input, repository, type, tag, path: `${repository}/${type}/${tag}` })
  })

  it.each([
    { name: "2 segments", input: "kbs:///a/b", reason: "got 2" },
    { name: "4 segments", input: "kbs:///a/b/c/d", reason: "got 4" },
    { name: "1 segment", input: "kbs:///abc", reason: "got 1" },
    { name: "an empty segment", input: "kbs:///a//c", reason: '""' },
    { name: "an empty first segment", input: "kbs:////b/c", reason: '""' },
    { name: "a trailing slash", input: "kbs:///a/b/c/", reason: "got 4" },
    { name: "a leading dot segment", input: "kbs:///a/.hidden/c", reason: '".hidden"' },
    { name: "a .. segment", input: "kbs:///a/../c", reason: '".."' },
    { name: "a . segment", input: "kbs:///a/./c", reason: '"."' },
    { name: "a percent-encoded space", input: "kbs:///a/b/c%20d", reason: '"c%20d"' },
    { name: "a space", input: "kbs:///a/b/c d", reason: '"c d"' },
    { name: "a newline", input: "kbs:///a/b/c\n", reason: "must match" },
    { name: "a non-ASCII letter", input: "kbs:///a/b/caf\u00e9", reason: "must match" },
    { name: "a non-empty host", input: "kbs://kbs.example:8080/a/b/c", reason: "host is not allowed" },
    { name: "a host without port", input: "kbs://kbs/a/b/c", reason: "host is not allowed" },
    { name: "a query", input: "kbs:///a/b/c?x=1", reason: "query" },
    { name: "an empty query", input: "kbs:///a/b/c?", reason: "query" },
    { name: "a fragment", input: "kbs:///a/b/c#frag", reason: "fragment" },
    { name: "a plugin scheme", input: "kbs+resource:///a/b/c", reason: "expected the form" },
    { name: "an http URL", input: "http://127.0.0.1:8006/cdh/resource/a/b/c", reason: "expected the form" },
    { name: "an upper-case scheme", input: "KBS:///a/b/c", reason: "expected the form" },
    { name: "a bare path", input: "a/b/c", reason: "expected the form" },
    { name: "two slashes only", input: "kbs://a/b/c", reason: "host is not allowed" },
    { name: "the empty string", input: "", reason: "expected the form" },
  ])("rejects $name", ({ input, reason }) => {
    const error = parseErr(input)
    expect(error).toBeInstanceOf(ResourceUri.InvalidResourceUri)
    assert.strictEqual(error._tag, "InvalidResourceUri")
    assert.strictEqual(error.input, input)
    expect(error.reason).toContain(reason)
    expect(error.message).toContain(JSON.stringify(input))
    if (input !== "" && !/[\n"\\]/.test(input)) expect(error.message).toContain(input)
  })
})

describe("ResourceUri.cdhUrl", () => {
  it.each([
    { base: "http://127.0.0.1:8006", expected: "http://127.0.0.1:8006/cdh/resource/a/b/c" },
    { base: "http://127.0.0.1:8006/", expected: "http://127.0.0.1:8006/cdh/resource/a/b/c" },
    { base: "http://127.0.0.1:8006//", expected: "http://127.0.0.1:8006/cdh/resource/a/b/c" },
    { base: "http://[::1]:8006", expected: "http://[::1]:8006/cdh/resource/a/b/c" },
  ])("maps kbs:///a/b/c onto $base", ({ base, expected }) => {
    assert.strictEqual(ResourceUri.cdhUrl(base, parseOk("kbs:///a/b/c")), expected)
  })

  it("maps the documented examples", () => {
    assert.strictEqual(
      ResourceUri.cdhUrl("http://127.0.0.1:8006", parseOk(ResourceUri.ATTESTATION_STATUS)),
      "http://127.0.0.1:8006/cdh/resource/default/attestation-status/status",
    )
    assert.strictEqual(
      ResourceUri.cdhUrl("http://127.0.0.1:8006", parseOk("kbs:///shop/sidecar-tls-web/server-cert")),
      "http://127.0.0.1:8006/cdh/resource/shop/sidecar-tls-web/server-cert",
    )
  })

  it("ATTESTATION_STATUS is the kubectl-coco convention and parses", () => {
    assert.strictEqual(ResourceUri.ATTESTATION_STATUS, "kbs:///default/attestation-status/status")
    assert.strictEqual(parseOk(ResourceUri.ATTESTATION_STATUS).path, "default/attestation-status/status")
  })
})
