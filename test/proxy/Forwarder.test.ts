/**
 * Forwarding through the whole sidecar (in-process, real mTLS on 127.0.0.1)
 * to a test application that records exactly what reaches it.
 */
import { createHash, X509Certificate } from "node:crypto"
import * as https from "node:https"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Env } from "../../src/config/SidecarConfig.ts"
import { type Backend, type SeenRequest, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import type { CapturedLog } from "../support/logs.ts"
import { inProcess } from "../support/sidecar.ts"
import { dechunk, nextMessage, openWebSocket, rawGet, rawRequest } from "../support/tlsClient.ts"

let pki: Fixtures
let backend: Backend

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

const sidecars = inProcess()

/** Starts a sidecar forwarding to the test backend; its URL and its log lines. */
const sidecar = (env: Env = {}) => sidecars.start(pki, { FORWARD_PORT: String(backend.port), ...env })

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const seenBy = (reply: { readonly body: string }): SeenRequest =>
  JSON.parse(dechunk(reply.body)) as SeenRequest
const waitFor = async (predicate: () => boolean, ms = 2000) => {
  for (let waited = 0; !predicate() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10))
  return predicate()
}

describe("forwarding to FORWARD_PORT", () => {
  let url: string
  let logs: Array<CapturedLog>
  beforeAll(async () => {
    ;({ url, logs } = await sidecar())
  })

  it.each([
    "/",
    "/notebooks/Untitled.ipynb",
    "/a%2Fb",
    "/a/../b",
    "/a/./b",
    "//double//slash",
    "/caf%C3%A9",
    "/semi;colon,comma",
    "/x?q=%20%2B+&a=1&a=2",
    "/x?redirect=https://a.example/b?c=d",
    "/x?%00=%FF",
    "/dashboard/",
    "//dashboard",
    "/%64ashboard",
    "/api/status/",
    "/api//status",
    "/API/STATUS",
  ])("passes the request-target %s to the application byte for byte", async (target) => {
    const reply = await rawGet(url, pki, target)
    expect(reply.status).toBe(200)
    expect(seenBy(reply).url).toBe(target)
  })

  it.each([
    ["/api/status", "sidecar"],
    ["/api/status?x=1", "sidecar"],
    ["/api/attestation", "sidecar"],
    ["/dashboard", "sidecar"],
    ["/dashboard?tab=1", "sidecar"],
    ["/", "application"],
    ["/dashboard/", "application"],
    ["//dashboard", "application"],
    ["/%64ashboard", "application"],
    ["/api/status/", "application"],
  ])("serves %s from the %s", async (target, side) => {
    const before = backend.seen.length
    const reply = await rawGet(url, pki, target)
    expect(reply.status).toBe(200)
    const reachedApp = backend.seen.length > before
    expect(reachedApp ? "application" : "sidecar").toBe(side)
  })

  it("keeps Host, sets the forwarding headers itself and strips spoofed ones", async () => {
    const reply = await rawGet(url, pki, "/headers", [
      "X-Forwarded-For: 6.6.6.6",
      "x-forwarded-for: 7.7.7.7",
      "X_Forwarded_Host: evil.example",
      "Forwarded: for=6.6.6.6;proto=http",
      "X-Real-IP: 6.6.6.6",
      "X-Forwarded-Proto: http",
      'X-Forwarded-Client-Cert: Hash=forged;Subject="CN=admin"',
      "x_forwarded_client_cert: Hash=forged",
      "Authorization: Bearer app-token",
      "Cookie: a=1",
      "Cookie: b=2",
    ])
    const seen = seenBy(reply)
    expect(seen.headers.host).toBe("app.example")
    expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1")
    expect(seen.headers["x-real-ip"]).toBe("127.0.0.1")
    expect(seen.headers["x-forwarded-proto"]).toBe("https")
    expect(seen.headers["x-forwarded-host"]).toBe("app.example")
    expect(seen.headers["x-forwarded-port"]).toBe(new URL(url).port)
    expect(seen.headers.forwarded).toBeUndefined()
    expect(seen.headers.authorization).toBe("Bearer app-token")
    // Exactly one of each sidecar header reached the app, whatever the client sent.
    const names = seen.rawHeaders
      .filter((_, i) => i % 2 === 0)
      .map((n) => n.toLowerCase().replaceAll("_", "-"))
    for (const name of [
      "x-forwarded-for",
      "x-forwarded-host",
      "x-real-ip",
      "x-forwarded-client-cert",
      "host",
    ]) {
      expect(names.filter((n) => n === name)).toHaveLength(1)
    }
    // The client identity is the verified certificate's, in Envoy's XFCC format.
    const der = new X509Certificate(pki.client.certPem).raw
    const xfcc = String(seen.headers["x-forwarded-client-cert"])
    expect(xfcc).toContain(`Hash=${createHash("sha256").update(der).digest("hex")}`)
    expect(xfcc).toContain('Subject="CN=developer,O=Confidential Containers,C=US"')
  })

  it("does not let Connection: remove Host or the sidecar's headers, but drops what it names", async () => {
    const reply = await rawGet(url, pki, "/connection", [
      "X-Custom: drop-me",
      "X-Keep: kept",
      "Connection: x-custom, host, X-Forwarded-For, x-real-ip, x-forwarded-client-cert",
    ])
    const seen = seenBy(reply)
    expect(seen.headers["x-custom"]).toBeUndefined()
    expect(seen.headers["x-keep"]).toBe("kept")
    expect(seen.headers.host).toBe("app.example")
    expect(seen.headers["x-forwarded-for"]).toBe("127.0.0.1")
    expect(seen.headers["x-real-ip"]).toBe("127.0.0.1")
    expect(seen.headers["x-forwarded-client-cert"]).toMatch(/^Hash=[0-9a-f]{64};/)
  })

  it("rejects a request with both Content-Length and Transfer-Encoding before it reaches the app", async () => {
    const before = backend.seen.length
    const reply = await rawRequest(
      url,
      pki,
      "POST /smuggle HTTP/1.1\r\nHost: app.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /second HTTP/1.1\r\nHost: app.example\r\n\r\n",
    )
    expect(reply.status).toBe(400)
    await new Promise((r) => setTimeout(r, 100))
    expect(backend.seen.slice(before).map((s) => s.url)).toEqual([])
  })

  it("answers Expect: 100-continue itself, so uploads do not stall", async () => {
    const body = Buffer.alloc(256 * 1024, 7)
    const result = await new Promise<{ continued: boolean; seen: SeenRequest }>((resolve, reject) => {
      let continued = false
      const request = https.request(`${url}/upload`, {
        method: "POST",
        agent: false,
        ...client(),
        headers: { expect: "100-continue", "content-length": body.length },
      })
      // The body is sent only once the 100 arrives: a stalled proxy makes this test time out.
      request.on("continue", () => {
        continued = true
        request.end(body)
      })
      request.on("response", (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (c: Buffer) => chunks.push(c))
        response.on("end", () => resolve({ continued, seen: JSON.parse(Buffer.concat(chunks).toString()) }))
      })
      request.on("error", reject)
    })
    expect(result.continued).toBe(true)
    expect(result.seen.bodyBytes).toBe(body.length)
    expect(result.seen.bodySha256).toBe(createHash("sha256").update(body).digest("hex"))
  })

  it("streams responses as they are produced (server-sent events)", async () => {
    const first = await new Promise<string>((resolve, reject) => {
      const request = https.get(`${url}/sse`, { agent: false, ...client() }, (response) => {
        response.once("data", (chunk: Buffer) => {
          resolve(chunk.toString())
          request.destroy()
        })
      })
      request.on("error", (e: NodeJS.ErrnoException) => (e.code === "ECONNRESET" ? undefined : reject(e)))
    })
    expect(first).toContain("data: tick 0")
  })

  it("proxies WebSockets: text and binary both ways, close code and reason preserved", async () => {
    const socket = await openWebSocket(url, pki, "/ws?token=abc")
    socket.send("hello")
    const text = await nextMessage(socket)
    expect([text.data.toString(), text.isBinary]).toEqual(["hello", false])
    const binary = Buffer.from([0, 1, 2, 255, 254])
    socket.send(binary)
    const echoed = await nextMessage(socket)
    expect(echoed.isBinary).toBe(true)
    expect(Buffer.compare(echoed.data, binary)).toBe(0)
    const closed = new Promise<[number, string]>((resolve) =>
      socket.once("close", (code: number, reason: Buffer) => resolve([code, reason.toString()])),
    )
    socket.send("close:4001:bye")
    expect(await closed).toEqual([4001, "bye"])
    const upgrade = backend.seenUpgrades.at(-1)
    expect(upgrade?.url).toBe("/ws?token=abc")
    expect(upgrade?.headers["x-forwarded-client-cert"]).toMatch(/^Hash=/)
    expect(upgrade?.headers["x-forwarded-for"]).toBe("127.0.0.1")
  })

  it("carries 50 concurrent WebSockets", async () => {
    const sockets = await Promise.all(Array.from({ length: 50 }, () => openWebSocket(url, pki)))
    const replies = await Promise.all(
      sockets.map((socket, i) => {
        const reply = nextMessage(socket)
        socket.send(`message ${i}`)
        return reply
      }),
    )
    expect(replies.map((r) => r.data.toString())).toEqual(sockets.map((_, i) => `message ${i}`))
    expect(await waitFor(() => backend.wsConnections >= 50)).toBe(true)
    await Promise.all(
      sockets.map((socket) => new Promise((resolve) => socket.once("close", resolve).close(1000, "done"))),
    )
    expect(await waitFor(() => backend.wsConnections === 0)).toBe(true)
  })

  it("logs one access line per proxied request without query or credentials", async () => {
    await rawGet(url, pki, "/logged?token=s3cret", ["Authorization: Bearer t0ken", "Cookie: session=c00kie"])
    expect(
      await waitFor(() => logs.some((l) => l.message === "proxied" && l.annotations.path === "/logged")),
    ).toBe(true)
    const line = logs.find((l) => l.message === "proxied" && l.annotations.path === "/logged")
    expect(line?.annotations).toMatchObject({ method: "GET", status: 200, client: "developer" })
    expect(Number(line?.annotations.bytesOut)).toBeGreaterThan(0)
    expect(typeof line?.annotations.durationMs).toBe("number")
    const all = JSON.stringify(logs)
    for (const secret of ["s3cret", "t0ken", "c00kie"]) expect(all).not.toContain(secret)
  })
})

