/**
 * HTTP/2 on the mTLS listener (on by default; HTTP2=false turns it off): an h2 client
 * reaches the sidecar's paths and the app as an HTTP/1.1 client does, the app still receives
 * HTTP/1.1, and HTTP/1.1 clients on the same port are unchanged. With HTTP/2 off, h2 is not offered.
 */
import * as http2 from "node:http2"
import * as net from "node:net"
import * as tls from "node:tls"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import { type Backend, type SeenRequest, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { type CapturedLog, capture } from "../support/logs.ts"
import { inProcess, settingsFor, start } from "../support/sidecar.ts"

let pki: Fixtures
let backend: Backend
const sidecars = inProcess()
beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

interface H2Reply {
  readonly status: number
  readonly headers: http2.IncomingHttpHeaders
  readonly body: string
  readonly bytes: number
}

/** One HTTP/2 session with the client certificate; `request` sends one exchange on it. */
const connect = (url: string) => {
  const session = http2.connect(url, { ...client(), servername: "localhost" })
  session.on("error", () => {})
  const request = (headers: http2.OutgoingHttpHeaders, body?: string) =>
    new Promise<H2Reply>((resolve, reject) => {
      const stream = session.request(headers, { endStream: body === undefined })
      let status = 0
      let responseHeaders: http2.IncomingHttpHeaders = {}
      const chunks: Array<Buffer> = []
      stream.on("response", (h) => {
        status = Number(h[":status"])
        responseHeaders = h
      })
      stream.on("data", (chunk: Buffer) => chunks.push(chunk))
      stream.on("end", () => {
        const all = Buffer.concat(chunks)
        resolve({ status, headers: responseHeaders, body: all.toString("utf8"), bytes: all.length })
      })
      stream.on("error", reject)
      if (body !== undefined) stream.end(body)
    })
  return { session, request, close: () => session.close() }
}

const seen = (reply: H2Reply): SeenRequest => JSON.parse(reply.body) as SeenRequest

describe("HTTP/2", () => {
  let url: string
  let logs: Array<CapturedLog>
  beforeAll(async () => {
    ;({ url, logs } = await sidecars.start(pki, { HTTP2: "true", FORWARD_PORT: String(backend.port) }))
  })

  it("is offered by ALPN, after http/1.1 clients keep getting http/1.1", async () => {
    const alpn = (protocols: Array<string>) =>
      new Promise<string | false | null>((resolve, reject) => {
        const socket = tls.connect({
          host: "127.0.0.1",
          port: Number(new URL(url).port),
          ...client(),
          servername: "localhost",
          ALPNProtocols: protocols,
        })
        socket.once("secureConnect", () => {
          resolve(socket.alpnProtocol)
          socket.destroy()
        })
        socket.once("error", reject)
      })
    expect(await alpn(["h2", "http/1.1"])).toBe("h2")
    expect(await alpn(["http/1.1"])).toBe("http/1.1")
    // And an HTTP/1.1 client is served as before.
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  })

  it("serves the sidecar's own paths", async () => {
    const h2 = connect(url)
    const status = await h2.request({ ":path": "/api/status" })
    expect(status.status).toBe(200)
    expect(JSON.parse(status.body).podName).toBe("web-0")
    expect(status.headers["content-security-policy"]).toBeDefined()
    expect(status.headers.connection).toBeUndefined()
    const dashboard = await h2.request({ ":path": "/dashboard" })
    expect(dashboard.status).toBe(200)
    expect(dashboard.body).toContain("CoCo secure access")
    h2.close()
  })

  it("forwards to the app over HTTP/1.1 with Host from :authority and the sidecar's headers", async () => {
    const h2 = connect(url)
    const reply = await h2.request({
      ":path": "/app/x?q=1",
      ":authority": "jupyter.example:8443",
      "x-forwarded-for": "6.6.6.6",
      cookie: ["a=1", "b=2"],
    })
    expect(reply.status).toBe(200)
    const request = seen(reply)
    expect(request.url).toBe("/app/x?q=1")
    expect(request.headers.host).toBe("jupyter.example:8443")
    expect(request.headers["x-forwarded-host"]).toBe("jupyter.example:8443")
    expect(request.headers["x-forwarded-for"]).toBe("127.0.0.1")
    expect(request.headers["x-forwarded-proto"]).toBe("https")
    expect(request.headers.cookie).toBe("a=1; b=2")
    expect(String(request.headers["x-forwarded-client-cert"])).toContain("Subject=")
    const names = request.rawHeaders.filter((_, i) => i % 2 === 0)
    expect(names.some((name) => name.startsWith(":"))).toBe(false)
    h2.close()
  })

  it("forwards a body sent without Content-Length", async () => {
    const h2 = connect(url)
    const reply = await h2.request({ ":path": "/upload-h2", ":method": "POST" }, "ten bytes!")
    expect(reply.status).toBe(200)
    expect(seen(reply).bodyBytes).toBe(10)
    h2.close()
  })

  it("carries concurrent streams on one connection, not one at a time", async () => {
    const h2 = connect(url)
    const started = Date.now()
    const replies = await Promise.all(
      Array.from({ length: 5 }, () => h2.request({ ":path": "/slow?ms=400" })),
    )
    expect(replies.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
    expect(Date.now() - started).toBeLessThan(1600)
    h2.close()
  })

  it("answers 400 when Host and :authority differ", async () => {
    const h2 = connect(url)
    const reply = await h2.request({ ":path": "/app/y", ":authority": "a.example", host: "b.example" })
    expect(reply.status).toBe(400)
    expect(reply.body).toContain("Host and :authority differ")
    // The connection goes on.
    expect((await h2.request({ ":path": "/api/status" })).status).toBe(200)
    h2.close()
  })

  it("answers 431 for a header block above MAX_HEADER_SIZE", async () => {
    const h2 = connect(url)
    const before = backend.seen.length
    // The first request of a session goes out before the client can acknowledge the server's
    // SETTINGS, so nghttp2's limit does not bind yet: the sidecar's own check answers.
    const reply = await h2.request({ ":path": "/app/z", "x-big": "x".repeat(20_000) })
    expect(reply.status).toBe(431)
    expect(reply.body).toContain("larger than 16384 bytes")
    expect(backend.seen.length).toBe(before)
    h2.close()
  })

  it("relays the app's answers without its connection headers", async () => {
    const h2 = connect(url)
    expect((await h2.request({ ":path": "/status/599" })).status).toBe(599)
    const chunked = await h2.request({ ":path": "/download?bytes=1000&chunk=100" })
    expect(chunked.status).toBe(200)
    expect(chunked.bytes).toBe(1000)
    expect(chunked.headers["transfer-encoding"]).toBeUndefined()
    h2.close()
  })

  it("tunnels a WebSocket over an HTTP/2 stream (RFC 8441) to the app's HTTP/1.1 WebSocket", async () => {
    const session = http2.connect(url, { ...client(), servername: "localhost" })
    session.on("error", () => {})
    // The server announces extended CONNECT in its SETTINGS.
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()))
    expect(session.remoteSettings.enableConnectProtocol).toBe(true)
    const stream = session.request({
      ":method": "CONNECT",
      ":protocol": "websocket",
      ":path": "/ws",
      ":scheme": "https",
      ":authority": "localhost",
      "sec-websocket-version": "13",
    })
    const status = await new Promise<number>((resolve) =>
      stream.once("response", (h) => resolve(Number(h[":status"]))),
    )
    expect(status).toBe(200)
    // A masked text frame "hello" (RFC 6455 §5.2), then the app's echo (unmasked) comes back.
    const mask = Buffer.from([1, 2, 3, 4])
    const payload = Buffer.from("hello")
    stream.write(
      Buffer.concat([
        Buffer.from([0x81, 0x80 | payload.length]),
        mask,
        payload.map((b, i) => b ^ (mask[i % 4] ?? 0)),
      ]),
    )
    const echo = await new Promise<Buffer>((resolve) =>
      stream.once("data", (chunk: Buffer) => resolve(chunk)),
    )
    expect(echo[0]).toBe(0x81)
    expect(echo.subarray(2).toString()).toBe("hello")
    expect(backend.seenUpgrades.at(-1)?.headers["sec-websocket-key"]).toBeDefined()
    expect(String(backend.seenUpgrades.at(-1)?.headers["x-forwarded-client-cert"])).toContain("Subject=")
    stream.close()
    session.close()
  })

  it("refuses an extended CONNECT to a sidecar path, and a plain CONNECT", async () => {
    const session = http2.connect(url, { ...client(), servername: "localhost" })
    session.on("error", () => {})
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()))
    const statusOf = (headers: http2.OutgoingHttpHeaders) =>
      new Promise<number>((resolve) => {
        const stream = session.request(headers)
        stream.on("error", () => resolve(-1))
        stream.once("response", (h) => resolve(Number(h[":status"])))
      })
    expect(
      await statusOf({
        ":method": "CONNECT",
        ":protocol": "websocket",
        ":path": "/api/status",
        ":scheme": "https",
        ":authority": "localhost",
      }),
    ).toBe(404)
    expect(await statusOf({ ":method": "CONNECT", ":authority": "example.com:443" })).toBe(405)
    session.close()
  })

  it("logs and counts HTTP/2 exchanges like the others", async () => {
    const h2 = connect(url)
    await h2.request({ ":path": "/logged-h2" })
    h2.close()
    for (let i = 0; i < 20 && !logs.some((l) => l.annotations.path === "/logged-h2"); i++) {
      await new Promise((r) => setTimeout(r, 50))
    }
    const line = logs.find((l) => l.message === "proxied" && l.annotations.path === "/logged-h2")
    expect(line?.annotations.status).toBe(200)
    expect(line?.annotations.client).toBe("developer")
  })
})

