/**
 * A stand-in application for the local run (`make run DEMO_APP=1`): it shows
 * what the sidecar forwards (request line and headers, including
 * X-Forwarded-Client-Cert) and echoes WebSocket messages at /ws, so
 * forwarding can be tried in a browser. Development only.
 */
import { createServer, type IncomingMessage } from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { escapeHtml } from "../server/html.ts"

const page = (request: IncomingMessage) => `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Demo app behind coco-secure-access</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:860px;margin:2rem auto;padding:0 1rem}
table{border-collapse:collapse;width:100%}td{border-top:1px solid #ccc;padding:4px 8px;vertical-align:top;overflow-wrap:anywhere}
code{font-family:ui-monospace,monospace}</style></head><body>
<h1>Demo application</h1>
<p>This page is served by the demo app on 127.0.0.1, through the sidecar.
The sidecar's own dashboard is at <a href="/dashboard">/dashboard</a>.</p>
<p><code>${escapeHtml(`${request.method} ${request.url} HTTP/${request.httpVersion}`)}</code></p>
<table>${Object.entries(request.headers)
  .map(
    ([k, v]) =>
      `<tr><td><code>${escapeHtml(k)}</code></td><td><code>${escapeHtml(String(v))}</code></td></tr>`,
  )
  .join("")}</table>
<h2>WebSocket echo</h2>
<p><input id="msg" value="hello"> <button id="send">send</button> <span id="out"></span></p>
<script>
const ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws")
ws.onmessage = (e) => { document.getElementById("out").textContent = "echo: " + e.data }
document.getElementById("send").onclick = () => ws.send(document.getElementById("msg").value)
</script>
</body></html>`

export const startDemoApp = (port: number): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer((request, response) => {
      request.resume()
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" })
      response.end(page(request))
    })
    const wss = new WebSocketServer({ server, path: "/ws" })
    wss.on("connection", (socket) =>
      socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary })),
    )
    server.once("error", reject)
    server.listen(port, "127.0.0.1", () => resolve((server.address() as AddressInfo).port))
    server.unref()
  })
