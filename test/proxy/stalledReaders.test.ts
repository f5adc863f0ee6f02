/**
 * Finding 4 of issue 10: clients that ask for a large response and never read. The production
 * bundle runs as the image runs it (the Dockerfile's V8 flags); its memory is read from /proc, as
 * the kubelet's view of the container follows it. Each stalled exchange must hold a few small
 * buffers, not megabytes, and a well-behaved client must be served meanwhile.
 */
import { type ChildProcess, fork, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import * as tls from "node:tls"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MockCdhServer, startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { ROOT, readDockerfile, runtimeStage } from "../image/runtime.ts"
import { type Fixtures, makeFixtures, resourcesFor, URIS } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { follow, freePort, MAIN, type Running } from "../support/process.ts"

const STALLED = 60
/** What the 60 together may add to the process's resident memory (issue 10, finding 4). */
const BUDGET_MIB = 48

let pki: Fixtures
/** The benchmark's app (scripts/bench/backend.ts): it writes as fast as backpressure lets it. */
let backend: ChildProcess
let cdh: MockCdhServer
let sidecar: Running
let url: string

/** VmRSS of the sidecar, MiB. */
const rss = (): number => {
  const status = readFileSync(`/proc/${sidecar.child.pid}/status`, "utf8")
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) / 1024
}

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  pki = await makeFixtures()
  backend = fork(path.join(ROOT, "scripts/bench/backend.ts"), [], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  })
  const backendPort = await new Promise<number>((resolve, reject) => {
    backend.once("message", (message) => resolve((message as { port: number }).port))
    backend.once("exit", () => reject(new Error("the backend exited")))
  })
  cdh = await startMockCdh({ resources: resourcesFor(pki) })
  const port = await freePort()
  // The image's command, with this checkout's bundle for /app/dist/main.js.
  const argv = runtimeStage(readDockerfile()).argv
  const flags = argv.slice(1, -1)
  expect(flags).toContain("--max-old-space-size=64")
  sidecar = follow(
    spawn(process.execPath, [...flags, MAIN], {
      env: {
        PATH: process.env.PATH ?? "",
        ...URIS,
        HTTPS_PORT: String(port),
        HTTPS_HOST: "127.0.0.1",
        CDH_URL: cdh.url,
        FORWARD_PORT: String(backendPort),
      },
      stdio: "pipe",
    }),
  )
  url = `https://127.0.0.1:${port}`
  await sidecar.waitFor("listening")
})

afterAll(async () => {
  sidecar.child.kill("SIGTERM")
  await sidecar.exit
  backend.kill()
  await cdh.close()
})

describe("finding 4: clients that stop reading", () => {
  it(`${STALLED} stalled readers of 1 GiB responses add at most ${BUDGET_MIB} MiB, and a normal client is served`, async () => {
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
    await sleep(500)
    const before = rss()
    const { port } = new URL(url)
    const stalled = Array.from({ length: STALLED }, () => {
      const socket = tls.connect({
        host: "127.0.0.1",
        port: Number(port),
        ...client(),
        servername: "localhost",
      })
      socket.on("error", () => {})
      socket.once("secureConnect", () => {
        socket.write(`GET /download?bytes=${1024 ** 3} HTTP/1.1\r\nHost: x\r\n\r\n`)
        // Never read: the client's kernel buffers fill, then the sidecar's, then it must push back.
        socket.pause()
      })
      return socket
    })
    try {
      // Until the memory has settled: every download is held back by backpressure.
      await sleep(2000)
      let during = rss()
      for (let steady = 0, i = 0; steady < 3 && i < 50; i++) {
        await sleep(200)
        const now = rss()
        steady = Math.abs(now - during) < 0.5 ? steady + 1 : 0
        during = Math.max(during, now)
      }
      const normal = await get(`${url}/api/status`, client())
      expect(normal.status).toBe(200)
      expect((await get(`${url}/small`, client())).status).toBe(200)
      expect(during - before, `VmRSS ${before.toFixed(1)} -> ${during.toFixed(1)} MiB`).toBeLessThanOrEqual(
        BUDGET_MIB,
      )
    } finally {
      for (const socket of stalled) socket.destroy()
    }
    await sleep(500)
    expect(rss() - before).toBeLessThanOrEqual(BUDGET_MIB)
    expect((await get(`${url}/api/status`, client())).status).toBe(200)
  }, 60_000)
})
