/** Spike 1b: can the two allowHTTP1 gaps of spike 1 be patched? shouldUpgradeCallback set after
 * construction; closeAllConnections borrowed from http.Server.prototype. */
import * as http from "node:http"
import * as http2 from "node:http2"
import * as tls from "node:tls"
import type { AddressInfo } from "node:net"
import { clientTls, serverTls, sleep } from "./common.ts"
const isWs = (req: any) => req.method === "GET" && /websocket/i.test(String(req.headers.upgrade ?? ""))
const server: any = http2.createSecureServer({ ...serverTls, allowHTTP1: true, shouldUpgradeCallback: isWs, connectionsCheckingInterval: 500 })
server.shouldUpgradeCallback = isWs
let upgrades = 0
server.on("upgrade", (_r: any, s: any) => { upgrades++; s.destroy() })
server.on("request", (req: any, res: any) => { if (req.url === "/slow") return void setTimeout(() => res.end("x"), 3000); res.end("ok") })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const send = (text: string, wait: number) => new Promise<{ data: string; closed: number | null }>((resolve) => {
  const t0 = Date.now(); let data = ""
  const s = tls.connect({ port, host: "127.0.0.1", ...clientTls, ALPNProtocols: ["http/1.1"] }, () => s.write(text))
  s.on("data", (d) => (data += d)); s.on("error", () => {})
  s.on("close", () => resolve({ data, closed: Date.now() - t0 }))
  setTimeout(() => resolve({ data, closed: null }), wait)
})
const h2c = await send("GET /h2c HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 500)
console.log("h2c upgrade with callback set after construction:", h2c.data.split("\r\n")[0], "upgrade events:", upgrades)
const busy = send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", 2500)
await sleep(300)
http.Server.prototype.closeAllConnections.call(server)
console.log("borrowed closeAllConnections, busy HTTP/1.1 connection closed after ms:", (await busy).closed)
server.close(); process.exit(0)
