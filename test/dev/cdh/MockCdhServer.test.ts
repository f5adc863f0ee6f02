import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { afterEach, describe, expect, it } from "vitest"
import {
  isLoopback,
  loadResourcesFromDir,
  loadResourcesFromJson,
  type MockCdhOptions,
  type MockCdhServer,
  scoped,
  startMockCdh,
} from "../../../src/dev/cdh/MockCdhServer.ts"

const CLI = fileURLToPath(new URL("../../../src/dev/cdh/cli.ts", import.meta.url))

const BINARY = new Uint8Array([0x00, 0xff, 0x0a, 0x0d, 0x80, 0x7f, 0x00, 0x41])
const RESOURCES = {
  "default/attestation-status/status": "success",
  "default/sidecar-tls/client-ca": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
  "shop/sidecar-tls-web/server-key": BINARY,
  // Stored, but unreachable: the paths fail Trustee's segment regex.
  ".hidden/b/c": "hidden",
  "a/b/c%20d": "percent",
}

const servers: Array<MockCdhServer> = []
const children: Array<ChildProcessWithoutNullStreams> = []
const tempDirs: Array<string> = []

afterEach(async () => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL")
  await Promise.all(servers.splice(0).map((s) => s.close()))
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

const mock = async (options: MockCdhOptions = {}): Promise<MockCdhServer> => {
  const server = await startMockCdh({ resources: RESOURCES, ...options })
  servers.push(server)
  return server
}

const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), "mock-cdh-test-"))
  tempDirs.push(dir)
  return dir
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

interface Response {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
  readonly text: string
}

/** One request on a fresh connection (no pooling), path sent byte for byte. */
const request = (
  base: string,
  path: string,
  init: { readonly method?: string; readonly body?: string; readonly host?: string } = {},
): Promise<Response> =>
  new Promise((resolve, reject) => {
    const url = new URL(base)
    const req = http.request(
      { host: init.host ?? url.hostname, port: url.port, path, method: init.method ?? "GET", agent: false },
      (res) => {
        const chunks: Array<Buffer> = []
        res.on("data", (chunk: Buffer) => chunks.push(chunk))
        res.on("error", reject)
        res.on("end", () => {
          const body = Buffer.concat(chunks)
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString("utf8") })
        })
      },
    )
    req.on("error", reject)
    req.end(init.body)
  })

const errorCode = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "code" in error ? error.code : undefined

const causeCode = (error: unknown): unknown =>
  typeof error === "object" && error !== null && "cause" in error ? errorCode(error.cause) : undefined

const RELEASED_500 = 'message: "[CDH] [ERROR]: Get Resource failed"'

