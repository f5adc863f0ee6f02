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
import * as Result from "effect/Result"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import { type Limits, SidecarConfig } from "../config/SidecarConfig.ts"
import * as ConnectionBudget from "../gateway/connectionBudget.ts"
import * as Peer from "../gateway/Peer.ts"
import * as Pipeline from "../gateway/pipeline.ts"
import { Metrics, type RouteClass } from "../metrics/Metrics.ts"
import { limitStreamBuffers } from "../proxy/buffering.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { type Material, secureContextOptions, TlsMaterial } from "../tls/TlsMaterial.ts"
import { ReadinessState } from "./Readiness.ts"
import { errorBody, SECURITY_HEADERS } from "./responses.ts"
import * as SidecarPaths from "./SidecarPaths.ts"

// As CommonJS: importing node:https as an ES module evaluates its lazy WebSocket
// exports, which loads undici and costs ~15 MiB of memory for nothing.
const https: typeof Https = createRequire(import.meta.url)("node:https")

/**
 * Only WebSocket handshakes (RFC 6455: GET with an `Upgrade: websocket` token) are upgrades; any
 * other Upgrade (h2c, TLS/1.0, …) is served as a plain request, its Upgrade header dropped as the
 * hop-by-hop header it is, so nothing but a WebSocket ever becomes a raw tunnel to the app.
 */
export const isWebSocketUpgrade = (request: IncomingMessage): boolean => {
  if (request.method !== "GET") return false
  const upgrade = request.headers.upgrade
  return typeof upgrade === "string" && upgrade.split(",").some((t) => t.trim().toLowerCase() === "websocket")
}

