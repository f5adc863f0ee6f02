/**
 * Client allow-lists (ALLOW_CN / ALLOW_DNS) over real mTLS: every certificate here is signed by the
 * client CA the sidecar trusts, so the TLS layer lets them all in and only the allow-lists decide.
 * A denied client gets 403 on the sidecar's paths and the application's alike, its WebSocket upgrade
 * is refused, nothing of it reaches the application, and a warning names the reason.
 */
import * as tls from "node:tls"
import { Result } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { decode, type Env } from "../../src/config/SidecarConfig.ts"
import { type Issued, issue } from "../../src/dev/DevPki.ts"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures, URIS } from "../support/fixtures.ts"
import { get, refusal } from "../support/https.ts"
import type { CapturedLog } from "../support/logs.ts"
import { inProcess } from "../support/sidecar.ts"
import { openWebSocket } from "../support/tlsClient.ts"

type Who = "developer" | "mallory" | "a.example.com" | "example.com" | "a.b.example.com"

const CN: Record<Who, string> = {
  developer: "developer",
  mallory: "mallory",
  "a.example.com": "svc-a",
  "example.com": "svc-apex",
  "a.b.example.com": "svc-deep",
}

let pki: Fixtures
let backend: Backend
let certs: Record<Who, Issued>
const sidecars = inProcess()

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
  const [mallory, dnsA, dnsApex, dnsDeep] = await Promise.all([
    issue(pki.ca, { cn: CN.mallory, kind: "client" }),
    issue(pki.ca, { cn: CN["a.example.com"], kind: "client", dnsNames: ["a.example.com"] }),
    issue(pki.ca, { cn: CN["example.com"], kind: "client", dnsNames: ["example.com"] }),
    issue(pki.ca, { cn: CN["a.b.example.com"], kind: "client", dnsNames: ["a.b.example.com"] }),
  ])
  certs = {
    developer: pki.client,
    mallory,
    "a.example.com": dnsA,
    "example.com": dnsApex,
    "a.b.example.com": dnsDeep,
  }
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

interface Running {
  readonly url: string
  readonly logs: Array<CapturedLog>
}

/** One sidecar per allow-list configuration, forwarding to the test backend, started on first use. */
const running = new Map<string, Promise<Running>>()
const sidecar = (env: Env): Promise<Running> => {
  const key = JSON.stringify(env)
  const existing = running.get(key)
  if (existing !== undefined) return existing
  const started = sidecars.start(pki, { FORWARD_PORT: String(backend.port), ...env })
  running.set(key, started)
  return started
}

const tlsOf = (who: Who) => ({ cert: certs[who].certPem, key: certs[who].keyPem, ca: pki.ca.certPem })
/** The fixtures with another client certificate, for the raw/WebSocket helpers. */
const as = (who: Who): Fixtures => ({ ...pki, client: certs[who] })

const waitFor = async (predicate: () => boolean, ms = 2000): Promise<boolean> => {
  for (let waited = 0; !predicate() && waited < ms; waited += 10) await new Promise((r) => setTimeout(r, 10))
  return predicate()
}

let unique = 0
const forwardedPath = (who: Who) => `/app/${encodeURIComponent(who)}/${++unique}`

const ONLY_DEVELOPER: Env = { ALLOW_CN: "developer" }
const ONE_LABEL: Env = { ALLOW_DNS: "*.example.com" }
const EITHER: Env = { ALLOW_CN: "developer", ALLOW_DNS: "*.example.com" }
const NOBODY_LISTED: Env = {}

const table: ReadonlyArray<readonly [string, Env, Who, boolean]> = [
  ["ALLOW_CN=developer", ONLY_DEVELOPER, "developer", true],
  ["ALLOW_CN=developer", ONLY_DEVELOPER, "mallory", false],
  ["ALLOW_CN=developer", ONLY_DEVELOPER, "a.example.com", false],
  ["ALLOW_DNS=*.example.com", ONE_LABEL, "a.example.com", true],
  ["ALLOW_DNS=*.example.com", ONE_LABEL, "example.com", false],
  ["ALLOW_DNS=*.example.com", ONE_LABEL, "a.b.example.com", false],
  ["ALLOW_DNS=*.example.com", ONE_LABEL, "developer", false],
  ["ALLOW_CN=developer + ALLOW_DNS=*.example.com", EITHER, "developer", true],
  ["ALLOW_CN=developer + ALLOW_DNS=*.example.com", EITHER, "a.example.com", true],
  ["ALLOW_CN=developer + ALLOW_DNS=*.example.com", EITHER, "mallory", false],
  ["ALLOW_CN=developer + ALLOW_DNS=*.example.com", EITHER, "example.com", false],
  ["no allow-list", NOBODY_LISTED, "developer", true],
  ["no allow-list", NOBODY_LISTED, "mallory", true],
  ["no allow-list", NOBODY_LISTED, "example.com", true],
]

