/**
 * AttestationReporter: the kubectl-coco attestation-status convention
 * (`kbs:///default/attestation-status/status` released with body `success`),
 * checked at start and then in the background, and served from cached state:
 * never on the request path. While the CDH fails, checks back off from
 * CDH_RETRY_BASE up to the regular interval.
 *
 * What "verified" means is spelled out, not implied: the KBS released a
 * resource to this pod. It is not an appraisal of the TEE evidence.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { type CdhInfo, type FetchError, ResourceClient } from "../cdh/ResourceClient.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import type * as Api from "../server/api/SidecarApi.ts"

// The cached state is what the API serves: its types are the API's schemas.
export type AttestationStatus = typeof Api.AttestationStatus.Type
export type Transition = typeof Api.Transition.Type
export type GuestComponents = typeof Api.GuestComponents.Type
export type AttestationState = typeof Api.AttestationState.Type

export const HISTORY_LENGTH = 20

export const meaning = (resource: string) =>
  `"verified" means the KBS released ${resource} to this pod with the body "success" ` +
  "(kubectl-coco's convention): the pod's attestation agent completed a KBS handshake and the KBS policy " +
  "released a resource. It is not an appraisal of the TEE evidence: with kubectl-coco's default allow-all " +
  "resource policy, a pod without a TEE passes too."

export const UPSTREAM_SUCCESS_DETAILS = "TEE attestation successful"

export const initialState = (resource: string): AttestationState => ({
  status: "unavailable",
  timestamp: "unavailable",
  details: "attestation status not checked yet",
  source: "kbs-resource",
  resource,
  meaning: meaning(resource),
  checkedAt: null,
  changedAt: null,
  nextCheckAt: null,
  httpStatus: null,
  lastError: null,
  consecutiveFailures: 0,
  history: [],
  guestComponents: null,
})

export const teeNote = (tee: string | undefined): string => {
  if (tee === undefined) {
    return "The CDH does not name the TEE (its attestation API is off, as in a default Kata guest)."
  }
  if (tee === "sample") {
    return 'No TEE was detected: the attestation agent fell back to its "sample" attester, which proves nothing.'
  }
  return `The attestation agent detected a ${tee} TEE (its own detection, not a verified claim).`
}

export const guestComponents = (info: CdhInfo): GuestComponents => ({
  version: info.version,
  features: info.features,
  tee: info.tee ?? null,
  teeNote: teeNote(info.tee),
})

/** The outcome of one check, before it is merged into the running state. */
export type Outcome =
  | { readonly _tag: "Released"; readonly body: Uint8Array }
  | { readonly _tag: "Failed"; readonly error: FetchError }

const SHORT = 300
const short = (text: string) => (text.length > SHORT ? `${text.slice(0, SHORT)}…` : text)

/** Pure: the next state after a check that finished at `at`. */
export const next = (previous: AttestationState, outcome: Outcome, at: Date): AttestationState => {
  const iso = at.toISOString()
  const base =
    outcome._tag === "Released"
      ? (() => {
          const text = new TextDecoder().decode(outcome.body).trim()
          const ok = text === "success"
          return {
            status: (ok ? "verified" : "failed") as AttestationStatus,
            timestamp: iso,
            details: ok
              ? `${UPSTREAM_SUCCESS_DETAILS}: the KBS released ${previous.resource} to this pod.`
              : `attestation status: the KBS released ${previous.resource} with ${JSON.stringify(text.slice(0, 120))}, not "success".`,
            httpStatus: 200,
            lastError: null,
            consecutiveFailures: 0,
          }
        })()
      : {
          status: "unavailable" as AttestationStatus,
          // Upstream keeps reporting the last 200, if there ever was one.
          timestamp: previous.timestamp,
          details: short(outcome.error.message),
          httpStatus: outcome.error._tag === "CdhHttpError" ? outcome.error.status : null,
          lastError: short(outcome.error.message),
          consecutiveFailures: previous.consecutiveFailures + 1,
        }
  const changed = base.status !== previous.status || previous.checkedAt === null
  return {
    ...previous,
    ...base,
    checkedAt: iso,
    changedAt: changed ? iso : previous.changedAt,
    history: changed
      ? [{ status: base.status, at: iso, details: base.details }, ...previous.history].slice(
          0,
          HISTORY_LENGTH,
        )
      : previous.history,
  }
}

/** The wait before the next check: the interval when the CDH answered, else backoff up to it. */
export const nextDelay = (
  state: AttestationState,
  interval: Duration.Duration,
  retryBase: Duration.Duration,
): Duration.Duration =>
  state.consecutiveFailures === 0
    ? interval
    : Duration.min(interval, Duration.times(retryBase, 2 ** Math.min(state.consecutiveFailures - 1, 20)))

/** When checks recur: every `interval` while the CDH answers, backing off from `retryBase` while it fails. */
export const checkSchedule = (
  interval: Duration.Duration,
  retryBase: Duration.Duration,
): Schedule.Schedule<number, AttestationState> =>
  Schedule.spaced(interval).pipe(
    Schedule.setInputType<AttestationState>(),
    Schedule.modifyDelay(({ input }) => Effect.succeed(nextDelay(input, interval, retryBase))),
  )

export class AttestationReporter extends Context.Service<
  AttestationReporter,
  {
    readonly current: Effect.Effect<AttestationState>
  }
>()("coco-secure-access/AttestationReporter") {
  /** The first check starts in the background; it never blocks or fails start-up. */
  static readonly layer: Layer.Layer<AttestationReporter, never, ResourceClient | SidecarConfig> =
    Layer.effect(
      AttestationReporter,
      Effect.gen(function* () {
        const config = yield* SidecarConfig
        const client = yield* ResourceClient
        const resource = config.attestationStatusUri
        const state = yield* Ref.make(initialState(resource.uri))
        const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms)))

        const check = Effect.gen(function* () {
          const outcome: Outcome = yield* client.get(resource).pipe(
            Effect.map((body): Outcome => ({ _tag: "Released", body })),
            Effect.catch((error) => Effect.succeed<Outcome>({ _tag: "Failed", error })),
          )
          const at = yield* now
          const updated = next(yield* Ref.get(state), outcome, at)
          // Announces the delay checkSchedule will wait: both come from nextDelay.
          const delay = nextDelay(updated, config.attestationInterval, config.cdh.retryBase)
          yield* Ref.set(state, {
            ...updated,
            nextCheckAt: new Date(at.getTime() + Duration.toMillis(delay)).toISOString(),
          })
          if (updated.changedAt === updated.checkedAt) {
            yield* (updated.status === "unavailable" ? Effect.logWarning : Effect.logInfo)(
              "attestation status",
            ).pipe(
              Effect.annotateLogs({
                status: updated.status,
                resource: resource.uri,
                details: updated.details,
              }),
            )
          }
          // Version and TEE are extras, asked after the status is recorded: a failing /info keeps what was known.
          const info = yield* client.info.pipe(Effect.orElseSucceed(() => undefined))
          if (info !== undefined)
            yield* Ref.update(state, (current) => ({ ...current, guestComponents: guestComponents(info) }))
          return updated
        })

        yield* Effect.forkScoped(
          Effect.repeat(check, checkSchedule(config.attestationInterval, config.cdh.retryBase)),
        )
        return AttestationReporter.of({ current: Ref.get(state) })
      }),
    )

  static readonly layerFixed = (value: AttestationState): Layer.Layer<AttestationReporter> =>
    Layer.succeed(AttestationReporter, AttestationReporter.of({ current: Effect.succeed(value) }))
}
