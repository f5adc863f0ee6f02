/**
 * Spike 2: architecture 2 (handoff.ts). An h2 client end to end; the HTTP/1.1 path is still the very
 * same https.Server (its timeouts, closeIdle/closeAll, upgrade callback); what h2 sessions do on drain.
 */
import * as http2 from "node:http2"
import * as tls from "node:tls"
import type { AddressInfo } from "node:net"
import { clientTls, serverTls, sleep } from "./common.ts"
import { make } from "./handoff.ts"

const PEER = Symbol("peer")
const { server, h2, sessions, route } = make({ h2: { settings: { maxConcurrentStreams: 100 } } })
server.on("secureConnection", (s: any) => { s[PEER] = { cn: s.getPeerX509Certificate()?.subject }; route(s) })
const seen: any[] = []
const handler = (req: any, res: any) => {
  seen.push({ v: req.httpVersion, url: req.url, peer: req.socket[PEER]?.cn?.split("\n").find((l: string) => l.startsWith("CN=")), localPort: typeof req.socket.localPort })
  if (req.url === "/slow") return void setTimeout(() => res.end("slow"), 1500)
  res.end("hello " + req.httpVersion)
}
server.on("request", handler)
h2.on("request", handler)
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const origin = `https://localhost:${port}`

const h2get = (client: http2.ClientHttp2Session, path: string) => new Promise<{ status?: number; body: string; err?: string }>((resolve) => {
  const req = client.request({ ":path": path })
  let status: number | undefined; let body = ""
  req.on("response", (h) => (status = h[":status"] as number))
  req.setEncoding("utf8"); req.on("data", (d) => (body += d))
  req.on("end", () => resolve({ status, body })); req.on("error", (e: any) => resolve({ status, body, err: e.code }))
})
const c1 = http2.connect(origin, { ...clientTls })
c1.on("error", () => {})
console.log("h2 GET:", JSON.stringify(await h2get(c1, "/x")), "alpn:", (c1.socket as any).alpnProtocol)
const par = await Promise.all([1, 2, 3, 4, 5].map((i) => h2get(c1, `/p${i}`)))
console.log("5 concurrent streams on one session:", par.map((r) => r.status).join(","))
console.log("handler saw:", JSON.stringify(seen.slice(0, 2)))

const raw1 = (text: string, wait: number, alpn = ["http/1.1"]) => new Promise<{ first: string; closed: number | null }>((resolve) => {
  const t0 = Date.now(); let data = ""
  const s = tls.connect({ port, host: "127.0.0.1", ...clientTls, ALPNProtocols: alpn }, () => s.write(text))
  s.on("data", (d) => (data += d)); s.on("error", () => {})
  s.on("close", () => resolve({ first: data.split("\r\n")[0], closed: Date.now() - t0 }))
  setTimeout(() => resolve({ first: data.split("\r\n")[0], closed: null }), wait)
})
console.log("HTTP/1.1 GET:", JSON.stringify(await raw1("GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 500)))
console.log("HTTP/1.1 headersTimeout:", JSON.stringify(await raw1("GET /a HTTP/1.1\r\nHost: x\r\n", 4000)))
console.log("HTTP/1.1 Upgrade: h2c served as a request:", JSON.stringify(await raw1("GET /a HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", 500)))
console.log("server.closeAllConnections:", typeof server.closeAllConnections)

// h2 with HTTP/2 switched off (ALPN http/1.1 only) for a client offering only h2
const off = make({ alpn: ["http/1.1"] })
off.server.on("secureConnection", off.route)
await new Promise<void>((r) => off.server.listen(0, "127.0.0.1", r))
const offPort = (off.server.address() as AddressInfo).port
const h2only = await new Promise<string>((resolve) => {
  const s = tls.connect({ port: offPort, host: "127.0.0.1", ...clientTls, ALPNProtocols: ["h2"] }, () => resolve(`connected alpn=${s.alpnProtocol}`))
  s.on("error", (e: any) => resolve(`error ${e.code ?? e.message}`))
})
const both = await new Promise<string>((resolve) => {
  const s = tls.connect({ port: offPort, host: "127.0.0.1", ...clientTls, ALPNProtocols: ["h2", "http/1.1"] }, () => { resolve(`alpn=${s.alpnProtocol}`); s.destroy() })
  s.on("error", (e: any) => resolve(`error ${e.code}`))
})
console.log("HTTP/2 off: client offering only h2 ->", h2only, "; offering h2,http/1.1 ->", both)
off.server.close()

// A socket destroyed by an earlier listener (budget) is not handed over
// Drain: server.close() + closeIdleConnections do not touch h2 sessions; session.close() sends GOAWAY
// and lets the in-flight stream finish.
const slow = h2get(c1, "/slow")
let goaway: unknown
c1.on("goaway", (code, last) => (goaway = { code, last }))
await sleep(200)
server.close()
server.closeIdleConnections()
server.closeAllConnections()
await sleep(100)
console.log("after https close/closeIdle/closeAll: h2 sessions open:", sessions.size, "client session destroyed:", c1.destroyed)
for (const s of sessions) s.close()
const r = await slow
console.log("after session.close(): in-flight stream ->", JSON.stringify(r), "goaway:", JSON.stringify(goaway))
await sleep(100)
console.log("sessions left:", sessions.size, "client closed:", c1.closed)
let closeErr = "none"
try { h2.close((e) => { closeErr = e ? (e as any).code : "cb without error" }) } catch (e: any) { closeErr = "threw " + e.code }
await sleep(50)
console.log("h2.close() on a never-listening http2.Server:", closeErr)
process.exit(0)
