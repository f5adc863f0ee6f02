/** Self-test of the proxy-test backend over plain HTTP: a broken fixture would make proxy tests lie. */
import { createHash, randomBytes } from "node:crypto"
import * as http from "node:http"
import { afterEach, describe, expect, it } from "vitest"
import { WebSocket } from "ws"
import { type Backend, expectedDownloadSha256, type SeenRequest, startBackend } from "./backend.ts"

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  readonly complete: boolean
}

const request = (
  url: string,
  options: http.RequestOptions & { readonly body?: Buffer; readonly waitContinue?: boolean } = {},
): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const { body, waitContinue, ...rest } = options
    const req = http.request(url, { agent: false, ...rest }, (res) => {
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("error", reject)
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks),
          complete: res.complete,
        }),
      )
    })
    req.on("error", reject)
    if (body === undefined) req.end()
    else if (waitContinue === true) req.on("continue", () => req.end(body))
    else req.end(body)
  })

const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex")

const json = (reply: Reply): unknown => JSON.parse(reply.body.toString("utf8"))

const waitFor = async (condition: () => boolean, ms = 1000): Promise<void> => {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time")
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

const openWs = (url: string): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
  })

const nextMessage = (ws: WebSocket): Promise<{ readonly data: Buffer; readonly isBinary: boolean }> =>
  new Promise((resolve) =>
    ws.once("message", (data, isBinary) =>
      resolve({
        data: Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data),
        isBinary,
      }),
    ),
  )

describe("test backend", () => {
  let backend: Backend | undefined
  const started = async (): Promise<Backend> => {
    backend = await startBackend()
    return backend
  }
  afterEach(async () => {
    await backend?.close()
    backend = undefined
  })

  it("echoes method, raw url and headers exactly, and records the request", async () => {
    const b = await started()
    const reply = await request(`${b.url}/a%2Fb//c?x=%20&y=1`, {
      method: "PATCH",
      headers: { "X-Dup": ["one", "two"], "X-Case": "v" },
    })
    expect(reply.status).toBe(200)
    expect(reply.headers["content-type"]).toBe("application/json")
    const echoed = json(reply) as SeenRequest
    expect(echoed.method).toBe("PATCH")
    expect(echoed.url).toBe("/a%2Fb//c?x=%20&y=1")
    expect(echoed.headers["x-dup"]).toBe("one, two")
    expect(echoed.rawHeaders).toEqual(expect.arrayContaining(["X-Case", "v"]))
    expect(echoed.rawHeaders.filter((h) => h === "X-Dup")).toHaveLength(2)
    expect(echoed.bodyBytes).toBe(0)
    expect(echoed.bodySha256).toBe(sha256(Buffer.alloc(0)))
    expect(echoed.remoteAddress).toBe("127.0.0.1")
    expect(b.seen).toEqual([echoed])
  })

  it("hashes a 1 MiB body, with and without Expect: 100-continue", async () => {
    const b = await started()
    const body = randomBytes(1024 * 1024)
    const plain = json(await request(b.url, { method: "POST", body })) as SeenRequest
    expect(plain.bodyBytes).toBe(body.length)
    expect(plain.bodySha256).toBe(sha256(body))
    const upload = await request(`${b.url}/upload`, {
      method: "POST",
      headers: { expect: "100-continue", "content-length": body.length },
      body,
      waitContinue: true,
    })
    expect(json(upload)).toEqual({ bodyBytes: body.length, bodySha256: sha256(body) })
    expect(b.seen.map((s) => s.url)).toEqual(["/", "/upload"])
  })

  it("streams a deterministic download, chunked or with Content-Length", async () => {
    const b = await started()
    const chunked = await request(`${b.url}/download?bytes=3000000`)
    expect(chunked.status).toBe(200)
    expect(chunked.headers["content-type"]).toBe("application/octet-stream")
    expect(chunked.headers["transfer-encoding"]).toBe("chunked")
    expect(chunked.body.length).toBe(3_000_000)
    expect(sha256(chunked.body)).toBe(expectedDownloadSha256(3_000_000))
    const sized = await request(`${b.url}/download?bytes=100001&chunk=777&length=1`)
    expect(sized.headers["content-length"]).toBe("100001")
    expect(sha256(sized.body)).toBe(expectedDownloadSha256(100_001))
    expect(sized.body.subarray(0, 1000)).toEqual(chunked.body.subarray(0, 1000))
  })

  it("answers /slow, /status/:code and /sse", async () => {
    const b = await started()
    const t0 = Date.now()
    const slow = await request(`${b.url}/slow?ms=150`)
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140)
    expect(slow.body.toString()).toBe("slow done")
    expect((await request(`${b.url}/status/503`)).status).toBe(503)
    const ticks = await new Promise<string>((resolve, reject) => {
      const req = http.get(`${b.url}/sse`, { agent: false }, (res) => {
        expect(res.headers["content-type"]).toBe("text/event-stream")
        let text = ""
        res.on("data", (chunk: Buffer) => {
          text += chunk.toString()
          if (text.includes("data: tick 2\n\n")) {
            req.destroy()
            resolve(text)
          }
        })
      })
      req.on("error", reject)
    })
    expect(ticks.startsWith("data: tick 0\n\ndata: tick 1\n\n")).toBe(true)
    await waitFor(() => b.sockets === 0)
  })

  it("resets mid-response on /reset", async () => {
    const b = await started()
    for (const path of ["/reset", "/reset?length=1"]) {
      const outcome = await request(`${b.url}${path}`).then(
        (reply) => reply,
        (error: NodeJS.ErrnoException) => error,
      )
      if (outcome instanceof Error) expect(outcome.code).toBe("ECONNRESET")
      else {
        expect(outcome.complete).toBe(false)
        expect(outcome.body.length).toBeLessThan(1024 * 1024)
      }
    }
  })

  it("echoes WebSocket text and binary messages and closes on request", async () => {
    const b = await started()
    const ws = await openWs(`${b.url.replace("http", "ws")}/ws?room=1`)
    expect(b.wsConnections).toBe(1)
    expect(b.seenUpgrades.map((u) => u.url)).toEqual(["/ws?room=1"])
    expect(b.seenUpgrades[0]?.headers.upgrade).toBe("websocket")

    const text = nextMessage(ws)
    ws.send("héllo")
    expect(await text).toEqual({ data: Buffer.from("héllo"), isBinary: false })
    const binary = nextMessage(ws)
    const bytes = randomBytes(70_000)
    ws.send(bytes)
    expect(await binary).toEqual({ data: bytes, isBinary: true })

    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    )
    ws.send("close:4001:bye")
    expect(await closed).toEqual({ code: 4001, reason: "bye" })
    await waitFor(() => b.wsConnections === 0 && b.sockets === 0)

    await expect(openWs(`${b.url.replace("http", "ws")}/other`)).rejects.toThrow(/404/)
  })

  it("goes down on stop() and comes back on the same port on start()", async () => {
    const b = await started()
    const agent = new http.Agent({ keepAlive: true })
    expect((await request(b.url, { agent })).status).toBe(200)
    expect(b.sockets).toBe(1)
    await b.stop()
    expect(b.sockets).toBe(0)
    await expect(request(b.url)).rejects.toMatchObject({ code: "ECONNREFUSED" })
    await b.start()
    expect((await request(b.url, { agent })).status).toBe(200)
    expect(b.url).toBe(`http://127.0.0.1:${b.port}`)
    agent.destroy()
    await waitFor(() => b.sockets === 0)
  })
})
