import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, Result } from "effect"
import { TestClock } from "effect/testing"
import {
  AttestationReporter,
  type AttestationState,
  fromBody,
  UPSTREAM_SUCCESS_DETAILS,
} from "../../src/attestation/AttestationReporter.ts"
import * as Memory from "../../src/cdh/MemoryResourceClient.ts"
import { ResourceClient } from "../../src/cdh/ResourceClient.ts"
import { decode, SidecarConfig } from "../../src/config/SidecarConfig.ts"
import { ATTESTATION_STATUS } from "../../src/kbs/ResourceUri.ts"

const STATUS_PATH = "default/attestation-status/status"
const T0 = Date.parse("2026-01-01T10:00:00.000Z")
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

const settings = Result.getOrThrow(
  decode({
    TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
    TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
    CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
    CDH_RETRY_BASE: "100ms",
    CDH_RETRY_MAX: "1s",
    CDH_STARTUP_TIMEOUT: "10s",
  }),
)

/**
 * The reporter over the memory CDH, with MemoryCdh exposed; retry warnings silenced. `before` scripts
 * the memory CDH after it is built and before the reporter starts its background check.
 */
const env = (
  resources: Readonly<Record<string, string | Uint8Array>>,
  before: (cdh: Memory.MemoryCdh["Service"]) => void = () => {},
) =>
  AttestationReporter.layer.pipe(
    Layer.provideMerge(
      Layer.effectDiscard(
        Effect.gen(function* () {
          before(yield* Memory.MemoryCdh)
        }),
      ).pipe(Layer.provideMerge(Layer.mergeAll(Memory.layer(resources), SidecarConfig.layerFrom(settings)))),
    ),
    Layer.provideMerge(Logger.layer([])),
  )

const current = Effect.gen(function* () {
  return yield* (yield* AttestationReporter).current
})

/** Lets the background check run until it has nothing left to do without the clock moving. */
const settle = Effect.gen(function* () {
  for (let i = 0; i < 20; i++) yield* Effect.yieldNow
})

/** Builds the layer at virtual time T0, then runs `body` with it. */
const atT0 = <A, E>(
  resources: Readonly<Record<string, string | Uint8Array>>,
  body: Effect.Effect<A, E, AttestationReporter | Memory.MemoryCdh>,
  before?: (cdh: Memory.MemoryCdh["Service"]) => void,
) =>
  Effect.gen(function* () {
    yield* TestClock.setTime(T0)
    // Effect.provide builds the layer when this runs, i.e. after the clock was set.
    return yield* body.pipe(Effect.provide(env(resources, before)))
  })

const expectVerified = (state: AttestationState, at: number): void => {
  assert.deepStrictEqual(state, {
    status: "verified",
    timestamp: new Date(at).toISOString(),
    details: UPSTREAM_SUCCESS_DETAILS,
    source: "kbs-resource",
    resource: ATTESTATION_STATUS,
    checkedAt: new Date(at).toISOString(),
    httpStatus: 200,
  })
  assert.match(state.timestamp, ISO)
}

