/** Spike 3c: what Http2ServerResponse.writeHead does with statuses the HTTP/1.1 path relays (600-999) and with an
 * app header h2 forbids (http2-settings); then a second writeHead, as Forwarder.fail would do. */
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { clientTls } from "./common.ts"
import { make } from "./handoff.ts"
const { server, h2, route } = make()
server.on("secureConnection", route)
h2.on("request", (req: any, res: any) => {
  const [status, header] = req.url === "/600" ? [600, {}] : [200, { "http2-settings": "AAMAAABkAAQAAP__" }]
  try { res.writeHead(status, header); res.end(); console.log(`${req.url}: writeHead ok`) }
  catch (e: any) {
    console.log(`${req.url}: writeHead throws ${e.code}`)
    try { res.writeHead(502, { "content-length": 0 }); res.end(); console.log(`${req.url}: second writeHead(502) ok`) }
    catch (e2: any) { console.log(`${req.url}: second writeHead(502) throws ${e2.code}`); res.destroy() }
  }
})
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const c = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, clientTls)
for (const p of ["/600", "/h2s"]) await new Promise<void>((r) => { const q = c.request({ ":path": p }); q.on("response", (h) => console.log(`  client ${p}: ${h[":status"]}`)); q.on("error", () => {}); q.on("close", () => r()); q.end() })
process.exit(0)