describe("HTTP/2 and an app whose answer HTTP/2 cannot carry", () => {
  it("answers 502 for a status above 599, and keeps serving", async () => {
    const app = net.createServer((socket) => {
      socket.once("data", () => socket.end("HTTP/1.1 999 Odd\r\ncontent-length: 2\r\n\r\nok"))
      socket.on("error", () => {})
    })
    await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve))
    const port = (app.address() as net.AddressInfo).port
    try {
      const { url } = await sidecars.start(pki, { HTTP2: "true", FORWARD_PORT: String(port) })
      const h2 = connect(url)
      expect((await h2.request({ ":path": "/odd" })).status).toBe(502)
      expect((await h2.request({ ":path": "/api/status" })).status).toBe(200)
      h2.close()
    } finally {
      app.close()
    }
  })
})

describe("HTTP/2 and the allow-lists and metrics", () => {
  it("refuses a client the allow-lists do not name with 403, and counts HTTP/2 exchanges", async () => {
    const { url } = await sidecars.start(pki, {
      ALLOW_CN: "someone-else",
      FORWARD_PORT: String(backend.port),
    })
    const h2 = connect(url)
    const denied = await h2.request({ ":path": "/app/secret" })
    expect(denied.status).toBe(403)
    h2.close()
    const allowed = await sidecars.start(pki, { FORWARD_PORT: String(backend.port) })
    const ok = connect(allowed.url)
    for (let i = 0; i < 3; i++) expect((await ok.request({ ":path": `/counted/${i}` })).status).toBe(200)
    const metrics = await ok.request({ ":path": "/api/metrics" })
    expect(metrics.body).toMatch(/coco_http_requests_total\{route="app",status="200"\} 3\b/)
    ok.close()
  })
})

