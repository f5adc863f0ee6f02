/**
 * The production bundle (dist/main.js) as a child process, configured only
 * through kubectl-coco's environment contract, against the mock CDH server.
 */
import { readFileSync } from "node:fs"
import * as tls from "node:tls"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { type MockCdhServer, startMockCdh } from "../src/cdh/mock/MockCdhServer.ts"
import { type Fixtures, makeFixtures, resourcesFor, URIS } from "./support/fixtures.ts"
import { get } from "./support/https.ts"
import { freePort, MAIN, type Running, startMain } from "./support/process.ts"

let pki: Fixtures
beforeAll(async () => {
  pki = await makeFixtures()
})

const cleanup: Array<() => Promise<unknown>> = []
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f()
})

const mock = async (resources: Record<string, string>) => {
  const cdh = await startMockCdh({ resources })
  cleanup.push(() => cdh.close())
  return cdh
}

const main = (env: Record<string, string>): Running => {
  const running = startMain(env)
  cleanup.push(async () => {
    if (running.child.exitCode === null && running.child.signalCode === null) running.child.kill("SIGKILL")
    await running.exit
  })
  return running
}

const contract = async (cdh: MockCdhServer, extra: Record<string, string> = {}) => ({
  ...URIS,
  HTTPS_PORT: String(await freePort()),
  HTTPS_HOST: "127.0.0.1",
  POD_NAME: "web-7d9f",
  POD_NAMESPACE: "shop",
  CDH_URL: cdh.url,
  ...extra,
})

describe("dist/main.js", () => {
  it("is ASCII only: one other character makes V8 keep the whole source as UTF-16 (1.5 MiB more)", () => {
    const source = readFileSync(MAIN, "utf8")
    const offending = [...source].filter((c) => c.charCodeAt(0) > 127)
    expect(offending).toEqual([])
  })

  it.each([
    ["HTTPS_PORT", "abc"],
    ["HTTPS_PORT", "0"],
    ["HTTPS_PORT", "70000"],
    ["FORWARD_PORT", "http"],
    ["TLS_CERT_URI", "kbs:///only/two"],
    ["CLIENT_CA_URI", "kbs://kbs.example:8080/default/sidecar-tls/client-ca"],
    ["CDH_STARTUP_TIMEOUT", "5 minutes"],
  ])("exits 1 before listening when %s=%s, naming the variable and the value", async (variable, value) => {
    const cdh = await mock(resourcesFor(pki))
    const running = main({ ...(await contract(cdh)), [variable]: value })
    const { code } = await running.exit
    expect(code).toBe(1)
    const errors = running.lines.filter((l) => l.level === "error")
    expect(errors).toHaveLength(1)
    expect(errors[0]?.msg).toContain(variable)
    expect(errors[0]?.msg).toContain(JSON.stringify(value))
    expect(running.lines.some((l) => l.msg === "listening")).toBe(false)
    // Nothing happened before the configuration was valid: not even a CDH request.
    expect(cdh.requests).toHaveLength(0)
  })

  it("serves /api/status over mTLS with the injected environment", async () => {
    const cdh = await mock(resourcesFor(pki))
    const env = await contract(cdh)
    const running = main(env)
    const listening = await running.waitFor("listening")
    expect(listening.address).toBe(`https://127.0.0.1:${env.HTTPS_PORT}`)
    const reply = await get(`https://127.0.0.1:${env.HTTPS_PORT}/api/status`, {
      cert: pki.client.certPem,
      key: pki.client.keyPem,
      ca: pki.ca.certPem,
    })
    expect(reply.status).toBe(200)
    expect(JSON.parse(reply.body)).toMatchObject({ podName: "web-7d9f", namespace: "shop" })
    // The private key is never logged, nor any line of it.
    const keyLines = pki.server.keyPem.split("\n").filter((l) => l.length > 20)
    for (const line of running.raw) for (const keyLine of keyLines) expect(line).not.toContain(keyLine)
    // The start-up summary lists the effective configuration.
    const summary = running.lines.find((l) => l.msg === "starting coco-secure-access")
    expect(summary).toMatchObject({
      tlsCertUri: URIS.TLS_CERT_URI,
      httpsPort: Number(env.HTTPS_PORT),
      cdhUrl: cdh.url,
    })
  })

  it("exits 1 naming the URI when a resource stays missing", async () => {
    const { "shop/sidecar-tls-web/server-key": _, ...resources } = resourcesFor(pki)
    const cdh = await mock(resources)
    const running = main(await contract(cdh, { CDH_STARTUP_TIMEOUT: "1s", CDH_RETRY_BASE: "100ms" }))
    const { code } = await running.exit
    expect(code).toBe(1)
    const error = running.lines.find((l) => l.level === "error")
    expect(error?.error).toBe("ResourceUnavailable")
    expect(error?.msg).toContain(URIS.TLS_KEY_URI)
    expect(running.lines.some((l) => l.msg === "listening")).toBe(false)
  })

  it("on SIGTERM lets an in-flight request finish, then exits 0", async () => {
    const cdh = await mock(resourcesFor(pki))
    const env = await contract(cdh)
    const running = main(env)
    await running.waitFor("listening")

    const socket = tls.connect({
      host: "127.0.0.1",
      port: Number(env.HTTPS_PORT),
      cert: pki.client.certPem,
      key: pki.client.keyPem,
      ca: pki.ca.certPem,
      servername: "localhost",
    })
    await new Promise<void>((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject))
    const received: Array<Buffer> = []
    socket.on("data", (chunk: Buffer) => received.push(chunk))
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()))
    // The request has started (the server is parsing it) when the signal arrives.
    socket.write("GET /api/status HTTP/1.1\r\nHost: localhost\r\n")
    await new Promise((resolve) => setTimeout(resolve, 100))

    running.child.kill("SIGTERM")
    await running.waitFor("shutting down: draining in-flight requests")
    expect(running.child.exitCode).toBeNull()

    socket.write("Accept: application/json\r\n\r\n")
    await closed
    const response = Buffer.concat(received).toString("utf8")
    expect(response).toMatch(/^HTTP\/1\.1 200 OK\r\n/)
    expect(JSON.parse(response.slice(response.indexOf("\r\n\r\n") + 4)).podName).toBe("web-7d9f")

    const { code } = await running.exit
    expect(code).toBe(0)
    expect(running.lines.at(-1)?.msg).toBe("stopped")
  })
})
