/**
 * The RFC 8441 bridge as spiked: an extended CONNECT stream (:protocol websocket) becomes an
 * HTTP/1.1 WebSocket handshake to the app (with a Sec-WebSocket-Key of the sidecar's own), the app's
 * 101 becomes a 200 on the stream (no Upgrade/Connection/Sec-WebSocket-Accept), then bytes are
 * piped both ways unchanged (frames, masking and permessage-deflate stay end to end).
 */
import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import type * as http2 from "node:http2"

const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
export const bridge = (appPort: number, req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, log: (m: string) => void) => {
  const h = req.headers
  if (h[":protocol"] !== "websocket") { res.statusCode = 501; return void res.end() }
  const key = randomBytes(16).toString("base64")
  const headers: Record<string, string> = {
    host: String(h[":authority"] ?? ""), connection: "Upgrade", upgrade: "websocket",
    "sec-websocket-version": String(h["sec-websocket-version"] ?? "13"), "sec-websocket-key": key,
  }
  for (const name of ["sec-websocket-protocol", "sec-websocket-extensions", "origin", "cookie", "user-agent"]) if (h[name] !== undefined) headers[name] = String(h[name])
  const up = http.request({ host: "127.0.0.1", port: appPort, path: String(h[":path"]), method: "GET", headers })
  up.on("upgrade", (answer, socket, head) => {
    const accept = createHash("sha1").update(key + GUID).digest("base64")
    if (answer.headers["sec-websocket-accept"] !== accept) { socket.destroy(); res.statusCode = 502; return void res.end() }
    const out: Record<string, string> = {}
    for (const name of ["sec-websocket-protocol", "sec-websocket-extensions"]) if (answer.headers[name] !== undefined) out[name] = String(answer.headers[name])
    res.writeHead(200, out)
    const stream = req.stream
    if (head.length > 0) stream.write(head)
    socket.pipe(stream); stream.pipe(socket)
    socket.on("error", () => {}); stream.on("error", () => {})
    socket.on("close", () => stream.close())
    stream.on("close", () => socket.destroy())
    log(`bridged ${h[":path"]} (app said 101, client got 200 ${JSON.stringify(out)})`)
  })
  up.on("response", (answer) => { res.writeHead(answer.statusCode ?? 502); answer.pipe(res) })
  up.on("error", () => { if (!res.headersSent) { res.statusCode = 502; res.end() } else res.destroy(new Error("app")) })
  up.end()
}
