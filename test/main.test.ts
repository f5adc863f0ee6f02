/**
 * The production bundle (dist/main.js) as a child process, configured only
 * through kubectl-coco's environment contract, against the mock CDH server.
 */
import { readFileSync } from "node:fs"
import * as net from "node:net"
import * as tls from "node:tls"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { type MockCdhServer, startMockCdh } from "../src/dev/cdh/MockCdhServer.ts"
import { issue } from "../src/dev/DevPki.ts"
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
    // Finding 10: above Node's longest timer (~24.8 days) a timeout would fire at once.
    ["FORWARD_RESPONSE_TIMEOUT", "1000h"],
    ["SHUTDOWN_GRACE_PERIOD", "1000h"],
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

  it("finding 12: exits 1 with one line naming the key's URI when OpenSSL refuses an RSA-512 server key", async () => {
    const weak = await issue(pki.ca, {
      cn: "localhost",
      kind: "server",
      algorithm: "rsa-512",
      dnsNames: ["localhost"],
    })
    const cdh = await mock({
      ...resourcesFor(pki),
      "shop/sidecar-tls-web/server-cert": weak.certPem,
      "shop/sidecar-tls-web/server-key": weak.keyPem,
    })
    const running = main(await contract(cdh))
    const { code } = await running.exit
    expect(code).toBe(1)
    const errors = running.lines.filter((l) => l.level === "error")
    expect(errors).toHaveLength(1)
    expect(errors[0]?.error).toBe("RefusedByOpenSsl")
    expect(errors[0]?.msg).toBe(
      `${URIS.TLS_KEY_URI}: OpenSSL refuses the private key: the key is too small for its security level (RSA needs at least 2048 bits, EC at least 224)`,
    )
    // One line, not a stack trace.
    expect(running.raw.filter((l) => /^\s+at /.test(l))).toEqual([])
    expect(running.lines.some((l) => l.msg === "listening")).toBe(false)
  })

  it("finding 8: with LOG_FORMAT=logfmt an ESC in a client's CN never reaches the log raw", async () => {
    const evil = await issue(pki.ca, { cn: "evil\u001b]0;owned\u0007\u001b[2J", kind: "client" })
    const cdh = await mock(resourcesFor(pki))
    const env = await contract(cdh, { LOG_FORMAT: "logfmt", ALLOW_CN: "developer" })
    const running = main(env)
    await new Promise<void>((resolve, reject) => {
      const timer = setInterval(() => {
        if (running.raw.some((l) => l.includes("msg=listening"))) {
          clearInterval(timer)
          resolve()
        }
      }, 20)
      void running.exit.then(() => reject(new Error(running.raw.join("\n"))))
    })
    const reply = await get(`https://127.0.0.1:${env.HTTPS_PORT}/dashboard`, {
      cert: evil.certPem,
      key: evil.keyPem,
      ca: pki.ca.certPem,
    })
    expect(reply.status).toBe(403)
    const denial = () => running.raw.find((l) => l.includes('msg="client not authorized"'))
    for (let waited = 0; denial() === undefined && waited < 5000; waited += 20)
      await new Promise((r) => setTimeout(r, 20))
    expect(denial()).toContain("CN=evil\\u001b]0;owned\\u0007\\u001b[2J")
    // biome-ignore lint/suspicious/noControlCharactersInRegex: finding raw control characters is the point
    expect(running.raw.filter((l) => /[\u0000-\u001f\u007f-\u009f]/.test(l))).toEqual([])
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

  it("exits 1 naming the address when HTTPS_PORT is taken", async () => {
    const taken = net.createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    cleanup.push(() => new Promise((resolve) => taken.close(resolve)))
    const port = (taken.address() as net.AddressInfo).port
    const cdh = await mock(resourcesFor(pki))
    const running = main({ ...(await contract(cdh)), HTTPS_PORT: String(port) })
    const { code } = await running.exit
    expect(code).toBe(1)
    const error = running.lines.find((l) => l.level === "error")
    expect(error?.error).toBe("ListenError")
    expect(error?.msg).toBe(`cannot listen on 127.0.0.1:${port}: EADDRINUSE`)
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
