/**
 * The limits on the mTLS listener, exercised with raw sockets against the sidecar in-process:
 * oversized request heads (MAX_HEADER_SIZE), slowloris (HEADERS_TIMEOUT), too many connections
 * (MAX_CONNECTIONS) and clients that never handshake (TLS_HANDSHAKE_TIMEOUT). Each limit is shown to
 * hit the misbehaving client while a well-behaved one is still served. Waits have generous bounds:
 * the assertions are about what happens, not about exact timings.
 */
import * as net from "node:net"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Env } from "../../src/config/SidecarConfig.ts"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import type { CapturedLog } from "../support/logs.ts"
import { inProcess } from "../support/sidecar.ts"

let pki: Fixtures
let backend: Backend
const sidecars = inProcess()
const sockets: Array<net.Socket> = []

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
})
afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await sidecars.closeAll()
  await backend.close()
})

const sidecar = (env: Env) => sidecars.start(pki, { FORWARD_PORT: String(backend.port), ...env })

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const waitFor = async (predicate: () => boolean, ms = 2000): Promise<boolean> => {
  for (let waited = 0; !predicate() && waited < ms; waited += 10) await sleep(10)
  return predicate()
}

/** A raw mTLS connection that records what it receives and how it ends. */
interface Conn {
  readonly socket: tls.TLSSocket
  /** Resolves once the TLS handshake completed, rejects if the connection ended first. */
  readonly secured: Promise<void>
  /** Resolves when the socket is closed, whatever the reason (never rejects). */
  readonly closed: Promise<{
    readonly received: string
    readonly error: string | undefined
    readonly at: number
  }>
  readonly received: () => string
  readonly isClosed: () => boolean
}

const connect = (url: string): Conn => {
  const { hostname, port } = new URL(url)
  const socket = tls.connect({
    host: hostname,
    port: Number(port),
    ...client(),
    servername: "localhost",
  })
  sockets.push(socket)
  const chunks: Array<Buffer> = []
  let error: string | undefined
  let done = false
  socket.on("data", (chunk: Buffer) => chunks.push(chunk))
  socket.on("error", (e: NodeJS.ErrnoException) => {
    error = e.code ?? e.message
  })
  const received = () => Buffer.concat(chunks).toString("latin1")
  const secured = new Promise<void>((resolve, reject) => {
    socket.once("secureConnect", () => resolve())
    socket.once("close", () =>
      reject(new Error(`closed before the handshake completed (${error ?? "no error"})`)),
    )
  })
  secured.catch(() => undefined)
  const closed = new Promise<{ received: string; error: string | undefined; at: number }>((resolve) =>
    socket.once("close", () => {
      done = true
      resolve({ received: received(), error, at: Date.now() })
    }),
  )
  return { socket, secured, closed, received, isClosed: () => done }
}

const statusOf = (text: string): number => {
  const match = /^HTTP\/1\.1 (\d{3}) /.exec(text)
  return match === null ? 0 : Number(match[1])
}

describe("MAX_HEADER_SIZE", () => {
  it("answers 431 to a 10 KiB header with a 4 KiB limit, and serves the next connection", async () => {
    const { url } = await sidecar({ MAX_HEADER_SIZE: "4096" })
    const before = backend.seen.length
    const big = connect(url)
    await big.secured
    big.socket.write(
      `GET /too-big HTTP/1.1\r\nHost: app.example\r\nX-Big: ${"a".repeat(10 * 1024)}\r\nConnection: close\r\n\r\n`,
    )
    const ended = await big.closed
    expect(ended.received.split("\r\n")[0]).toBe("HTTP/1.1 431 Request Header Fields Too Large")
    expect(backend.seen.slice(before).map((s) => s.url)).toEqual([])

    // Right after, on another connection: a request of ordinary size is served, forwarded or not.
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    const forwarded = await get(`${url}/normal`, client(), { "x-small": "a".repeat(1024) })
    expect(forwarded.status).toBe(200)
    expect(backend.seen.at(-1)?.url).toBe("/normal")
  })

  it("serves a head just under the limit", async () => {
    const { url } = await sidecar({ MAX_HEADER_SIZE: "4096" })
    const reply = await get(`${url}/almost`, client(), { "x-fill": "a".repeat(3000) })
    expect(reply.status).toBe(200)
  })
})

