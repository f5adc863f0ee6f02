/**
 * The application behind the sidecar during the benchmark: a minimal node:http + ws server on
 * 127.0.0.1, in its own process (started with `fork`, it sends `{ port }` to its parent).
 *
 * - `GET /small`: a 42-byte text body with Content-Length (any query: `/small?asset=7`).
 * - `GET /page?assets=N`: an HTML page (text/html, Content-Length) that references N assets
 *   `/small?asset=i` (the benchmark's page loads, {@link pageHtml}).
 * - `GET /download?bytes=N`: N bytes of {@link payload} in 64 KiB writes, honoring backpressure.
 * - `POST /upload[?hash=1]`: reads the body and answers `{ bytes, sha256 }` (sha256 only with hash=1).
 * - WebSocket `/ws`: echoes every message.
 * - anything else: 404.
 */
import { createHash, type Hash } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { WebSocketServer } from "ws"
import { PAGE_PATH, pageHtml, payload, SMALL_BODY, type UploadAnswer, WS_PATH } from "./shared.ts"

const CHUNK = 64 * 1024
const small = Buffer.from(SMALL_BODY)
const pages = new Map<number, Buffer>()
const pageOf = (assets: number): Buffer => {
  let page = pages.get(assets)
  if (page === undefined) {
    page = Buffer.from(pageHtml(assets))
    pages.set(assets, page)
  }
  return page
}
let content: Buffer = Buffer.alloc(0)
const contentOf = (n: number): Buffer => {
  if (content.length < n) content = payload(n)
  return content.subarray(0, n)
}

const download = (res: http.ServerResponse, bytes: number): void => {
  const body = contentOf(bytes)
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes })
  let offset = 0
  const pump = (): void => {
    while (offset < bytes && !res.destroyed) {
      const end = Math.min(offset + CHUNK, bytes)
      const more = res.write(body.subarray(offset, end))
      offset = end
      if (!more) {
        res.once("drain", pump)
        return
      }
    }
    if (!res.destroyed) res.end()
  }
  pump()
}

const upload = (req: http.IncomingMessage, res: http.ServerResponse, hash: boolean): void => {
  const hasher: Hash | undefined = hash ? createHash("sha256") : undefined
  let bytes = 0
  req.on("data", (chunk: Buffer) => {
    bytes += chunk.length
    hasher?.update(chunk)
  })
  req.on("end", () => {
    const answer: UploadAnswer = { bytes, sha256: hasher ? hasher.digest("hex") : null }
    const body = Buffer.from(JSON.stringify(answer))
    res.writeHead(200, { "content-type": "application/json", "content-length": body.length })
    res.end(body)
  })
}

const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 60_000 }, (req, res) => {
  req.on("error", () => {})
  res.on("error", () => {})
  const url = new URL(req.url ?? "/", "http://backend")
  if (req.method === "GET" && url.pathname === "/small") {
    res.writeHead(200, { "content-type": "text/plain", "content-length": small.length })
    res.end(small)
  } else if (req.method === "GET" && url.pathname === PAGE_PATH) {
    const assets = Math.max(0, Math.min(1000, Number(url.searchParams.get("assets") ?? 0) || 0))
    const page = pageOf(assets)
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length })
    res.end(page)
  } else if (req.method === "GET" && url.pathname === "/download") {
    download(res, Number(url.searchParams.get("bytes") ?? 0))
  } else if (req.method === "POST" && url.pathname === "/upload") {
    upload(req, res, url.searchParams.get("hash") === "1")
  } else {
    req.resume()
    res.writeHead(404, { "content-length": 0 })
    res.end()
  }
})

const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false })
server.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) => {
  socket.on("error", () => {})
  if (new URL(req.url ?? "/", "http://backend").pathname !== WS_PATH) {
    socket.destroy()
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("error", () => {})
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
})

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as AddressInfo
  process.send?.({ port })
})
// The parent going away ends the backend too.
process.on("disconnect", () => process.exit(0))