describe("resources", () => {
  it("returns the bytes verbatim as application/octet-stream", async () => {
    const server = await mock()
    const status = await request(server.url, "/cdh/resource/default/attestation-status/status")
    expect(status.status).toBe(200)
    expect(status.headers["content-type"]).toBe("application/octet-stream")
    expect(status.text).toBe("success")
    expect(status.body.byteLength).toBe(7)

    const key = await request(server.url, "/cdh/resource/shop/sidecar-tls-web/server-key")
    expect(key.status).toBe(200)
    expect(key.headers["content-type"]).toBe("application/octet-stream")
    expect(new Uint8Array(key.body)).toEqual(BINARY)

    const ca = await request(server.url, "/cdh/resource/default/sidecar-tls/client-ca")
    expect(ca.text).toBe(RESOURCES["default/sidecar-tls/client-ca"])
    expect(ca.text.endsWith("\n")).toBe(false)
  })

  it("answers 500 with no Content-Type for a missing resource (never 404)", async () => {
    const server = await mock()
    const res = await request(server.url, "/cdh/resource/default/nope/missing")
    expect(res.status).toBe(500)
    expect(res.headers["content-type"]).toBeUndefined()
    expect(res.text).toContain("rpc status: Status { code: INTERNAL")
    expect(res.text).toContain(RELEASED_500)
  })

  it("uses the main-branch body with errorStyle main", async () => {
    const server = await mock({ errorStyle: "main" })
    const res = await request(server.url, "/cdh/resource/default/nope/missing")
    expect(res.status).toBe(500)
    expect(res.text).toBe("ttrpc request error")
  })

  it.each([
    ["two segments", "/cdh/resource/default/attestation-status"],
    ["four segments", "/cdh/resource/default/attestation-status/status/extra"],
    ["trailing slash", "/cdh/resource/default/attestation-status/status/"],
    ["percent (not decoded)", "/cdh/resource/a/b/c%20d"],
    ["leading dot", "/cdh/resource/.hidden/b/c"],
    ["empty segment", "/cdh/resource//attestation-status/status"],
    ["dot-dot", "/cdh/resource/default/../status"],
    ["nothing after /cdh/resource/", "/cdh/resource/"],
  ])("answers 500 for a bad path: %s", async (_name, path) => {
    const server = await mock()
    const res = await request(server.url, path)
    expect(res.status).toBe(500)
    expect(res.headers["content-type"]).toBeUndefined()
    expect(res.text).toContain(RELEASED_500)
  })

  it("ignores the query string", async () => {
    const server = await mock()
    const res = await request(server.url, "/cdh/resource/default/attestation-status/status?version=2&x=../y")
    expect(res.status).toBe(200)
    expect(res.text).toBe("success")
  })

  it("fetches for any method (v0.18+), but answers 405 for non-GET in legacy mode", async () => {
    const server = await mock()
    const post = await request(server.url, "/cdh/resource/default/attestation-status/status", {
      method: "POST",
      body: "ignored",
    })
    expect(post.status).toBe(200)
    expect(post.text).toBe("success")
    const del = await request(server.url, "/cdh/resource/default/attestation-status/status", {
      method: "DELETE",
    })
    expect(del.status).toBe(200)

    const legacy = await mock({ legacy: true })
    const legacyPost = await request(legacy.url, "/cdh/resource/default/attestation-status/status", {
      method: "POST",
      body: "ignored",
    })
    expect(legacyPost.status).toBe(405)
    expect(legacyPost.text).toBe("Method Not Allowed")
    expect(legacyPost.headers["content-type"]).toBeUndefined()
    const legacyGet = await request(legacy.url, "/cdh/resource/default/attestation-status/status")
    expect(legacyGet.status).toBe(200)
    const legacyInfo = await request(legacy.url, "/info")
    expect(legacyInfo.status).toBe(404)
    expect(legacyInfo.body.byteLength).toBe(0)
    const legacyUnknown = await request(legacy.url, "/x/y")
    expect(legacyUnknown.status).toBe(404)
    expect(legacyUnknown.body.byteLength).toBe(0)
  })

  it("sees setResource/deleteResource at once and logs every request", async () => {
    const server = await mock({ resources: {} })
    expect((await request(server.url, "/cdh/resource/r/t/g")).status).toBe(500)
    server.setResource("r/t/g", "v1")
    expect((await request(server.url, "/cdh/resource/r/t/g?q")).text).toBe("v1")
    server.deleteResource("r/t/g")
    expect((await request(server.url, "/cdh/resource/r/t/g")).status).toBe(500)
    expect(server.requests.map((r) => [r.method, r.path, r.status])).toEqual([
      ["GET", "/cdh/resource/r/t/g", 500],
      ["GET", "/cdh/resource/r/t/g", 200],
      ["GET", "/cdh/resource/r/t/g", 500],
    ])
    expect(server.requests[1]?.target).toBe("/cdh/resource/r/t/g?q")
  })
})

