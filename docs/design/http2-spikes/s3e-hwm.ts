/** Spike 3e: does limitStreamBuffers() (src/proxy/buffering.ts, process-wide default high-water mark) reach the h2 streams
 * and the compat request? */
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { limitStreamBuffers } from "/work/main/src/proxy/buffering.ts"
import { clientTls } from "./common.ts"
import { make } from "./handoff.ts"
limitStreamBuffers()
const { server, h2, route } = make()
server.on("secureConnection", route)
h2.on("request", (req: any, res: any) => { console.log(JSON.stringify({ streamWritable: req.stream.writableHighWaterMark, streamReadable: req.stream.readableHighWaterMark, compatRequest: req.readableHighWaterMark, tlsSocket: req.stream.session.socket.writableHighWaterMark })); res.end() })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const c = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, clientTls)
await new Promise<void>((r) => { const q = c.request({ ":path": "/" }); q.resume(); q.on("close", () => r()) })
process.exit(0)
