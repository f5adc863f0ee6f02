/**
 * A reference point for `bench.ts --reference`: the smallest reasonable mTLS reverse proxy on
 * Node (node:https with the sidecar's TLS settings, node:http with a keep-alive agent to the
 * app, raw piping for WebSocket upgrades), with none of the sidecar's features. What it costs
 * is what Node itself costs; what the sidecar costs beyond it is the sidecar's own.
 *
 *   node scripts/bench/reference-proxy.ts <port> <backendPort> <certFile> <keyFile> <caFile>
 */
import { readFileSync } from "node:fs"
import type * as Http from "node:http"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import * as net from "node:net"

// As CommonJS, like the sidecar: the ES module namespace of node:https loads undici.
const require = createRequire(import.meta.url)
const http: typeof Http = require("node:http")
const https: typeof Https = require("node:https")

const [port, backendPort, certFile, keyFile, caFile] = process.argv.slice(2)
if (
  port === undefined ||
  backendPort === undefined ||
  certFile === undefined ||
  keyFile === undefined ||
  caFile === undefined
)
  throw new Error("usage: reference-proxy.ts port backendPort cert key ca")

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
])
const endToEnd = (headers: Http.IncomingHttpHeaders): Http.OutgoingHttpHeaders => {
  const out: Http.OutgoingHttpHeaders = {}
  for (const [name, value] of Object.entries(headers)) if (!HOP_BY_HOP.has(name)) out[name] = value
  return out
}

const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 })

const server = https.createServer(
  {
    cert: readFileSync(certFile),
    key: readFileSync(keyFile),
    ca: readFileSync(caFile),
    minVersion: "TLSv1.3",
    requestCert: true,
    rejectUnauthorized: true,
    requestTimeout: 0,
  },
  (req, res) => {
    const upstream = http.request(
      {
        host: "127.0.0.1",
        port: Number(backendPort),
        method: req.method,
        path: req.url,
        headers: endToEnd(req.headers),
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
        answer.pipe(res)
      },
    )
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-length": 0 })
      res.end()
    })
    req.pipe(upstream)
  },
)

server.on("upgrade", (req: Http.IncomingMessage, socket: net.Socket, head: Buffer) => {
  const upstream = net.connect(Number(backendPort), "127.0.0.1", () => {
    let raw = `${req.method} ${req.url} HTTP/1.1\r\n`
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`
    upstream.write(`${raw}\r\n`)
    if (head.length > 0) upstream.write(head)
    upstream.pipe(socket)
    socket.pipe(upstream)
  })
  const end = (): void => {
    upstream.destroy()
    socket.destroy()
  }
  upstream.on("error", end)
  socket.on("error", end)
  upstream.on("close", end)
  socket.on("close", end)
})

server.listen(Number(port), "127.0.0.1")
process.once("SIGTERM", () => process.exit(0))
