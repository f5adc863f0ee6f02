/**
 * Start-up time and idle memory of the production bundle, for the record
 * (not a test: timings are never asserted). Two set-ups:
 *  - memory: the same bundle options, entry wired to the in-memory CDH;
 *  - http:   dist/main.js against the mock CDH HTTP server on 127.0.0.1.
 * Start-up = process spawn to the first answered GET /api/status over mTLS.
 * Idle RSS = VmRSS two seconds after that request.
 *
 *   node scripts/measure-startup.ts [runs]
 */
import { spawn } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import * as https from "node:https"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { build } from "esbuild"
import { startMockCdh } from "../src/cdh/mock/MockCdhServer.ts"
import { createDevPki } from "../src/tls/DevPki.ts"
import { bundleOptions } from "./bundle-options.ts"

const runs = Number(process.argv[2] ?? 5)
const root = path.resolve(import.meta.dirname, "..")
const work = mkdtempSync(path.join(tmpdir(), "sidecar-measure-"))
const pki = await createDevPki()
const resources = {
  "shop/sidecar-tls-web/server-cert": pki.server.certPem,
  "shop/sidecar-tls-web/server-key": pki.server.keyPem,
  "default/sidecar-tls/client-ca": pki.ca.certPem,
  "default/attestation-status/status": "success",
}
const resourcesFile = path.join(work, "resources.json")
writeFileSync(resourcesFile, JSON.stringify(resources))

const memoryBundle = path.join(work, "memory.js")
await build({
  ...bundleOptions,
  stdin: {
    contents: `
      import { readFileSync } from "node:fs"
      import * as MemoryResourceClient from "./src/cdh/MemoryResourceClient.ts"
      import { run } from "./src/entry.ts"
      const resources = JSON.parse(readFileSync(process.env.RESOURCES_FILE, "utf8"))
      run({ env: process.env, resourceClient: () => MemoryResourceClient.layer(resources) })`,
    resolveDir: root,
    loader: "ts",
  },
  outfile: memoryBundle,
})

const cdh = await startMockCdh({ resources, serialize: false })
let port = 19443

const get = (url: string) =>
  new Promise<number>((resolve, reject) => {
    const request = https.get(
      url,
      { agent: false, ca: pki.ca.certPem, cert: pki.client.certPem, key: pki.client.keyPem },
      (response) => {
        response.resume()
        response.on("end", () => resolve(response.statusCode ?? 0))
      },
    )
    request.on("error", reject)
  })

const rssKiB = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"))
  return Number(line?.replace(/\D+/g, "") ?? Number.NaN)
}

const once = async (bundle: string, extraEnv: Record<string, string>) => {
  port++
  const started = performance.now()
  const child = spawn(process.execPath, [bundle], {
    stdio: "ignore",
    env: {
      PATH: process.env.PATH ?? "",
      TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
      TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
      CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
      HTTPS_HOST: "127.0.0.1",
      HTTPS_PORT: String(port),
      ...extraEnv,
    },
  })
  let startupMs = Number.NaN
  for (;;) {
    try {
      if ((await get(`https://127.0.0.1:${port}/api/status`)) === 200) {
        startupMs = performance.now() - started
        break
      }
    } catch {
      await new Promise((r) => setTimeout(r, 2))
    }
  }
  await new Promise((r) => setTimeout(r, 2000))
  const rss = rssKiB(child.pid ?? 0)
  const exited = new Promise((r) => child.once("exit", r))
  child.kill("SIGTERM")
  await exited
  return { startupMs, rssMiB: rss / 1024 }
}

const median = (xs: Array<number>) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN

for (const [name, bundle, env] of [
  ["memory CDH", memoryBundle, { RESOURCES_FILE: resourcesFile }],
  ["mock CDH over HTTP", path.join(root, "dist/main.js"), { CDH_URL: cdh.url }],
] as const) {
  const results = []
  for (let i = 0; i < runs; i++) results.push(await once(bundle, env))
  console.log(
    `${name}: start-up to first served request median ${median(results.map((r) => r.startupMs)).toFixed(0)} ms ` +
      `(min ${Math.min(...results.map((r) => r.startupMs)).toFixed(0)}, max ${Math.max(...results.map((r) => r.startupMs)).toFixed(0)}); ` +
      `idle RSS median ${median(results.map((r) => r.rssMiB)).toFixed(1)} MiB over ${runs} runs`,
  )
}
await cdh.close()
