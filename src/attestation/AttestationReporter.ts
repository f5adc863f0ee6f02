/**
 * AttestationReporter: the kubectl-coco attestation-status convention
 * (`kbs:///default/attestation-status/status` released with body `success`),
 * checked in the background and served from cached state, never on the
 * request path. What "verified" means is spelled out in `details`: the KBS
 * released a resource to this pod; it is not an appraisal of the evidence.
 */
import { Clock, Context, Effect, Layer, Ref } from "effect"
import { type FetchError, ResourceClient, retrySchedule } from "../cdh/ResourceClient.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"

export type AttestationStatus = "verified" | "failed" | "unavailable"

export interface AttestationState {
  readonly status: AttestationStatus
  /** Upstream meaning: when a 200 was received for the check; "unavailable" when none was. */
  readonly timestamp: string
  readonly details: string
  readonly source: "kbs-resource"
  readonly resource: string
  /** When the last check finished, whatever its outcome. */
  readonly checkedAt: string | null
  readonly httpStatus: number | null
}

export const UPSTREAM_SUCCESS_DETAILS = "TEE attestation successful"

export const initialState = (resource: string): AttestationState => ({
  status: "unavailable",
  timestamp: "unavailable",
  details: "attestation status not checked yet",
  source: "kbs-resource",
  resource,
  checkedAt: null,
  httpStatus: null,
})

/** Maps one check's outcome to the upstream-compatible state (coco-interfaces.md 4.6). */
export const fromBody = (resource: string, body: Uint8Array, at: Date): AttestationState => {
  const text = new TextDecoder().decode(body).trim()
  const ok = text === "success"
  return {
    status: ok ? "verified" : "failed",
    timestamp: at.toISOString(),
    details: ok ? UPSTREAM_SUCCESS_DETAILS : `attestation status: ${JSON.stringify(text.slice(0, 120))}`,
    source: "kbs-resource",
    resource,
    checkedAt: at.toISOString(),
    httpStatus: 200,
  }
}

export class AttestationReporter extends Context.Service<
  AttestationReporter,
  {
    readonly current: Effect.Effect<AttestationState>
  }
>()("coco-secure-access/AttestationReporter") {
  /** Starts the first check in the background; it never blocks or fails start-up. */
  static readonly layer: Layer.Layer<AttestationReporter, never, ResourceClient | SidecarConfig> =
    Layer.effect(
      AttestationReporter,
      Effect.gen(function* () {
        const config = yield* SidecarConfig
        const resource = config.attestationStatusUri
        const state = yield* Ref.make(initialState(resource.uri))
        const client = yield* ResourceClient
        const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms)))
        const unavailable = (error: FetchError, at: Date): AttestationState => ({
          ...initialState(resource.uri),
          details: error.message,
          checkedAt: at.toISOString(),
          httpStatus: error._tag === "CdhHttpError" ? error.status : null,
        })
        // Logged on change only: the retry schedule already logs every failed attempt.
        const record = (next: AttestationState) =>
          Ref.getAndSet(state, next).pipe(
            Effect.flatMap((previous) =>
              previous.status === next.status && previous.checkedAt !== null
                ? Effect.void
                : Effect.logInfo("attestation status").pipe(
                    Effect.annotateLogs({
                      status: next.status,
                      resource: resource.uri,
                      details: next.details,
                    }),
                  ),
            ),
          )
        // Each failed attempt is visible in the state at once; retries follow the start-up policy.
        const startedAt = yield* Clock.currentTimeMillis
        const check = client.get(resource).pipe(
          Effect.tapError((error) => Effect.flatMap(now, (at) => record(unavailable(error, at)))),
          Effect.retry(
            retrySchedule(
              { base: config.cdh.retryBase, max: config.cdh.retryMax, budget: config.cdh.startupTimeout },
              startedAt,
            ),
          ),
          Effect.flatMap((body) => Effect.flatMap(now, (at) => record(fromBody(resource.uri, body, at)))),
          Effect.ignore,
        )
        yield* Effect.forkScoped(check)
        return AttestationReporter.of({ current: Ref.get(state) })
      }),
    )

  static readonly layerFixed = (value: AttestationState): Layer.Layer<AttestationReporter> =>
    Layer.succeed(AttestationReporter, AttestationReporter.of({ current: Effect.succeed(value) }))
}
