/**
 * Evidence a client can check: `GET /api/evidence?nonce=N` asks the attestation agent for fresh
 * hardware evidence over the client's nonce and the public key of the certificate its TLS session
 * was served with (binding.ts), and hands it over raw. The client's verifier (src/verify/)
 * checks the binding; appraising the hardware evidence is the attestation service's job.
 *
 * Every answer is fresh: nothing is cached or precomputed. A quote costs the host tens of
 * milliseconds to a second, so at most one is in flight and a few start per second.
 */
import type { X509Certificate } from "node:crypto"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type AgentError, AttestationAgent, ENABLE_HINT } from "../cdh/AttestationAgent.ts"
import type { EvidenceResponse } from "../server/api/SidecarApi.ts"
import { AttestationReporter } from "./AttestationReporter.ts"
import { publicKeySha256, runtimeData } from "./binding.ts"

export const NOTE =
  "Raw, unappraised evidence. Check that its report data carries runtimeData (dist/verify.js does): that binds it to this TLS key and your nonce. Whether the hardware and its measurements are trustworthy is for an attestation service to appraise."

/** At most this many evidence requests start per second (one at a time in any case). */
export const PER_SECOND = 4

export class EvidenceRefused extends Data.TaggedError("EvidenceRefused")<{
  readonly status: 429 | 502 | 503
  readonly title: string
  readonly detail: string
  /** Seconds, for Retry-After. */
  readonly retryAfter?: number
}> {}

export class Evidence extends Context.Service<
  Evidence,
  {
    readonly collect: (
      nonce: { readonly text: string; readonly bytes: Uint8Array },
      served: X509Certificate,
    ) => Effect.Effect<typeof EvidenceResponse.Type, EvidenceRefused>
  }
>()("coco-secure-access/Evidence") {
  static readonly layer: Layer.Layer<Evidence, never, AttestationAgent | AttestationReporter> = Layer.effect(
    Evidence,
    Effect.gen(function* () {
      const agent = yield* AttestationAgent
      const reporter = yield* AttestationReporter
      let inFlight = false
      const started: Array<number> = []

      const refusal = (error: AgentError): EvidenceRefused => {
        switch (error.kind) {
          case "feature-off":
          case "unsupported":
            return new EvidenceRefused({
              status: 503,
              title: "Service Unavailable",
              detail: `Evidence is not available: ${error.detail}. ${ENABLE_HINT}.`,
            })
          case "unreachable":
            return new EvidenceRefused({
              status: 503,
              title: "Service Unavailable",
              detail: error.detail,
              retryAfter: 5,
            })
          case "failed":
            return new EvidenceRefused({
              status: 502,
              title: "Bad Gateway",
              detail: `The attestation agent could not produce evidence: ${error.detail}`,
            })
        }
      }

      const admit = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.suspend(() => {
          while (started.length > 0 && now - (started[0] as number) >= 1000) started.shift()
          if (inFlight || started.length >= PER_SECOND) {
            return Effect.fail(
              new EvidenceRefused({
                status: 429,
                title: "Too Many Requests",
                detail: inFlight
                  ? "Another evidence request is being served; try again in a second."
                  : `At most ${PER_SECOND} evidence requests a second; try again in a second.`,
                retryAfter: 1,
              }),
            )
          }
          inFlight = true
          started.push(now)
          return Effect.void
        }),
      )

      const collect = (
        nonce: { readonly text: string; readonly bytes: Uint8Array },
        served: X509Certificate,
      ) =>
        Effect.gen(function* () {
          const keyHash = publicKeySha256(served)
          const data = runtimeData(nonce.bytes, keyHash)
          const bytes = yield* agent.evidence(data).pipe(Effect.mapError(refusal))
          let evidence: unknown
          try {
            evidence = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
          } catch {
            return yield* Effect.fail(
              new EvidenceRefused({
                status: 502,
                title: "Bad Gateway",
                detail: "The attestation agent's evidence is not JSON.",
              }),
            )
          }
          const state = yield* reporter.current
          const answer: typeof EvidenceResponse.Type = {
            nonce: nonce.text,
            serverPublicKeySha256: keyHash.toString("hex"),
            runtimeData: data,
            tee: state.guestComponents?.tee ?? null,
            evidence,
            obtainedAt: new Date(yield* Clock.currentTimeMillis).toISOString(),
            verified: false,
            note: NOTE,
          }
          return answer
        })

      return Evidence.of({
        collect: (nonce, served) =>
          Effect.andThen(
            admit,
            collect(nonce, served).pipe(
              Effect.ensuring(
                Effect.sync(() => {
                  inFlight = false
                }),
              ),
            ),
          ),
      })
    }),
  )
}
