/**
 * The one place layers meet. Given a ResourceClient layer (the CDH over HTTP
 * in production, in memory for the local run and tests), builds the whole
 * sidecar: nothing listens until the TLS material is fetched and valid.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { Appraisal } from "./attestation/Appraisal.ts"
import { AttestationReporter } from "./attestation/AttestationReporter.ts"
import { Evidence } from "./attestation/Evidence.ts"
import { AttestationAgent } from "./cdh/AttestationAgent.ts"
import type { ResourceClient, ResourceUnavailable } from "./cdh/ResourceClient.ts"
import {
  SidecarConfig as Config,
  type InvalidConfig,
  type SidecarConfig,
  summary,
} from "./config/SidecarConfig.ts"
import type { ListenError } from "./gateway/errors.ts"
import { Gateway } from "./gateway/Gateway.ts"
import { instrument } from "./metrics/instrumentedClient.ts"
import { Metrics } from "./metrics/Metrics.ts"
import { Forwarder } from "./proxy/Forwarder.ts"
import { Environment } from "./runtime/Environment.ts"
import { RuntimeInfo } from "./runtime/RuntimeInfo.ts"
import { TeeInfo } from "./runtime/TeeHints.ts"
import * as HealthServer from "./server/HealthServer.ts"
import { ReadinessState } from "./server/Readiness.ts"
import { SidecarApp } from "./server/SidecarApp.ts"
import type { TlsMaterialError } from "./tls/errors.ts"
import { TlsMaterial } from "./tls/TlsMaterial.ts"

export type StartupError =
  | InvalidConfig
  | ResourceUnavailable
  | TlsMaterialError
  | ListenError
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
      const { url } = yield* Gateway
      yield* Effect.logInfo("listening").pipe(
        Effect.annotateLogs({ address: url, startupMs: Math.round(performance.now()) }),
      )
      yield* onListening(url)
    }),
  )

export interface Options {
  /** The CDH's attestation agent (`/aa/*`); none by default (a resource-only CDH). */
  readonly agent?: Layer.Layer<AttestationAgent>
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
  // The control plane: every service the sidecar's own app and the gateway read.
  const attestation = Layer.mergeAll(Evidence.layer, Appraisal.layer).pipe(
    Layer.provide(options.agent ?? AttestationAgent.layerOff),
  )
  const control = SidecarApp.layer.pipe(
    Layer.provideMerge(Layer.mergeAll(Forwarder.layer, attestation)),
    Layer.provideMerge(core),
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
    Layer.provide(Gateway.layer),
    Layer.provide(control),
    Layer.provide(health),
    Layer.provide(Layer.mergeAll(Metrics.layer, ReadinessState.layer)),
    // One registry per sidecar: tests run several in one process.
    Layer.provide(Metrics.layerRegistry),
  )
}

/** One line per problem, no stack: these are the user's to fix. */
export const describeStartupError = (error: StartupError): ReadonlyArray<string> => {
  switch (error._tag) {
    case "InvalidConfig":
      return error.message.split("\n")
    default:
      return [error.message]
  }
}
