/**
 * Spike 1: HTTP/1.1 behaviour of http2.createSecureServer({ allowHTTP1: true }) next to today's
 * https.createServer, with the options listener.ts passes. Same raw HTTP/1.1-over-TLS probes for both.
 */
import * as http2 from "node:http2"
import * as https from "node:https"
import * as tls from "node:tls"
import type { AddressInfo } from "node:net"
import { clientTls, pki, serverTls, sleep } from "./common.ts"

const isWebSocketUpgrade = (req: any) =>
  req.method === "GET" && typeof req.headers.upgrade === "string" && req.headers.upgrade.toLowerCase().includes("websocket")

const options = {
  ...serverTls,
  shouldUpgradeCallback: isWebSocketUpgrade,
  handshakeTimeout: 2000,
  maxHeaderSize: 16384,
  headersTimeout: 2000,
  requestTimeout: 0,
  connectionsCheckingInterval: 500,
}

type Probe = { data: string; closedAfterMs: number | null; alpn: string | false; reused: boolean }
const raw = (port: number, send: string | undefined, opts: { alpn?: string[]; session?: Buffer; waitMs?: number; keep?: boolean } = {}) =>
  new Promise<Probe & { socket: tls.TLSSocket; ticket?: Buffer }>((resolve) => {
    const t0 = Date.now()
    let data = ""
    let ticket: Buffer | undefined
    const s = tls.connect({ port, host: "127.0.0.1", ...clientTls, ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}), ...(opts.session ? { session: opts.session } : {}) })
    s.on("session", (t) => (ticket = t))
    s.on("error", () => {})
    s.on("data", (d) => (data += d))
    let done = false
    const finish = (closedAfterMs: number | null) => {
      if (done) return
      done = true
      resolve({ data, closedAfterMs, alpn: s.alpnProtocol ?? false, reused: s.isSessionReused(), socket: s, ticket })
      if (!opts.keep) s.destroy()
    }
    s.on("secureConnect", () => { if (send !== undefined) s.write(send) })
    s.on("close", () => finish(Date.now() - t0))
    setTimeout(() => finish(null), opts.waitMs ?? 4000)
  })

const first = (s: string) => s.split("\r\n")[0]

