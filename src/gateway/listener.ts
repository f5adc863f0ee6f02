/**
 * The mTLS listener, plain Node: TLS 1.3 only, a client certificate signed by the client CA
 * required (Node drops any other connection right after the handshake, before a request is read),
 * the connection budgets, and one peer record per connection, made when its handshake completes.
 * Requests are not handled here (dispatch.ts).
 */

import type { IncomingMessage } from "node:http"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import type { Socket } from "node:net"
import type { TLSSocket } from "node:tls"
import * as Duration from "effect/Duration"
import type { AllowRules } from "../auth/ClientAuthorization.ts"
import type { Limits } from "../config/SidecarConfig.ts"
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

export interface Listener {
  readonly server: Https.Server
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
  readonly allow: AllowRules
  readonly log: LineLog
  readonly metrics: Recorder
}

const anchorsOf = (material: Material): ReadonlySet<string> =>
  new Set(material.clientCas.map((ca) => ca.fingerprint256))

export const errorText = (error: unknown): string =>
  error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.message) : String(error)

export const make = ({ material, limits, allow, log, metrics }: ListenerOptions): Listener => {
  // Before the first socket: every stream, the TLS sockets included, buffers 16 KiB at most.
  limitStreamBuffers()
  const server = https.createServer(tlsOptions(material, limits))
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

  return { server, setMaterial, dispose: removeBudgets }
}
