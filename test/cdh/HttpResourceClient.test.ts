import * as net from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Logger, Result } from "effect"
import * as HttpResourceClient from "../../src/cdh/HttpResourceClient.ts"
import {
  CdhHttpError,
  CdhUnreachable,
  type FetchError,
  fetchRetrying,
  ResourceClient,
  ResourceUnavailable,
  type RetryPolicy,
} from "../../src/cdh/ResourceClient.ts"
import { scoped as mockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { parse, type ResourceUri } from "../../src/kbs/ResourceUri.ts"

const URI = "kbs:///a/b/c"
const ABC = Result.getOrThrow(parse(URI))
const ALL_BYTES = Uint8Array.from({ length: 256 }, (_, i) => i)
const TIMEOUT = Duration.seconds(5)

const client = (url: string, requestTimeout: Duration.Duration = TIMEOUT) =>
  HttpResourceClient.layer({ url, requestTimeout })

/** One attempt through the live layer. */
const get = (url: string, resource: ResourceUri = ABC, requestTimeout?: Duration.Duration) =>
  Effect.gen(function* () {
    return yield* (yield* ResourceClient).get(resource)
  }).pipe(Effect.provide(client(url, requestTimeout)))

/** A loopback port on which nothing listens (bound, then released). */
const freePort = Effect.promise(
  () =>
    new Promise<number>((resolve, reject) => {
      const probe = net.createServer()
      probe.once("error", reject)
      probe.listen({ port: 0, host: "127.0.0.1" }, () => {
        const address = probe.address()
        probe.close(() => {
          if (address !== null && typeof address === "object") resolve(address.port)
          else reject(new Error("no port"))
        })
      })
    }),
)

/** `fetchRetrying` over the live client, counting attempts; retry warnings are silenced. */
const fetchCounting = (url: string, policy: RetryPolicy) =>
  Effect.gen(function* () {
    const live = yield* ResourceClient
    let attempts = 0
    const counting = ResourceClient.of({
      source: live.source,
      info: live.info,
      get: (resource) =>
        Effect.suspend(() => {
          attempts++
          return live.get(resource)
        }),
    })
    const exit = yield* fetchRetrying(ABC, policy).pipe(
      Effect.provideService(ResourceClient, counting),
      Effect.exit,
    )
    return { exit, attempts }
  }).pipe(Effect.provide([client(url), Logger.layer([])]))

const expectFailure = <A>(result: Result.Result<A, FetchError>): FetchError => {
  assert.isTrue(Result.isFailure(result), "expected the CDH fetch to fail")
  if (!Result.isFailure(result)) throw new Error("unreachable")
  return result.failure
}

describe("HttpResourceClient (live layer against the mock CDH)", () => {
  it.live("200: the exact bytes, binary included, with the request path /cdh/resource/a/b/c", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": ALL_BYTES } })
      const bytes = yield* get(mock.url)
      assert.instanceOf(bytes, Uint8Array)
      assert.strictEqual(bytes.byteLength, 256)
      assert.deepStrictEqual([...bytes], [...ALL_BYTES])
      assert.strictEqual(mock.requests.length, 1)
      assert.strictEqual(mock.requests[0]?.method, "GET")
      assert.strictEqual(mock.requests[0]?.path, "/cdh/resource/a/b/c")
      assert.strictEqual(mock.requests[0]?.target, "/cdh/resource/a/b/c")
      assert.strictEqual(mock.requests[0]?.status, 200)
    }),
  )

  it.live("200: PEM text and an empty resource come back verbatim (no newline added or trimmed)", () =>
    Effect.gen(function* () {
      const pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
      const mock = yield* mockCdh({ resources: { "a/b/c": pem, "a/b/empty": "" } })
      assert.strictEqual(new TextDecoder().decode(yield* get(mock.url)), pem)
      const empty = yield* get(mock.url, Result.getOrThrow(parse("kbs:///a/b/empty")))
      assert.strictEqual(empty.byteLength, 0)
    }),
  )

  it.live("a trailing slash on the CDH URL does not double the slash in the request path", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "x" } })
      yield* get(`${mock.url}/`)
      assert.strictEqual(mock.requests[0]?.path, "/cdh/resource/a/b/c")
    }),
  )

  it.live("the source is the configured CDH URL", () =>
    Effect.gen(function* () {
      const source = yield* Effect.gen(function* () {
        return (yield* ResourceClient).source
      }).pipe(Effect.provide(client("http://127.0.0.1:8006")))
      assert.strictEqual(source, "http://127.0.0.1:8006")
    }),
  )

  it.live("missing resource: CdhHttpError 500, retryable, body excerpt from the CDH", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: {} })
      const error = expectFailure(yield* Effect.result(get(mock.url)))
      assert.instanceOf(error, CdhHttpError)
      if (error._tag !== "CdhHttpError") return
      assert.strictEqual(error.status, 500)
      assert.isTrue(error.retryable)
      assert.strictEqual(error.uri, URI)
      assert.strictEqual(error.url, `${mock.url}/cdh/resource/a/b/c`)
      assert.include(error.body, "Get Resource failed")
      assert.isAtMost(error.body.length, 300)
      assert.include(error.message, URI)
      assert.include(error.message, "HTTP 500")
    }),
  )

  it.live("main-style 500 body is passed through as the excerpt", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: {}, errorStyle: "main" })
      const error = expectFailure(yield* Effect.result(get(mock.url)))
      assert.strictEqual(error._tag, "CdhHttpError")
      if (error._tag === "CdhHttpError") assert.strictEqual(error.body, "ttrpc request error")
    }),
  )

  it.live("404 (resource feature off) is a CdhHttpError that is not retryable", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "x" }, features: "attestation" })
      const error = expectFailure(yield* Effect.result(get(mock.url)))
      assert.strictEqual(error._tag, "CdhHttpError")
      if (error._tag !== "CdhHttpError") return
      assert.strictEqual(error.status, 404)
      assert.isFalse(error.retryable)
      assert.strictEqual(error.body, "Resource Feature Not Enabled")
    }),
  )

  it.live("nothing listening: CdhUnreachable with reason ECONNREFUSED, retryable", () =>
    Effect.gen(function* () {
      const port = yield* freePort
      const url = `http://127.0.0.1:${port}`
      const error = expectFailure(yield* Effect.result(get(url)))
      assert.instanceOf(error, CdhUnreachable)
      if (error._tag !== "CdhUnreachable") return
      assert.strictEqual(error.reason, "ECONNREFUSED")
      assert.isTrue(error.retryable)
      assert.strictEqual(error.uri, URI)
      assert.strictEqual(error.url, `${url}/cdh/resource/a/b/c`)
      assert.include(error.message, "ECONNREFUSED")
      assert.include(error.message, URI)
    }),
  )

  it.live("no answer within requestTimeout: CdhUnreachable whose reason names the timeout", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "slow" }, delayMs: 2_000 })
      const started = Date.now()
      const error = expectFailure(yield* Effect.result(get(mock.url, ABC, Duration.millis(200))))
      const took = Date.now() - started
      assert.instanceOf(error, CdhUnreachable)
      if (error._tag !== "CdhUnreachable") return
      assert.isTrue(error.retryable)
      assert.include(error.reason, "no answer within")
      assert.include(error.reason, Duration.format(Duration.millis(200)))
      assert.isAtLeast(took, 150)
      assert.isBelow(took, 1_500)
    }),
  )

  it.live("the CDH crashes mid-request (connection dropped): CdhUnreachable, retryable", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "x" }, delayMs: 1_000 })
      const crash = setTimeout(() => void mock.stop(), 100)
      const error = expectFailure(yield* Effect.result(get(mock.url)))
      clearTimeout(crash)
      assert.strictEqual(error._tag, "CdhUnreachable")
      assert.isTrue(error.retryable)
      if (error._tag === "CdhUnreachable") {
        assert.isAbove(error.reason.length, 0)
        assert.notInclude(error.reason, "no answer within")
      }
    }),
  )

  it.live("fetchRetrying: the CDH refuses connections for 700 ms at boot, then answers", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "late" }, unavailableForMs: 700 })
      assert.isFalse(mock.listening)
      const started = Date.now()
      const { exit, attempts } = yield* fetchCounting(mock.url, {
        base: Duration.millis(50),
        max: Duration.seconds(1),
        budget: Duration.seconds(5),
      })
      assert.isTrue(exit._tag === "Success", `expected success, got ${String(exit)}`)
      if (exit._tag === "Success") assert.strictEqual(new TextDecoder().decode(exit.value), "late")
      // 50 + 100 + 200 + 400 ms (±20 %) of back-off before it listens: several refused attempts.
      assert.isAtLeast(attempts, 3)
      assert.isAtMost(attempts, 8)
      assert.isAtLeast(Date.now() - started, 650)
      // Refused connections never reach the server: it answered exactly one request.
      assert.strictEqual(mock.requests.length, 1)
      assert.strictEqual(mock.requests[0]?.status, 200)
    }),
  )

  it.live("fetchRetrying: the first 3 requests answer 500, the 4th succeeds", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "fourth" }, failFirst: 3 })
      const { exit, attempts } = yield* fetchCounting(mock.url, {
        base: Duration.millis(20),
        max: Duration.millis(200),
        budget: Duration.seconds(5),
      })
      assert.isTrue(exit._tag === "Success")
      if (exit._tag === "Success") assert.strictEqual(new TextDecoder().decode(exit.value), "fourth")
      assert.strictEqual(attempts, 4)
      assert.deepStrictEqual(
        mock.requests.map((r) => r.status),
        [500, 500, 500, 200],
      )
    }),
  )

  it.live("fetchRetrying: a 404 from the CDH fails after one request with ResourceUnavailable", () =>
    Effect.gen(function* () {
      const mock = yield* mockCdh({ resources: { "a/b/c": "x" }, features: "attestation" })
      const { exit, attempts } = yield* fetchCounting(mock.url, {
        base: Duration.millis(20),
        max: Duration.millis(200),
        budget: Duration.seconds(5),
      })
      assert.strictEqual(attempts, 1)
      assert.strictEqual(mock.requests.length, 1)
      assert.isTrue(exit._tag === "Failure")
      if (exit._tag !== "Failure") return
      const reason = exit.cause.reasons[0]
      assert.strictEqual(reason?._tag, "Fail")
      if (reason?._tag !== "Fail") return
      assert.instanceOf(reason.error, ResourceUnavailable)
      assert.strictEqual(reason.error.attempts, 1)
      assert.strictEqual(reason.error.last._tag, "CdhHttpError")
      assert.include(reason.error.message, URI)
    }),
  )
})