async function run(name: string, server: any) {
  const ev: Record<string, number> = { connection: 0, secureConnection: 0, tlsClientError: 0, request: 0, checkContinue: 0, upgrade: 0, connect: 0 }
  const SYM = Symbol("peer")
  let peerSeen: unknown
  server.on("connection", () => ev.connection++)
  server.on("secureConnection", (s: any) => { ev.secureConnection++; s[SYM] = "peer-record" })
  server.on("tlsClientError", () => ev.tlsClientError++)
  server.on("request", (req: any, res: any) => {
    ev.request++
    peerSeen = req.socket[SYM]
    if (req.url === "/slow") return void setTimeout(() => res.end("slow"), 3000)
    res.end(`ok ${req.url} upgrade=${req.headers.upgrade ?? ""}`)
  })
  server.on("checkContinue", (req: any, res: any) => { ev.checkContinue++; res.writeContinue(); req.resume(); req.on("end", () => res.end("continued")) })
  server.on("upgrade", (req: any, socket: any) => { ev.upgrade++; socket.end("HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n") })
  server.on("connect", () => ev.connect++)
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  const out: Record<string, unknown> = {}
  out.methods = {
    closeIdleConnections: typeof server.closeIdleConnections,
    closeAllConnections: typeof server.closeAllConnections,
    setSecureContext: typeof server.setSecureContext,
    shouldUpgradeCallbackIsOurs: server.shouldUpgradeCallback === isWebSocketUpgrade,
    headersTimeout: server.headersTimeout, requestTimeout: server.requestTimeout, keepAliveTimeout: server.keepAliveTimeout,
    maxHeaderSize: server.maxHeaderSize, connectionsCheckingInterval: server.connectionsCheckingInterval,
  }
  const get = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
  let p = await raw(port, get, { alpn: ["http/1.1"], waitMs: 800 })
  out.plainGet = { alpn: p.alpn, status: first(p.data), peerSymbolViaReqSocket: peerSeen }
  p = await raw(port, get, { waitMs: 800 })
  out.noAlpnGet = { alpn: p.alpn, status: first(p.data) }
  p = await raw(port, get, { alpn: ["h2", "http/1.1"], waitMs: 300 })
  out.offerBoth = { alpn: p.alpn }
  // headersTimeout: a head never finished
  p = await raw(port, "GET / HTTP/1.1\r\nHost: x\r\n", { alpn: ["http/1.1"], waitMs: 6000 })
  out.headersTimeout = { closedAfterMs: p.closedAfterMs, answer: first(p.data) }
  // requestTimeout 0: a slow answer (3 s) is not cut
  p = await raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", { alpn: ["http/1.1"], waitMs: 4000 })
  out.slowAnswer = first(p.data)
  // maxHeaderSize
  p = await raw(port, `GET / HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(20000)}\r\n\r\n`, { alpn: ["http/1.1"], waitMs: 1500 })
  out.maxHeaderSize = first(p.data)
  // keepAliveTimeout (default 5 s + 1 s buffer?)
  p = await raw(port, get, { alpn: ["http/1.1"], waitMs: 9000 })
  out.keepAliveClose = { closedAfterMs: p.closedAfterMs }
  // Expect: 100-continue
  p = await raw(port, "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi", { alpn: ["http/1.1"], waitMs: 800 })
  out.expectContinue = p.data.split("\r\n").filter((l) => l.startsWith("HTTP/1.1"))
  // Upgrade: websocket and Upgrade: h2c
  p = await raw(port, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", { alpn: ["http/1.1"], waitMs: 800 })
  out.upgradeWebsocket = first(p.data)
  p = await raw(port, "GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", { alpn: ["http/1.1"], waitMs: 800 })
  out.upgradeH2c = { status: first(p.data), body: p.data.split("\r\n\r\n")[1] }
  // CONNECT over HTTP/1.1
  p = await raw(port, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", { alpn: ["http/1.1"], waitMs: 800 })
  out.http1Connect = { status: first(p.data) || "(nothing)", closedAfterMs: p.closedAfterMs }
  // tlsClientError: no client certificate
  await new Promise<void>((r) => {
    const s = tls.connect({ port, host: "127.0.0.1", ca: pki.ca, servername: "localhost", ALPNProtocols: ["http/1.1"] })
    s.on("error", () => r()); s.on("close", () => r()); s.on("secureConnect", () => s.write(get))
  })
  await sleep(100)
  // Session resumption (TLS 1.3 ticket)
  p = await raw(port, get, { alpn: ["http/1.1"], waitMs: 500 })
  const ticket = p.ticket
  p = await raw(port, get, { alpn: ["http/1.1"], session: ticket, waitMs: 500 })
  out.resumed = p.reused
  // setSecureContext, then a new handshake still works
  server.setSecureContext({ cert: pki.cert, key: pki.key, ca: pki.ca, minVersion: "TLSv1.3" })
  p = await raw(port, get, { alpn: ["http/1.1"], waitMs: 500 })
  out.afterSetSecureContext = first(p.data)
  // closeIdleConnections / closeAllConnections on a keep-alive and on a busy connection
  const idle = await raw(port, get, { alpn: ["http/1.1"], waitMs: 300, keep: true })
  const busy = raw(port, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", { alpn: ["http/1.1"], waitMs: 2500 })
  await sleep(300)
  server.closeIdleConnections()
  await sleep(100)
  out.closeIdle = { idleDestroyed: idle.socket.destroyed || idle.socket.readyState === "closed" }
  if (typeof server.closeAllConnections === "function") server.closeAllConnections()
  const b = await busy
  out.closeAll = { busyClosedAfterMs: b.closedAfterMs, busyAnswer: first(b.data) || "(none)" }
  out.events = ev
  server.close()
  console.log(`\n=== ${name}`)
  for (const [k, v] of Object.entries(out)) console.log(`${k}: ${JSON.stringify(v)}`)
}

await run("https.createServer (today)", https.createServer(options))
await run("http2.createSecureServer allowHTTP1", http2.createSecureServer({ ...options, allowHTTP1: true }))
process.exit(0)
