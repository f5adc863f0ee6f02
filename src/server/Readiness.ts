/**
 * What /readyz answers: set by whichever layer knows. Built first, so the
 * health listener can answer "not ready" while the TLS material is still
 * being fetched (which may take minutes), instead of not answering at all.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { Readiness } from "./HealthServer.ts"

export class ReadinessState extends Context.Service<
  ReadinessState,
  {
    readonly check: Effect.Effect<Readiness>
    readonly set: (check: Effect.Effect<Readiness>) => Effect.Effect<void>
  }
>()("coco-secure-access/ReadinessState") {
  static readonly layer: Layer.Layer<ReadinessState> = Layer.sync(ReadinessState, () => {
    let current: Effect.Effect<Readiness> = Effect.succeed({
      ready: false,
      reason: "tls material not loaded",
    })
    return ReadinessState.of({
      check: Effect.suspend(() => current),
      set: (check) =>
        Effect.sync(() => {
          current = check
        }),
    })
  })
}
