/**
 * An application that answers what no HTTP server should: a 101 to a plain GET, a status Node
 * cannot write, a close without an answer. The client gets a 502 (never a hang, never a crash) and
 * the sidecar keeps serving. The app is a raw TCP server that writes canned bytes per path.
 */
import * as net from "node:net"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import type { CapturedLog } from "../support/logs.ts"
import { inProcess } from "../support/sidecar.ts"
import { rawGet } from "../support/tlsClient.ts"

const ANSWERS: Record<string, string | null> = {
  "/switch":
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\nraw bytes of another protocol",
  "/switch-bare": "HTTP/1.1 101 Switching Protocols\r\n\r\n",
  "/status-099": "HTTP/1.1 099 Too Low\r\nContent-Length: 2\r\n\r\nok",
  "/status-000": "HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nok",
  "/silence": null,
  "/ok": "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
}

let pki: Fixtures
let app: net.Server
let url: string
let logs: Array<CapturedLog>
const sidecars = inProcess()

beforeAll(async () => {
  pki = await makeFixtures()
  app = net.createServer((socket) => {
    socket.on("error", () => {})
    // Every request on the connection (the sidecar keeps its connections to the app alive).
    socket.on("data", (chunk: Buffer) => {
      const path = chunk.toString("latin1").split(" ")[1] ?? ""
      const answer = ANSWERS[path]
      // `null`: read the request, then close without a word.
      if (answer === null || answer === undefined) return void socket.end()
      socket.write(answer)
    })
  })
  await new Promise<void>((resolve) => app.listen(0, "127.0.0.1", resolve))
  const port = (app.address() as net.AddressInfo).port
  ;({ url, logs } = await sidecars.start(pki, {
    FORWARD_PORT: String(port),
    FORWARD_RESPONSE_TIMEOUT: "30s",
  }))
})
afterAll(async () => {
  await sidecars.closeAll()
  await new Promise<void>((resolve) => app.close(() => resolve()))
})

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

describe("an application that misbehaves", () => {
  it.each([
    ["finding 7: answers 101 to a plain GET", "/switch"],
    ["finding 7: answers a bare 101 to a plain GET", "/switch-bare"],
    ["answers a status below 100", "/status-099"],
    ["answers status 000", "/status-000"],
    ["closes without an answer", "/silence"],
  ])("%s: the client gets 502 at once and the connection ends", async (_, path) => {
    const started = Date.now()
    const reply = await rawGet(url, pki, path)
    expect(reply.status).toBe(502)
    expect(reply.body).not.toContain("raw bytes")
    // Well before the 30 s response timeout: nothing waited for it.
    expect(Date.now() - started).toBeLessThan(10_000)
    expect(logs.some((l) => l.message === "application unreachable" && l.annotations.path === path)).toBe(
      true,
    )
    // And the sidecar goes on: the same app's good answer, and the sidecar's own API.
    expect((await rawGet(url, pki, "/ok")).status).toBe(200)
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  })
})
