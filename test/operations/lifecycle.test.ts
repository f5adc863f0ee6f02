/**
 * The bundled sidecar's life as kubelet sees it: probes on the plain-HTTP
 * health port from the first moment, then a drain on SIGTERM that lets a
 * transfer finish, closes WebSockets with 1001 and reports "draining".
 */
import { createHash } from "node:crypto"
import * as http from "node:http"
import * as https from "node:https"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { type Backend, expectedDownloadSha256, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures, resourcesFor, URIS } from "../support/fixtures.ts"
import { freePort, type Running, startMain } from "../support/process.ts"
import { openWebSocket } from "../support/tlsClient.ts"

let pki: Fixtures
beforeAll(async () => {
  pki = await makeFixtures()
})
const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const probe = (port: number, path: string) =>
  new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (response) => {
        let body = ""
        response.on("data", (c: Buffer) => {
          body += c.toString()
        })
        response.on("end", () =>
          resolve({ status: response.statusCode ?? 0, body, headers: response.headers }),
        )
      })
      .on("error", reject)
  })

const until = async (check: () => Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await check().catch(() => false)) return true
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

const launch = async (options: { unavailableForMs?: number; backend?: Backend } = {}) => {
  const cdh = await startMockCdh({
    resources: resourcesFor(pki),
    unavailableForMs: options.unavailableForMs ?? 0,
  })
  cleanup.push(() => cdh.close())
  const [httpsPort, healthPort] = [await freePort(), await freePort()]
  const running: Running = startMain({
    ...URIS,
    HTTPS_PORT: String(httpsPort),
    HTTPS_HOST: "127.0.0.1",
    HEALTH_PORT: String(healthPort),
    HEALTH_HOST: "127.0.0.1",
    POD_NAME: "secret-pod-name",
    CDH_URL: cdh.url,
    CDH_RETRY_BASE: "100ms",
    SHUTDOWN_GRACE_PERIOD: "10s",
    ...(options.backend ? { FORWARD_PORT: String(options.backend.port) } : {}),
  })
  cleanup.push(async () => {
    if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGKILL")
    await running.exit
  })
  return { running, url: `https://127.0.0.1:${httpsPort}`, healthPort }
}

const tls = () => ({ agent: false, cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

describe("probes", () => {
  it("answers /healthz at once and /readyz 'not ready' until the TLS material is loaded, revealing nothing", async () => {
    const { running, healthPort } = await launch({ unavailableForMs: 1500 })
    expect(await until(async () => (await probe(healthPort, "/healthz")).status === 200)).toBe(true)
    // The CDH is still refusing connections: alive, not ready.
    const early = await probe(healthPort, "/readyz")
    expect([early.status, early.body]).toEqual([503, "tls material not loaded\n"])
    expect(running.lines.some((l) => l.msg === "listening")).toBe(false)
    await running.waitFor("listening")
    const ready = await probe(healthPort, "/readyz")
    expect([ready.status, ready.body]).toEqual([200, "ok\n"])
    const live = await probe(healthPort, "/healthz")
    expect(live.body).toBe("ok\n")
    for (const answer of [early, ready, live]) {
      expect(JSON.stringify(answer)).not.toContain("secret-pod-name")
      expect(answer.headers.server).toBeUndefined()
    }
    expect((await probe(healthPort, "/api/status")).status).toBe(404)
  })
})

describe("drain on SIGTERM", () => {
  it("finishes a transfer in flight, closes WebSockets with 1001, reports draining, exits 0", async () => {
    const backend = await startBackend()
    cleanup.push(() => backend.close())
    const { running, url, healthPort } = await launch({ backend })
    await running.waitFor("listening")

    const socket = await openWebSocket(url, pki)
    const closed = new Promise<number>((resolve) => socket.once("close", (code: number) => resolve(code)))
    const size = 32 * 1024 * 1024
    // A download that is slow to read, so it is still in flight when the signal arrives.
    const transfer = new Promise<string>((resolve, reject) => {
      https
        .get(`${url}/download?bytes=${size}`, tls(), (response) => {
          const hash = createHash("sha256")
          response.on("data", (chunk: Buffer) => {
            hash.update(chunk)
            response.pause()
            setTimeout(() => response.resume(), 2)
          })
          response.on("end", () => resolve(hash.digest("hex")))
          response.on("error", reject)
        })
        .on("error", reject)
    })
    await new Promise((r) => setTimeout(r, 200))

    running.child.kill("SIGTERM")
    await running.waitFor("shutting down: draining in-flight requests")
    expect(await closed).toBe(1001)
    // The probe listener closes last, so it is still there to say why the pod is not ready.
    const readiness = await probe(healthPort, "/readyz")
    expect([readiness.status, readiness.body]).toEqual([503, "draining\n"])
    expect(await transfer).toBe(expectedDownloadSha256(size))
    const { code } = await running.exit
    expect(code).toBe(0)
  }, 30_000)

  it("writes every access-log line before it exits: the buffered log loses nothing at SIGTERM", async () => {
    const backend = await startBackend()
    cleanup.push(() => backend.close())
    const { running, url } = await launch({ backend })
    await running.waitFor("listening")
    const agent = new https.Agent({
      keepAlive: true,
      cert: pki.client.certPem,
      key: pki.client.keyPem,
      ca: pki.ca.certPem,
    })
    const count = 50
    for (let i = 0; i < count; i++) {
      await new Promise<void>((resolve, reject) =>
        https
          .get(`${url}/lines/${i}`, { agent }, (response) => {
            response.resume()
            response.on("end", () => resolve())
          })
          .on("error", reject),
      )
    }
    agent.destroy()
    // At once: the lines are still in the buffer (it is written every 200 ms).
    running.child.kill("SIGTERM")
    const { code } = await running.exit
    expect(code).toBe(0)
    // 'exit' may come before the last of stdout has been read here.
    const proxied = () => running.lines.filter((l) => l.msg === "proxied").map((l) => l.path)
    await until(async () => proxied().length >= count, 2000)
    const paths = proxied()
    expect(paths).toEqual(Array.from({ length: count }, (_, i) => `/lines/${i}`))
  }, 15_000)

  it("exits at once on a second signal", async () => {
    const backend = await startBackend()
    cleanup.push(() => backend.close())
    const { running, url } = await launch({ backend })
    await running.waitFor("listening")
    // Something that would hold the drain for the whole grace period.
    const hanging = https.get(`${url}/slow?ms=20000`, tls())
    hanging.on("error", () => {})
    await new Promise((r) => setTimeout(r, 200))
    running.child.kill("SIGTERM")
    await running.waitFor("shutting down: draining in-flight requests")
    running.child.kill("SIGTERM")
    const { code } = await running.exit
    expect(code).toBe(1)
    expect(running.raw.some((l) => l.includes("second SIGTERM"))).toBe(true)
  }, 15_000)
})