describe("HTTP/2 and the drain", () => {
  it("sends GOAWAY, lets a stream in flight finish, and shuts down", async () => {
    const scope = Effect.runSync(Scope.make())
    const url = await Effect.runPromise(
      start(
        settingsFor({ HTTP2: "true", FORWARD_PORT: String(backend.port) }),
        MemoryResourceClient.make(resourcesFor(pki)).layer,
      ).pipe(Effect.provide(capture().layer), Scope.provide(scope)),
    )
    const h2 = connect(url)
    const goaway = new Promise<void>((resolve) => h2.session.once("goaway", () => resolve()))
    const inFlight = h2.request({ ":path": "/slow?ms=800" })
    await new Promise((r) => setTimeout(r, 200))
    const closed = Effect.runPromise(Scope.close(scope, Exit.void))
    await goaway
    expect((await inFlight).status).toBe(200)
    await closed
  })
})

describe("HTTP/2 off (HTTP2=false)", () => {
  it("is not offered: an h2-only client fails the handshake, HTTP/1.1 is served", async () => {
    const { url } = await sidecars.start(pki, { HTTP2: "false" })
    const failed = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: Number(new URL(url).port),
        ...client(),
        servername: "localhost",
        ALPNProtocols: ["h2"],
      })
      socket.once("secureConnect", () => resolve(`connected: ${String(socket.alpnProtocol)}`))
      socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
    })
    expect(failed).toMatch(/NO_APPLICATION_PROTOCOL|connected: false/)
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  })
})