export const tlsOptions = (material: Material, limits: Limits): Https.ServerOptions => ({
  ...secureContextOptions(material),
  requestCert: true,
  rejectUnauthorized: true,
  shouldUpgradeCallback: isWebSocketUpgrade,
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
        const config = yield* SidecarConfig
        const { limits } = config
        const metrics = yield* Metrics
        const initial = yield* tls.current
        // Before the first socket: every stream, the TLS sockets included, buffers 16 KiB at most.
        limitStreamBuffers()
        const server = https.createServer(tlsOptions(initial, limits))
        const context = yield* Effect.context<never>()
        const log = Effect.runForkWith(context)
        const warn = (message: string, fields: Record<string, string>) =>
          log(Effect.logWarning(message).pipe(Effect.annotateLogs(fields)))

        // The client CAs end the chain a client is said to have sent (Client-Cert-Chain).
        let trustAnchors = anchorsOf(initial)
        // Rotation: new handshakes get the new material; established connections keep theirs. The
        // material was built into a secure context once already (TlsMaterial.accept), so this cannot
        // fail in practice; if it ever does, the current context stays and the stream goes on.
        yield* Effect.forkScoped(
          Stream.runForEach(tls.changes, (material) =>
            Effect.suspend(() => {
              try {
                server.setSecureContext(secureContextOptions(material))
                trustAnchors = anchorsOf(material)
                return Effect.void
              } catch (error) {
                return Effect.logError(
                  "TLS material not applied; the previous material is still served",
                ).pipe(Effect.annotateLogs({ cause: errorText(error) }))
              }
            }),
          ),
        )

        // Refusals by the budgets: counted, and logged at most once a minute per kind, with a count.
        const dropped = rateLimited(60_000)
        const refusal = (reason: string, message: string) => (socket: Socket) => {
          metrics.handshakeFailures.inc({ reason })
          dropped(reason, (count) =>
            warn(message, { count: String(count), remote: socket.remoteAddress ?? "unknown" }),
          )
        }
        const removeBudgets = ConnectionBudget.install(
          server,
          { maxHandshakes: limits.maxHandshakes, maxConnections: limits.maxConnections },
          {
            onHandshakeEvicted: refusal(
              "handshake_evicted",
              "handshake budget full: oldest handshakes closed",
            ),
            onConnectionRefused: refusal("max_connections", "connection refused: MAX_CONNECTIONS reached"),
          },
        )
        yield* Effect.addFinalizer(() => Effect.sync(removeBudgets))

        // Anyone can cause these refusals, without a certificate: a flood costs at most a line a
        // second per reason.
        const rejected = rateLimited(1_000)
        // Rejected clients never reach a request handler: this is the only trace they leave.
        // Node destroys a socket whose certificate fails before it reports the error: remember peers early.
        const addresses = new WeakMap<object, string>()
        server.on("connection", (socket: Socket) => {
          addresses.set(socket, socket.remoteAddress ?? "unknown")
        })
        server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
          const reason = socket.authorizationError
            ? String(socket.authorizationError)
            : (err.code ?? err.message)
          metrics.handshakeFailures.inc({ reason: reason.slice(0, 64) })
          rejected(reason, (count) =>
            warn("TLS handshake rejected", {
              reason,
              remote: socket.remoteAddress ?? addressOf(socket, addresses),
              ...(count > 1 ? { count: String(count) } : {}),
            }),
          )
        })
        const closedPromise = new Promise<void>((resolve) => server.once("close", () => resolve()))
        // The peer record, once per connection; a resumed session must still hold a valid certificate.
        server.on("secureConnection", (socket: TLSSocket) => {
          if (socket.destroyed) return
          metrics.connections.inc()
          socket.once("close", () => metrics.connections.dec())
          try {
            const peer = Peer.make(socket, config.allow, trustAnchors)
            if (peer === undefined) return void socket.destroy()
            const refused = socket.isSessionReused() ? Peer.refuseResumed(peer, Date.now()) : undefined
            if (refused !== undefined) {
              metrics.handshakeFailures.inc({ reason: "resumed_certificate_invalid" })
              warn("TLS session resumption refused", {
                reason: refused,
                client: peer.certificate.commonName ?? "",
                remote: peer.address,
              })
              return void socket.destroy()
            }
            // Only now may requests be served: OpenSSL may already have read one with the handshake,
            // and a request on a socket without its record is dropped (see dispatch).
            Peer.attach(socket, peer)
            // Each time: this client holds a certificate of the client CA, so it is accountable.
            if (peer.denied !== undefined) {
              warn("client not authorized", { reason: peer.denied, remote: peer.address })
            }
          } catch (error) {
            // A certificate OpenSSL verified but this code cannot read: refuse the connection, keep serving.
            warn("connection closed: client certificate not readable", {
              cause: errorText(error),
              remote: socket.remoteAddress ?? "unknown",
            })
            socket.destroy()
          }
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

const anchorsOf = (material: Material): ReadonlySet<string> =>
  new Set(material.clientCas.map((ca) => ca.fingerprint256))

const errorText = (error: unknown): string =>
  error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error)

/**
 * Calls `emit(count)` at most once per `everyMs` for each key, with how many events it stood for:
 * what a flood of refused connections costs in log lines stays bounded.
 */
const rateLimited = (everyMs: number) => {
  const last = new Map<string, { at: number; count: number }>()
  return (key: string, emit: (count: number) => void) => {
    const now = performance.now()
    const entry = last.get(key)
    if (entry === undefined || now - entry.at >= everyMs) {
      emit((entry?.count ?? 0) + 1)
      // Keys are reasons (a handful); should they ever vary, the map stays small.
      if (last.size >= 64) last.clear()
      last.set(key, { at: now, count: 0 })
    } else {
      entry.count++
    }
  }
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

const addressOf = (socket: TLSSocket, addresses: WeakMap<object, string>): string => {
  const tcp = ConnectionBudget.tcpOf(socket)
  return (tcp && addresses.get(tcp)) ?? addresses.get(socket) ?? "unknown"
}

const ignore = () => {}

/** How many Host fields the request carries: RFC 9112 §3.2 asks for 400 on more than one. */
const hostCount = (rawHeaders: ReadonlyArray<string>): number => {
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 4 && name.toLowerCase() === "host") count++
  }
  return count
}

