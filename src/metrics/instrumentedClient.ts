/** The ResourceClient with every CDH request counted by outcome. */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"
import { type FetchError, ResourceClient } from "../cdh/ResourceClient.ts"
import { cdhFetches } from "./Metrics.ts"

const outcome = (error: FetchError) =>
  error._tag === "CdhUnreachable" ? "unreachable" : error.status >= 500 ? "http_5xx" : "http_4xx"

const OUTCOMES = ["ok", "unreachable", "http_4xx", "http_5xx"] as const
const byOutcome = Object.fromEntries(
  OUTCOMES.map((name) => [name, Metric.withAttributes(cdhFetches, { outcome: name })]),
) as Record<(typeof OUTCOMES)[number], typeof cdhFetches>

export const instrument = <E, R>(
  inner: Layer.Layer<ResourceClient, E, R>,
): Layer.Layer<ResourceClient, E, R> =>
  Layer.effect(
    ResourceClient,
    Effect.gen(function* () {
      const client = yield* ResourceClient
      // Every outcome shows from the start, at 0.
      for (const name of OUTCOMES) yield* Metric.update(byOutcome[name], 0)
      const count = <A>(effect: Effect.Effect<A, FetchError>) =>
        effect.pipe(
          Effect.tap(() => Metric.update(byOutcome.ok, 1)),
          Effect.tapError((error) => Metric.update(byOutcome[outcome(error)], 1)),
        )
      return ResourceClient.of({
        ...client,
        get: (resource) => count(client.get(resource)),
        info: count(client.info),
      })
    }),
  ).pipe(Layer.provide(inner))
