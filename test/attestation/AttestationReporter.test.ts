import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Duration, Effect, Layer, Logger, Result } from "effect"
import { TestClock } from "effect/testing"
import {
  AttestationReporter,
  type AttestationState,
  guestComponents,
  HISTORY_LENGTH,
  initialState,
  meaning,
  next,
  nextDelay,
  type Outcome,
  teeNote,
  UPSTREAM_SUCCESS_DETAILS,
} from "../../src/attestation/AttestationReporter.ts"
import {
  CdhHttpError,
  type CdhInfo,
  CdhUnreachable,
  type FetchError,
  ResourceClient,
} from "../../src/cdh/ResourceClient.ts"
import { decode, type Env, type Settings, SidecarConfig } from "../../src/config/SidecarConfig.ts"
import * as Memory from "../../src/dev/cdh/MemoryResourceClient.ts"
import { ATTESTATION_STATUS } from "../../src/kbs/ResourceUri.ts"
import { type CapturedLog, capture } from "../support/logs.ts"

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const STATUS_PATH = "default/attestation-status/status"
const STATUS_URL = `http://127.0.0.1:8006/cdh/resource/${STATUS_PATH}`
const T0 = Date.parse("2026-03-14T09:00:00.000Z")
const iso = (ms: number): string => new Date(ms).toISOString()
const INTERVAL_MS = 60_000

const settingsWith = (env: Env): Settings =>
  Result.getOrThrow(
    decode({
      TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
      TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
      CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
      ...env,
    }),
  )

const settings = settingsWith({ ATTESTATION_CHECK_INTERVAL: "60s", CDH_RETRY_BASE: "250ms" })

const interval = Duration.seconds(60)
const retryBase = Duration.millis(250)

const released = (body: string): Outcome => ({ _tag: "Released", body: new TextEncoder().encode(body) })
const failed = (error: FetchError): Outcome => ({ _tag: "Failed", error })

const http = (status: number, body = Memory.MISSING_BODY) =>
  new CdhHttpError({ uri: ATTESTATION_STATUS, url: STATUS_URL, status, body })
const unreachable = new CdhUnreachable({ uri: ATTESTATION_STATUS, url: STATUS_URL, reason: "ECONNREFUSED" })

const S0 = initialState(ATTESTATION_STATUS)
const SUCCESS_DETAILS = `${UPSTREAM_SUCCESS_DETAILS}: the KBS released ${ATTESTATION_STATUS} to this pod.`

/** Folds `next` over (outcome, at) pairs, starting from the initial state. */
const run = (steps: ReadonlyArray<readonly [Outcome, number]>, from: AttestationState = S0) =>
  steps.reduce((state, [outcome, at]) => next(state, outcome, new Date(at)), from)

const SAMPLE_INFO: CdhInfo = { version: "v0.21.0", features: "all", tee: "sample", additionalTees: [] }

// ---------------------------------------------------------------------------------------------
// Layer harness
// ---------------------------------------------------------------------------------------------

/**
 * Builds the reporter over `client` after the TestClock was set to T0 (Effect.provide builds the
 * layer when the effect runs), and hands the service to `body`. Logs are dropped unless a logger
 * layer is given.
 */
const withReporter = <A, E>(
  client: Layer.Layer<ResourceClient>,
  body: (reporter: AttestationReporter["Service"]) => Effect.Effect<A, E>,
  options: { readonly settings?: Settings; readonly logger?: Layer.Layer<never> } = {},
) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(T0)
    return yield* Effect.flatMap(AttestationReporter, body).pipe(
      Effect.provide(
        AttestationReporter.layer.pipe(
          Layer.provide(Layer.mergeAll(client, SidecarConfig.layerFrom(options.settings ?? settings))),
          Layer.provideMerge(options.logger ?? Logger.layer([])),
        ),
      ),
    )
  })

/** Lets the background fiber run until it suspends, without moving the clock. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

interface Recorder {
  /** `get <path> @<ms since T0>` and `info @<ms since T0>`, in call order. */
  readonly calls: Array<string>
  /** Every string property read on the ResourceClient service. */
  readonly accessed: Set<string>
}

/**
 * Wraps another ResourceClient layer: records each call (with its virtual time) and every property
 * read on the service; `gate`, when given, holds every `get` until it is completed.
 */
