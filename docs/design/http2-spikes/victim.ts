/**
 * The server under attack, in its own process (so its CPU and memory are its own): the handoff
 * listener with the http2 options given as JSON in argv[2]. Routes: / answers "ok"; /proxy forwards
 * to a loopback app (counts what reaches the app); /big streams argv size bytes with backpressure;
 * /hang never answers. Answers { stats } on IPC.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { Readable } from "node:stream"
import { make } from "./handoff.ts"

const opts = JSON.parse(process.argv[2] ?? "{}")
// As the sidecar does (src/proxy/buffering.ts): every stream buffers 16 KiB at most.
if (opts.limitBuffers) (await import("/work/main/src/proxy/buffering.ts")).limitStreamBuffers()
const stats = { requests: 0, appRequests: 0, sessions: 0, sessionErrors: {} as Record<string, number>, streamErrors: {} as Record<string, number>, bigProduced: 0, openSessions: 0, timeouts: 0, frameErrors: 0 }
const app = http.createServer((_q, r) => { stats.appRequests++; r.end("app") })
await new Promise<void>((r) => app.listen(0, "127.0.0.1", r))
const appPort = (app.address() as AddressInfo).port
const agent = new http.Agent({ keepAlive: true })
const { server, h2, sessions, route } = make({ h2: opts.h2 ?? {} })
if (opts.timeout) h2.setTimeout(opts.timeout)
h2.on("timeout", (s: any) => { stats.timeouts++; s.destroy() })
server.on("secureConnection", route)
h2.on("session", (s) => {
  stats.sessions++
  s.on("error", (e: any) => { const k = e.code ?? e.message; stats.sessionErrors[k] = (stats.sessionErrors[k] ?? 0) + 1 })
  s.on("frameError", () => stats.frameErrors++)
})
h2.on("stream", (st) => st.on("error", (e: any) => { const k = e.code ?? e.message; stats.streamErrors[k] = (stats.streamErrors[k] ?? 0) + 1 }))
h2.on("request", (req: any, res: any) => {
  stats.requests++
  if (req.url === "/proxy") {
    const up = http.request({ host: "127.0.0.1", port: appPort, path: "/", agent }, (a) => { res.writeHead(200); a.pipe(res) })
    up.on("error", () => res.destroy(new Error("app")))
    res.on("close", () => up.destroy())
    return void up.end()
  }
  if (req.url === "/big") {
    const total = opts.bigBytes ?? 256 * 1024 * 1024
    let sent = 0
    const chunk = Buffer.alloc(16384, 97)
    const src = new Readable({ read() { if (sent >= total) return this.push(null); sent += chunk.length; stats.bigProduced += chunk.length; this.push(chunk) } })
    res.writeHead(200)
    src.pipe(res)
    res.on("close", () => src.destroy())
    return
  }
  if (req.url === "/hang") return
  res.end("ok")
})
server.listen(0, "127.0.0.1", () => process.send!({ port: (server.address() as AddressInfo).port }))
const cpu0 = process.cpuUsage()
process.on("message", (m: any) => {
  if (m === "stats") {
    const cpu = process.cpuUsage(cpu0)
    process.send!({ stats: { ...stats, openSessions: sessions.size, rssMiB: Math.round(process.memoryUsage().rss / 1048576), cpuMs: Math.round((cpu.user + cpu.system) / 1000) } })
  }
})
