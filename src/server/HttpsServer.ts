/**
 * HttpsServer: the mTLS listener. TLS 1.3 only; a client certificate signed
 * by the client CA is required, and Node drops any other connection right
 * after the handshake, before a request is read. Shutdown stops accepting and
 * lets in-flight requests finish within the grace period.
 */
import type { ServerResponse } from "node:http"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import type { TLSSocket } from "node:tls"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Duration, Effect, Layer, Redacted } from "effect"
import type { HttpServer } from "effect/http"
import type { ServeError } from "effect/http/HttpServerError"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { type Material, TlsMaterial } from "../tls/TlsMaterial.ts"

// As CommonJS: importing node:https as an ES module evaluates its lazy WebSocket
// exports, which loads undici and costs ~15 MiB of memory for nothing.
const https: typeof Https = createRequire(import.meta.url)("node:https")

export const tlsOptions = (material: Material): Https.ServerOptions => ({
  cert: material.certPem,
  key: Redacted.value(material.keyPem),
  ca: material.caPem,
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: "TLSv1.3",
  // Long uploads and streams to the application must not be cut by Node's 300 s default.
  requestTimeout: 0,
  headersTimeout: 60_000,
})

export class HttpsListener extends Context.Service<
  HttpsListener,
  {
    readonly server: Https.Server
    /**
     * Start draining: responses from now on close their connection, idle
     * keep-alive connections are closed as soon as they are idle, and whatever
     * is still open after `grace` is cut.
     */
    readonly drain: (grace: Duration.Duration) => Effect.Effect<void>
  }
>()("coco-secure-access/HttpsListener") {
  static readonly layer: Layer.Layer<HttpsListener, never, TlsMaterial> = Layer.effect(
    HttpsListener,
    Effect.gen(function* () {
      const material = yield* (yield* TlsMaterial).current
      const server = https.createServer(tlsOptions(material))
      const context = yield* Effect.context<never>()
      const log = Effect.runForkWith(context)
      // Rejected clients never reach a request handler: this is the only trace they leave.
      server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
        log(
          Effect.logWarning("TLS handshake rejected").pipe(
            Effect.annotateLogs({
              reason: socket.authorizationError
                ? String(socket.authorizationError)
                : (err.code ?? err.message),
              remote: socket.remoteAddress ?? "unknown",
            }),
          ),
        )
      })
      let draining = false
      server.prependListener("request", (_request, response: ServerResponse) => {
        if (draining) response.setHeader("connection", "close")
      })
      const drain = (grace: Duration.Duration) =>
        Effect.sync(() => {
          if (draining) return
          draining = true
          server.closeIdleConnections()
          // Node closes idle connections once, at close(); in-flight ones turn idle later.
          const idle = setInterval(() => server.closeIdleConnections(), 100)
          const cut = setTimeout(() => server.closeAllConnections(), Duration.toMillis(grace))
          server.once("close", () => {
            clearInterval(idle)
            clearTimeout(cut)
          })
        })
      return HttpsListener.of({ server, drain })
    }),
  )
}

/** Effect's HttpServer over the mTLS listener, on the configured address. */
export const layer: Layer.Layer<HttpServer.HttpServer, ServeError, SidecarConfig | HttpsListener> =
  Layer.unwrap(
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const { server } = yield* HttpsListener
      return NodeHttpServer.layer(() => server, {
        port: config.httpsPort,
        ...(config.httpsHost === undefined ? {} : { host: config.httpsHost }),
        gracefulShutdownTimeout: Duration.toMillis(config.shutdownGrace),
      })
    }),
  )