describe("routing", () => {
  it.each([
    ["/x", "URL NOT FOUND"],
    ["/cdh", "URL NOT FOUND"],
    ["/", "URL NOT FOUND"],
    ["/cdh/", "URL NOT FOUND"],
    ["/cdh/resource", "URL NOT FOUND"],
    ["/cdh/foo/a/b/c", "URL NOT FOUND"],
    ["/cdh/resourcekbs.example:8080/a/b/c", "URL NOT FOUND"],
    ["/x/y", "URL NOT FOUND"],
    ["/aa/token?token_type=kbs", "Attestation Feature Not Enabled"],
    ["/aa/anything", "Attestation Feature Not Enabled"],
  ])("404 for %s with the default features", async (path, body) => {
    const server = await mock()
    const res = await request(server.url, path)
    expect(res.status).toBe(404)
    expect(res.text).toBe(body)
    expect(res.headers["content-type"]).toBeUndefined()
  })

  it("404 Resource Feature Not Enabled for /cdh with features=attestation", async () => {
    const server = await mock({ features: "attestation" })
    const res = await request(server.url, "/cdh/resource/default/attestation-status/status")
    expect(res.status).toBe(404)
    expect(res.text).toBe("Resource Feature Not Enabled")
  })

  it("/info shapes: no tee with resource only; tee with all; 405 for POST", async () => {
    const resourceOnly = await mock()
    const a = await request(resourceOnly.url, "/info")
    expect(a.status).toBe(200)
    expect(a.headers["content-type"]).toBe("application/json")
    expect(JSON.parse(a.text)).toEqual({ version: "v0.0.0-mock", feature: "resource" })

    const all = await mock({ features: "all", version: "v0.21.0", tee: "tdx" })
    const b = await request(all.url, "/info")
    expect(JSON.parse(b.text)).toEqual({ version: "v0.21.0", feature: "all", tee: "tdx" })
    const c = await request((await mock({ features: "attestation" })).url, "/info")
    expect(JSON.parse(c.text)).toEqual({ version: "v0.0.0-mock", feature: "attestation", tee: "sample" })

    const post = await request(all.url, "/info", { method: "POST" })
    expect(post.status).toBe(405)
    expect(post.text).toBe("Method Not Allowed")
    expect(post.headers["content-type"]).toBeUndefined()
  })

  it("/aa endpoints with the attestation feature on", async () => {
    const server = await mock({ features: "all" })
    const noType = await request(server.url, "/aa/token")
    expect([noType.status, noType.text]).toEqual([400, "BAD REQUEST"])
    const badType = await request(server.url, "/aa/token?token_type=nope")
    expect(badType.status).toBe(500)
    expect(badType.headers["content-type"]).toBeUndefined()

    const token = await request(server.url, "/aa/token?token_type=kbs")
    expect(token.status).toBe(200)
    const body = JSON.parse(token.text) as { token: string; tee_keypair: string }
    const parts = body.token.split(".")
    expect(parts).toHaveLength(3)
    const header = JSON.parse(Buffer.from(parts[0] ?? "", "base64url").toString("utf8")) as { alg: string }
    const claims = JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8")) as {
      iat: number
      exp: number
      iss: string
    }
    expect(header.alg).toBe("ES256")
    expect(claims.exp - claims.iat).toBe(300)
    expect(claims.iss).toContain("NOT A REAL ATTESTATION")
    expect(body.tee_keypair).toContain("MOCK ONLY")

    const evidence = await request(server.url, "/aa/evidence?runtime_data=hello")
    expect(evidence.status).toBe(200)
    expect(JSON.parse(evidence.text)).toEqual({
      svn: "1",
      report_data: Buffer.from("hello").toString("base64"),
    })
    const encoded = await request(
      server.url,
      `/aa/evidence?runtime_data=${Buffer.from([1, 2, 250]).toString("base64url")}&encoding=base64`,
    )
    expect(JSON.parse(encoded.text)).toEqual({
      svn: "1",
      report_data: Buffer.from([1, 2, 250]).toString("base64"),
    })
    expect((await request(server.url, "/aa/evidence?runtime_data=a&encoding=hex")).status).toBe(400)
    expect((await request(server.url, "/aa/evidence")).status).toBe(400)
    expect((await request(server.url, "/aa/evidence?runtime_data=x", { method: "POST" })).status).toBe(404)
    expect((await request(server.url, "/aa/nothing")).text).toBe("URL NOT FOUND")
  })
})