const recorded = (
  inner: Layer.Layer<ResourceClient>,
  recorder: Recorder,
  options: {
    readonly gate?: Deferred.Deferred<void>
    readonly info?: Effect.Effect<CdhInfo | undefined, FetchError>
  } = {},
): Layer.Layer<ResourceClient> =>
  Layer.effect(
    ResourceClient,
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const stamp = (label: string) =>
        Effect.flatMap(Clock.currentTimeMillis, (ms) =>
          Effect.sync(() => {
            recorder.calls.push(`${label} @${ms - T0}`)
          }),
        )
      const service = ResourceClient.of({
        get: (resource) =>
          stamp(`get ${resource.path}`).pipe(
            Effect.andThen(options.gate === undefined ? Effect.void : Deferred.await(options.gate)),
            Effect.andThen(client.get(resource)),
          ),
        info: stamp("info").pipe(Effect.andThen(options.info ?? client.info)),
        source: client.source,
      })
      return new Proxy(service, {
        get: (target, key, receiver) => {
          if (typeof key === "string") recorder.accessed.add(key)
          return Reflect.get(target, key, receiver)
        },
      })
    }),
  ).pipe(Layer.provide(inner))

const newRecorder = (): Recorder => ({ calls: [], accessed: new Set() })

// ---------------------------------------------------------------------------------------------
// next (pure)
// ---------------------------------------------------------------------------------------------

describe("next: a released body", () => {
  it("the first `success` gives the full verified state", () => {
    const state = next(S0, released("success"), new Date(T0))
    assert.deepStrictEqual(state, {
      status: "verified",
      timestamp: iso(T0),
      details: SUCCESS_DETAILS,
      source: "kbs-resource",
      resource: ATTESTATION_STATUS,
      meaning: meaning(ATTESTATION_STATUS),
      checkedAt: iso(T0),
      changedAt: iso(T0),
      nextCheckAt: null,
      httpStatus: 200,
      lastError: null,
      consecutiveFailures: 0,
      history: [{ status: "verified", at: iso(T0), details: SUCCESS_DETAILS }],
      guestComponents: null,
    })
  })

  const verifiedBodies = ["success", "success\n", " success \r\n", "\tsuccess", "success\n\n"]
  for (const body of verifiedBodies) {
    it(`${JSON.stringify(body)} -> verified (trimmed)`, () => {
      const state = next(S0, released(body), new Date(T0))
      assert.strictEqual(state.status, "verified")
      assert.strictEqual(state.timestamp, iso(T0))
      assert.isTrue(state.details.startsWith("TEE attestation successful"), state.details)
      assert.strictEqual(state.httpStatus, 200)
      assert.isNull(state.lastError)
      assert.strictEqual(state.consecutiveFailures, 0)
    })
  }

  const failedBodies: ReadonlyArray<readonly [string, string]> = [
    ["failure", "failure"],
    ["Success", "Success"],
    ["success!", "success!"],
    ["successful", "successful"],
    ["not success", "not success"],
    ["", ""],
    ["  denied\n", "denied"],
    ['say "hi"', 'say "hi"'],
  ]
  for (const [body, trimmed] of failedBodies) {
    it(`${JSON.stringify(body)} -> failed, the body quoted in details`, () => {
      const state = next(S0, released(body), new Date(T0))
      assert.strictEqual(state.status, "failed")
      assert.include(state.details, JSON.stringify(trimmed))
      assert.include(state.details, ATTESTATION_STATUS)
      assert.notInclude(state.details, UPSTREAM_SUCCESS_DETAILS)
      // Upstream: a 200 sets the timestamp, whatever the body.
      assert.strictEqual(state.timestamp, iso(T0))
      assert.strictEqual(state.httpStatus, 200)
      assert.isNull(state.lastError)
      assert.strictEqual(state.consecutiveFailures, 0)
      assert.deepStrictEqual(state.history, [{ status: "failed", at: iso(T0), details: state.details }])
    })
  }

  it("a long body is cut in details", () => {
    const state = next(S0, released("x".repeat(1000)), new Date(T0))
    assert.strictEqual(state.status, "failed")
    assert.include(state.details, JSON.stringify("x".repeat(120)))
    assert.notInclude(state.details, "x".repeat(121))
  })
})