describe("HEADERS_TIMEOUT (slowloris)", () => {
  it("closes a client dribbling its headers, while serving a good client meanwhile", async () => {
    const { url } = await sidecar({ HEADERS_TIMEOUT: "1s" })
    const slow = connect(url)
    await slow.secured
    const startedAt = Date.now()
    slow.socket.write("GET / HTTP/1.1\r\nHost: x\r\n")
    // One header byte every 300 ms: each byte is progress, but the whole head never arrives in time.
    const header = `X-Slow: ${"a".repeat(100)}`
    let sent = 0
    const drip = setInterval(() => {
      if (slow.isClosed() || sent >= header.length) return
      slow.socket.write(header.charAt(sent++))
    }, 300)
    try {
      // Meanwhile a good client is served, while the slow one is still connected and dribbling.
      await sleep(400)
      expect(slow.isClosed()).toBe(false)
      const good = await get(`${url}/api/status`, client())
      expect(good.status).toBe(200)
      expect((await get(`${url}/app-meanwhile`, client())).status).toBe(200)

      const ended = await Promise.race([slow.closed, sleep(8000).then(() => undefined)])
      expect(ended, "the slow client was not disconnected within 8 s").toBeDefined()
      if (ended === undefined) return
      // Within ~3 s (1 s limit, checked every second); the bound is generous.
      expect(ended.at - startedAt).toBeLessThan(6000)
      // Either a 408 or a plain close: never a served request.
      const status = statusOf(ended.received)
      expect([0, 408]).toContain(status)
      expect(sent).toBeLessThan(header.length)
    } finally {
      clearInterval(drip)
    }
  })
})

describe("HEADERS_TIMEOUT on a kept-alive connection", () => {
  it("closes a client that dribbles its second request's headers after a served first one", async () => {
    const { url } = await sidecar({ HEADERS_TIMEOUT: "1s" })
    const conn = connect(url)
    await conn.secured
    conn.socket.write("GET /api/status HTTP/1.1\r\nHost: app.example\r\n\r\n")
    // The first response arrives whole (the API answers with a Content-Length) and the connection stays open.
    expect(
      await waitFor(() => {
        const text = conn.received()
        const split = text.indexOf("\r\n\r\n")
        const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1]
        return split !== -1 && length !== undefined && text.length >= split + 4 + Number(length)
      }, 5000),
    ).toBe(true)
    expect(statusOf(conn.received())).toBe(200)
    expect(conn.isClosed()).toBe(false)
    const served = conn.received().length

    const startedAt = Date.now()
    conn.socket.write("GET /api/status HTTP/1.1\r\nHost: app.example\r\n")
    const header = `X-Slow: ${"a".repeat(100)}`
    let sent = 0
    const drip = setInterval(() => {
      if (conn.isClosed() || sent >= header.length) return
      conn.socket.write(header.charAt(sent++))
    }, 300)
    try {
      const ended = await Promise.race([conn.closed, sleep(10_000).then(() => undefined)])
      expect(ended, "the slow keep-alive client was not disconnected within 10 s").toBeDefined()
      if (ended === undefined) return
      expect(ended.at - startedAt).toBeLessThan(6000)
      expect([0, 408]).toContain(statusOf(ended.received.slice(served)))
    } finally {
      clearInterval(drip)
    }
  })
})

describe("MAX_CONNECTIONS", () => {
  it("closes connections beyond the limit without serving them, and accepts again once one closes", async () => {
    const { url } = await sidecar({ MAX_CONNECTIONS: "3" })
    const held = [connect(url), connect(url), connect(url)]
    await Promise.all(held.map((c) => c.secured))
    // Let the server account for all three before the fourth arrives.
    await sleep(100)

    const fourth = connect(url)
    fourth.secured.then(
      () => fourth.socket.write("GET /api/status HTTP/1.1\r\nHost: app.example\r\nConnection: close\r\n\r\n"),
      () => undefined,
    )
    const ended = await Promise.race([fourth.closed, sleep(8000).then(() => undefined)])
    expect(ended, "the fourth connection was not closed by the server").toBeDefined()
    expect(ended?.received).toBe("")
    // The held connections are untouched.
    expect(held.map((c) => c.isClosed())).toEqual([false, false, false])

    // Closing one of the three makes room for a new client.
    const [first] = held
    first?.socket.destroy()
    await first?.closed
    let status = 0
    const deadline = Date.now() + 5000
    while (status !== 200 && Date.now() < deadline) {
      status = await get(`${url}/api/status`, client()).then(
        (r) => r.status,
        () => 0,
      )
      if (status !== 200) await sleep(100)
    }
    expect(status).toBe(200)
    for (const c of held) c.socket.destroy()
  })
})