describe("client allow-lists over mTLS", () => {
  it.each(table)("%s: %s is allowed = %s", async (_, env, who, allowed) => {
    const { url } = await sidecar(env)
    const seenBefore = backend.seen.length
    const status = await get(`${url}/api/status`, tlsOf(who), { accept: "application/json" })
    const path = forwardedPath(who)
    const forwarded = await get(`${url}${path}`, tlsOf(who), { accept: "application/json" })
    // Denials are decided before forwarding; give a forwarded request time to show up anyway.
    await new Promise((r) => setTimeout(r, 100))
    const reachedApp = backend.seen.filter((s) => s.url === path)
    if (allowed) {
      expect(status.status).toBe(200)
      expect(JSON.parse(status.body).podName).toBe("web-0")
      expect(forwarded.status).toBe(200)
      expect(reachedApp).toHaveLength(1)
    } else {
      const cn = `CN=${CN[who]} `
      for (const reply of [status, forwarded]) {
        expect(reply.status).toBe(403)
        expect(reply.headers["content-type"]).toMatch(/^application\/json/)
        const body = JSON.parse(reply.body) as { error: string; status: number; detail: string }
        expect(body).toEqual({ error: "Forbidden", status: 403, detail: expect.any(String) })
        expect(body.detail).toContain(cn)
      }
      expect(reachedApp).toEqual([])
      expect(backend.seen.length).toBe(seenBefore)
    }
  })

  it("answers a denied browser with an HTML 403 naming the reason", async () => {
    const { url } = await sidecar(ONLY_DEVELOPER)
    const reply = await get(`${url}/dashboard`, tlsOf("mallory"), { accept: "text/html" })
    expect(reply.status).toBe(403)
    expect(reply.headers["content-type"]).toMatch(/^text\/html/)
    expect(reply.body).toContain("403 Forbidden")
    expect(reply.body).toContain("CN=mallory")
    expect(reply.body).not.toContain("client-cn")
  })

  it("refuses a WebSocket upgrade from a denied client before it reaches the app", async () => {
    const { url } = await sidecar(ONLY_DEVELOPER)
    const before = backend.seenUpgrades.length
    await expect(openWebSocket(url, as("mallory"), "/ws?who=mallory")).rejects.toThrow(
      "unexpected response 403",
    )
    await new Promise((r) => setTimeout(r, 100))
    expect(backend.seenUpgrades.length).toBe(before)
    // The positive control: the allowed client's WebSocket goes through on the same sidecar.
    const socket = await openWebSocket(url, as("developer"), "/ws?who=developer")
    expect(backend.seenUpgrades.at(-1)?.url).toBe("/ws?who=developer")
    await new Promise((resolve) => socket.once("close", resolve).close(1000, "done"))
  })

  it('logs a warning "client not authorized" with the reason, only for denied clients', async () => {
    const { url, logs } = await sidecar(EITHER)
    const denied = () => logs.filter((l) => l.message === "client not authorized")
    const already = denied().length
    expect((await get(`${url}/api/status`, tlsOf("developer"))).status).toBe(200)
    expect((await get(`${url}/api/status`, tlsOf("a.example.com"))).status).toBe(200)
    expect((await get(`${url}/logged`, tlsOf("mallory"))).status).toBe(403)
    expect(await waitFor(() => denied().length > already)).toBe(true)
    await new Promise((r) => setTimeout(r, 100))
    const fresh = denied().slice(already)
    expect(fresh).toHaveLength(1)
    expect(fresh[0]?.level).toBe("Warn")
    expect(fresh[0]?.annotations).toMatchObject({
      reason: "client certificate CN=mallory is not on the allow-list",
      remote: "127.0.0.1",
    })
  })

  it("lets every client of the CA through when no allow-list is set, without warnings", async () => {
    const { url, logs } = await sidecar(NOBODY_LISTED)
    for (const who of ["developer", "mallory", "a.b.example.com"] as const) {
      expect((await get(`${url}/api/status`, tlsOf(who))).status).toBe(200)
    }
    const socket = await openWebSocket(url, as("mallory"), "/ws")
    await new Promise((resolve) => socket.once("close", resolve).close(1000, "done"))
    expect(logs.filter((l) => l.message === "client not authorized")).toEqual([])
  })
})