describe("next: a failed check", () => {
  const cases: ReadonlyArray<{
    readonly name: string
    readonly error: FetchError
    readonly httpStatus: number | null
  }> = [
    { name: "CdhHttpError 500", error: http(500), httpStatus: 500 },
    { name: "CdhHttpError 404", error: http(404, ""), httpStatus: 404 },
    { name: "CdhUnreachable", error: unreachable, httpStatus: null },
  ]

  for (const { name, error, httpStatus } of cases) {
    it(`${name} before any 200 -> unavailable, timestamp "unavailable"`, () => {
      const state = next(S0, failed(error), new Date(T0))
      assert.strictEqual(state.status, "unavailable")
      assert.strictEqual(state.timestamp, "unavailable")
      assert.strictEqual(state.httpStatus, httpStatus)
      assert.strictEqual(state.lastError, error.message)
      assert.strictEqual(state.details, error.message)
      assert.strictEqual(state.consecutiveFailures, 1)
      assert.strictEqual(state.checkedAt, iso(T0))
      // The first check is always a transition, even to the initial status.
      assert.strictEqual(state.changedAt, iso(T0))
      assert.deepStrictEqual(state.history, [{ status: "unavailable", at: iso(T0), details: error.message }])
    })

    it(`${name} after a 200 keeps that 200's timestamp; failures count up`, () => {
      const verified = next(S0, released("success"), new Date(T0))
      const once = next(verified, failed(error), new Date(T0 + 60_000))
      assert.strictEqual(once.status, "unavailable")
      assert.strictEqual(once.timestamp, iso(T0))
      assert.strictEqual(once.httpStatus, httpStatus)
      assert.strictEqual(once.lastError, error.message)
      assert.strictEqual(once.consecutiveFailures, 1)
      assert.strictEqual(once.checkedAt, iso(T0 + 60_000))
      assert.strictEqual(once.changedAt, iso(T0 + 60_000))
      const twice = next(once, failed(error), new Date(T0 + 60_250))
      assert.strictEqual(twice.timestamp, iso(T0))
      assert.strictEqual(twice.consecutiveFailures, 2)
      assert.strictEqual(twice.checkedAt, iso(T0 + 60_250))
      assert.strictEqual(twice.changedAt, iso(T0 + 60_000))
      assert.strictEqual(twice.history, once.history)
    })
  }

  it("the error messages name the resource and the cause", () => {
    assert.include(http(500).message, ATTESTATION_STATUS)
    assert.include(http(500).message, "HTTP 500")
    assert.include(unreachable.message, "ECONNREFUSED")
  })

  it("a failure after a failed body keeps the failed body's 200 timestamp", () => {
    const state = run([
      [released("failure"), T0],
      [failed(http(500)), T0 + 60_000],
    ])
    assert.strictEqual(state.status, "unavailable")
    assert.strictEqual(state.timestamp, iso(T0))
  })

  it("a long error message is shortened to 300 characters and an ellipsis", () => {
    const error = http(500, "e".repeat(2000))
    assert.isAbove(error.message.length, 300)
    const state = next(S0, failed(error), new Date(T0))
    assert.strictEqual(state.lastError, `${error.message.slice(0, 300)}…`)
    assert.strictEqual(state.details, state.lastError)
    assert.strictEqual(state.history[0]?.details, state.lastError)
  })

  it("a message of exactly 300 characters is kept whole", () => {
    const probe = http(500, "")
    const error = http(500, "e".repeat(300 - probe.message.length - 4)) // `: ""` adds 4
    assert.strictEqual(error.message.length, 300)
    assert.strictEqual(next(S0, failed(error), new Date(T0)).lastError, error.message)
  })

  it("success after failures resets lastError and consecutiveFailures", () => {
    const state = run([
      [failed(unreachable), T0],
      [failed(http(500)), T0 + 250],
      [failed(http(500)), T0 + 750],
      [released("success"), T0 + 1750],
    ])
    assert.strictEqual(state.status, "verified")
    assert.strictEqual(state.timestamp, iso(T0 + 1750))
    assert.strictEqual(state.httpStatus, 200)
    assert.isNull(state.lastError)
    assert.strictEqual(state.consecutiveFailures, 0)
    assert.strictEqual(state.changedAt, iso(T0 + 1750))
  })

  it("does not touch guestComponents, nextCheckAt, resource or meaning", () => {
    const components = guestComponents(SAMPLE_INFO)
    const previous: AttestationState = { ...S0, guestComponents: components, nextCheckAt: iso(T0) }
    for (const outcome of [released("success"), released("no"), failed(unreachable)]) {
      const state = next(previous, outcome, new Date(T0 + 1))
      assert.strictEqual(state.guestComponents, components)
      assert.strictEqual(state.nextCheckAt, iso(T0))
      assert.strictEqual(state.resource, ATTESTATION_STATUS)
      assert.strictEqual(state.meaning, meaning(ATTESTATION_STATUS))
      assert.strictEqual(state.source, "kbs-resource")
    }
  })
})

