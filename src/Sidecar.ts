/**
 * The one place layers meet. Given a ResourceClient layer (the CDH over HTTP
 * in production, in memory for the local run and tests), builds the whole
 * sidecar: nothing listens until the TLS material is fetched and valid.
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import * as HttpServer from "effect/http/HttpServer"
import type { ServeError } from "effect/http/HttpServerError"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { AttestationReporter } from "./attestation/AttestationReporter.ts"
import type { ResourceClient, ResourceUnavailable } from "./cdh/ResourceClient.ts"
import {
  SidecarConfig as Config,
  type InvalidConfig,
  type SidecarConfig,
  summary,
} from "./config/SidecarConfig.ts"
import { instrument } from "./metrics/instrumentedClient.ts"
import { Metrics } from "./metrics/Metrics.ts"
import { Forwarder } from "./proxy/Forwarder.ts"
import { Environment } from "./runtime/Environment.ts"
import { RuntimeInfo } from "./runtime/RuntimeInfo.ts"
import { TeeInfo } from "./runtime/TeeHints.ts"
import * as HealthServer from "./server/HealthServer.ts"
import * as HttpsServer from "./server/HttpsServer.ts"
import { ReadinessState } from "./server/Readiness.ts"
import * as Routes from "./server/routes.ts"
import type { TlsMaterialError } from "./tls/errors.ts"
import { TlsMaterial } from "./tls/TlsMaterial.ts"

export type StartupError =
  | InvalidConfig
  | ResourceUnavailable
  | TlsMaterialError
  | ServeError
  | HealthServer.HealthListenError

const logStart = Layer.effectDiscard(
  Effect.gen(function* () {
    const config = yield* Config
    yield* Effect.logInfo("starting coco-secure-access").pipe(Effect.annotateLogs(summary(config)))
    yield* Effect.addFinalizer(() => Effect.logInfo("stopped"))
  }),
)

const logListening = (onListening: (url: string) => Effect.Effect<void>) =>
  Layer.effectDiscard(
    Effect.gen(function* () {
      const server = yield* HttpServer.HttpServer
      // formatAddress says http://; the listener is TLS-only.
      const url = HttpServer.formatAddress(server.address).replace(/^http:/, "https:")
      yield* Effect.logInfo("listening").pipe(
        Effect.annotateLogs({ address: url, startupMs: Math.round(performance.now()) }),
      )
      // Built after the server, so this runs before the server drains on shutdown.
      const config = yield* Config
      yield* Effect.addFinalizer(() =>
        Effect.logInfo("shutting down: draining in-flight requests").pipe(
          Effect.annotateLogs({ gracePeriod: Duration.format(config.shutdownGrace) }),
        ),
      )
      yield* onListening(url)
    }),
  )

export interface Options {
  /** Runs once the listener accepts connections, e.g. to print how to reach it. */
  readonly onListening?: (url: string) => Effect.Effect<void>
  /** The environment the status reports (filtered); the process's by default. */
  readonly environment?: Readonly<Record<string, string | undefined>>
}

export const layer = <E>(
  resourceClient: Layer.Layer<ResourceClient, E, SidecarConfig>,
  options: Options = {},
): Layer.Layer<never, Exclude<StartupError, InvalidConfig> | E, SidecarConfig> => {
  const environment = Layer.unwrap(
    Effect.map(Config, (config) =>
      Environment.layerFrom(options.environment ?? process.env, config.envAllowlist),
    ),
  )
  // TLS material first: on CDHs that serve one request at a time, it must not queue behind the status check.
  const core = AttestationReporter.layer.pipe(
    Layer.provideMerge(TlsMaterial.layer),
    Layer.provide(instrument(resourceClient)),
    Layer.provideMerge(Layer.mergeAll(RuntimeInfo.layer, environment, TeeInfo.layer)),
    Layer.provide(logStart),
  )
  // The Forwarder exists only when FORWARD_PORT is set; the server looks it up as optional.
  const forwarder = Layer.unwrap(
    Effect.map(Config, (config) => (Option.isSome(config.forwardPort) ? Forwarder.layer : Layer.empty)),
  )
  const services = Metrics.layerCollectors.pipe(
    Layer.provideMerge(Layer.mergeAll(HttpsServer.HttpsListener.layer, forwarder)),
    Layer.provideMerge(core),
  )
  const server = HttpRouter.serve(Routes.layer, { disableListenLog: true }).pipe(
    Layer.provideMerge(HttpsServer.layer),
    Layer.provide(HttpsServer.layerServices),
  )
  // Up before anything slow, so that kubelet sees "alive, not ready" while the CDH is awaited.
  const health = Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* Config
      const readiness = yield* ReadinessState
      return config.health === undefined
        ? Layer.empty
        : HealthServer.layer({ port: config.health.port, host: config.health.host }, readiness.check)
    }),
  )
  return logListening(options.onListening ?? (() => Effect.void)).pipe(
    Layer.provide(server),
    Layer.provide(services),
    Layer.provide(health),
    Layer.provide(Layer.mergeAll(Metrics.layer, ReadinessState.layer)),
  )
}

/** One line per problem, no stack: these are the user's to fix. */
export const describeStartupError = (error: StartupError): ReadonlyArray<string> => {
  switch (error._tag) {
    case "InvalidConfig":
      return error.message.split("\n")
    case "ServeError":
      return [`cannot listen: ${Cause.pretty(Cause.fail(error.cause)).split("\n")[0] ?? "unknown error"}`]
    default:
      return [error.message]
  }
}