describe("failures and timing", () => {
  it("failFirst=2 answers 500, 500, then 200; setFailNext does it again", async () => {
    const server = await mock({ failFirst: 2 })
    const path = "/cdh/resource/default/attestation-status/status"
    const statuses: Array<number> = []
    for (let i = 0; i < 3; i++) statuses.push((await request(server.url, path)).status)
    expect(statuses).toEqual([500, 500, 200])
    server.setFailNext(1)
    expect((await request(server.url, path)).status).toBe(500)
    expect((await request(server.url, path)).status).toBe(200)
  })

  it("refuses connections while unavailable, then serves on the same port", async () => {
    const server = await mock({ unavailableForMs: 300 })
    expect(server.port).toBeGreaterThan(0)
    expect(server.listening).toBe(false)
    const url = `${server.url}/cdh/resource/default/attestation-status/status`
    const refused = await fetch(url).then(
      () => "no error",
      (error: unknown) => error,
    )
    expect(refused).toBeInstanceOf(TypeError)
    expect(causeCode(refused)).toBe("ECONNREFUSED")
    await sleep(400)
    await server.ready
    const res = await fetch(url)
    expect(res.status).toBe(200)
    expect(await res.text()).toBe("success")
  })

  it("serializes requests: two concurrent 200 ms requests take about 400 ms", async () => {
    const server = await mock({ delayMs: 200 })
    const path = "/cdh/resource/default/attestation-status/status"
    const started = performance.now()
    const results = await Promise.all([request(server.url, path), request(server.url, path)])
    const elapsed = performance.now() - started
    expect(results.map((r) => r.status)).toEqual([200, 200])
    expect(elapsed).toBeGreaterThanOrEqual(380)
  })

  it("stop() refuses connections, start() serves again on the same port with the same state", async () => {
    const server = await mock()
    const path = "/cdh/resource/default/attestation-status/status"
    server.setResource("late/added/value", "kept")
    expect((await request(server.url, path)).status).toBe(200)
    const port = server.port
    await server.stop()
    expect(server.listening).toBe(false)
    const refused = await request(server.url, path).then(
      () => "no error",
      (error: unknown) => errorCode(error),
    )
    expect(refused).toBe("ECONNREFUSED")
    await server.start()
    expect(server.port).toBe(port)
    expect((await request(server.url, "/cdh/resource/late/added/value")).text).toBe("kept")
  })

  it("close() does not hang on an idle open connection", async () => {
    const server = await mock()
    const socket = net.connect(server.port, "127.0.0.1")
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()))
    const closedByServer = new Promise<void>((resolve) => socket.once("close", () => resolve()))
    await server.close()
    await closedByServer
  })

  // Servers in tests bind 127.0.0.1 only, so the peer check is tested on its predicate.
  it.each([
    ["127.0.0.1", true],
    ["127.8.9.10", true],
    ["::1", true],
    ["::ffff:127.0.0.1", true],
    ["10.0.0.1", false],
    ["192.0.2.2", false],
    ["::ffff:10.0.0.1", false],
    ["fe80::1", false],
    [undefined, false],
  ] as const)("treats peer %s as loopback: %s", (address, expected) => {
    expect(isLoopback(address)).toBe(expected)
  })

  it("works as a scoped Effect resource", async () => {
    const port = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function* () {
          const server = yield* scoped({ resources: { "a/b/c": "x" } })
          const res = yield* Effect.promise(() => request(server.url, "/cdh/resource/a/b/c"))
          expect(res.text).toBe("x")
          return server.port
        }),
      ),
    )
    const after = await request(`http://127.0.0.1:${port}`, "/info").then(
      () => "no error",
      (error: unknown) => errorCode(error),
    )
    expect(after).toBe("ECONNREFUSED")
  })
})