const TITLES: Record<number, string> = { 400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway" }

/** The sidecar's own error answer; 400 and 502 also close the connection. */
const refuse = (
  request: IncomingMessage,
  response: ServerResponse,
  status: 400 | 403 | 502,
  detail: string,
) => {
  const { contentType, body } = errorBody(request.headers.accept, status, TITLES[status] ?? "", detail)
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    ...(status === 403 ? {} : { connection: "close" }),
  })
  response.end(body)
}

/** After a throw: a 502 if nothing was sent yet, else the connection ends (a truncated answer shows). */
const abort = (request: IncomingMessage, response: ServerResponse) => {
  if (response.headersSent || response.destroyed) return void response.destroy()
  try {
    refuse(request, response, 502, "The sidecar could not handle this request.")
  } catch {
    response.destroy()
  }
}

const refuseUpgrade = (socket: Duplex, status: number, title: string) =>
  socket.end(`HTTP/1.1 ${status} ${title}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)

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
          const ownsRequest = (url: string) => forward === undefined || paths.owns(url)
          const failed = (request: IncomingMessage, error: unknown) =>
            runFork(
              Effect.logError("request failed").pipe(
                Effect.annotateLogs({
                  method: request.method ?? "",
                  path: SidecarPaths.pathOf(request.url ?? ""),
                  cause: error instanceof Error ? (error.stack ?? error.message) : String(error),
                }),
              ),
            )

          const dispatch = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
            const peer = Peer.of(request.socket)
            // A connection that was not admitted (a refused resumption whose request OpenSSL read
            // with the handshake): its requests are dropped.
            if (peer === undefined) return void response.destroy()
            const url = request.url ?? ""
            const owned = ownsRequest(url)
            observe(peer.denied !== undefined ? "denied" : owned ? "sidecar" : "app", response)
            // A denied client is answered 403 at once, not invited to send its body.
            if (peer.denied !== undefined) return refuse(request, response, 403, peer.denied)
            if (hostCount(request.rawHeaders) > 1)
              return refuse(request, response, 400, "More than one Host header.")
            if (expectsContinue) response.writeContinue()
            if (!owned) return forward?.web(request, response, peer)
            // HEAD is GET without a body: Node's response already knows it answers a HEAD.
            if (request.method === "HEAD") request.method = "GET"
            // The sidecar's own responses, API included; a page may still set a stricter CSP of its own.
            for (const [name, value] of securityHeaders) response.setHeader(name, value)
            handler(request, response)
          }
          // Nothing a client sends may end the process: a throw answers 502 (or ends the connection).
          const run = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
            try {
              dispatch(request, response, expectsContinue)
            } catch (error) {
              failed(request, error)
              abort(request, response)
            }
          }
          const tooDeep = rateLimited(60_000)
          // One exchange at a time per connection (see gateway/pipeline.ts).
          const guarded =
            (expectsContinue: boolean) => (request: IncomingMessage, response: ServerResponse) => {
              const admitted = Pipeline.serialize(request, response, expectsContinue, run)
              if (!admitted) {
                tooDeep("pipeline", (count) =>
                  runFork(
                    Effect.logWarning("connection closed: too many pipelined requests").pipe(
                      Effect.annotateLogs({
                        count: String(count),
                        remote: request.socket.remoteAddress ?? "",
                      }),
                    ),
                  ),
                )
              }
            }
          const onRequest = guarded(false)
          // `Expect: 100-continue`: the sidecar says continue itself, for its paths and the app's.
          const onCheckContinue = guarded(true)
          const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
            // Node drops its own error listener before this event: without one, a reset would end the process.
            socket.on("error", ignore)
            try {
              const peer = Peer.of(socket)
              if (peer === undefined) return void socket.destroy()
              if (peer.denied !== undefined) return refuseUpgrade(socket, 403, "Forbidden")
              if (hostCount(request.rawHeaders) > 1) return refuseUpgrade(socket, 400, "Bad Request")
              if (ownsRequest(request.url ?? "") || forward === undefined) {
                return refuseUpgrade(socket, 404, "Not Found")
              }
              forward.ws(request, socket, head, peer)
            } catch (error) {
              failed(request, error)
              socket.destroy()
            }
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
