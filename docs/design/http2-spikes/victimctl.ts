import { fork, type ChildProcess } from "node:child_process"
import * as http2 from "node:http2"
import { clientTls } from "./common.ts"
export const startVictim = (opts: object) => new Promise<{ port: number; child: ChildProcess; stats: () => Promise<any> }>((resolve) => {
  const child = fork("/root/h2spike/victim.ts", [JSON.stringify(opts)], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
  child.once("message", (m: any) => resolve({
    port: m.port, child,
    stats: () => new Promise((r) => { child.once("message", (x: any) => r(x.stats)); child.send("stats") }),
  }))
})
/** A well-behaved client: one GET on a fresh session; status and latency. */
export const goodClient = (port: number) => new Promise<string>((resolve) => {
  const t0 = Date.now()
  const c = http2.connect(`https://localhost:${port}`, clientTls)
  c.on("error", (e: any) => resolve(`error ${e.code}`))
  const q = c.request({ ":path": "/" })
  q.on("response", (h) => { resolve(`${h[":status"]} in ${Date.now() - t0} ms`); c.destroy() })
  q.on("error", (e: any) => resolve(`stream error ${e.code}`))
  q.end()
  setTimeout(() => resolve("timeout 5 s"), 5000)
})