describe("AttestationReporter (memory CDH, TestClock)", () => {
  it.effect("body `success` -> verified, ISO timestamp, upstream details, httpStatus 200", () =>
    atT0(
      { [STATUS_PATH]: "success" },
      Effect.gen(function* () {
        yield* settle
        const state = yield* current
        expectVerified(state, T0)
        assert.strictEqual(state.details, "TEE attestation successful")
        assert.deepStrictEqual((yield* Memory.MemoryCdh).requests, [STATUS_PATH])
      }),
    ),
  )

  it.effect("body `success\\n` (trailing newline) is trimmed -> verified", () =>
    atT0(
      { [STATUS_PATH]: "success\n" },
      Effect.gen(function* () {
        yield* settle
        expectVerified(yield* current, T0)
      }),
    ),
  )

  it.effect("body `failure` -> failed, details containing the body, timestamp of the 200", () =>
    atT0(
      { [STATUS_PATH]: "failure" },
      Effect.gen(function* () {
        yield* settle
        const state = yield* current
        assert.strictEqual(state.status, "failed")
        assert.include(state.details, "failure")
        assert.notInclude(state.details, UPSTREAM_SUCCESS_DETAILS)
        assert.strictEqual(state.httpStatus, 200)
        assert.strictEqual(state.timestamp, new Date(T0).toISOString())
        assert.strictEqual(state.checkedAt, new Date(T0).toISOString())
        // A 200 is final: no retry.
        yield* TestClock.adjust("1 minute")
        assert.strictEqual((yield* Memory.MemoryCdh).requests.length, 1)
      }),
    ),
  )

  it("fromBody: only the trimmed body `success` is success (case-sensitive, whole body)", () => {
    const at = new Date(T0)
    for (const body of ["success", "success\n", " success \r\n", "\tsuccess"]) {
      const state = fromBody(ATTESTATION_STATUS, new TextEncoder().encode(body), at)
      assert.strictEqual(state.status, "verified", JSON.stringify(body))
    }
    for (const body of ["Success", "success!", "successful", "not success", ""]) {
      const state = fromBody(ATTESTATION_STATUS, new TextEncoder().encode(body), at)
      assert.strictEqual(state.status, "failed", JSON.stringify(body))
      assert.strictEqual(state.httpStatus, 200)
      assert.strictEqual(state.timestamp, at.toISOString())
    }
  })

  it.effect("missing resource -> stays unavailable: details name the URI, httpStatus 500, no timestamp", () =>
    atT0(
      {},
      Effect.gen(function* () {
        const cdh = yield* Memory.MemoryCdh
        yield* settle
        const first = yield* current
        assert.strictEqual(first.status, "unavailable")
        assert.strictEqual(first.timestamp, "unavailable")
        assert.strictEqual(first.httpStatus, 500)
        assert.include(first.details, ATTESTATION_STATUS)
        assert.include(first.details, "HTTP 500")
        assert.strictEqual(first.checkedAt, new Date(T0).toISOString())
        // Through and well past the 10 s start-up budget: still unavailable, and the retries stop.
        yield* TestClock.adjust("30 seconds")
        const later = yield* current
        assert.strictEqual(later.status, "unavailable")
        assert.strictEqual(later.timestamp, "unavailable")
        assert.strictEqual(later.httpStatus, 500)
        assert.include(later.details, ATTESTATION_STATUS)
        assert.isNotNull(later.checkedAt)
        assert.isAbove(Date.parse(later.checkedAt ?? ""), T0)
        const requests = cdh.requests.length
        assert.isAbove(requests, 1)
        yield* TestClock.adjust("10 minutes")
        assert.strictEqual(cdh.requests.length, requests)
        assert.strictEqual((yield* current).status, "unavailable")
      }),
    ),
  )

  it.effect("layer build does not wait for the check; it becomes verified after the retry delays", () =>
    atT0(
      { [STATUS_PATH]: "success" },
      Effect.gen(function* () {
        const cdh = yield* Memory.MemoryCdh
        // Straight after the build: nothing verified yet.
        const initial = yield* current
        assert.strictEqual(initial.status, "unavailable")
        assert.strictEqual(initial.timestamp, "unavailable")
        assert.strictEqual(initial.httpStatus, null)
        // Either the check has not run yet, or its first attempt already failed.
        assert.isTrue(
          initial.details === "attestation status not checked yet" ||
            initial.details.includes("ECONNREFUSED"),
          initial.details,
        )
        yield* settle
        // The first attempt failed (connection refused) and is visible at once.
        const failing = yield* current
        assert.strictEqual(failing.status, "unavailable")
        assert.strictEqual(failing.timestamp, "unavailable")
        assert.strictEqual(failing.httpStatus, null)
        assert.include(failing.details, "ECONNREFUSED")
        assert.strictEqual(cdh.requests.length, 1)
        // Retry delays: 100 ms then 200 ms (±20 %), so at most 360 ms of virtual time.
        yield* TestClock.adjust("1 second")
        yield* settle
        const state = yield* current
        assert.strictEqual(cdh.requests.length, 3)
        assert.strictEqual(state.status, "verified")
        assert.strictEqual(state.details, UPSTREAM_SUCCESS_DETAILS)
        assert.strictEqual(state.httpStatus, 200)
        // The timestamp is when the 200 arrived: after the two back-off delays.
        const at = Date.parse(state.timestamp)
        assert.isAtLeast(at, T0 + 0.8 * 300)
        assert.isAtMost(at, T0 + 1.2 * 300)
        assert.match(state.timestamp, ISO)
      }),
      (cdh) => cdh.failNext(2, { _tag: "Unreachable" }),
    ),
  )

  it.effect("layer build returns at once even when the CDH never answers", () =>
    Effect.gen(function* () {
      const hanging = Layer.succeed(
        ResourceClient,
        ResourceClient.of({ source: "hanging://cdh", get: () => Effect.never }),
      )
      const state = yield* current.pipe(
        Effect.provide(
          AttestationReporter.layer.pipe(
            Layer.provide(Layer.mergeAll(hanging, SidecarConfig.layerFrom(settings))),
          ),
        ),
      )
      assert.deepStrictEqual(state, {
        status: "unavailable",
        timestamp: "unavailable",
        details: "attestation status not checked yet",
        source: "kbs-resource",
        resource: ATTESTATION_STATUS,
        checkedAt: null,
        httpStatus: null,
      })
    }),
  )
})