describe("forwarding when the application misbehaves", () => {
  it("answers 502 naming the port while the app is down, then recovers", async () => {
    const app = await startBackend()
    const { url } = await sidecar({ FORWARD_PORT: String(app.port) })
    expect((await get(`${url}/before`, client())).status).toBe(200)
    await app.stop()
    const down = await get(`${url}/while-down`, client(), { accept: "application/json" })
    expect(down.status).toBe(502)
    expect(JSON.parse(down.body)).toEqual({
      error: "Bad Gateway",
      status: 502,
      detail: `The application is not reachable on port ${app.port}.`,
    })
    expect(down.body).not.toMatch(/ECONNREFUSED|Error|at /)
    const html = await get(`${url}/while-down`, client(), { accept: "text/html" })
    expect(html.status).toBe(502)
    expect(html.body).toContain(`not reachable on port ${app.port}`)
    // The sidecar's own paths keep working meanwhile.
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    await app.start()
    expect((await get(`${url}/after`, client())).status).toBe(200)
    await app.close()
  })

  it("ends the client's connection when the app resets mid-response, and keeps serving", async () => {
    const { url } = await sidecar()
    const outcome = await new Promise<string>((resolve) => {
      const request = https.get(`${url}/reset`, { agent: false, ...client() }, (response) => {
        let bytes = 0
        response.on("data", (c: Buffer) => {
          bytes += c.length
        })
        response.on("end", () => resolve(`ended cleanly after ${bytes} bytes`))
        response.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`))
        response.on("aborted", () => resolve("aborted"))
      })
      request.on("error", (e: NodeJS.ErrnoException) => resolve(`error ${e.code ?? e.message}`))
    })
    expect(outcome).toMatch(/^(error|aborted)/)
    expect((await get(`${url}/still-alive`, client())).status).toBe(200)
    // No socket to the app is left behind beyond the keep-alive pool.
    expect(await waitFor(() => backend.sockets <= 8)).toBe(true)
  })

  it("answers 504 when the app does not start its response within FORWARD_RESPONSE_TIMEOUT", async () => {
    const { url } = await sidecar({ FORWARD_RESPONSE_TIMEOUT: "300ms" })
    const reply = await get(`${url}/slow?ms=2000`, client())
    expect(reply.status).toBe(504)
    expect(JSON.parse(reply.body).detail).toContain("did not answer within 300ms")
  })
})

describe("upgrades the sidecar does not forward", () => {
  it("refuses a WebSocket on a sidecar path, and every WebSocket when nothing is forwarded", async () => {
    const { url } = await sidecar()
    const before = backend.seenUpgrades.length
    await expect(openWebSocket(url, pki, "/dashboard")).rejects.toThrow("unexpected response 404")
    const { url: plain } = await sidecar({ FORWARD_PORT: "" })
    await expect(openWebSocket(plain, pki, "/ws")).rejects.toThrow("unexpected response 404")
    expect(backend.seenUpgrades.length).toBe(before)
  })
})

describe("SIDECAR_PATH_PREFIX", () => {
  it("moves the sidecar's paths so the application keeps its own /api/status", async () => {
    const { url } = await sidecar({ SIDECAR_PATH_PREFIX: "/.sidecar" })
    const app = await rawGet(url, pki, "/api/status")
    expect(seenBy(app).url).toBe("/api/status")
    const own = await get(`${url}/.sidecar/api/status`, client())
    expect(JSON.parse(own.body).podName).toBe("web-0")
    const dashboard = await get(`${url}/.sidecar/dashboard`, client())
    expect(dashboard.body).toContain('href="/.sidecar/api/status"')
  })
})