describe("next: history and changedAt", () => {
  it("records a transition only when the status changes, newest first", () => {
    const steps: ReadonlyArray<readonly [Outcome, number]> = [
      [released("success"), T0],
      [released("success\n"), T0 + 60_000],
      [released("failure"), T0 + 120_000],
      [released("denied"), T0 + 180_000],
      [failed(http(500)), T0 + 240_000],
      [failed(unreachable), T0 + 240_250],
      [released("success"), T0 + 240_750],
    ]
    const states: Array<AttestationState> = []
    for (const [outcome, at] of steps) states.push(next(states.at(-1) ?? S0, outcome, new Date(at)))
    assert.deepStrictEqual(
      states.map((s) => [s.status, s.changedAt, s.history.length]),
      [
        ["verified", iso(T0), 1],
        ["verified", iso(T0), 1],
        ["failed", iso(T0 + 120_000), 2],
        ["failed", iso(T0 + 120_000), 2],
        ["unavailable", iso(T0 + 240_000), 3],
        ["unavailable", iso(T0 + 240_000), 3],
        ["verified", iso(T0 + 240_750), 4],
      ],
    )
    const last = states.at(-1)
    assert.deepStrictEqual(
      last?.history.map((t) => [t.status, t.at]),
      [
        ["verified", iso(T0 + 240_750)],
        ["unavailable", iso(T0 + 240_000)],
        ["failed", iso(T0 + 120_000)],
        ["verified", iso(T0)],
      ],
    )
    // Each transition keeps the details of the check that made it.
    assert.strictEqual(last?.history[1]?.details, http(500).message)
    assert.include(last?.history[2]?.details ?? "", '"failure"')
    // checkedAt always moves.
    assert.deepStrictEqual(
      states.map((s) => s.checkedAt),
      steps.map(([, at]) => iso(at)),
    )
  })

  it(`is capped at HISTORY_LENGTH (${HISTORY_LENGTH}), dropping the oldest`, () => {
    assert.strictEqual(HISTORY_LENGTH, 20)
    const steps = Array.from(
      { length: HISTORY_LENGTH + 5 },
      (_, i) => [released(i % 2 === 0 ? "success" : "failure"), T0 + i * 1000] as const,
    )
    const state = run(steps)
    assert.strictEqual(state.history.length, HISTORY_LENGTH)
    assert.strictEqual(state.history[0]?.at, iso(T0 + (HISTORY_LENGTH + 4) * 1000))
    assert.strictEqual(state.history[0]?.status, "verified")
    assert.strictEqual(state.history.at(-1)?.at, iso(T0 + 5 * 1000))
    assert.strictEqual(state.history.at(-1)?.status, "failed")
  })

  it("does not mutate the previous state", () => {
    const first = next(S0, released("success"), new Date(T0))
    const snapshot = structuredClone(first)
    next(first, released("failure"), new Date(T0 + 1))
    assert.deepStrictEqual(first, snapshot)
    assert.deepStrictEqual(S0, initialState(ATTESTATION_STATUS))
  })
})

// ---------------------------------------------------------------------------------------------
// nextDelay
// ---------------------------------------------------------------------------------------------

describe("nextDelay", () => {
  const ms = (state: AttestationState, i = interval, base = retryBase) =>
    Duration.toMillis(nextDelay(state, i, base))

  it("the interval after a success or a failed body", () => {
    assert.strictEqual(ms(next(S0, released("success"), new Date(T0))), INTERVAL_MS)
    assert.strictEqual(ms(next(S0, released("failure"), new Date(T0))), INTERVAL_MS)
    assert.strictEqual(
      ms(
        run([
          [failed(unreachable), T0],
          [released("success"), T0 + 250],
        ]),
      ),
      INTERVAL_MS,
    )
  })

  const table: ReadonlyArray<readonly [number, number]> = [
    [0, 60_000],
    [1, 250],
    [2, 500],
    [3, 1_000],
    [4, 2_000],
    [5, 4_000],
    [6, 8_000],
    [7, 16_000],
    [8, 32_000],
    [9, 60_000],
    [10, 60_000],
    [21, 60_000],
    [50, 60_000],
    [10_000, 60_000],
  ]
  for (const [failures, expected] of table) {
    it(`${failures} consecutive failures -> ${expected} ms`, () => {
      assert.strictEqual(ms({ ...S0, consecutiveFailures: failures }), expected)
    })
  }

  it("the backoff follows the failures counted by next", () => {
    const delays: Array<number> = []
    let state = S0
    for (let i = 0; i < 10; i++) {
      state = next(state, failed(http(500)), new Date(T0 + i))
      delays.push(ms(state))
    }
    assert.deepStrictEqual(delays, [250, 500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000])
  })

  it("never exceeds the interval, even with a retry base above it", () => {
    assert.strictEqual(
      ms({ ...S0, consecutiveFailures: 1 }, Duration.seconds(60), Duration.minutes(2)),
      60_000,
    )
    assert.strictEqual(
      ms({ ...S0, consecutiveFailures: 3 }, Duration.seconds(1), Duration.millis(250)),
      1_000,
    )
  })
})

// ---------------------------------------------------------------------------------------------
// teeNote, guestComponents, meaning
// ---------------------------------------------------------------------------------------------