describe("denials, in detail", () => {
  it("escapes a hostile CN in the HTML 403 page", async () => {
    const { url } = await sidecar(ONLY_DEVELOPER)
    const hostile = await issue(pki.ca, { cn: "<img src=x onerror=alert(1)>", kind: "client" })
    const reply = await get(
      `${url}/dashboard`,
      { cert: hostile.certPem, key: hostile.keyPem, ca: pki.ca.certPem },
      { accept: "text/html" },
    )
    expect(reply.status).toBe(403)
    expect(reply.body).not.toContain("<img")
    expect(reply.body).toContain("CN=&lt;img src=x onerror=alert(1)&gt;")
    expect(reply.headers["content-security-policy"]).toContain("default-src 'none'")
  })
  it("answers a denied client's Expect: 100-continue with 403, not with 100 Continue", async () => {
    const { url } = await sidecar(ONLY_DEVELOPER)
    const { hostname, port } = new URL(url)
    const first = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({
        host: hostname,
        port: Number(port),
        cert: certs.mallory.certPem,
        key: certs.mallory.keyPem,
        ca: pki.ca.certPem,
        servername: "localhost",
      })
      let text = ""
      socket.on("secureConnect", () =>
        socket.write(
          "POST /upload HTTP/1.1\r\nHost: app.example\r\nExpect: 100-continue\r\nContent-Length: 1048576\r\n\r\n",
        ),
      )
      socket.on("data", (chunk: Buffer) => {
        text += chunk.toString("latin1")
        if (text.includes("\r\n\r\n")) {
          socket.destroy()
          resolve(text)
        }
      })
      socket.on("error", reject)
      socket.on("close", () => resolve(text))
    })
    expect(first.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden")
  })
  it("names the remote address when refusing a certificate the CA does not vouch for", async () => {
    const { url, logs } = await sidecar(ONLY_DEVELOPER)
    const rejected = () => logs.filter((l) => l.message === "TLS handshake rejected")
    const already = rejected().length
    for (const cert of [pki.strangerClient, pki.expiredClient]) {
      expect(
        await refusal(get(`${url}/api/status`, { cert: cert.certPem, key: cert.keyPem, ca: pki.ca.certPem })),
      ).toMatch(/ECONNRESET|socket hang up/)
    }
    expect(await waitFor(() => rejected().length >= already + 2)).toBe(true)
    expect(
      rejected()
        .slice(already)
        .map((l) => [l.annotations.reason, l.annotations.remote]),
    ).toEqual([
      ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "127.0.0.1"],
      ["CERT_HAS_EXPIRED", "127.0.0.1"],
    ])
  })
})

describe("allow-list configuration", () => {
  const decodeWith = (env: Env) => decode({ ...URIS, ...env })

  it.each<readonly [keyof Env & `ALLOW_${string}`, string]>([
    ["ALLOW_DNS", "*"],
    ["ALLOW_DNS", "*.com"],
    ["ALLOW_DNS", "a*.example.com"],
    ["ALLOW_DNS", "a.*.example.com"],
    ["ALLOW_DNS", "a..example.com"],
    ["ALLOW_DNS", "ok.example.com,bad name.example.com"],
    ["ALLOW_URI", "not a uri"],
    ["ALLOW_URI", "spiffe://td/ns/*/sa"],
    ["ALLOW_URI", "relative/path"],
    ["ALLOW_CN", "dev\u0001eloper"],
    ["ALLOW_OU", "ops\u007f"],
  ])("rejects %s=%j naming the variable", (variable, value) => {
    const result = decodeWith({ [variable]: value })
    expect(Result.isFailure(result)).toBe(true)
    if (Result.isSuccess(result)) return
    expect(result.failure.problems.map((p) => p.variable)).toEqual([variable])
    expect(result.failure.message).toContain(`invalid configuration: ${variable}=`)
  })

  it("reports a bad allow-list together with the other problems", () => {
    const result = decodeWith({ ALLOW_DNS: "*", MAX_CONNECTIONS: "0" })
    expect(Result.isFailure(result)).toBe(true)
    if (Result.isSuccess(result)) return
    expect(result.failure.problems.map((p) => p.variable).sort()).toEqual(["ALLOW_DNS", "MAX_CONNECTIONS"])
  })

  it("decodes valid lists: trimmed, blanks dropped, DNS lower-cased", () => {
    const result = decodeWith({
      ALLOW_CN: " developer , ops ,,",
      ALLOW_OU: "eng",
      ALLOW_DNS: "*.Example.COM, api.example.com",
      ALLOW_URI: "spiffe://td/ns/shop/*",
    })
    expect(Result.isSuccess(result)).toBe(true)
    if (Result.isFailure(result)) return
    expect(result.success.allow).toEqual({
      cns: ["developer", "ops"],
      ous: ["eng"],
      dnsNames: ["*.example.com", "api.example.com"],
      uris: ["spiffe://td/ns/shop/*"],
    })
  })

  it("leaves the allow-lists empty (any client of the CA) when unset or blank", () => {
    for (const env of [
      {},
      { ALLOW_CN: "", ALLOW_DNS: "" },
      { ALLOW_CN: " , " },
    ] satisfies ReadonlyArray<Env>) {
      const result = decodeWith(env)
      expect(Result.isSuccess(result)).toBe(true)
      if (Result.isSuccess(result)) {
        expect(result.success.allow).toEqual({ cns: [], ous: [], dnsNames: [], uris: [] })
      }
    }
  })
})
