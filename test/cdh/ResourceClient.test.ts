import { assert, describe, it } from "@effect/vitest"
import {
  Clock,
  Duration,
  Effect,
  Exit,
  Fiber,
  type Layer,
  Logger,
  References,
  Result,
  Schedule,
} from "effect"
import { TestClock } from "effect/testing"
import {
  CdhHttpError,
  CdhUnreachable,
  type FetchError,
  fetchRetrying,
  ResourceClient,
  ResourceUnavailable,
  type RetryPolicy,
  retrySchedule,
} from "../../src/cdh/ResourceClient.ts"
import * as Memory from "../../src/dev/cdh/MemoryResourceClient.ts"
import { parse } from "../../src/kbs/ResourceUri.ts"

const URI = "kbs:///a/b/c"
const ABC = Result.getOrThrow(parse(URI))
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

const policy = (base: number, max: number, budget: number): RetryPolicy => ({
  base: Duration.millis(base),
  max: Duration.millis(max),
  budget: Duration.millis(budget),
})

interface LogLine {
  readonly level: string
  readonly message: unknown
  readonly annotations: Readonly<Record<string, unknown>>
}

/** Captures log lines instead of printing them (the retry schedule warns once per retry). */
const captureLogs = (): { readonly lines: Array<LogLine>; readonly layer: Layer.Layer<never> } => {
  const lines: Array<LogLine> = []
  const logger = Logger.make((options) => {
    const message = Array.isArray(options.message) ? options.message[0] : options.message
    lines.push({
      level: options.logLevel,
      message,
      annotations: { ...options.fiber.getRef(References.CurrentLogAnnotations) },
    })
  })
  return { lines, layer: Logger.layer([logger]) }
}

/**
 * The memory client with the virtual time of each attempt recorded, and the retry warnings captured.
 * The TestClock wakes sleepers one by one with the clock set to their wake-up time, so the recorded
 * times are exactly when each attempt started.
 */
const setup = (initial: Readonly<Record<string, string | Uint8Array>>) =>
  Effect.gen(function* () {
    const inner = yield* ResourceClient
    const cdh = yield* Memory.MemoryCdh
    const times: Array<number> = []
    const client = ResourceClient.of({
      source: inner.source,
      info: inner.info,
      get: (resource) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => {
          times.push(now)
          return inner.get(resource)
        }),
    })
    const logs = captureLogs()
    const run = <A, E>(effect: Effect.Effect<A, E, ResourceClient>): Effect.Effect<A, E> =>
      effect.pipe(Effect.provideService(ResourceClient, client), Effect.provide(logs.layer))
    return { cdh, times, logs: logs.lines, run }
  }).pipe(Effect.provide(Memory.layer(initial)))

/** Forks `fetchRetrying` so that it runs up to its first sleep before this returns. */
const forkFetch = (
  run: <A, E>(e: Effect.Effect<A, E, ResourceClient>) => Effect.Effect<A, E>,
  p: RetryPolicy,
) => run(fetchRetrying(ABC, p)).pipe(Effect.forkChild({ startImmediately: true }))

const gaps = (times: ReadonlyArray<number>): Array<number> =>
  times.slice(1).map((t, i) => t - (times[i] ?? 0))

const expectUnavailable = (exit: Exit.Exit<Uint8Array, ResourceUnavailable>): ResourceUnavailable => {
  assert.isTrue(Exit.isFailure(exit), "expected fetchRetrying to fail")
  if (!Exit.isFailure(exit)) throw new Error("unreachable")
  const error = exit.cause.reasons.find((r) => r._tag === "Fail")
  if (error?._tag !== "Fail") throw new Error(`expected a typed failure, got ${String(exit.cause)}`)
  assert.instanceOf(error.error, ResourceUnavailable)
  return error.error
}