describe("teeNote and guestComponents", () => {
  it("undefined tee: the CDH does not name it", () => {
    assert.include(teeNote(undefined), "The CDH does not name the TEE")
  })

  it("sample: no TEE was detected", () => {
    assert.include(teeNote("sample"), "No TEE was detected")
    assert.include(teeNote("sample"), "sample")
  })

  for (const tee of ["tdx", "snp", "azsnpvtpm"]) {
    it(`${tee}: names it as the agent's own detection`, () => {
      const note = teeNote(tee)
      assert.include(note, tee)
      assert.notInclude(note, "No TEE")
      assert.include(note, "not a verified claim")
    })
  }

  it("guestComponents copies version and features and explains the TEE", () => {
    assert.deepStrictEqual(guestComponents(SAMPLE_INFO), {
      version: "v0.21.0",
      features: "all",
      tee: "sample",
      teeNote: teeNote("sample"),
    })
    assert.deepStrictEqual(guestComponents(Memory.DEFAULT_INFO), {
      version: "memory",
      features: "resource",
      tee: null,
      teeNote: teeNote(undefined),
    })
    const tdx = guestComponents({
      version: "v0.22.0",
      features: "attestation",
      tee: "tdx",
      additionalTees: ["gpu"],
    })
    assert.strictEqual(tdx.tee, "tdx")
    assert.include(tdx.teeNote, "tdx")
  })

  it("meaning names the resource and says what verified does not prove", () => {
    const text = meaning("kbs:///shop/attestation/ok")
    assert.include(text, "kbs:///shop/attestation/ok")
    assert.include(text, "not an appraisal")
    assert.include(text, "without a TEE passes too")
  })

  it("initialState: not checked yet, nothing known", () => {
    assert.deepStrictEqual(initialState(ATTESTATION_STATUS), {
      status: "unavailable",
      timestamp: "unavailable",
      details: "attestation status not checked yet",
      source: "kbs-resource",
      resource: ATTESTATION_STATUS,
      meaning: meaning(ATTESTATION_STATUS),
      checkedAt: null,
      changedAt: null,
      nextCheckAt: null,
      httpStatus: null,
      lastError: null,
      consecutiveFailures: 0,
      history: [],
      guestComponents: null,
    })
  })
})

// ---------------------------------------------------------------------------------------------
// The layer (memory CDH, TestClock)
// ---------------------------------------------------------------------------------------------

