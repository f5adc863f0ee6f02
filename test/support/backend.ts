/**
 * The application behind the proxy: a plain HTTP/1.1 + WebSocket server on 127.0.0.1 that records
 * exactly what reaches it, so the proxy tests can check what the sidecar forwards.
 *
 * Routes (by path; the query is ignored unless stated):
 * - any method, any other path: read the whole body (hashed while streaming) and answer 200 JSON
 *   with the {@link SeenRequest} it recorded.
 * - `POST /upload`: like the default but answers only `{ bodyBytes, bodySha256 }`.
 * - `GET /download?bytes=N&chunk=K[&length=1]`: N bytes of deterministic content (see
 *   {@link expectedDownloadSha256}) in writes of K bytes (default 64 KiB), honoring backpressure;
 *   chunked unless `length=1`.
 * - `GET /slow?ms=M`: answers "slow done" after M ms.
 * - `GET /reset[?length=1]`: status, headers and 1 KiB of body, then the socket is destroyed
 *   (chunked; with `length=1` a Content-Length of 1 MiB is announced instead).
 * - `GET /sse`: `data: tick N\n\n` now and every 50 ms until the client goes away.
 * - `GET /status/:code`: that status (200..599) with a short text body.
 * - WebSocket upgrade at `/ws` (any query): echoes each message with its type; the text message
 *   `close:<code>:<reason>` makes the server close with that code and reason. Other upgrade paths
 *   get `404 Not Found` and the socket is destroyed.
 *
 * Every request is recorded in `seen` once its body has been fully received (all routes); every
 * upgrade request (any path) in `seenUpgrades`.
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import type { AddressInfo, Socket } from "node:net"
import type { Duplex } from "node:stream"
import { type RawData, type WebSocket, WebSocketServer } from "ws"

export type Headers = Readonly<Record<string, string | ReadonlyArray<string> | undefined>>

export interface SeenRequest {
  readonly method: string
  /** `req.url` exactly as received (raw path + query). */
  readonly url: string
  readonly headers: Headers
  /** `req.rawHeaders`: names as sent, duplicates kept. */
  readonly rawHeaders: ReadonlyArray<string>
  readonly bodyBytes: number
  /** Hex SHA-256 of the request body. */
  readonly bodySha256: string
  readonly remoteAddress: string | undefined
}

export interface SeenUpgrade {
  readonly url: string
  readonly headers: Headers
}

export interface Backend {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Every request whose body was fully received, in order. */
  readonly seen: ReadonlyArray<SeenRequest>
  /** Every upgrade request (any path), in order. */
  readonly seenUpgrades: ReadonlyArray<SeenUpgrade>
  /** Currently open WebSocket connections. */
  readonly wsConnections: number
  /** Currently open TCP sockets (HTTP and upgraded). */
  readonly sockets: number
  /** Bytes handed to the socket by `GET /download` so far (all downloads): shows backpressure. */
  readonly downloadedBytes: number
  /** Closes the WebSocket clients and the server, destroying every socket. Idempotent. */
  close(): Promise<void>
  /** Stops listening and destroys every socket (the application is "down"); the port is kept. */
  stop(): Promise<void>
  /** Listens again on the same port (the application is "back"). */
  start(): Promise<void>
}

const DOWNLOAD_SEED = 0x9e3779b9
const POOL_BYTES = 64 * 1024

/**
 * The deterministic download content as a sequential source: each call returns the next `n` bytes.
 * xorshift32 words written little-endian.
 */
const downloadSource = (): ((n: number) => Buffer) => {
  let state = DOWNLOAD_SEED
  const pool = Buffer.allocUnsafe(POOL_BYTES)
  let position = POOL_BYTES
  const refill = (): void => {
    for (let offset = 0; offset < POOL_BYTES; offset += 4) {
      state ^= state << 13
      state ^= state >>> 17
      state ^= state << 5
      state >>>= 0
      pool.writeUInt32LE(state, offset)
    }
    position = 0
  }
  return (n) => {
    const out = Buffer.allocUnsafe(n)
    let filled = 0
    while (filled < n) {
      if (position === POOL_BYTES) refill()
      const take = Math.min(n - filled, POOL_BYTES - position)
      pool.copy(out, filled, position, position + take)
      position += take
      filled += take
    }
    return out
  }
}

