/**
 * Architecture 2 as spiked: today's https.Server stays the listener and the HTTP/1.1 server; a TLS
 * socket that negotiated h2 is handed to a plain, never-listening http2.Server instead of Node's
 * HTTP/1.1 connection listener.
 */
import * as http2 from "node:http2"
import * as https from "node:https"
import type { TLSSocket } from "node:tls"
import { serverTls } from "./common.ts"

export const isWebSocketUpgrade = (req: any) =>
  req.method === "GET" && typeof req.headers.upgrade === "string" && /(^|,)\s*websocket\s*(,|$)/i.test(req.headers.upgrade)

export const httpsOptions = {
  ...serverTls,
  shouldUpgradeCallback: isWebSocketUpgrade,
  handshakeTimeout: 2000,
  maxHeaderSize: 16384,
  headersTimeout: 2000,
  requestTimeout: 0,
  connectionsCheckingInterval: 500,
}

export const make = (opts: { h2?: http2.ServerOptions; alpn?: string[]; https?: https.ServerOptions } = {}) => {
  const server = https.createServer({ ...httpsOptions, ALPNProtocols: opts.alpn ?? ["h2", "http/1.1"], ...opts.https })
  // Node's HTTP/1.1 connection listener: the only 'secureConnection' listener right after construction.
  const [http1] = server.listeners("secureConnection") as Array<(this: https.Server, s: TLSSocket) => void>
  if (http1 === undefined || http1.name !== "connectionListener") throw new Error(`unexpected listener ${http1?.name}`)
  server.off("secureConnection", http1)
  const h2 = http2.createServer(opts.h2 ?? {})
  const sessions = new Set<http2.ServerHttp2Session>()
  h2.on("session", (session) => {
    sessions.add(session)
    session.once("close", () => sessions.delete(session))
  })
  const route = (socket: TLSSocket) => {
    if (socket.destroyed) return
    if (socket.alpnProtocol === "h2") h2.emit("connection", socket)
    else http1.call(server, socket)
  }
  return { server, h2, sessions, route }
}
