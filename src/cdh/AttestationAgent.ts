/**
 * The attestation agent as the CDH's REST API exposes it (feature `attestation`): raw evidence
 * over caller-chosen runtime data (`GET /aa/evidence`) and the KBS's EAR token (`GET /aa/token`).
 * Both are off on a default Kata pod (`agent.guest_components_rest_api=all` turns them on), and
 * both cost a hardware quote or a whole attestation per call: never on a hot path.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

export type AgentErrorKind =
  /** 404 `Attestation Feature Not Enabled`: the pod's api-server-rest runs without `attestation`. */
  | "feature-off"
  /** Another 404: a CDH too old for this route (before v0.18 the answers carry no body). */
  | "unsupported"
  /** No connection, or no answer in time. */
  | "unreachable"
  /** Any other answer: the agent or the KBS failed (500), or refused the request (400). */
  | "failed"

export class AgentError extends Data.TaggedError("AgentError")<{
  readonly kind: AgentErrorKind
  readonly detail: string
}> {
  override get message(): string {
    return `attestation agent: ${this.detail}`
  }
}

/** How a pod turns the feature on, for the error a user sees. */
export const ENABLE_HINT =
  "the pod's CDH REST API serves /aa/* only with its attestation feature on: start the pod with the kernel parameter agent.guest_components_rest_api=all (Kata annotation io.katacontainers.config.hypervisor.kernel_params), on guest-components v0.18 or later"

export class AttestationAgent extends Context.Service<
  AttestationAgent,
  {
    /** The evidence's JSON bytes over `runtimeData`, passed as the query value unchanged (ASCII). */
    readonly evidence: (runtimeData: string) => Effect.Effect<Uint8Array, AgentError>
    /** The CDH's answer to `/aa/token?token_type=kbs`: JSON with the token and a private key. */
    readonly token: Effect.Effect<Uint8Array, AgentError>
  }
>()("coco-secure-access/AttestationAgent") {
  /** No agent: what the in-memory CDH and a resource-only pod answer. */
  static readonly layerOff: Layer.Layer<AttestationAgent> = Layer.succeed(AttestationAgent, {
    evidence: () =>
      Effect.fail(new AgentError({ kind: "feature-off", detail: "Attestation Feature Not Enabled" })),
    token: Effect.fail(new AgentError({ kind: "feature-off", detail: "Attestation Feature Not Enabled" })),
  })
}
