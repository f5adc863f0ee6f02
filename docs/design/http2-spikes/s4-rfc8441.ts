/**
 * Spike 4: RFC 8441 over the handoff listener. App = a `ws` WebSocketServer over HTTP/1.1 (echo).
 * Client = http2.connect sending :method CONNECT, :protocol websocket, then hand-made WebSocket frames.
 */
import * as http from "node:http"
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { clientTls } from "./common.ts"
import { make } from "./handoff.ts"
import { bridge } from "./ws-bridge.ts"

const appServer = http.createServer()
const wss = new WebSocketServer({ server: appServer, handleProtocols: (p) => (p.has("chat") ? "chat" : false) })
wss.on("connection", (ws, req) => { ws.on("message", (m) => ws.send(`echo:${m} via HTTP/${req.httpVersion} key=${req.headers["sec-websocket-key"] ? "yes" : "no"}`)) })
await new Promise<void>((r) => appServer.listen(0, "127.0.0.1", r))
const appPort = (appServer.address() as AddressInfo).port

const run = async (enable: boolean) => {
  const { server, h2, route } = make({ h2: { settings: { enableConnectProtocol: enable } } })
  server.on("secureConnection", route)
  h2.on("request", (_q: any, r: any) => r.end())  // compat is set up by the first request listener only
  let connects = 0
  h2.on("connect", (req: any, res: any) => { connects++; bridge(appPort, req, res, (m) => console.log("  server:", m)) })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  const client = http2.connect(`https://localhost:${port}`, clientTls)
  client.on("error", () => {})
  const settings: any = await new Promise((r) => client.once("remoteSettings", r))
  console.log(`enableConnectProtocol=${enable}: server SETTINGS enableConnectProtocol =`, settings.enableConnectProtocol)
  let stream: http2.ClientHttp2Stream
  try {
    stream = client.request({ ":method": "CONNECT", ":protocol": "websocket", ":path": "/chat", ":scheme": "https", ":authority": `localhost:${port}`, "sec-websocket-version": "13", "sec-websocket-protocol": "chat", origin: "https://localhost" }, { endStream: false })
  } catch (e: any) { console.log("  client.request throws", e.code); server.close(); client.destroy(); return }
  const result = await new Promise<string>((resolve) => {
    stream.on("error", (e: any) => resolve(`stream error ${e.code} rst=${stream.rstCode}`))
    stream.on("response", (h) => {
      const status = h[":status"]
      if (status !== 200) return resolve(`status ${status}`)
      // One masked text frame "hello".
      const payload = Buffer.from("hello"); const mask = Buffer.from([1, 2, 3, 4])
      stream.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))]))
      stream.once("data", (d: Buffer) => resolve(`status 200 ${JSON.stringify({ ...h, date: undefined })}; first frame opcode=${d[0]! & 0x0f} text=${d.subarray(2, 2 + (d[1]! & 0x7f)).toString()}`))
    })
    setTimeout(() => resolve("timeout"), 2000)
  })
  console.log("  client:", result, "| 'connect' events:", connects)
  client.destroy(); server.close()
}
await run(true)
await run(false)
process.exit(0)
