/** Starts the whole sidecar in-process on an ephemeral port, against a given ResourceClient layer. */
import { Deferred, Effect, Exit, Layer, Result, Scope } from "effect"
import type { AttestationAgent } from "../../src/cdh/AttestationAgent.ts"
import * as HttpAttestationAgent from "../../src/cdh/HttpAttestationAgent.ts"
import * as HttpResourceClient from "../../src/cdh/HttpResourceClient.ts"
import type { ResourceClient } from "../../src/cdh/ResourceClient.ts"
import { decode, type Env, type Settings, SidecarConfig } from "../../src/config/SidecarConfig.ts"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import type { DevPki } from "../../src/dev/DevPki.ts"
import * as Sidecar from "../../src/Sidecar.ts"
import { resourcesFor, URIS } from "./fixtures.ts"
import { capture } from "./logs.ts"

export const settingsFor = (env: Env): Settings => {
  const result = decode({
    ...URIS,
    HTTPS_HOST: "127.0.0.1",
    POD_NAME: "web-0",
    POD_NAMESPACE: "shop",
    ...env,
  })
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  // Port 0 is refused in configuration, but tests need an ephemeral port.
  return { ...result.success, httpsPort: 0 }
}

export const start = <E>(
  settings: Settings,
  client: Layer.Layer<ResourceClient, E, SidecarConfig>,
  environment: Readonly<Record<string, string | undefined>> = {},
  agent?: Layer.Layer<AttestationAgent>,
): Effect.Effect<string, E | Sidecar.StartupError, Scope.Scope> =>
  Effect.gen(function* () {
    const url = yield* Deferred.make<string>()
    yield* Layer.build(
      Sidecar.layer(client, {
        onListening: (u) => Deferred.succeed(url, u).pipe(Effect.asVoid),
        environment,
        ...(agent === undefined ? {} : { agent }),
      }).pipe(Layer.provide(SidecarConfig.layerFrom(settings))),
    )
    return yield* Deferred.await(url)
  })

export const httpClient = (settings: Settings) =>
  HttpResourceClient.layer({ url: settings.cdh.url, requestTimeout: settings.cdh.requestTimeout })

export const httpAgent = (settings: Settings) =>
  HttpAttestationAgent.layer({ url: settings.cdh.url, requestTimeout: settings.cdh.requestTimeout })

/**
 * Sidecars started in-process over the in-memory CDH, for a test file: `start`
 * returns the URL, the captured logs and the CDH's controls; `closeAll` (in
 * afterAll) stops them all.
 */
export const inProcess = () => {
  const scopes: Array<Scope.Closeable> = []
  return {
    start: async (
      pki: DevPki,
      env: Env = {},
      /** `cdh: "http"`: the CDH over HTTP at env's CDH_URL (resources and agent), not in memory. */
      options: { readonly agent?: Layer.Layer<AttestationAgent>; readonly cdh?: "http" } = {},
    ) => {
      const scope = Effect.runSync(Scope.make())
      scopes.push(scope)
      const logs = capture()
      const memory = MemoryResourceClient.make(resourcesFor(pki))
      const url = await Effect.runPromise(
        (options.cdh === "http"
          ? start(
              settingsFor(env),
              httpClient(settingsFor(env)),
              {},
              options.agent ?? httpAgent(settingsFor(env)),
            )
          : start(settingsFor(env), memory.layer, {}, options.agent)
        ).pipe(Effect.provide(logs.layer), Scope.provide(scope)),
      )
      return { url, logs: logs.lines, cdh: memory.controls }
    },
    closeAll: async () => {
      for (const scope of scopes.splice(0)) await Effect.runPromise(Scope.close(scope, Exit.void))
    },
  }
}
