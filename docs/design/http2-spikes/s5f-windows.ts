/** Spike 5f: the settings a default server advertises, the receive windows a Node h2 server session starts with, and after setLocalWindowSize. Also a TLS
 * connection that never sends the HTTP/2 preface. */
import * as http2 from "node:http2"
import * as tls from "node:tls"
import type { AddressInfo } from "node:net"
import { clientTls, sleep } from "./common.ts"
import { make } from "./handoff.ts"
const { server, h2, route } = make()
server.on("secureConnection", route)
h2.on("request", (_q, r) => r.end())
let first: http2.ServerHttp2Session | undefined
h2.on("session", (s) => { first ??= s })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const c = http2.connect(`https://localhost:${port}`, clientTls)
await new Promise((r) => c.on("remoteSettings", r)); await sleep(50)
console.log("http2.getDefaultSettings():", JSON.stringify(http2.getDefaultSettings()))
console.log("server session localSettings:", JSON.stringify(first!.localSettings))
console.log("what the client was told (remoteSettings):", JSON.stringify(c.remoteSettings))
console.log("server session state at start:", JSON.stringify({ local: first!.state.localWindowSize, effectiveLocal: first!.state.effectiveLocalWindowSize, settings: first!.localSettings.initialWindowSize }))
first!.setLocalWindowSize(1 << 20); await sleep(20)
console.log("after setLocalWindowSize(1 MiB):", first!.state.localWindowSize)
c.destroy()
const t0 = Date.now()
const s = tls.connect({ port, host: "127.0.0.1", ...clientTls, ALPNProtocols: ["h2"] })
s.on("error", () => {})
const closed = await Promise.race([new Promise((r) => s.on("close", () => r(`closed after ${Date.now() - t0} ms`))), sleep(8000).then(() => "still open after 8 s")])
console.log("TLS with ALPN h2, then no preface:", closed)
process.exit(0)