describe("fetchRetrying (memory CDH, TestClock)", () => {
  it.effect("(a) connection refused x3 then success: 4 requests, and only after virtual time passed", () =>
    Effect.gen(function* () {
      const { cdh, times, run } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(3, { _tag: "Unreachable" })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      // The first attempt failed and the fiber sleeps: nothing completes without the clock moving.
      assert.isUndefined(fiber.pollUnsafe())
      assert.strictEqual(cdh.requests.length, 1)
      yield* TestClock.adjust("10 seconds")
      const bytes = yield* Fiber.join(fiber)
      assert.strictEqual(text(bytes), "payload")
      assert.deepStrictEqual(cdh.requests, ["a/b/c", "a/b/c", "a/b/c", "a/b/c"])
      assert.strictEqual(times.length, 4)
      // Virtual time passed between the attempts: at least 0.8 * (100 + 200 + 400) ms.
      assert.isAtLeast((times[3] ?? 0) - (times[0] ?? 0), 0.8 * 700)
    }),
  )

  it.effect("(a') no virtual time needed when the first attempt succeeds", () =>
    Effect.gen(function* () {
      const { cdh, run } = yield* setup({ "a/b/c": "payload" })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      const exit = fiber.pollUnsafe()
      assert.isDefined(exit)
      if (exit !== undefined) assert.isTrue(Exit.isSuccess(exit))
      assert.strictEqual(cdh.requests.length, 1)
    }),
  )

  it.effect("(b) HTTP 500 x5 then success: 6 requests", () =>
    Effect.gen(function* () {
      const { cdh, times, run } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(5, { _tag: "Status", status: 500 })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      assert.isUndefined(fiber.pollUnsafe())
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(text(yield* Fiber.join(fiber)), "payload")
      assert.strictEqual(cdh.requests.length, 6)
      assert.strictEqual(times.length, 6)
    }),
  )

  it.effect("(b') any 5xx is retried: 502, 503, 504 then success", () =>
    Effect.gen(function* () {
      const { cdh, run } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(1, { _tag: "Status", status: 502 })
      cdh.failNext(1, { _tag: "Status", status: 503 })
      cdh.failNext(1, { _tag: "Status", status: 504 })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      yield* TestClock.adjust("10 seconds")
      assert.strictEqual(text(yield* Fiber.join(fiber)), "payload")
      assert.strictEqual(cdh.requests.length, 4)
    }),
  )

  it.effect("(c) 404 is not retried: 1 request, ResourceUnavailable attempts 1, last 404", () =>
    Effect.gen(function* () {
      const { cdh, run, logs } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(1, { _tag: "Status", status: 404 })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      // No clock adjustment: it fails at once.
      const exit = fiber.pollUnsafe() ?? (yield* Fiber.await(fiber))
      const error = expectUnavailable(exit)
      assert.strictEqual(cdh.requests.length, 1)
      assert.strictEqual(error.attempts, 1)
      assert.strictEqual(error.uri, URI)
      assert.strictEqual(error.last._tag, "CdhHttpError")
      assert.instanceOf(error.last, CdhHttpError)
      if (error.last._tag === "CdhHttpError") assert.strictEqual(error.last.status, 404)
      assert.isFalse(error.last.retryable)
      assert.strictEqual(Duration.toMillis(error.elapsed), 0)
      assert.include(error.message, URI)
      assert.include(error.message, "HTTP 404")
      assert.include(error.message, "1 attempt, not retryable")
      // Still not retried once time passes.
      yield* TestClock.adjust("1 minute")
      assert.strictEqual(cdh.requests.length, 1)
      assert.deepStrictEqual(
        logs.filter((l) => l.message === "CDH fetch failed, retrying"),
        [],
      )
    }),
  )

  it.effect("(c') a 4xx after some 5xx stops the retries at once, reporting the 4xx", () =>
    Effect.gen(function* () {
      const { cdh, run } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(2, { _tag: "Status", status: 500 })
      cdh.failNext(1, { _tag: "Status", status: 403 })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      yield* TestClock.adjust("10 seconds")
      const error = expectUnavailable(yield* Fiber.await(fiber))
      assert.strictEqual(cdh.requests.length, 3)
      assert.strictEqual(error.attempts, 3)
      assert.strictEqual(error.last._tag, "CdhHttpError")
      if (error.last._tag === "CdhHttpError") assert.strictEqual(error.last.status, 403)
      assert.include(error.message, "3 attempts")
    }),
  )

  it.effect(
    "(d) budget exhaustion: always 500, budget 10 s -> ResourceUnavailable, then no more attempts",
    () =>
      Effect.gen(function* () {
        const { cdh, times, run } = yield* setup({})
        const p = policy(100, 2_000, 10_000)
        const fiber = yield* forkFetch(run, p)
        yield* TestClock.adjust("30 seconds")
        const error = expectUnavailable(yield* Fiber.await(fiber))
        const attemptsAtFailure = cdh.requests.length
        assert.isAbove(error.attempts, 1)
        assert.strictEqual(error.attempts, attemptsAtFailure)
        assert.strictEqual(error.uri, URI)
        assert.include(error.message, URI)
        assert.include(error.message, "HTTP 500")
        assert.include(error.message, `${error.attempts} attempts`)
        assert.instanceOf(error.last, CdhHttpError)
        // Un-jittered delays 100..1600 ms then 2 s: about 10 attempts fit in 10 s of retrying.
        assert.isAtLeast(error.attempts, 7)
        assert.isAtMost(error.attempts, 13)
        // The last retry is decided within the budget; its (capped, jittered) delay may end after it.
        const last = times.at(-1) ?? 0
        assert.isAtMost(last, 10_000 + 1.2 * 2_000)
        assert.isAtMost(Duration.toMillis(error.elapsed), 10_000 + 1.2 * 2_000)
        assert.isAtLeast(Duration.toMillis(error.elapsed), 10_000 - 1.2 * 2_000)
        // Well past the budget: the request count no longer grows.
        yield* TestClock.adjust("10 minutes")
        assert.strictEqual(cdh.requests.length, attemptsAtFailure)
        assert.strictEqual(times.length, attemptsAtFailure)
      }),
  )

  // The budget bounds when attempts start, not just when a retry is decided.
  it.effect("(d') no attempt starts after the budget, and the reported elapsed time stays within it", () =>
    Effect.gen(function* () {
      const { times, run } = yield* setup({})
      const fiber = yield* forkFetch(run, policy(100, 2_000, 10_000))
      yield* TestClock.adjust("1 minute")
      const error = expectUnavailable(yield* Fiber.await(fiber))
      assert.isAtMost(times.at(-1) ?? 0, 10_000, `last attempt at ${times.at(-1)} ms`)
      assert.isAtMost(Duration.toMillis(error.elapsed), 10_000)
    }),
  )

  it.effect("(e) delays grow exponentially, are capped at max, and jitter stays within ±20 %", () =>
    Effect.gen(function* () {
      const { times, run } = yield* setup({})
      const base = 100
      const max = 1_000
      const fiber = yield* forkFetch(run, policy(base, max, 60_000))
      yield* TestClock.adjust("5 minutes")
      expectUnavailable(yield* Fiber.await(fiber))
      const observed = gaps(times)
      assert.isAtLeast(observed.length, 20)
      const unjittered = observed.map((_, i) => Math.min(base * 2 ** i, max))
      assert.deepStrictEqual(unjittered.slice(0, 6), [100, 200, 400, 800, 1_000, 1_000])
      observed.forEach((gap, i) => {
        const nominal = unjittered[i] ?? 0
        assert.isAtLeast(gap, 0.8 * nominal - 1e-6, `delay #${i + 1} ${gap} ms below -20 % of ${nominal} ms`)
        assert.isAtMost(gap, 1.2 * nominal + 1e-6, `delay #${i + 1} ${gap} ms above +20 % of ${nominal} ms`)
        // Capped: never above max plus the jitter.
        assert.isAtMost(gap, 1.2 * max + 1e-6)
      })
      // Exponential growth before the cap: each delay strictly longer than the previous (the ±20 % bands
      // of consecutive doublings do not overlap).
      for (let i = 1; i < 4; i++) assert.isAbove(observed[i] ?? 0, observed[i - 1] ?? 0)
      // Jitter is real: the delays are not exactly the nominal ones.
      assert.isTrue(observed.some((gap, i) => Math.abs(gap - (unjittered[i] ?? 0)) > 1e-6))
    }),
  )

  it.effect("each retry logs a warning with the URI, the attempt and the delay", () =>
    Effect.gen(function* () {
      const { cdh, times, logs, run } = yield* setup({ "a/b/c": "payload" })
      cdh.failNext(2, { _tag: "Unreachable" })
      const fiber = yield* forkFetch(run, policy(100, 1_000, 10_000))
      yield* TestClock.adjust("10 seconds")
      yield* Fiber.join(fiber)
      const warnings = logs.filter((l) => l.message === "CDH fetch failed, retrying")
      assert.strictEqual(warnings.length, 2)
      warnings.forEach((w, i) => {
        assert.strictEqual(w.level, "Warn")
        assert.strictEqual(w.annotations.uri, URI)
        assert.strictEqual(w.annotations.attempt, i + 1)
        assert.include(String(w.annotations.cause), "ECONNREFUSED")
        const gap = (times[i + 1] ?? 0) - (times[i] ?? 0)
        assert.strictEqual(w.annotations.retryInMs, Math.round(gap))
      })
    }),
  )
})

