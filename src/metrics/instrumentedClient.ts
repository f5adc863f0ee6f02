/** The ResourceClient with every CDH request counted by outcome. */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type FetchError, ResourceClient } from "../cdh/ResourceClient.ts"
import { Metrics } from "./Metrics.ts"

const outcome = (error: FetchError) =>
  error._tag === "CdhUnreachable" ? "unreachable" : error.status >= 500 ? "http_5xx" : "http_4xx"

export const instrument = <E, R>(
  inner: Layer.Layer<ResourceClient, E, R>,
): Layer.Layer<ResourceClient, E, R | Metrics> =>
  Layer.effect(
    ResourceClient,
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const { cdhFetches } = yield* Metrics
      const count = <A>(effect: Effect.Effect<A, FetchError>) =>
        effect.pipe(
          Effect.tap(() => Effect.sync(() => cdhFetches.inc({ outcome: "ok" }))),
          Effect.tapError((error) => Effect.sync(() => cdhFetches.inc({ outcome: outcome(error) }))),
        )
      return ResourceClient.of({
        ...client,
        get: (resource) => count(client.get(resource)),
        info: count(client.info),
      })
    }),
  ).pipe(Layer.provide(inner))
