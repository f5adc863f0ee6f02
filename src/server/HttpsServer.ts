/**
 * HttpsServer: the mTLS listener. TLS 1.3 only; a client certificate signed
 * by the client CA is required, and Node drops any other connection right
 * after the handshake, before a request is read.
 *
 * Effect's HttpServer is implemented here over that listener (rather than by
 * NodeHttpServer.layer) because requests are dispatched at the Node level:
 * the sidecar's own paths go to the Effect app, everything else, WebSocket
 * upgrades included, to the Forwarder as raw Node streams.
 *
 * Shutdown stops accepting, answers in-flight requests with
 * `Connection: close`, closes idle keep-alive connections, and cuts whatever
 * is still open after the grace period.
 */
import type { IncomingMessage, ServerResponse } from "node:http"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import type { Duplex } from "node:stream"
import type { TLSSocket } from "node:tls"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Context, Duration, Effect, Layer, Option, Redacted, Result, Scope, Stream } from "effect"
import { HttpServer } from "effect/http"
import { ServeError } from "effect/http/HttpServerError"
import * as NetAddress from "effect/net/NetAddress"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { type Material, TlsMaterial } from "../tls/TlsMaterial.ts"
import { SECURITY_HEADERS } from "./responses.ts"
import * as SidecarPaths from "./SidecarPaths.ts"

// As CommonJS: importing node:https as an ES module evaluates its lazy WebSocket
// exports, which loads undici and costs ~15 MiB of memory for nothing.
const https: typeof Https = createRequire(import.meta.url)("node:https")

/** What a rotation swaps: certificate, key, client CA, protocol floor. */
export const secureContextOptions = (material: Material) => ({
  cert: material.certPem,
  key: Redacted.value(material.keyPem),
  ca: material.caPem,
  minVersion: "TLSv1.3" as const,
})

export const tlsOptions = (material: Material): Https.ServerOptions => ({
  ...secureContextOptions(material),
  requestCert: true,
  rejectUnauthorized: true,
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
    /** Completes once the server is closed and every connection has ended. */
    readonly closed: Effect.Effect<void>
  }
>()("coco-secure-access/HttpsListener") {
  static readonly layer: Layer.Layer<HttpsListener, never, TlsMaterial> = Layer.effect(
    HttpsListener,
    Effect.gen(function* () {
      const tls = yield* TlsMaterial
      const server = https.createServer(tlsOptions(yield* tls.current))
      // Rotation: new handshakes get the new material; established connections keep theirs.
      yield* Effect.forkScoped(
        Stream.runForEach(tls.changes, (material) =>
          Effect.sync(() => server.setSecureContext(secureContextOptions(material))),
        ),
      )
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
      const closedPromise = new Promise<void>((resolve) => server.once("close", () => resolve()))
      let draining = false
      server.prependListener("request", (_request, response: ServerResponse) => {
        if (draining) response.setHeader("connection", "close")
      })
      const drain = (grace: Duration.Duration) =>
        Effect.sync(() => {
          if (draining) return
          draining = true
          server.close()
          server.closeIdleConnections()
          // Node closes idle connections once, at close(); in-flight ones turn idle later.
          const idle = setInterval(() => server.closeIdleConnections(), 100)
          const cut = setTimeout(() => server.closeAllConnections(), Duration.toMillis(grace))
          server.once("close", () => {
            clearInterval(idle)
            clearTimeout(cut)
          })
        })
      return HttpsListener.of({ server, drain, closed: Effect.promise(() => closedPromise) })
    }),
  )
}

const listen = (server: Https.Server, port: number, host: string | undefined) =>
  Effect.callback<void, ServeError>((resume) => {
    const onError = (cause: Error) => resume(Effect.fail(new ServeError({ cause })))
    server.once("error", onError)
    server.listen({ port, ...(host === undefined ? {} : { host }) }, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

const securityHeaders = Object.entries(SECURITY_HEADERS)

const notFoundUpgrade = (socket: Duplex) =>
  socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")

/** Effect's HttpServer over the mTLS listener; the Forwarder, when present, gets every non-sidecar path. */
export const layer: Layer.Layer<HttpServer.HttpServer, ServeError, SidecarConfig | HttpsListener> =
  Layer.effect(
    HttpServer.HttpServer,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const listener = yield* HttpsListener
      const forwarder = yield* Effect.serviceOption(Forwarder)
      const { server } = listener
      const paths = SidecarPaths.make(config.pathPrefix)

      yield* listen(server, config.httpsPort, config.httpsHost)
      // Last resort after the serve finalizer below has drained: nothing may keep the process alive.
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          server.close()
          server.closeAllConnections()
        }),
      )
      const bound = server.address()
      const address =
        bound !== null && typeof bound === "object"
          ? Result.getOrThrow(NetAddress.inetAddressFromIpString(bound.address, bound.port))
          : NetAddress.unixPathAddress(String(bound))

      return HttpServer.make({
        address,
        serve: (httpApp, middleware) =>
          Effect.gen(function* () {
            const serveScope = yield* Effect.scope
            const requestScope = Scope.forkUnsafe(serveScope, "parallel")
            const handler = yield* NodeHttpServer.makeHandler(httpApp, {
              scope: requestScope,
              ...(middleware === undefined ? {} : { middleware }),
            })
            const forward = Option.getOrUndefined(forwarder)
            const ownsRequest = (request: IncomingMessage) =>
              forward === undefined || paths.owns(request.url ?? "")

            const onRequest = (request: IncomingMessage, response: ServerResponse) => {
              if (!ownsRequest(request)) return forward?.web(request, response)
              // The sidecar's own responses, API included; a page may still set a stricter CSP of its own.
              for (const [name, value] of securityHeaders) response.setHeader(name, value)
              handler(request, response)
            }
            // `Expect: 100-continue`: the sidecar says continue itself, for its paths and the app's.
            const onCheckContinue = (request: IncomingMessage, response: ServerResponse) => {
              response.writeContinue()
              onRequest(request, response)
            }
            const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) =>
              ownsRequest(request) ? notFoundUpgrade(socket) : forward?.ws(request, socket, head)

            // Runs before the request scope closes: in-flight requests finish within the grace period.
            yield* Scope.addFinalizerExit(serveScope, () =>
              listener.drain(config.shutdownGrace).pipe(
                Effect.andThen(listener.closed),
                Effect.timeoutOrElse({
                  duration: Duration.sum(config.shutdownGrace, Duration.millis(100)),
                  orElse: () => Effect.void,
                }),
                Effect.ensuring(
                  Effect.sync(() => {
                    server.off("request", onRequest)
                    server.off("checkContinue", onCheckContinue)
                    server.off("upgrade", onUpgrade)
                  }),
                ),
              ),
            )
            server.on("request", onRequest)
            server.on("checkContinue", onCheckContinue)
            server.on("upgrade", onUpgrade)
          }),
      })
    }),
  )

/** The Effect HTTP platform services (ETag, file responses) the router expects from a server. */
export const layerServices = NodeHttpServer.layerHttpServices