describe("retrySchedule, stepped by hand", () => {
  const http = (status: number): FetchError =>
    new CdhHttpError({ uri: URI, url: "memory://cdh/cdh/resource/a/b/c", status, body: "" })
  const refused: FetchError = new CdhUnreachable({
    uri: URI,
    url: "http://127.0.0.1:1",
    reason: "ECONNREFUSED",
  })

  it.effect("delays are min(base * 2^n, max) jittered into [0.8, 1.2], for 200 runs", () =>
    Effect.gen(function* () {
      const base = 250
      const max = 10_000
      for (let run = 0; run < 200; run++) {
        const step = yield* Schedule.toStep(retrySchedule(policy(base, max, 300_000)))
        for (let n = 0; n < 9; n++) {
          const [, delay] = yield* step(0, n % 2 === 0 ? refused : http(503))
          const ms = Duration.toMillis(delay)
          const nominal = Math.min(base * 2 ** n, max)
          assert.isAtLeast(ms, 0.8 * nominal - 1e-6)
          assert.isAtMost(ms, 1.2 * nominal + 1e-6)
        }
      }
    }).pipe(Effect.provide(Logger.layer([]))),
  )

  it.effect(
    "stops at once for a non-retryable input, and when the next attempt would start after the budget",
    () =>
      Effect.gen(function* () {
        const notRetryable = yield* Schedule.toStep(retrySchedule(policy(100, 1_000, 10_000)))
        assert.isTrue(Exit.isFailure(yield* Effect.exit(notRetryable(0, http(404)))))

        const budget = yield* Schedule.toStep(retrySchedule(policy(100, 1_000, 10_000)))
        assert.isTrue(Exit.isSuccess(yield* Effect.exit(budget(0, http(500)))))
        assert.isTrue(Exit.isSuccess(yield* Effect.exit(budget(5_000, http(500)))))
        // 9.9 s in, the next delay (at least 160 ms) would start an attempt after the 10 s budget.
        assert.isTrue(Exit.isFailure(yield* Effect.exit(budget(9_900, http(500)))))
      }).pipe(Effect.provide(Logger.layer([]))),
  )
})