describe("TLS_HANDSHAKE_TIMEOUT", () => {
  it("closes a TCP connection that never sends a ClientHello, and logs why", async () => {
    const { url, logs } = await sidecar({ TLS_HANDSHAKE_TIMEOUT: "1s" })
    const { hostname, port } = new URL(url)
    const startedAt = Date.now()
    const socket = net.connect({ host: hostname, port: Number(port) })
    sockets.push(socket)
    socket.on("error", () => undefined)
    const received: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => received.push(chunk))
    const closedAt = await Promise.race([
      new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now()))),
      sleep(8000).then(() => undefined),
    ])
    expect(closedAt, "the server did not close the silent connection within 8 s").toBeDefined()
    if (closedAt === undefined) return
    expect(closedAt - startedAt).toBeLessThan(6000)
    expect(Buffer.concat(received).length).toBe(0)

    const rejected = (l: CapturedLog) => l.message === "TLS handshake rejected"
    expect(await waitFor(() => logs.some(rejected))).toBe(true)
    expect(logs.find(rejected)?.annotations.reason).toBe("ERR_TLS_HANDSHAKE_TIMEOUT")

    // A client that does handshake is served by the same sidecar.
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  })
})

describe("finding 5: connections still in their handshake have their own budget", () => {
  const idleTcp = async (url: string, count: number) => {
    const { hostname, port } = new URL(url)
    const opened = Array.from({ length: count }, () => {
      const socket = net.connect({ host: hostname, port: Number(port) })
      sockets.push(socket)
      socket.on("error", () => undefined)
      return new Promise<net.Socket>((resolve) => socket.once("connect", () => resolve(socket)))
    })
    return Promise.all(opened)
  }

  it("20 idle TCP connections that never start TLS do not lock a valid client out", async () => {
    const { url } = await sidecar({ MAX_CONNECTIONS: "4", MAX_HANDSHAKES: "4", TLS_HANDSHAKE_TIMEOUT: "20s" })
    const established = connect(url)
    await established.secured
    const idle = await idleTcp(url, 20)
    await sleep(100)
    const startedAt = Date.now()
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    // Long before the 20 s handshake timeout: the oldest idle handshakes made room.
    expect(Date.now() - startedAt).toBeLessThan(5000)
    expect(idle.filter((s) => !s.destroyed && !s.readableEnded).length).toBeLessThanOrEqual(4)
    // The authenticated connection was never at risk.
    expect(established.isClosed()).toBe(false)
    established.socket.write("GET /api/status HTTP/1.1\r\nHost: x\r\n\r\n")
    expect(await waitFor(() => statusOf(established.received()) === 200, 5000)).toBe(true)
    established.socket.destroy()
  })

  it("closes the silent handshakes first, not one that is under way", async () => {
    const { url } = await sidecar({ MAX_HANDSHAKES: "3", TLS_HANDSHAKE_TIMEOUT: "20s" })
    const [busy] = await idleTcp(url, 1)
    if (busy === undefined) throw new Error("no socket")
    // The start of a ClientHello: this handshake is under way.
    busy.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    await sleep(100)
    const idle = await idleTcp(url, 6)
    await sleep(100)
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    expect(busy.destroyed || busy.readableEnded).toBe(false)
    expect(idle.filter((s) => s.destroyed || s.readableEnded).length).toBeGreaterThanOrEqual(4)
  })

  it("established connections do not count against the handshake budget", async () => {
    const { url } = await sidecar({ MAX_CONNECTIONS: "8", MAX_HANDSHAKES: "2" })
    const held: Array<Conn> = []
    // One after the other: never more than one handshake at a time.
    for (let i = 0; i < 6; i++) {
      const conn = connect(url)
      held.push(conn)
      await conn.secured
    }
    await sleep(100)
    expect(held.map((c) => c.isClosed())).toEqual([false, false, false, false, false, false])
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    for (const c of held) c.socket.destroy()
  })

  it("closes a client that trickles its ClientHello at the deadline, counted from its connection", async () => {
    // Node's handshake timer is an idle timer, but handshake bytes never reach JS: trickling
    // them does not extend it. This pins that down.
    const { url } = await sidecar({ TLS_HANDSHAKE_TIMEOUT: "1s" })
    const [socket] = await idleTcp(url, 1)
    if (socket === undefined) throw new Error("no socket")
    const startedAt = Date.now()
    // A TLS record header announcing a long ClientHello, then one byte every 200 ms.
    socket.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]))
    const drip = setInterval(() => {
      if (!socket.destroyed) socket.write(Buffer.from([0x00]))
    }, 200)
    try {
      const closedAt = await Promise.race([
        new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now()))),
        sleep(8000).then(() => undefined),
      ])
      expect(closedAt, "the trickling client was not closed within 8 s").toBeDefined()
      expect((closedAt ?? 0) - startedAt).toBeLessThan(4000)
    } finally {
      clearInterval(drip)
    }
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  })
})
