/**
 * The attestation service's verdict on this pod: the KBS's EAR token, fetched through the CDH at
 * start and every ATTESTATION_TOKEN_INTERVAL (each fetch is a whole attestation, never on a
 * request's path), its ES256 signature checked (ear.ts), shown in `/api/attestation`.
 *
 * The CDH's answer also carries `tee_keypair`, the private key the KBS encrypts resources to: it
 * is dropped as the answer is parsed and never kept, logged or returned. The token itself is a
 * credential towards the KBS: it is kept to re-check its expiry at each read, never returned.
 */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { AttestationAgent, ENABLE_HINT } from "../cdh/AttestationAgent.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { appraise, parseTokenResponse, type Appraisal as Verdict } from "./ear.ts"

export interface AppraisalView {
  readonly appraisal: Verdict | null
  /** Why there is no appraisal; null when there is one. */
  readonly appraisalUnavailable: string | null
}

type State = { readonly token: string } | { readonly unavailable: string }

export class Appraisal extends Context.Service<
  Appraisal,
  { readonly current: Effect.Effect<AppraisalView> }
>()("coco-secure-access/Appraisal") {
  static readonly layer: Layer.Layer<Appraisal, never, AttestationAgent | SidecarConfig> = Layer.effect(
    Appraisal,
    Effect.gen(function* () {
      const agent = yield* AttestationAgent
      const config = yield* SidecarConfig
      const { interval, pinnedKey } = config.attestationToken
      const state = yield* Ref.make<State>({ unavailable: "the first token has not been fetched yet" })

      const fetchOnce = agent.token.pipe(
        Effect.flatMap((body) =>
          Effect.try({
            try: () => parseTokenResponse(body).token,
            catch: (error) =>
              `the CDH's token answer is not usable: ${error instanceof Error ? error.message : "unreadable"}`,
          }),
        ),
        Effect.match({
          onSuccess: (token): State => ({ token }),
          onFailure: (error): State => ({
            unavailable:
              typeof error === "string"
                ? error
                : error.kind === "feature-off" || error.kind === "unsupported"
                  ? `no token: ${error.detail}; ${ENABLE_HINT}`
                  : `no token: ${error.detail}`,
          }),
        }),
        Effect.tap((next) =>
          "unavailable" in next
            ? Effect.logWarning("attestation token not available").pipe(
                Effect.annotateLogs({ reason: next.unavailable }),
              )
            : Effect.void,
        ),
        Effect.flatMap((next) => Ref.set(state, next)),
      )
      // At start (in the background: the listener does not wait for an attestation), then spaced.
      yield* Effect.forkScoped(Effect.repeat(fetchOnce, Schedule.spaced(interval)))

      const current = Effect.gen(function* () {
        const now = new Date(yield* Clock.currentTimeMillis)
        const last = yield* Ref.get(state)
        if ("unavailable" in last) return { appraisal: null, appraisalUnavailable: last.unavailable }
        try {
          // Each read: an expired token must stop showing as affirming when it expires.
          return { appraisal: appraise(last.token, { pinnedKey, now }), appraisalUnavailable: null }
        } catch (error) {
          return {
            appraisal: null,
            appraisalUnavailable: `the token is malformed: ${error instanceof Error ? error.message : "unreadable"}`,
          }
        }
      })
      return Appraisal.of({ current })
    }),
  )
}
