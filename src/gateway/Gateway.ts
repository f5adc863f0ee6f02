/**
 * The gateway: the data plane as one scoped resource of the control plane. Acquiring it builds
 * the listener (listener.ts) and the dispatch (dispatch.ts) from plain values the control plane
 * hands over (TLS material, allow rules, the sidecar app's Node handler, the proxy, the metrics
 * recorder and the line log), listens, and applies each rotation of the TLS material; releasing
 * it drains (drain.ts). Nothing of it runs a fiber per request.
 */
import type { AddressInfo } from "node:net"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { LineLog } from "../log/LineLog.ts"
import { Metrics } from "../metrics/Metrics.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { ReadinessState } from "../server/Readiness.ts"
import { SidecarApp } from "../server/SidecarApp.ts"
import * as SidecarPaths from "../server/SidecarPaths.ts"
import { TlsMaterial } from "../tls/TlsMaterial.ts"
import * as Dispatch from "./dispatch.ts"
import * as Drain from "./drain.ts"
import { ListenError } from "./errors.ts"
import { listen } from "./listen.ts"
import * as Listener from "./listener.ts"

export class Gateway extends Context.Service<
  Gateway,
  {
    /** `https://host:port` of the listener. */
    readonly url: string
    readonly address: AddressInfo
    /** True from the start of the drain. */
    readonly draining: () => boolean
  }
>()("coco-secure-access/Gateway") {
  static readonly layer: Layer.Layer<
    Gateway,
    ListenError,
    SidecarConfig | TlsMaterial | Metrics | Forwarder | SidecarApp | ReadinessState
  > = Layer.effect(
    Gateway,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const tls = yield* TlsMaterial
      const proxy = yield* Forwarder
      const { handler } = yield* SidecarApp
      const log = yield* LineLog
      const metrics = yield* Metrics
      const initial = yield* tls.current
      const listener = Listener.make({
        material: initial,
        limits: config.limits,
        http2: config.http2,
        webSocketsOverHttp2: proxy.port !== undefined,
        allow: config.allow,
        log,
        metrics,
      })
      const { server } = listener
      let draining = false
      const removeDispatch = Dispatch.install(server, listener.whenHttp2, {
        maxHeaderSize: config.limits.maxHeaderSize,
        paths: SidecarPaths.make(config.pathPrefix),
        app: handler,
        proxy,
        log,
        metrics,
        draining: () => draining,
      })
      const closed = yield* Deferred.make<void>()
      server.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
      // Last resort, after the drain below: nothing may keep the process alive.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          removeDispatch()
          listener.dispose()
          server.close()
          server.closeAllConnections()
          for (const session of listener.sessions) session.destroy()
          log.flush()
        }),
      )

      // Rotation: new handshakes get the new material. It was built into a secure context once
      // already (TlsMaterial.accept); should OpenSSL still refuse it, the current one stays.
      // `changes` starts with the current material: applying it again would replace the session
      // ticket keys, and tickets issued meanwhile would not resume.
      yield* Effect.forkScoped(
        Stream.runForEach(
          Stream.filter(tls.changes, (material) => material !== initial),
          (material) =>
            Effect.try({ try: () => listener.setMaterial(material), catch: Listener.errorText }).pipe(
              Effect.catch((cause) =>
                Effect.logError("TLS material not applied; the previous material is still served").pipe(
                  Effect.annotateLogs({ cause }),
                ),
              ),
            ),
        ),
      )

      const bind = { port: config.httpsPort, host: config.httpsHost }
      yield* listen(server, bind, (cause) => new ListenError({ ...bind, cause }))
      const address = server.address() as AddressInfo
      const host = address.family === "IPv6" ? `[${address.address}]` : address.address

      const readiness = yield* ReadinessState
      yield* readiness.set(
        Effect.gen(function* () {
          if (draining) return { ready: false, reason: "draining" }
          if (config.health?.requireApp && proxy.port !== undefined) {
            const app = yield* proxy.reachability
            if (app.answering !== true) return { ready: false, reason: "app not answering" }
          }
          return { ready: true, reason: "ok" }
        }),
      )

      // Runs first at shutdown: in-flight requests finish within the grace period.
      yield* Effect.addFinalizer(() =>
        Effect.gen(function* () {
          yield* Effect.logInfo("shutting down: draining in-flight requests").pipe(
            Effect.annotateLogs({ gracePeriod: Duration.format(config.shutdownGrace) }),
          )
          draining = true
          Drain.start(server, listener.sessions, Duration.toMillis(config.shutdownGrace), proxy.goAway)
          yield* Deferred.await(closed).pipe(
            Effect.timeoutOrElse({
              duration: Duration.sum(config.shutdownGrace, Duration.millis(100)),
              orElse: () => Effect.void,
            }),
          )
        }),
      )
      return Gateway.of({ url: `https://${host}:${address.port}`, address, draining: () => draining })
    }),
  )
}
