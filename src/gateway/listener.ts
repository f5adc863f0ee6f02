/**
 * The mTLS listener, plain Node: TLS 1.3 only, a client certificate signed by the client CA
 * required (Node drops any other connection right after the handshake, before a request is read),
 * the connection budgets, and one peer record per connection, made when its handshake completes.
 * Requests are not handled here (dispatch.ts).
 */

import type { IncomingMessage } from "node:http"
import type * as Http2 from "node:http2"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import type { Socket } from "node:net"
import type { TLSSocket } from "node:tls"
import * as Duration from "effect/Duration"
import type { AllowRules } from "../auth/ClientAuthorization.ts"
import type { Http2Settings, Limits } from "../config/SidecarConfig.ts"
import type { LineLog } from "../log/LineLog.ts"
import type { Recorder } from "../metrics/Metrics.ts"
import { limitStreamBuffers } from "../proxy/buffering.ts"
import { type Material, secureContextOptions } from "../tls/TlsMaterial.ts"
import * as ConnectionBudget from "./connectionBudget.ts"
import * as Peer from "./Peer.ts"
import { rateLimited } from "./rateLimited.ts"

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

export const tlsOptions = (material: Material, limits: Limits, http2 = false): Https.ServerOptions => ({
  ...secureContextOptions(material),
  // Node's default is http/1.1 alone: left as it is when HTTP/2 is off.
  ...(http2 ? { ALPNProtocols: ["h2", "http/1.1"] } : {}),
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

export interface Listener {
  /** The TLS listener, and the HTTP/1.1 server of its connections. */
  readonly server: Https.Server
  /**
   * Calls `attach` with the HTTP/2 server of the connections that chose h2 (it never listens
   * itself) once it exists: at the first such connection, so that a sidecar no browser has reached
   * never loads node:http2. Never called when HTTP/2 is off.
   */
  readonly whenHttp2: (attach: (h2: Http2.Http2Server) => void) => void
  /** Open HTTP/2 sessions, for the drain. */
  readonly sessions: ReadonlySet<Http2.ServerHttp2Session>
  /**
   * New handshakes get this material; established connections keep theirs. Throws if OpenSSL
   * refuses it (it was built into a secure context once already, so in practice it does not).
   */
  readonly setMaterial: (material: Material) => void
  /** Removes the budgets' listeners. */
  readonly dispose: () => void
}

export interface ListenerOptions {
  readonly material: Material
  readonly limits: Limits
  readonly http2: Http2Settings
  /** Announce RFC 8441 (WebSockets over HTTP/2): only when there is an app to tunnel to. */
  readonly webSocketsOverHttp2: boolean
  readonly allow: AllowRules
  readonly log: LineLog
  readonly metrics: Recorder
}

const anchorsOf = (material: Material): ReadonlySet<string> =>
  new Set(material.clientCas.map((ca) => ca.fingerprint256))

export const errorText = (error: unknown): string =>
  error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error)

export const make = ({
  material,
  limits,
  http2,
  webSocketsOverHttp2,
  allow,
  log,
  metrics,
}: ListenerOptions): Listener => {
  // Before the first socket: every stream, the TLS sockets included, buffers 16 KiB at most.
  limitStreamBuffers()
  const server = https.createServer(tlsOptions(material, limits, http2.enabled))
  const { route, whenHttp2, sessions } = http2.enabled
    ? protocols(server, http2, limits, webSocketsOverHttp2)
    : plainHttp1
  // The client CAs end the chain a client is said to have sent (Client-Cert-Chain).
  let trustAnchors = anchorsOf(material)
  const setMaterial = (next: Material) => {
    server.setSecureContext(secureContextOptions(next))
    trustAnchors = anchorsOf(next)
  }

  // Refusals by the budgets: counted, and logged at most once a minute per kind, with a count.
  const dropped = rateLimited(60_000)
  const refusal = (reason: string, message: string) => (socket: Socket) => {
    metrics.handshakeFailure(reason)
    dropped(reason, (count) =>
      log.write("warn", message, { count: String(count), remote: socket.remoteAddress ?? "unknown" }),
    )
  }
  const removeBudgets = ConnectionBudget.install(
    server,
    { maxHandshakes: limits.maxHandshakes, maxConnections: limits.maxConnections },
    {
      onHandshakeEvicted: refusal("handshake_evicted", "handshake budget full: oldest handshakes closed"),
      onConnectionRefused: refusal("max_connections", "connection refused: MAX_CONNECTIONS reached"),
    },
  )

  // Anyone can cause these refusals, without a certificate: a flood costs at most a line a second
  // per reason. Rejected clients never reach a request handler: this is the only trace they leave.
  const rejected = rateLimited(1_000)
  // Node destroys a socket whose certificate fails before it reports the error: remember peers early.
  const addresses = new WeakMap<object, string>()
  server.on("connection", (socket: Socket) => {
    addresses.set(socket, socket.remoteAddress ?? "unknown")
  })
  const addressOf = (socket: TLSSocket): string => {
    const tcp = ConnectionBudget.tcpOf(socket)
    return (tcp && addresses.get(tcp)) ?? addresses.get(socket) ?? "unknown"
  }
  server.on("tlsClientError", (err: Error & { code?: string }, socket: TLSSocket) => {
    const reason = socket.authorizationError ? String(socket.authorizationError) : (err.code ?? err.message)
    metrics.handshakeFailure(reason.slice(0, 64))
    rejected(reason, (count) =>
      log.write("warn", "TLS handshake rejected", {
        reason,
        remote: socket.remoteAddress ?? addressOf(socket),
        ...(count > 1 ? { count: String(count) } : {}),
      }),
    )
  })

  function onConnectionClosed() {
    metrics.connectionClosed()
  }
  // The peer record, once per connection; a resumed session must still hold a valid certificate.
  server.on("secureConnection", (socket: TLSSocket) => {
    if (socket.destroyed) return
    metrics.connectionOpened()
    socket.once("close", onConnectionClosed)
    try {
      const peer = Peer.make(socket, allow, trustAnchors)
      if (peer === undefined) return void socket.destroy()
      const refused = socket.isSessionReused() ? Peer.refuseResumed(peer, Date.now()) : undefined
      if (refused !== undefined) {
        metrics.handshakeFailure("resumed_certificate_invalid")
        log.write("warn", "TLS session resumption refused", {
          reason: refused,
          client: peer.certificate.commonName ?? "",
          remote: peer.address,
        })
        return void socket.destroy()
      }
      // Only now may requests be served: OpenSSL may already have read one with the handshake,
      // and a request on a socket without its record is dropped (see dispatch).
      Peer.attach(socket, peer)
      route(socket)
      // Each time: this client holds a certificate of the client CA, so it is accountable.
      if (peer.denied !== undefined) {
        log.write("warn", "client not authorized", { reason: peer.denied, remote: peer.address })
      }
    } catch (error) {
      // A certificate OpenSSL verified but this code cannot read: refuse the connection, keep serving.
      log.write("warn", "connection closed: client certificate not readable", {
        cause: errorText(error),
        remote: socket.remoteAddress ?? "unknown",
      })
      socket.destroy()
    }
  })

  return { server, whenHttp2, sessions, setMaterial, dispose: removeBudgets }
}

interface Protocols {
  /** Hands an admitted TLS socket to the parser of its protocol. */
  readonly route: (socket: TLSSocket) => void
  readonly whenHttp2: (attach: (h2: Http2.Http2Server) => void) => void
  readonly sessions: Set<Http2.ServerHttp2Session>
}

/** HTTP/2 off: Node's own HTTP/1.1 listener parses every connection, as it always did. */
const plainHttp1: Protocols = { route: () => {}, whenHttp2: () => {}, sessions: new Set() }

/**
 * HTTP/2 on: Node's HTTP/1.1 connection listener is taken off the TLS server and called here, after
 * the peer record, for connections that chose http/1.1; those that chose h2 go to an http2.Server
 * that never listens. So HTTP/1.1 keeps the very server it has when HTTP/2 is off (its timeouts,
 * upgrade rule and drain), which `http2.createSecureServer({ allowHTTP1 })` would not
 * (docs/design/http2.md §1-2).
 */
const protocols = (
  server: Https.Server,
  settings: Http2Settings,
  limits: Limits,
  enableConnectProtocol: boolean,
): Protocols => {
  const [http1] = server.listeners("secureConnection") as Array<
    (this: Https.Server, socket: TLSSocket) => void
  >
  // Node registers exactly this listener (lib/https.js); if a release changes that, refuse to start
  // rather than parse connections twice or not at all.
  if (
    http1 === undefined ||
    http1.name !== "connectionListener" ||
    server.listenerCount("secureConnection") !== 1
  ) {
    throw new Error("HTTP2: this Node release's https.Server is not as expected; set HTTP2=false")
  }
  server.off("secureConnection", http1)
  const sessions = new Set<Http2.ServerHttp2Session>()
  let h2: Http2.Http2Server | undefined
  const attached: Array<(h2: Http2.Http2Server) => void> = []
  const whenHttp2 = (attach: (h2: Http2.Http2Server) => void) => {
    if (h2 === undefined) attached.push(attach)
    else attach(h2)
  }
  const http2Server = (): Http2.Http2Server => {
    if (h2 !== undefined) return h2
    h2 = makeHttp2Server(settings, limits, enableConnectProtocol, sessions)
    for (const attach of attached.splice(0)) attach(h2)
    return h2
  }
  const route = (socket: TLSSocket) => {
    if (socket.destroyed) return
    if (socket.alpnProtocol === "h2") http2Server().emit("connection", socket)
    else http1.call(server, socket)
  }
  return { route, whenHttp2, sessions }
}

const makeHttp2Server = (
  settings: Http2Settings,
  limits: Limits,
  enableConnectProtocol: boolean,
  sessions: Set<Http2.ServerHttp2Session>,
): Http2.Http2Server => {
  // Loaded at the first h2 connection: node:http2 costs about 4.5 MiB of memory (docs/design/http2.md §6).
  const http2 = process.getBuiltinModule("node:http2") as typeof Http2
  const h2 = http2.createServer({
    settings: {
      maxConcurrentStreams: settings.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderSize,
      enableConnectProtocol,
    },
    // CVE-2023-44487 (rapid reset): both must be set for nghttp2's token bucket to take them.
    streamResetBurst: 100,
    streamResetRate: 10,
  })
  // A protocol error ends its session (GOAWAY); without a listener it would end the process.
  h2.on("sessionError", ignore)
  const idleMs = Duration.toMillis(limits.headersTimeout)
  h2.on("session", (session) => {
    sessions.add(session)
    // Nothing in Node closes an idle session (HTTP/1.1 has its keep-alive timeout): a timer that
    // runs only while the session has no open stream.
    let open = 0
    let idle: ReturnType<typeof setTimeout> | undefined
    const arm = () => {
      idle = setTimeout(() => {
        session.close()
        setTimeout(() => session.destroy(), 1000).unref()
      }, idleMs).unref()
    }
    arm()
    session.on("stream", (stream) => {
      open++
      clearTimeout(idle)
      stream.once("close", () => {
        if (--open === 0 && !session.closed) arm()
      })
    })
    session.once("close", () => {
      clearTimeout(idle)
      sessions.delete(session)
    })
    session.on("error", ignore)
  })
  return h2
}

const ignore = () => {}