/** The hex SHA-256 of the first `n` bytes `GET /download?bytes=n` sends, computed locally. */
export const expectedDownloadSha256 = (n: number): string => {
  const next = downloadSource()
  const hash = createHash("sha256")
  for (let remaining = n; remaining > 0; remaining -= POOL_BYTES)
    hash.update(next(Math.min(remaining, POOL_BYTES)))
  return hash.digest("hex")
}

const splitUrl = (url: string): { readonly path: string; readonly query: URLSearchParams } => {
  const mark = url.indexOf("?")
  return mark === -1
    ? { path: url, query: new URLSearchParams() }
    : { path: url.slice(0, mark), query: new URLSearchParams(url.slice(mark + 1)) }
}

const intParam = (query: URLSearchParams, name: string, fallback: number): number | undefined => {
  const raw = query.get(name)
  if (raw === null) return fallback
  if (!/^\d+$/.test(raw)) return undefined
  const value = Number(raw)
  return Number.isSafeInteger(value) ? value : undefined
}

const sendText = (res: http.ServerResponse, status: number, text: string): void => {
  const body = Buffer.from(text, "utf8")
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": body.length })
  res.end(body)
}

const sendJson = (res: http.ServerResponse, value: unknown): void => {
  const body = Buffer.from(JSON.stringify(value), "utf8")
  res.writeHead(200, { "content-type": "application/json", "content-length": body.length })
  res.end(body)
}

/** Resolves on 'drain' or when the response is closed (client gone), whichever is first. */
const drained = (res: http.ServerResponse): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done)
      res.off("close", done)
      resolve()
    }
    res.on("drain", done)
    res.on("close", done)
  })

let downloadedBytes = 0

const download = async (res: http.ServerResponse, bytes: number, chunk: number, length: boolean) => {
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    ...(length ? { "content-length": bytes } : {}),
  })
  const next = downloadSource()
  let sent = 0
  while (sent < bytes && !res.destroyed) {
    const size = Math.min(chunk, bytes - sent)
    sent += size
    downloadedBytes += size
    if (!res.write(next(size))) await drained(res)
  }
  if (!res.destroyed) res.end()
}

const slow = (res: http.ServerResponse, ms: number): void => {
  const timer = setTimeout(() => sendText(res, 200, "slow done"), ms)
  res.once("close", () => clearTimeout(timer))
}

const reset = (req: http.IncomingMessage, res: http.ServerResponse, length: boolean): void => {
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    ...(length ? { "content-length": 1024 * 1024 } : {}),
  })
  res.write(Buffer.alloc(1024, 0x61), () => req.socket.destroy())
}

const sse = (res: http.ServerResponse): void => {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
  let tick = 0
  const send = (): void => {
    res.write(`data: tick ${tick}\n\n`)
    tick += 1
  }
  send()
  const timer = setInterval(send, 50)
  res.once("close", () => clearInterval(timer))
}

const echoWebSocket = (ws: WebSocket): void => {
  ws.on("error", () => {})
  ws.on("message", (data: RawData, isBinary: boolean) => {
    const payload = Array.isArray(data)
      ? Buffer.concat(data)
      : Buffer.isBuffer(data)
        ? data
        : Buffer.from(data)
    if (!isBinary) {
      const text = payload.toString("utf8")
      const match = /^close:(\d+):(.*)$/s.exec(text)
      if (match !== null) {
        try {
          ws.close(Number(match[1]), match[2] ?? "")
        } catch {
          ws.terminate()
        }
        return
      }
    }
    ws.send(payload, { binary: isBinary })
  })
}

