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
import type { Socket } from "node:net"
import type { Duplex } from "node:stream"
import type { TLSSocket } from "node:tls"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpPlatform from "@effect/platform-node/NodeHttpPlatform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Etag from "effect/http/Etag"
import * as HttpServer from "effect/http/HttpServer"
import { ServeError } from "effect/http/HttpServerError"
import * as Layer from "effect/Layer"
import * as NetAddress from "effect/net/NetAddress"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type AllowRules, authorize, identityOf, isRestricted } from "../auth/ClientAuthorization.ts"
import { type Limits, SidecarConfig } from "../config/SidecarConfig.ts"
import { Metrics, type RouteClass } from "../metrics/Metrics.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { type Material, TlsMaterial } from "../tls/TlsMaterial.ts"
import { ReadinessState } from "./Readiness.ts"
import { errorBody, SECURITY_HEADERS } from "./responses.ts"
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

export const tlsOptions = (material: Material, limits: Limits): Https.ServerOptions => ({
  ...secureContextOptions(material),
  requestCert: true,
  rejectUnauthorized: true,
  handshakeTimeout: Duration.toMillis(limits.handshakeTimeout),
  maxHeaderSize: limits.maxHeaderSize,
  headersTimeout: Duration.toMillis(limits.headersTimeout),
  // Long uploads and streams to the application must not be cut by Node's 300 s default.
  requestTimeout: 0,
  // How often Node looks for connections past headersTimeout (30 s by default).
  connectionsCheckingInterval: Math.min(1000, Duration.toMillis(limits.headersTimeout)),
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
    /** True from the start of a drain: readiness reports not ready. */
    readonly draining: Effect.Effect<boolean>
  }
>()("coco-secure-access/HttpsListener") {
  static readonly layer: Layer.Layer<HttpsListener, never, TlsMaterial | SidecarConfig | Metrics> =
    Layer.effect(
      HttpsListener,
      Effect.gen(function* () {
        const tls = yield* TlsMaterial
        const { limits } = yield* SidecarConfig
        const metrics = yield* Metrics
        const server = https.createServer(tlsOptions(yield* tls.current, limits))
        server.maxConnections = limits.maxConnections
        // Rotation: new handshakes get the new material; established connections keep theirs.
        yield* Effect.forkScoped(
          Stream.runForEach(tls.changes, (material) =>
            Effect.sync(() => server.setSecureContext(secureContextOptions(material))),
          ),
        )
        const context = yield* Effect.context<never>()
        const log = Effect.runForkWith(context)
        // Rejected clients never reach a request handler: this is the only trace they leave.
        // Node destroys a socket whose certificate fails before it reports the error: remember peers early.
        const peers = new WeakMap<object, string>()
        server.on("connection", (socket: Socket) => {
          peers.set(socket, socket.remoteAddress ?? "unknown")
        })
        server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
          const reason = socket.authorizationError
            ? String(socket.authorizationError)
            : (err.code ?? err.message)
          metrics.handshakeFailures.inc({ reason: reason.slice(0, 64) })
          log(
            Effect.logWarning("TLS handshake rejected").pipe(
              Effect.annotateLogs({
                reason,
                remote: socket.remoteAddress ?? peerOf(socket, peers),
              }),
            ),
          )
        })
        const closedPromise = new Promise<void>((resolve) => server.once("close", () => resolve()))
        server.on("secureConnection", (socket: TLSSocket) => {
          metrics.connections.inc()
          socket.once("close", () => metrics.connections.dec())
        })
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
        return HttpsListener.of({
          server,
          drain,
          closed: Effect.promise(() => closedPromise),
          draining: Effect.sync(() => draining),
        })
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

/** The TCP socket under a server-side TLS socket is its `_parent` (Node keeps no public accessor). */
const peerOf = (socket: TLSSocket, peers: WeakMap<object, string>): string => {
  const parent = (socket as TLSSocket & { readonly _parent?: object })._parent
  return (parent && peers.get(parent)) ?? peers.get(socket) ?? "unknown"
}

/**
 * The allow-lists beyond the CA, decided once per TLS connection (its
 * certificate cannot change). Returns the reason for a denial, else undefined.
 */
const authorizer = (rules: AllowRules, log: (fields: Record<string, string>) => void) => {
  if (!isRestricted(rules)) return (_request: IncomingMessage): string | undefined => undefined
  const decisions = new WeakMap<object, string | undefined>()
  return (request: IncomingMessage): string | undefined => {
    const socket = request.socket as TLSSocket
    if (decisions.has(socket)) return decisions.get(socket)
    const decision = authorize(rules, identityOf(socket.getPeerCertificate()))
    const reason = decision.allowed ? undefined : decision.reason
    decisions.set(socket, reason)
    if (reason !== undefined) log({ reason, remote: socket.remoteAddress ?? "unknown" })
    return reason
  }
}

const notFoundUpgrade = (socket: Duplex) =>
  socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n")

/** Effect's HttpServer over the mTLS listener; the Forwarder, when present, gets every non-sidecar path. */
export const layer: Layer.Layer<
  HttpServer.HttpServer,
  ServeError,
  SidecarConfig | HttpsListener | Metrics | ReadinessState
> = Layer.effect(
  HttpServer.HttpServer,
  Effect.gen(function* () {
    const config = yield* SidecarConfig
    const listener = yield* HttpsListener
    const forwarder = yield* Effect.serviceOption(Forwarder)
    const { server } = listener
    const paths = SidecarPaths.make(config.pathPrefix)
    const runFork = Effect.runForkWith(yield* Effect.context<never>())
    const metrics = yield* Metrics
    const observe = (route: RouteClass, response: ServerResponse) => {
      const started = performance.now()
      response.once("close", () => {
        metrics.requests.inc({ route, status: response.headersSent ? response.statusCode : 0 })
        metrics.duration.observe({ route }, (performance.now() - started) / 1000)
      })
    }

    yield* listen(server, config.httpsPort, config.httpsHost)
    const readiness = yield* ReadinessState
    yield* readiness.set(
      Effect.gen(function* () {
        if (yield* listener.draining) return { ready: false, reason: "draining" }
        if (config.health?.requireApp && Option.isSome(forwarder)) {
          const app = yield* forwarder.value.reachability
          if (app.answering !== true) return { ready: false, reason: "app not answering" }
        }
        return { ready: true, reason: "ok" }
      }),
    )
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
          const authorization = authorizer(config.allow, (fields) =>
            runFork(Effect.logWarning("client not authorized").pipe(Effect.annotateLogs(fields))),
          )
          const ownsRequest = (request: IncomingMessage) =>
            forward === undefined || paths.owns(request.url ?? "")

          const onRequest = (request: IncomingMessage, response: ServerResponse) => {
            const denied = authorization(request)
            observe(denied !== undefined ? "denied" : ownsRequest(request) ? "sidecar" : "app", response)
            if (denied !== undefined) {
              const { contentType, body } = errorBody(request.headers.accept, 403, "Forbidden", denied)
              response.writeHead(403, { ...SECURITY_HEADERS, "content-type": contentType })
              return void response.end(body)
            }
            if (!ownsRequest(request)) return forward?.web(request, response)
            // The sidecar's own responses, API included; a page may still set a stricter CSP of its own.
            for (const [name, value] of securityHeaders) response.setHeader(name, value)
            handler(request, response)
          }
          // `Expect: 100-continue`: the sidecar says continue itself, for its paths and the app's.
          const onCheckContinue = (request: IncomingMessage, response: ServerResponse) => {
            // A denied client is answered 403 at once, not invited to send its body.
            if (authorization(request) === undefined) response.writeContinue()
            onRequest(request, response)
          }
          const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
            if (authorization(request) !== undefined) {
              return void socket.end(
                "HTTP/1.1 403 Forbidden\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
              )
            }
            return ownsRequest(request) ? notFoundUpgrade(socket) : forward?.ws(request, socket, head)
          }

          // Runs before the request scope closes: in-flight requests finish within the grace period.
          yield* Scope.addFinalizerExit(serveScope, () =>
            listener.drain(config.shutdownGrace).pipe(
              // Proxied WebSockets are closed with 1001 (going away) at once: they would not end by themselves.
              Effect.andThen(forward === undefined ? Effect.void : forward.goAway),
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

/**
 * The Effect HTTP platform services (ETag, file responses) the router expects from a server.
 * Not `NodeHttpServer.layerHttpServices`: its `NodeServices` adds a child-process spawner and a
 * terminal (node:child_process, node:readline) that a sidecar never uses.
 */
export const layerServices = Layer.mergeAll(
  NodeHttpPlatform.layer,
  Etag.layerWeak,
  NodeFileSystem.layer,
  NodePath.layer,
)
