/**
 * Process entry shared by production (`main.ts`) and the local run
 * (`dev/run.ts`): decode the configuration, run the sidecar, map the outcome to
 * an exit code. A bad configuration or unusable TLS material exits 1 with one
 * log line per problem before anything listens; SIGTERM/SIGINT drain and
 * exit 0.
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type { AttestationAgent } from "./cdh/AttestationAgent.ts"
import type { ResourceClient } from "./cdh/ResourceClient.ts"
import { decode, type Env, type Settings, SidecarConfig } from "./config/SidecarConfig.ts"
import * as Logging from "./log/Logging.ts"
import * as Sidecar from "./Sidecar.ts"

export interface EntryOptions<E> extends Omit<Sidecar.Options, "agent"> {
  readonly env: Env
  readonly resourceClient: (settings: Settings) => Layer.Layer<ResourceClient, E>
  /** The CDH's attestation agent; none when absent. */
  readonly agent?: (settings: Settings) => Layer.Layer<AttestationAgent>
}

const report = (error: Sidecar.StartupError) =>
  Effect.forEach(Sidecar.describeStartupError(error), (line) =>
    Effect.logError(line).pipe(Effect.annotateLogs({ error: error._tag })),
  )

export const program = <E extends Sidecar.StartupError>(options: EntryOptions<E>) =>
  Effect.gen(function* () {
    const settings = yield* Effect.fromResult(decode(options.env))
    const { agent, ...rest } = options
    const sidecar = Sidecar.layer(options.resourceClient(settings), {
      ...rest,
      environment: options.environment ?? options.env,
      ...(agent === undefined ? {} : { agent: agent(settings) }),
    })
    return yield* Layer.launch(sidecar).pipe(
      Effect.provide(SidecarConfig.layerFrom(settings)),
      Effect.tapError(report),
      Effect.provide(Logging.layer(settings.logFormat, settings.logLevel)),
    )
  }).pipe(
    // Before the configuration is known, log as JSON at info.
    Effect.tapError((error) => (error._tag === "InvalidConfig" ? report(error) : Effect.void)),
    Effect.provide(Logging.layer("json", "info")),
  )

/** The first SIGTERM/SIGINT drains (runMain interrupts the program); a second one exits at once. */
const exitOnSecondSignal = () => {
  let signals = 0
  const onSignal = (signal: NodeJS.Signals) => {
    signals++
    if (signals === 2) {
      process.stdout.write(
        `${JSON.stringify({ time: new Date().toISOString(), level: "warn", msg: `second ${signal}: exiting without draining` })}\n`,
      )
      process.exit(1)
    }
  }
  process.on("SIGTERM", onSignal)
  process.on("SIGINT", onSignal)
}

export const run = <E extends Sidecar.StartupError>(options: EntryOptions<E>): void => {
  exitOnSecondSignal()
  runMainWithTeardown(options)
}

const runMainWithTeardown = <E extends Sidecar.StartupError>(options: EntryOptions<E>): void =>
  NodeRuntime.runMain(program(options), {
    disableErrorReporting: true,
    teardown: (exit, onExit) => {
      if (Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
      // Typed failures were reported above; a defect still deserves its trace.
      if (!Cause.hasFails(exit.cause)) console.error(Cause.pretty(exit.cause))
      onExit(1)
    },
  })