export const startBackend = async (): Promise<Backend> => {
  const seen: Array<SeenRequest> = []
  const seenUpgrades: Array<SeenUpgrade> = []
  const sockets = new Set<Socket>()
  const wss = new WebSocketServer({ noServer: true })
  const server = http.createServer({ requestTimeout: 0 })
  server.keepAliveTimeout = 60_000

  server.on("connection", (socket: Socket) => {
    sockets.add(socket)
    socket.once("close", () => sockets.delete(socket))
  })

  server.on("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = req.url ?? ""
    const method = req.method ?? ""
    const { path, query } = splitUrl(url)
    const hash = createHash("sha256")
    let bodyBytes = 0
    const received = new Promise<SeenRequest>((resolve) => {
      req.on("data", (chunk: Buffer) => {
        hash.update(chunk)
        bodyBytes += chunk.length
      })
      req.on("end", () => {
        const request: SeenRequest = {
          method,
          url,
          headers: { ...req.headers },
          rawHeaders: [...req.rawHeaders],
          bodyBytes,
          bodySha256: hash.digest("hex"),
          remoteAddress: req.socket.remoteAddress,
        }
        seen.push(request)
        resolve(request)
      })
    })
    req.on("error", () => {})
    res.on("error", () => {})

    const status = /^\/status\/(\d{3})$/.exec(path)
    if (method === "GET" && path === "/download") {
      const bytes = intParam(query, "bytes", 0)
      const chunk = intParam(query, "chunk", 64 * 1024)
      if (bytes === undefined || chunk === undefined || chunk === 0)
        return sendText(res, 400, "bad bytes/chunk")
      void download(res, bytes, chunk, query.get("length") === "1")
    } else if (method === "POST" && path === "/upload") {
      void received.then((request) =>
        sendJson(res, { bodyBytes: request.bodyBytes, bodySha256: request.bodySha256 }),
      )
    } else if (method === "GET" && path === "/slow") {
      const ms = intParam(query, "ms", 0)
      if (ms === undefined) return sendText(res, 400, "bad ms")
      slow(res, ms)
    } else if (method === "GET" && path === "/reset") {
      reset(req, res, query.get("length") === "1")
    } else if (method === "GET" && path === "/sse") {
      sse(res)
    } else if (method === "GET" && status !== null) {
      const code = Number(status[1])
      if (code < 200 || code > 599) return sendText(res, 400, "bad status code")
      sendText(res, code, `status ${code}`)
    } else {
      void received.then((request) => sendJson(res, request))
    }
  })

  server.on("upgrade", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => {})
    const url = req.url ?? ""
    seenUpgrades.push({ url, headers: { ...req.headers } })
    if (splitUrl(url).path !== "/ws") {
      socket.once("finish", () => socket.destroy())
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      wss.emit("connection", ws, req)
      echoWebSocket(ws)
    })
  })

  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error)
      server.once("error", onError)
      server.listen(port, "127.0.0.1", () => {
        server.off("error", onError)
        resolve()
      })
    })

  /** Resolves once the server stopped listening and every tracked socket has emitted 'close'. */
  const stop = async (): Promise<void> => {
    for (const ws of wss.clients) ws.terminate()
    const socketsClosed = [...sockets].map(
      (socket) =>
        new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once("close", () => resolve()))),
    )
    const serverClosed = new Promise<void>((resolve) =>
      server.listening ? server.close(() => resolve()) : resolve(),
    )
    for (const socket of sockets) socket.destroy()
    await Promise.all([serverClosed, ...socketsClosed])
  }

  await listen(0)
  const port = (server.address() as AddressInfo).port
  let closed = false

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get seen() {
      return seen
    },
    get seenUpgrades() {
      return seenUpgrades
    },
    get wsConnections() {
      return wss.clients.size
    },
    get downloadedBytes() {
      return downloadedBytes
    },
    get sockets() {
      return sockets.size
    },
    close: async () => {
      if (closed) return
      closed = true
      await stop()
      await new Promise<void>((resolve) => wss.close(() => resolve()))
    },
    stop,
    start: () => (closed ? Promise.reject(new Error("backend is closed")) : listen(port)),
  }
}
