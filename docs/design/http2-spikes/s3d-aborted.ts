/** Spike 3d: how a response's 'close' tells a finished answer from a client reset on h2 (the access log's "aborted"). */
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { clientTls, sleep } from "./common.ts"
import { make } from "./handoff.ts"
const { server, h2, route } = make()
server.on("secureConnection", route)
h2.on("request", (req: any, res: any) => {
  res.on("close", () => console.log(`${req.url}: writableFinished=${res.writableFinished} writableEnded=${res.writableEnded} stream.rstCode=${res.stream.rstCode} stream.aborted=${res.stream.aborted} req.aborted=${req.aborted}`))
  if (req.url === "/ok") return void res.end("done")
  res.writeHead(200); res.write("partial") // /cancel: never ends
})
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const c = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, clientTls)
await new Promise<void>((r) => { const q = c.request({ ":path": "/ok" }); q.resume(); q.on("close", () => r()) })
await new Promise<void>((r) => { const q = c.request({ ":path": "/cancel" }); q.on("data", () => q.close(http2.constants.NGHTTP2_CANCEL)); q.on("close", () => r()) })
await sleep(100)
process.exit(0)
