/** Spike 2b: in the handoff design, does https.Server's 'close' wait for an open h2 session (Gateway awaits it)? */
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { clientTls, sleep } from "./common.ts"
import { make } from "./handoff.ts"
const { server, h2, sessions, route } = make()
server.on("secureConnection", route)
h2.on("request", (_q, r) => r.end("ok"))
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const c = http2.connect(`https://localhost:${(server.address() as AddressInfo).port}`, clientTls)
await new Promise<void>((r) => { const q = c.request({ ":path": "/" }); q.resume(); q.on("close", () => r()) })
const t0 = Date.now()
let closedAt: number | undefined
server.close(() => (closedAt = Date.now() - t0))
await sleep(500)
console.log("https 'close' while an idle h2 session is open:", closedAt === undefined ? "not yet after 500 ms" : `${closedAt} ms`)
for (const s of sessions) s.close()
await sleep(200)
console.log("after session.close() (GOAWAY):", closedAt === undefined ? "still not closed" : `'close' at ${closedAt} ms`)
process.exit(0)
