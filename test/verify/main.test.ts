/**
 * dist/verify.js, as a user runs it, against a sidecar (in-process, real mTLS) over the mock CDH:
 * the binding holds for sample, TDX and SNP evidence; replayed evidence, evidence relayed by
 * another TLS endpoint, and a pod without the feature all fail.
 */
import { execFile } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { runtimeData } from "../../src/attestation/binding.ts"
import { type MockCdhOptions, startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { issue } from "../../src/dev/DevPki.ts"
import { sampleEvidence } from "../../src/dev/evidence.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { inProcess } from "../support/sidecar.ts"

const VERIFY = path.resolve(import.meta.dirname, "../../dist/verify.js")

let pki: Fixtures
let dir: string
const file = (name: string) => path.join(dir, name)
beforeAll(async () => {
  pki = await makeFixtures()
  dir = mkdtempSync(path.join(tmpdir(), "verify-"))
  writeFileSync(file("ca.pem"), pki.ca.certPem)
  writeFileSync(file("cert.pem"), pki.client.certPem)
  writeFileSync(file("key.pem"), pki.client.keyPem)
})
const sidecars = inProcess()
const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  await sidecars.closeAll()
  for (const f of cleanup.splice(0)) await f()
  rmSync(dir, { recursive: true, force: true })
})

const verify = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [VERIFY, ...args], { timeout: 30_000 }, (error, stdout, stderr) =>
      resolve({
        code: error === null ? 0 : typeof error.code === "number" ? error.code : -1,
        stdout,
        stderr,
      }),
    )
  })
const tlsArgs = () => ["--cacert", file("ca.pem"), "--cert", file("cert.pem"), "--key", file("key.pem")]

const sidecarOver = async (options: MockCdhOptions) => {
  const cdh = await startMockCdh({ resources: resourcesFor(pki), features: "all", ...options })
  cleanup.push(() => cdh.close())
  const { url } = await sidecars.start(pki, { CDH_URL: cdh.url }, { cdh: "http" })
  return url
}

describe("dist/verify.js", () => {
  it("passes on sample evidence, saying plainly that there is no TEE", async () => {
    const url = await sidecarOver({ tee: "sample" })
    const run = await verify([url, ...tlsArgs()])
    expect(run.stderr).toBe("")
    expect(run.code).toBe(0)
    expect(run.stdout).toContain("OK: the evidence carries this nonce and the key of this TLS connection.")
    expect(run.stdout).toContain("NO TEE")
    expect(run.stdout).toContain("What it does not prove")
  })

  it("finds the evidence under SIDECAR_PATH_PREFIX with --prefix", async () => {
    const cdh = await startMockCdh({ resources: resourcesFor(pki), features: "all", tee: "sample" })
    cleanup.push(() => cdh.close())
    const { url } = await sidecars.start(
      pki,
      { CDH_URL: cdh.url, SIDECAR_PATH_PREFIX: "/.sidecar" },
      { cdh: "http" },
    )
    expect((await verify([url, ...tlsArgs()])).code).toBe(2)
    const run = await verify([url, ...tlsArgs(), "--prefix", "/.sidecar"])
    expect(run.code).toBe(0)
  })

  it("fails with --require-tee on a pod without a TEE", async () => {
    const url = await sidecarOver({ tee: "sample" })
    const run = await verify([url, ...tlsArgs(), "--require-tee"])
    expect(run.code).toBe(1)
    expect(run.stdout).toContain("FAIL")
  })

  it.each([
    ["tdx", "MRTD"],
    ["snp", "MEASUREMENT"],
  ])("passes on %s evidence and prints its measurements (%s)", async (tee, measurement) => {
    const url = await sidecarOver({ tee })
    // The sidecar learns the TEE from /info in the background; the verifier also detects it from the shape.
    const run = await verify([url, ...tlsArgs(), "--require-tee"])
    expect(run.code).toBe(0)
    expect(run.stdout).toContain(`TEE: ${tee}`)
    expect(run.stdout).toContain(measurement)
  })

  it("fails on replayed evidence: a report over other runtime data", async () => {
    const stale = runtimeData(Buffer.alloc(32, 1), Buffer.alloc(32, 2))
    const url = await sidecarOver({
      evidence: () => JSON.stringify(sampleEvidence(Buffer.from(stale, "ascii"))),
    })
    const run = await verify([url, ...tlsArgs()])
    expect(run.code).toBe(1)
    expect(run.stdout).toContain("does not carry the expected runtime data")
  })

  it("fails when another TLS endpoint relays the sidecar's evidence (its key is not the one bound)", async () => {
    const url = await sidecarOver({ tee: "sample" })
    const relayCert = await issue(pki.ca, {
      cn: "127.0.0.1",
      kind: "server",
      ipAddresses: ["127.0.0.1"],
      dnsNames: ["localhost"],
    })
    const target = new URL(url)
    const relay = https.createServer(
      { cert: relayCert.certPem, key: relayCert.keyPem },
      (request, response) => {
        const upstream = https.request(
          {
            host: target.hostname,
            port: target.port,
            path: request.url,
            method: request.method,
            cert: pki.client.certPem,
            key: pki.client.keyPem,
            ca: pki.ca.certPem,
            servername: "localhost",
          },
          (answer) => {
            response.writeHead(answer.statusCode ?? 502, answer.headers)
            answer.pipe(response)
          },
        )
        upstream.on("error", () => response.destroy())
        upstream.end()
      },
    )
    await new Promise<void>((resolve) => relay.listen(0, "127.0.0.1", resolve))
    cleanup.push(() => new Promise((resolve) => relay.close(resolve)))
    const port = (relay.address() as { port: number }).port
    const run = await verify([`https://127.0.0.1:${port}`, ...tlsArgs()])
    expect(run.code).toBe(1)
    expect(run.stdout).toContain("names another server key")
    expect(run.stdout).toContain("does not carry the expected runtime data")
  })

  it("exits 2 with the sidecar's reason when the CDH's attestation feature is off", async () => {
    const url = await sidecarOver({ features: "resource" })
    const run = await verify([url, ...tlsArgs()])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain("HTTP 503")
    expect(run.stderr).toContain("Attestation Feature Not Enabled")
  })

  it.each([
    [[], "usage"],
    [["http://127.0.0.1:1", "--cert", "a", "--key", "b"], "https only"],
    [["https://127.0.0.1:1"], "--cert and --key are required"],
    [["https://127.0.0.1:1", "--cert", "/nonexistent", "--key", "/nonexistent"], "cannot read /nonexistent"],
  ])("exits 2 on a usage problem: %j", async (args, message) => {
    const run = await verify(args)
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(message)
  })
})