describe("loaders", () => {
  it("loadResourcesFromDir reads <dir>/<repo>/<type>/<tag> and round-trips through the mock", async () => {
    const dir = tempDir()
    mkdirSync(join(dir, "default", "attestation-status"), { recursive: true })
    mkdirSync(join(dir, "shop", "sidecar-tls-web"), { recursive: true })
    writeFileSync(join(dir, "default", "attestation-status", "status"), "success")
    writeFileSync(join(dir, "shop", "sidecar-tls-web", "server-key"), BINARY)
    writeFileSync(join(dir, "top-level-file"), "ignored")
    // Kubernetes volume layout: `..data` is skipped, the symlinked file is followed.
    mkdirSync(join(dir, "shop", "sidecar-tls-web", "..data"))
    writeFileSync(join(dir, "shop", "sidecar-tls-web", "..data", "server-cert"), "CERT")
    symlinkSync(join("..data", "server-cert"), join(dir, "shop", "sidecar-tls-web", "server-cert"))

    const resources = loadResourcesFromDir(dir)
    expect(Object.keys(resources).sort()).toEqual([
      "default/attestation-status/status",
      "shop/sidecar-tls-web/server-cert",
      "shop/sidecar-tls-web/server-key",
    ])
    const server = await mock({ resources })
    expect((await request(server.url, "/cdh/resource/default/attestation-status/status")).text).toBe(
      "success",
    )
    const key = await request(server.url, "/cdh/resource/shop/sidecar-tls-web/server-key")
    expect(new Uint8Array(key.body)).toEqual(BINARY)
    expect((await request(server.url, "/cdh/resource/shop/sidecar-tls-web/server-cert")).text).toBe("CERT")
  })

  it("loadResourcesFromJson reads the offline-fs format and rejects non-base64", async () => {
    const dir = tempDir()
    const file = join(dir, "resources.json")
    writeFileSync(
      file,
      JSON.stringify({
        "default/attestation-status/status": Buffer.from("success").toString("base64"),
        "shop/sidecar-tls-web/server-key": Buffer.from(BINARY).toString("base64"),
      }),
    )
    const resources = loadResourcesFromJson(file)
    expect(resources["shop/sidecar-tls-web/server-key"]).toEqual(BINARY)
    const server = await mock({ resources })
    expect((await request(server.url, "/cdh/resource/default/attestation-status/status")).text).toBe(
      "success",
    )

    const bad = join(dir, "bad.json")
    writeFileSync(bad, JSON.stringify({ "a/b/c": "not base64!" }))
    expect(() => loadResourcesFromJson(bad)).toThrow(/a\/b\/c/)
  })
})

describe("cli", () => {
  const run = (args: ReadonlyArray<string>): ChildProcessWithoutNullStreams => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: "pipe" })
    children.push(child)
    return child
  }

  const exitCode = (child: ChildProcessWithoutNullStreams): Promise<number | null> =>
    new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode)
      else child.once("exit", (code) => resolve(code))
    })

  const collect = (stream: NodeJS.ReadableStream): { readonly text: () => string } => {
    let buffered = ""
    stream.on("data", (chunk: Buffer) => {
      buffered += chunk.toString("utf8")
    })
    return { text: () => buffered }
  }

  it("serves a --dir, logs requests, and exits 0 on SIGTERM", async () => {
    const dir = tempDir()
    mkdirSync(join(dir, "default", "attestation-status"), { recursive: true })
    writeFileSync(join(dir, "default", "attestation-status", "status"), "success")
    const child = run(["--dir", dir, "--port", "0"])
    const stdout = collect(child.stdout)
    const stderr = collect(child.stderr)
    const url = await new Promise<string>((resolve, reject) => {
      const check = (): void => {
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout.text())
        if (match?.[1] !== undefined) resolve(match[1])
      }
      child.stdout.on("data", check)
      child.once("exit", (code) => reject(new Error(`cli exited ${code}: ${stderr.text()}`)))
    })
    const res = await request(url, "/cdh/resource/default/attestation-status/status")
    expect(res.status).toBe(200)
    expect(res.text).toBe("success")
    await sleep(50) // let the log line arrive
    expect(stdout.text()).toMatch(/GET \/cdh\/resource\/default\/attestation-status\/status 200 \d+ms/)
    child.kill("SIGTERM")
    expect(await exitCode(child)).toBe(0)
  })

  it("exits 2 naming the flag and value for --port abc", async () => {
    const dir = tempDir()
    const child = run(["--dir", dir, "--port", "abc"])
    const stderr = collect(child.stderr)
    expect(await exitCode(child)).toBe(2)
    const message = stderr.text()
    expect(message).toContain("--port")
    expect(message).toContain("abc")
    expect(message.trim().split("\n")).toHaveLength(1)
  })
})
