/**
 * Two budgets for the listener's connections, as nginx and Envoy keep them apart: connections
 * still in their TLS handshake (anyone can open those) and established, authenticated ones.
 *
 * - Handshakes: at most `maxHandshakes` at once. When a new connection finds the budget full, the
 *   oldest handshake that has sent nothing yet is closed to make room (or, when every one has sent
 *   something, the oldest), so idle TCP connections that never start TLS cannot lock clients out:
 *   a flood has to outpace the handshakes it competes with. The deadline of each
 *   is Node's `handshakeTimeout`, counted from the TCP connection (handshake bytes do not reach JS,
 *   so a client trickling them does not extend it: tested).
 * - Established: at most `maxConnections`; beyond, a new authenticated connection is closed at once.
 *
 * Plain Node: one Set in connection order (the oldest first), no timer.
 */
import type { Server, Socket } from "node:net"
import type { TLSSocket } from "node:tls"

export interface Budget {
  readonly maxHandshakes: number
  readonly maxConnections: number
}

export interface BudgetEvents {
  /** A handshake closed to make room for a newer one. */
  readonly onHandshakeEvicted: (socket: Socket) => void
  /** An established connection closed because `maxConnections` were open. */
  readonly onConnectionRefused: (socket: TLSSocket) => void
}

/** The TCP socket under a server-side TLS socket is its `_parent` (Node keeps no public accessor). */
export const tcpOf = (socket: TLSSocket): object | undefined =>
  (socket as TLSSocket & { readonly _parent?: object })._parent

/**
 * Installs both budgets on a TLS server; returns a function that removes them. Node's own
 * `maxConnections` is set to their sum as a ceiling the budgets can never pass.
 */
export const install = (server: Server, budget: Budget, events: BudgetEvents) => {
  /** Sockets in their handshake; a Set keeps insertion (connection) order, the oldest first. */
  const handshaking = new Set<Socket>()
  let established = 0
  server.maxConnections = budget.maxConnections + budget.maxHandshakes

  const onConnection = (socket: Socket) => {
    if (handshaking.size >= budget.maxHandshakes) {
      let victim: Socket | undefined
      for (const candidate of handshaking) {
        victim ??= candidate
        if (candidate.bytesRead === 0) {
          victim = candidate
          break
        }
      }
      if (victim !== undefined) {
        handshaking.delete(victim)
        events.onHandshakeEvicted(victim)
        victim.destroy()
      }
    }
    handshaking.add(socket)
    socket.once("close", () => handshaking.delete(socket))
  }
  const onSecure = (socket: TLSSocket) => {
    const tcp = tcpOf(socket)
    if (tcp !== undefined) handshaking.delete(tcp as Socket)
    if (established >= budget.maxConnections) {
      events.onConnectionRefused(socket)
      socket.destroy()
      return
    }
    established++
    socket.once("close", () => established--)
  }
  // Before tls.Server's own listeners would matter: eviction must happen as the newcomer arrives.
  server.prependListener("connection", onConnection)
  server.prependListener("secureConnection", onSecure)
  return () => {
    server.off("connection", onConnection)
    server.off("secureConnection", onSecure)
  }
}
