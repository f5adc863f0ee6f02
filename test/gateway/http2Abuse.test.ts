/**
 * HTTP/2's own abuse cases against the sidecar (HTTP2=true), each while a well-behaved client is
 * served: rapid reset (CVE-2023-44487), CONTINUATION floods, too many concurrent streams, PING and
 * SETTINGS floods, a client that never reads. Raw frames from test/support/h2raw.ts.
 */
import * as http2 from "node:http2"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { connect, F, frame, literal, ping, requestBlock, rst, T } from "../support/h2raw.ts"
import { inProcess } from "../support/sidecar.ts"

let pki: Fixtures
let backend: Backend
let url: string
let port: number
const sidecars = inProcess()
beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
  ;({ url } = await sidecars.start(pki, {
    HTTP2: "true",
    HTTP2_MAX_CONCURRENT_STREAMS: "50",
    FORWARD_PORT: String(backend.port),
  }))
  port = Number(new URL(url).port)
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

const credentials = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A well-behaved h2 client's GET: its status, within 5 s. */
const goodClient = (path = "/api/status") =>
  new Promise<number>((resolve) => {
    const session = http2.connect(url, { ...credentials(), servername: "localhost" })
    session.on("error", () => resolve(-1))
    const stream = session.request({ ":path": path })
    const timer = setTimeout(() => {
      session.destroy()
      resolve(-2)
    }, 5000)
    stream.on("response", (headers) => {
      clearTimeout(timer)
      stream.resume()
      stream.on("end", () => {
        session.close()
        resolve(Number(headers[":status"]))
      })
    })
    stream.on("error", () => resolve(-3))
  })

describe("HTTP/2 abuse", () => {
  it("rapid reset: the connection is cut after a bounded burst, the app sees few requests, others are served", async () => {
    const before = backend.seen.length
    const raw = await connect(port, credentials())
    const block = requestBlock("/rapid")
    let stream = 1
    for (let batch = 0; batch < 200 && !raw.seen.closed; batch++) {
      const frames: Array<Buffer> = []
      for (let i = 0; i < 100; i++, stream += 2) {
        frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, stream, block), rst(stream))
      }
      raw.socket.write(Buffer.concat(frames))
      await new Promise((r) => setImmediate(r))
    }
    await Promise.race([raw.closed, sleep(3000)])
    expect(raw.seen.goaway).toBeDefined()
    expect(raw.seen.closed).toBe(true)
    // 20,000 requests were attempted; the reset budget (100, then 10 a second) lets a few hundred through.
    await sleep(300)
    expect(backend.seen.length - before).toBeLessThan(1000)
    expect(await goodClient()).toBe(200)
  })

  it("a CONTINUATION flood (a header block never finished) ends the connection", async () => {
    const raw = await connect(port, credentials())
    raw.socket.write(frame(T.HEADERS, 0, 1, requestBlock("/never")))
    for (let i = 0; i < 100 && !raw.seen.closed; i++) {
      raw.socket.write(frame(T.CONTINUATION, 0, 1, literal(`x-${i}`, "y".repeat(100))))
      await new Promise((r) => setImmediate(r))
    }
    await Promise.race([raw.closed, sleep(3000)])
    expect(raw.seen.closed).toBe(true)
    expect(await goodClient()).toBe(200)
  })

  it("streams beyond HTTP2_MAX_CONCURRENT_STREAMS are refused", async () => {
    const raw = await connect(port, credentials())
    // Slow requests, so they stay open.
    const frames: Array<Buffer> = []
    for (let i = 0, stream = 1; i < 200; i++, stream += 2) {
      frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, stream, requestBlock("/slow?ms=1000")))
    }
    raw.socket.write(Buffer.concat(frames))
    await Promise.race([raw.closed, sleep(1500)])
    const refused = raw.seen.rst[7] ?? 0 // REFUSED_STREAM
    expect(refused > 0 || raw.seen.goaway !== undefined).toBe(true)
    expect(raw.seen.responses).toBeLessThanOrEqual(50)
    raw.socket.destroy()
    expect(await goodClient()).toBe(200)
  })

  it("a PING flood ends the connection", async () => {
    const raw = await connect(port, credentials())
    for (let i = 0; i < 50 && !raw.seen.closed; i++) {
      raw.socket.write(Buffer.concat(Array.from({ length: 1000 }, (_, n) => ping(i * 1000 + n))))
      await new Promise((r) => setImmediate(r))
    }
    await Promise.race([raw.closed, sleep(3000)])
    expect(raw.seen.closed).toBe(true)
    expect(await goodClient()).toBe(200)
  })

  it("a SETTINGS flood ends the connection", async () => {
    const raw = await connect(port, credentials(), { ackSettings: false })
    // Not reading: the server's ACKs pile up, which is what nghttp2 counts as a flood.
    raw.socket.pause()
    for (let i = 0; i < 50 && !raw.seen.closed; i++) {
      raw.socket.write(Buffer.concat(Array.from({ length: 1000 }, () => frame(T.SETTINGS, 0, 0))))
      await new Promise((r) => setImmediate(r))
    }
    await Promise.race([raw.closed, sleep(3000)])
    expect(raw.seen.closed).toBe(true)
    expect(await goodClient()).toBe(200)
  })

  it("a client that never reads holds little: flow control stops the app's writes", async () => {
    const start = backend.downloadedBytes
    const raw = await connect(port, credentials())
    // Ten 64 MiB downloads, never a WINDOW_UPDATE, and the TLS socket not read either.
    const frames: Array<Buffer> = []
    for (let i = 0, stream = 1; i < 10; i++, stream += 2) {
      frames.push(
        frame(
          T.HEADERS,
          F.END_HEADERS | F.END_STREAM,
          stream,
          requestBlock(`/download?bytes=${64 * 1024 * 1024}`),
        ),
      )
    }
    raw.socket.write(Buffer.concat(frames))
    raw.socket.pause()
    let written = -1
    while (written !== backend.downloadedBytes - start) {
      written = backend.downloadedBytes - start
      await sleep(300)
    }
    // 640 MiB were asked for; the windows (64 KiB per stream and connection) and the kernel's
    // buffers are all that is held.
    expect(written).toBeLessThan(64 * 1024 * 1024)
    expect(await goodClient()).toBe(200)
    raw.socket.destroy()
  })

  it("closes an idle session after HEADERS_TIMEOUT, but not one whose stream is quietly open", async () => {
    const { url: quick } = await sidecars.start(pki, {
      HTTP2: "true",
      HEADERS_TIMEOUT: "1s",
      FORWARD_PORT: String(backend.port),
    })
    const quickPort = Number(new URL(quick).port)
    const idle = await connect(quickPort, credentials())
    const busy = await connect(quickPort, credentials())
    busy.socket.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock("/slow?ms=1800")))
    await Promise.race([idle.closed, sleep(3000)])
    expect(idle.seen.closed).toBe(true)
    expect(idle.seen.goaway?.code).toBe(0)
    // Answered after 1.8 s, more than the timeout: the timer only runs with no stream open.
    for (let i = 0; i < 30 && busy.seen.responses === 0 && !busy.seen.closed; i++) await sleep(100)
    expect(busy.seen.responses).toBe(1)
    busy.socket.destroy()
  })
})