describe("AttestationReporter.layer", () => {
  it("the fixture config is 60 s / 250 ms", () => {
    assert.strictEqual(Duration.toMillis(settings.attestationInterval), 60_000)
    assert.strictEqual(Duration.toMillis(settings.cdh.retryBase), 250)
    assert.strictEqual(settings.attestationStatusUri.uri, ATTESTATION_STATUS)
  })

  it.effect("not checked yet until the first check answers, then verified", () =>
    Effect.gen(function* () {
      const gate = yield* Deferred.make<void>()
      const recorder = newRecorder()
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      yield* withReporter(recorded(memory.layer, recorder, { gate }), (reporter) =>
        Effect.gen(function* () {
          assert.deepStrictEqual(yield* reporter.current, initialState(ATTESTATION_STATUS))
          yield* settle
          // The check is in flight (held by the gate): still nothing known.
          assert.deepStrictEqual(recorder.calls, [`get ${STATUS_PATH} @0`])
          assert.deepStrictEqual(yield* reporter.current, initialState(ATTESTATION_STATUS))
          yield* Deferred.succeed(gate, undefined)
          yield* settle
          assert.deepStrictEqual(yield* reporter.current, {
            status: "verified",
            timestamp: iso(T0),
            details: SUCCESS_DETAILS,
            source: "kbs-resource",
            resource: ATTESTATION_STATUS,
            meaning: meaning(ATTESTATION_STATUS),
            checkedAt: iso(T0),
            changedAt: iso(T0),
            nextCheckAt: iso(T0 + INTERVAL_MS),
            httpStatus: 200,
            lastError: null,
            consecutiveFailures: 0,
            history: [{ status: "verified", at: iso(T0), details: SUCCESS_DETAILS }],
            guestComponents: guestComponents(Memory.DEFAULT_INFO),
          })
          assert.deepStrictEqual(recorder.calls, [`get ${STATUS_PATH} @0`, "info @0"])
        }),
      )
    }),
  )

  it.effect("a change in the store is seen only at the next interval", () =>
    Effect.gen(function* () {
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      yield* withReporter(memory.layer, (reporter) =>
        Effect.gen(function* () {
          yield* settle
          assert.strictEqual((yield* reporter.current).status, "verified")
          assert.strictEqual(memory.controls.requests.length, 1)

          memory.controls.set(STATUS_PATH, "failure")
          yield* TestClock.adjust("59 seconds")
          const before = yield* reporter.current
          assert.strictEqual(before.status, "verified")
          assert.strictEqual(before.checkedAt, iso(T0))
          assert.strictEqual(memory.controls.requests.length, 1)

          yield* TestClock.adjust("1 second")
          const after = yield* reporter.current
          assert.strictEqual(memory.controls.requests.length, 2)
          assert.strictEqual(after.status, "failed")
          assert.include(after.details, '"failure"')
          assert.strictEqual(after.timestamp, iso(T0 + 60_000))
          assert.strictEqual(after.checkedAt, iso(T0 + 60_000))
          assert.strictEqual(after.changedAt, iso(T0 + 60_000))
          assert.strictEqual(after.nextCheckAt, iso(T0 + 120_000))
          assert.strictEqual(after.httpStatus, 200)
          assert.strictEqual(after.consecutiveFailures, 0)
          assert.deepStrictEqual(
            after.history.map((t) => [t.status, t.at]),
            [
              ["failed", iso(T0 + 60_000)],
              ["verified", iso(T0)],
            ],
          )

          // An unchanged answer moves checkedAt only.
          yield* TestClock.adjust("60 seconds")
          const same = yield* reporter.current
          assert.strictEqual(memory.controls.requests.length, 3)
          assert.strictEqual(same.status, "failed")
          assert.strictEqual(same.checkedAt, iso(T0 + 120_000))
          assert.strictEqual(same.changedAt, iso(T0 + 60_000))
          assert.strictEqual(same.history.length, 2)

          // A missing resource: unavailable, the last 200's timestamp kept, backoff starts.
          memory.controls.remove(STATUS_PATH)
          yield* TestClock.adjust("60 seconds")
          const gone = yield* reporter.current
          assert.strictEqual(gone.status, "unavailable")
          assert.strictEqual(gone.timestamp, iso(T0 + 120_000))
          assert.strictEqual(gone.checkedAt, iso(T0 + 180_000))
          assert.strictEqual(gone.httpStatus, 500)
          assert.include(gone.lastError ?? "", "HTTP 500")
          assert.strictEqual(gone.consecutiveFailures, 1)
          assert.strictEqual(gone.nextCheckAt, iso(T0 + 180_250))
          assert.strictEqual(gone.history.length, 3)
        }),
      )
    }),
  )

  it.effect("a failing CDH is retried with backoff: requests at 0, 250, 750, 1750 ms", () =>
    Effect.gen(function* () {
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      memory.controls.failNext(1, { _tag: "Unreachable" })
      memory.controls.failNext(2, { _tag: "Status", status: 500 })
      const requests = () => memory.controls.requests.length
      yield* withReporter(memory.layer, (reporter) =>
        Effect.gen(function* () {
          yield* settle
          assert.strictEqual(requests(), 1)
          const first = yield* reporter.current
          assert.strictEqual(first.status, "unavailable")
          assert.strictEqual(first.timestamp, "unavailable")
          assert.strictEqual(first.httpStatus, null)
          assert.include(first.lastError ?? "", "ECONNREFUSED")
          assert.strictEqual(first.consecutiveFailures, 1)
          assert.strictEqual(first.nextCheckAt, iso(T0 + 250))

          yield* TestClock.adjust(249)
          assert.strictEqual(requests(), 1)
          yield* TestClock.adjust(1)
          assert.strictEqual(requests(), 2)
          const second = yield* reporter.current
          assert.strictEqual(second.consecutiveFailures, 2)
          assert.strictEqual(second.httpStatus, 500)
          assert.strictEqual(second.checkedAt, iso(T0 + 250))
          assert.strictEqual(second.changedAt, iso(T0))
          assert.strictEqual(second.nextCheckAt, iso(T0 + 750))

          yield* TestClock.adjust(499)
          assert.strictEqual(requests(), 2)
          yield* TestClock.adjust(1)
          assert.strictEqual(requests(), 3)
          const third = yield* reporter.current
          assert.strictEqual(third.consecutiveFailures, 3)
          assert.strictEqual(third.nextCheckAt, iso(T0 + 1750))

          yield* TestClock.adjust(999)
          assert.strictEqual(requests(), 3)
          yield* TestClock.adjust(1)
          assert.strictEqual(requests(), 4)
          const recovered = yield* reporter.current
          assert.strictEqual(recovered.status, "verified")
          assert.strictEqual(recovered.consecutiveFailures, 0)
          assert.isNull(recovered.lastError)
          assert.strictEqual(recovered.httpStatus, 200)
          assert.strictEqual(recovered.timestamp, iso(T0 + 1750))
          assert.strictEqual(recovered.checkedAt, iso(T0 + 1750))
          assert.strictEqual(recovered.changedAt, iso(T0 + 1750))
          assert.strictEqual(recovered.nextCheckAt, iso(T0 + 1750 + INTERVAL_MS))
          assert.deepStrictEqual(
            recovered.history.map((t) => [t.status, t.at]),
            [
              ["verified", iso(T0 + 1750)],
              ["unavailable", iso(T0)],
            ],
          )

          // Back on the regular interval.
          yield* TestClock.adjust(INTERVAL_MS - 1)
          assert.strictEqual(requests(), 4)
          yield* TestClock.adjust(1)
          assert.strictEqual(requests(), 5)
        }),
      )
    }),
  )

  it.effect("a CDH that keeps failing backs off up to the interval, never beyond", () =>
    Effect.gen(function* () {
      const recorder = newRecorder()
      const memory = Memory.make({})
      yield* withReporter(recorded(memory.layer, recorder), (reporter) =>
        Effect.gen(function* () {
          yield* settle
          yield* TestClock.adjust("200 seconds")
          const gets = recorder.calls.filter((c) => c.startsWith("get ")).map((c) => Number(c.split("@")[1]))
          assert.deepStrictEqual(
            gets,
            [0, 250, 750, 1_750, 3_750, 7_750, 15_750, 31_750, 63_750, 123_750, 183_750],
          )
          const state = yield* reporter.current
          assert.strictEqual(state.status, "unavailable")
          assert.strictEqual(state.timestamp, "unavailable")
          assert.strictEqual(state.consecutiveFailures, 11)
          assert.strictEqual(state.checkedAt, iso(T0 + 183_750))
          assert.strictEqual(state.nextCheckAt, iso(T0 + 243_750))
          assert.strictEqual(state.changedAt, iso(T0))
          assert.strictEqual(state.history.length, 1)
        }),
      )
    }),
  )

  it.effect("nextCheckAt is checkedAt plus the delay, whatever the outcome", () =>
    Effect.gen(function* () {
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      yield* withReporter(memory.layer, (reporter) =>
        Effect.gen(function* () {
          const seen: Array<readonly [string | null, string | null]> = []
          const look = Effect.map(reporter.current, (s) => void seen.push([s.checkedAt, s.nextCheckAt]))
          yield* settle
          yield* look
          memory.controls.failNext(2, { _tag: "Status", status: 503 })
          yield* TestClock.adjust(INTERVAL_MS)
          yield* look
          yield* TestClock.adjust(250)
          yield* look
          yield* TestClock.adjust(500)
          yield* look
          assert.deepStrictEqual(seen, [
            [iso(T0), iso(T0 + 60_000)],
            [iso(T0 + 60_000), iso(T0 + 60_250)],
            [iso(T0 + 60_250), iso(T0 + 60_750)],
            [iso(T0 + 60_750), iso(T0 + 120_750)],
          ])
          assert.strictEqual((yield* reporter.current).status, "verified")
        }),
      )
    }),
  )

  it.effect("guestComponents comes from /info: sample means no TEE", () =>
    Effect.gen(function* () {
      const memory = Memory.make({ [STATUS_PATH]: "success" }, { info: SAMPLE_INFO })
      yield* withReporter(memory.layer, (reporter) =>
        Effect.gen(function* () {
          yield* settle
          const state = yield* reporter.current
          assert.strictEqual(state.status, "verified")
          assert.deepStrictEqual(state.guestComponents, {
            version: "v0.21.0",
            features: "all",
            tee: "sample",
            teeNote: teeNote("sample"),
          })
          assert.include(state.guestComponents?.teeNote ?? "", "No TEE was detected")
        }),
      )
    }),
  )

  it.effect("/info is asked even when the resource fails, and a failing /info keeps what was known", () =>
    Effect.gen(function* () {
      const recorder = newRecorder()
      const memory = Memory.make({}, { info: SAMPLE_INFO })
      let infoCalls = 0
      const info = Effect.suspend((): Effect.Effect<CdhInfo | undefined, FetchError> => {
        infoCalls++
        return infoCalls === 1
          ? Effect.succeed(SAMPLE_INFO)
          : Effect.fail(
              new CdhUnreachable({ uri: "/info", url: "http://127.0.0.1:8006/info", reason: "ECONNRESET" }),
            )
      })
      yield* withReporter(recorded(memory.layer, recorder, { info }), (reporter) =>
        Effect.gen(function* () {
          yield* settle
          const first = yield* reporter.current
          assert.strictEqual(first.status, "unavailable")
          assert.deepStrictEqual(first.guestComponents, guestComponents(SAMPLE_INFO))
          memory.controls.set(STATUS_PATH, "success")
          yield* TestClock.adjust(250)
          const second = yield* reporter.current
          assert.strictEqual(infoCalls, 2)
          // The /info failure neither hides the status nor counts as a check failure.
          assert.strictEqual(second.status, "verified")
          assert.strictEqual(second.consecutiveFailures, 0)
          assert.isNull(second.lastError)
          assert.deepStrictEqual(second.guestComponents, guestComponents(SAMPLE_INFO))
        }),
      )
    }),
  )

  it.effect("/info answering undefined (old CDH) leaves guestComponents null", () =>
    Effect.gen(function* () {
      const recorder = newRecorder()
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      yield* withReporter(recorded(memory.layer, recorder, { info: Effect.succeed(undefined) }), (reporter) =>
        Effect.gen(function* () {
          yield* settle
          const state = yield* reporter.current
          assert.strictEqual(state.status, "verified")
          assert.isNull(state.guestComponents)
        }),
      )
    }),
  )

  it.effect("uses only get (on the configured resource) and info, in that order", () =>
    Effect.gen(function* () {
      const recorder = newRecorder()
      const custom = settingsWith({
        ATTESTATION_STATUS_URI: "kbs:///shop/attestation/ok",
        ATTESTATION_CHECK_INTERVAL: "60s",
        CDH_RETRY_BASE: "250ms",
      })
      const memory = Memory.make({ "shop/attestation/ok": "success" })
      memory.controls.failNext(1, { _tag: "Status", status: 500 })
      yield* withReporter(
        recorded(memory.layer, recorder),
        (reporter) =>
          Effect.gen(function* () {
            yield* settle
            yield* TestClock.adjust(250)
            yield* TestClock.adjust(INTERVAL_MS)
            assert.deepStrictEqual(recorder.calls, [
              "get shop/attestation/ok @0",
              "info @0",
              "get shop/attestation/ok @250",
              "info @250",
              "get shop/attestation/ok @60250",
              "info @60250",
            ])
            assert.deepStrictEqual([...recorder.accessed].sort(), ["get", "info"])
            const state = yield* reporter.current
            assert.strictEqual(state.status, "verified")
            assert.strictEqual(state.resource, "kbs:///shop/attestation/ok")
            assert.strictEqual(state.meaning, meaning("kbs:///shop/attestation/ok"))
          }),
        { settings: custom },
      )
    }),
  )

  it.effect("the build returns at once even if get never answers; the state stays initial", () =>
    Effect.gen(function* () {
      const calls: Array<string> = []
      const hanging = Layer.succeed(
        ResourceClient,
        ResourceClient.of({
          source: "hanging://cdh",
          get: (resource) =>
            Effect.sync(() => void calls.push(resource.path)).pipe(Effect.andThen(Effect.never)),
          info: Effect.never,
        }),
      )
      yield* withReporter(hanging, (reporter) =>
        Effect.gen(function* () {
          assert.deepStrictEqual(yield* reporter.current, initialState(ATTESTATION_STATUS))
          yield* settle
          yield* TestClock.adjust("10 minutes")
          assert.deepStrictEqual(yield* reporter.current, initialState(ATTESTATION_STATUS))
          // One check in flight; no second one piles up behind it.
          assert.deepStrictEqual(calls, [STATUS_PATH])
        }),
      )
    }),
  )

  it.effect("logs one line per status change, none while the status holds", () =>
    Effect.gen(function* () {
      const logs = capture()
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      yield* withReporter(
        memory.layer,
        () =>
          Effect.gen(function* () {
            yield* settle
            yield* TestClock.adjust(INTERVAL_MS) // verified again: no line
            memory.controls.remove(STATUS_PATH)
            yield* TestClock.adjust(INTERVAL_MS) // unavailable
            yield* TestClock.adjust(250 + 500 + 1000) // three more failures: no lines
            memory.controls.set(STATUS_PATH, "success")
            yield* TestClock.adjust(2000) // verified
          }),
        { logger: logs.layer },
      )
      const lines = logs.lines.filter((l: CapturedLog) => l.message.includes("attestation status"))
      assert.deepStrictEqual(
        lines.map((l) => [l.message, l.annotations.status]),
        [
          ["attestation status", "verified"],
          ["attestation status", "unavailable"],
          ["attestation status", "verified"],
        ],
      )
      assert.strictEqual(lines[1]?.annotations.resource, ATTESTATION_STATUS)
      assert.include(String(lines[1]?.annotations.details), "HTTP 500")
    }),
  )
  it.effect("timestamp is when the 200 arrived, even when /info is slow", () =>
    Effect.gen(function* () {
      const recorder = newRecorder()
      const memory = Memory.make({ [STATUS_PATH]: "success" })
      const slowInfo = Effect.sleep("5 seconds").pipe(Effect.as(Memory.DEFAULT_INFO))
      yield* withReporter(recorded(memory.layer, recorder, { info: slowInfo }), (reporter) =>
        Effect.gen(function* () {
          yield* settle
          yield* TestClock.adjust("5 seconds")
          const state = yield* reporter.current
          assert.strictEqual(state.status, "verified")
          assert.strictEqual(state.timestamp, iso(T0))
        }),
      )
    }),
  )
})
