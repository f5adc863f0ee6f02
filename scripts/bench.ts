/**
 * `make bench`: throughput, latency, memory and start-up of the production bundle, each load
 * figure next to the backend's own (the ceiling), measured in the same run. For the record and
 * for docs/PERFORMANCE.md, which explains the set-up and the figures: nothing is asserted.
 *
 *   node scripts/bench.ts [--write] [--no-build] [--duration S] [--prime S] [--startup-runs N]
 *                         [--no-reference] [--flags "<NODE_OPTIONS>"] [--flags-as-args]
 *                         [--env NAME=VALUE]... [--only small,handshake,transfer,ws,hostile,cpu100m,http2]
 *                         [--json FILE] [--limit MiB] [--flags-node PATH] [--bundle FILE]
 *
 * Everything runs on 127.0.0.1, each part in its own process: the backend
 * (scripts/bench/backend.ts), the sidecar (`node dist/main.js`, built first) against the mock CDH
 * over HTTP, a minimal node:https proxy for reference (scripts/bench/reference-proxy.ts), and the
 * load generator (scripts/bench/load.ts, one process per scenario and target, presenting the
 * client certificate). The sidecar runs twice side by side: as is, and with the container image's
 * NODE_OPTIONS; the reference proxy runs with those NODE_OPTIONS too. Every target is primed with small GETs (the JIT takes seconds to reach speed),
 * then each scenario runs time-bounded:
 *  1. small GET over 32 keep-alive connections: requests/s, p50, p99;
 *  2. a new connection per request (TLS: a full handshake with the client certificate): connections/s;
 *  3. a 64 MiB download and a 16 MiB upload on one connection: MB/s, the first of each hash-checked;
 *  4. 100 WebSockets, each sending a message and awaiting its echo in a loop: messages/s, p50, p99.
 *  5. hostile clients (scripts/bench/hostile.ts), on fresh processes: 60 stalled readers, 200 idle
 *     TCP connections, a pipelining flood;
 *  6. `cpu100m`: the sidecar with the container flags, then the reference proxy, each alone in a CPU
 *     cgroup limited to kubectl-coco's 100m (a CFS quota of 10 ms per 100 ms), serving an RSA-4096
 *     server certificate: p50/p99 of small GETs at a fixed rate over 4 connections, and of full
 *     handshakes one at a time. Primed without a limit first; the backend is not limited.
 *  7. `http2` (issue 13), the sidecar with the container flags and HTTP2=true: browser-like page loads
 *     (an HTML page, then the 40 assets it references, 6 requests at a time, a new client each: full
 *     handshakes with an RSA-4096 server key, no resumption) over HTTP/1.1 (up to 6 connections) and
 *     over HTTP/2 (1 connection), unlimited then in a 100m CPU cgroup (back to back, then 2 a
 *     second): page loads/s, p50, p99; and small GETs, 32 at once, over HTTP/2 (4 connections)
 *     against HTTP/1.1 (32 connections), and over HTTP/1.1 with HTTP2=false against HTTP2=true,
 *     alternated over two rounds: requests/s and the sidecar's CPU per request.
 * Plus idle RSS (2 s after the first served request), peak RSS (VmHWM, reset before each scenario)
 * and peak anonymous memory, CPU use per process and scenario, start-up to the first served
 * request (median), and the idle RSS of a bare `node` and of `node` with node:https, for scale.
 * The sidecar with the container flags runs in a memory cgroup limited to kubectl-coco's 128 MiB
 * (`--limit`, 0 for none; where this machine lets us make one): its idle working set, peak charge
 * and OOM kills are reported too. Throughput is also given per core of the front's own CPU, and the
 * sidecar with the container flags is checked against the reference proxy for issue 11's targets.
 *
 * Prints a Markdown report on stdout (progress on stderr); `--write` also replaces the figures
 * section of docs/PERFORMANCE.md. The other options are for experiments: `--flags` replaces the
 * container NODE_OPTIONS of the second column (`--flags-as-args` passes them on the command line,
 * for V8 flags Node refuses in NODE_OPTIONS), `--env` sets a variable for both sidecars, `--only`
 * runs some scenarios, `--no-reference` drops the reference proxy, `--json` dumps the raw figures,
 * `--flags-node` runs the limited sidecar on another copy of node (a fresh one: a cold page cache),
 * `--bundle` runs another sidecar bundle instead of dist/main.js (and builds nothing).
 */
import { type ChildProcess, fork, spawn, spawnSync } from "node:child_process"
import {
  closeSync,
  createWriteStream,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs"
import * as https from "node:https"
import * as net from "node:net"
import { availableParallelism, cpus, release, tmpdir, totalmem } from "node:os"
import * as path from "node:path"
import { type MockCdhRequest, startMockCdh } from "../src/dev/cdh/MockCdhServer.ts"
import {
  createDevPki,
  DEV_ORG,
  DEV_SERVER_CN,
  DEV_SERVER_DNS_NAMES,
  DEV_SERVER_IP_ADDRESSES,
  issue,
} from "../src/dev/DevPki.ts"
import * as Cgroup from "./bench/cgroup.ts"
import { type HostileResult, runHostile } from "./bench/hostile.ts"
import {
  anonMiB,
  anonSampler,
  type CpuReading,
  cpuMeter,
  cpuModel,
  peakMiB,
  resetPeak,
  rssMiB,
} from "./bench/proc.ts"
import type { LoadJob, LoadResult, RateResult, Scenario, Target, TransferResult } from "./bench/shared.ts"
import { PAGE_PATH, pageHtml, SMALL_BODY, SMALL_PATH } from "./bench/shared.ts"

// ---------------------------------------------------------------------------------------------------------
// options

const CONTAINER_FLAGS = "--max-semi-space-size=2 --max-old-space-size=64"
/** What `--only` selects from. */
const ONLY: ReadonlyArray<string> = ["small", "handshake", "transfer", "ws", "hostile", "cpu100m", "http2"]

interface Options {
  readonly write: boolean
  readonly build: boolean
  /** Measured window of the rate scenarios, after a 1 s warm-up. */
  readonly durationMs: number
  /** Small GETs to each target before any scenario, to warm the JIT up. */
  readonly primeMs: number
  readonly startupRuns: number
  readonly reference: boolean
  readonly flags: string
  /** Pass `flags` on the command line rather than in NODE_OPTIONS (for V8 flags Node refuses there). */
  readonly flagsAsArgs: boolean
  readonly env: Readonly<Record<string, string>>
  /** Also write every raw figure (per-second timelines included) to this JSON file. */
  readonly json: string | undefined
  /** Scenario kinds to run (all by default). */
  readonly only: ReadonlyArray<string> | undefined
  /** Memory cgroup limit for the sidecar with the container flags, MiB; 0 for none. */
  readonly limitMiB: number
  /**
   * The node executable of the sidecar with the container flags: a copy whose pages nothing has
   * cached yet makes the cgroup pay for the executable's pages too, as on a node that never ran it.
   */
  readonly flagsNode: string
  /** The sidecar bundle to run, instead of dist/main.js (which `--no-build` reuses as is). */
  readonly bundle: string | undefined
}

const parseOptions = (argv: ReadonlyArray<string>): Options => {
  const options = {
    write: false,
    build: true,
    durationMs: 5000,
    primeMs: 5000,
    startupRuns: 5,
    reference: true,
    flags: CONTAINER_FLAGS,
    flagsAsArgs: false,
    env: {} as Record<string, string>,
    only: undefined as ReadonlyArray<string> | undefined,
    json: undefined as string | undefined,
    limitMiB: 128,
    flagsNode: process.execPath,
    bundle: undefined as string | undefined,
  }
  const value = (i: number): string => {
    const v = argv[i + 1]
    if (v === undefined) throw new Error(`${argv[i]} needs a value`)
    return v
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    if (arg === "--write") options.write = true
    else if (arg === "--no-build") options.build = false
    else if (arg === "--no-reference") options.reference = false
    else if (arg === "--duration") options.durationMs = Number(value(i++)) * 1000
    else if (arg === "--prime") options.primeMs = Math.max(0, Number(value(i++)) * 1000)
    else if (arg === "--startup-runs") options.startupRuns = Math.max(1, Number(value(i++)))
    else if (arg === "--flags") options.flags = value(i++)
    else if (arg === "--flags-as-args") options.flagsAsArgs = true
    else if (arg === "--only") {
      options.only = value(i++).split(",")
      const unknown = options.only.filter((name) => !ONLY.includes(name))
      if (unknown.length > 0)
        throw new Error(`--only: unknown ${unknown.join(", ")}; known: ${ONLY.join(",")}`)
    } else if (arg === "--json") options.json = path.resolve(value(i++))
    else if (arg === "--limit") options.limitMiB = Math.max(0, Number(value(i++)))
    else if (arg === "--flags-node") options.flagsNode = path.resolve(value(i++))
    else if (arg === "--bundle") options.bundle = path.resolve(value(i++))
    else if (arg === "--env") {
      const [name, ...rest] = value(i++).split("=")
      if (name === undefined || rest.length === 0) throw new Error("--env takes NAME=VALUE")
      options.env[name] = rest.join("=")
    } else throw new Error(`unknown argument ${arg}; see the header of scripts/bench.ts`)
  }
  if (!(options.durationMs > 0)) throw new Error("--duration must be a positive number of seconds")
  if (!Number.isFinite(options.limitMiB)) throw new Error("--limit takes a number of MiB (0: none)")
  return options
}

const options = parseOptions(process.argv.slice(2))
const root = path.resolve(import.meta.dirname, "..")
const started = performance.now()
const elapsed = (): string => ((performance.now() - started) / 1000).toFixed(1)
const progress = (message: string): void => {
  process.stderr.write(`[bench ${elapsed().padStart(5)} s] ${message}\n`)
}
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
const median = (xs: ReadonlyArray<number>): number =>
  [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] ?? Number.NaN

// Children are killed when the benchmark ends in any way.
const children = new Set<ChildProcess>()
const track = (child: ChildProcess): ChildProcess => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL")
})
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130))

const stop = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000)
  await exited
  clearTimeout(timer)
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      const port = typeof address === "object" && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })

// ---------------------------------------------------------------------------------------------------------
// set-up: build, PKI, mock CDH, backend

if (options.build && options.bundle === undefined) {
  progress("building dist/main.js")
  const built = spawnSync(process.execPath, [path.join(root, "scripts/build.ts")], {
    cwd: root,
    stdio: ["ignore", process.stderr, process.stderr],
  })
  if (built.status !== 0) throw new Error("the build failed")
}
const bundle = options.bundle ?? path.join(root, "dist/main.js")

const work = mkdtempSync(path.join(tmpdir(), "sidecar-bench-"))
process.on("exit", () => rmSync(work, { recursive: true, force: true }))
// kubectl-coco's limit, applied as the kubelet would, to the sidecar with the container flags.
const cgroup =
  options.limitMiB > 0
    ? Cgroup.create(`coco-bench-${process.pid}`, options.limitMiB)
    : { unavailable: "turned off with --limit 0" }
if ("unavailable" in cgroup) progress(`no memory cgroup for the sidecar: ${cgroup.unavailable}`)
const pki = await createDevPki()
const file = (name: string, content: string): string => {
  const p = path.join(work, name)
  writeFileSync(p, content)
  return p
}
const caFile = file("ca.pem", pki.ca.certPem)
const clientCertFile = file("client-cert.pem", pki.client.certPem)
const clientKeyFile = file("client-key.pem", pki.client.keyPem)
const serverCertFile = file("server-cert.pem", pki.server.certPem)
const serverKeyFile = file("server-key.pem", pki.server.keyPem)
// The CPU-limited scenario's server certificate: an RSA-4096 key (signed by the same ECDSA CA), whose
// signature is most of a handshake's cost (the HTTP/2 page loads use it too). Issued in the background;
// only the scenarios that use it wait for it.
const wantCpu100m = options.only?.includes("cpu100m") ?? true
const wantHttp2 = options.only?.includes("http2") ?? true
const rsaServer =
  wantCpu100m || wantHttp2
    ? issue(pki.ca, {
        cn: DEV_SERVER_CN,
        kind: "server",
        dnsNames: DEV_SERVER_DNS_NAMES,
        ipAddresses: DEV_SERVER_IP_ADDRESSES,
        algorithm: "rsa-4096",
        org: DEV_ORG,
      })
    : undefined
const RSA_RESOURCES = {
  cert: "shop/sidecar-tls-rsa/server-cert",
  key: "shop/sidecar-tls-rsa/server-key",
}

const TLS_RESOURCES = {
  "shop/sidecar-tls-web/server-cert": pki.server.certPem,
  "shop/sidecar-tls-web/server-key": pki.server.keyPem,
  "default/sidecar-tls/client-ca": pki.ca.certPem,
}
const cdhRequests: Array<MockCdhRequest> = []
// One request at a time, as the real api-server-rest (<= v0.21) answers.
const cdh = await startMockCdh({
  resources: { ...TLS_RESOURCES, "default/attestation-status/status": "success" },
  onRequest: (request) => cdhRequests.push(request),
})
const tlsResourcePaths = new Set(
  [...Object.keys(TLS_RESOURCES), ...Object.values(RSA_RESOURCES)].map((key) => `/cdh/resource/${key}`),
)

const backend = track(
  fork(path.join(root, "scripts/bench/backend.ts"), [], {
    stdio: ["ignore", "ignore", "inherit", "ipc"],
    execArgv: [],
  }),
)
const backendPort = await new Promise<number>((resolve, reject) => {
  backend.once("message", (message) => resolve((message as { port: number }).port))
  backend.once("exit", () => reject(new Error("the backend exited")))
})
const backendPid = backend.pid ?? 0

// ---------------------------------------------------------------------------------------------------------
// the fronts: the sidecar (as is, with the container flags) and, optionally, the reference proxy

type FrontId = "sidecar" | "flags" | "reference"
type TargetId = "direct" | FrontId

interface Front {
  readonly id: FrontId
  readonly child: ChildProcess
  readonly pid: number
  readonly port: number
  /** Spawn to the first answered request over mTLS. */
  readonly startupMs: number
  /** The CDH's last answer for the TLS material to the first answered request (sidecar only). */
  readonly afterCdhMs: number
  readonly readyAt: number
  readonly logFile: string
}

const mtlsGet = (port: number, requestPath: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const request = https.get(
      `https://127.0.0.1:${port}${requestPath}`,
      {
        agent: false,
        ca: pki.ca.certPem,
        cert: pki.client.certPem,
        key: pki.client.keyPem,
        servername: "localhost",
      },
      (response) => {
        response.resume()
        response.on("end", () => resolve(response.statusCode ?? 0))
      },
    )
    request.on("error", reject)
  })

interface LaunchVariant {
  /** Serve the RSA-4096 server certificate instead of the dev PKI's ECDSA one. */
  readonly rsa4096?: boolean
  /** Start the front in this CPU cgroup (the sidecar with the container flags also in its memory cgroup). */
  readonly cpu?: Cgroup.CpuCgroup
  /** Sidecar only: environment variables over `--env`'s (HTTP2). */
  readonly env?: Readonly<Record<string, string>>
  /** false: the sidecar with the container flags stays out of its memory cgroup (two of them at once). */
  readonly memoryCgroup?: boolean
}
/** Written when the RSA-4096 certificate is ready (the CPU-limited scenario). */
let rsaFiles: { readonly cert: string; readonly key: string } | undefined
/** Makes the RSA-4096 material available to the fronts (the mock CDH, files): undefined if not issued. */
const ensureRsa = async (): Promise<typeof rsaFiles> => {
  const rsa = await rsaServer
  if (rsa !== undefined && rsaFiles === undefined) {
    cdh.setResource(RSA_RESOURCES.cert, rsa.certPem)
    cdh.setResource(RSA_RESOURCES.key, rsa.keyPem)
    rsaFiles = { cert: file("rsa-server-cert.pem", rsa.certPem), key: file("rsa-server-key.pem", rsa.keyPem) }
  }
  return rsaFiles
}

let launches = 0
const launch = async (id: FrontId, variant: LaunchVariant = {}): Promise<Front> => {
  const port = await freePort()
  const logFile = path.join(work, `${id}-${++launches}.log`)
  const out = openSync(logFile, "w")
  // The reference proxy runs with the V8 flags of the sidecar it is compared with (the container's).
  const withFlags = id === "flags" || id === "reference"
  const flagsEnv = withFlags && !options.flagsAsArgs ? { NODE_OPTIONS: options.flags } : {}
  const flagsArgs = withFlags && options.flagsAsArgs ? options.flags.split(/\s+/) : []
  if (variant.rsa4096 && rsaFiles === undefined) throw new Error("the RSA-4096 material is not ready")
  const sidecarEnv = {
    PATH: process.env.PATH ?? "",
    TLS_CERT_URI: `kbs:///${variant.rsa4096 ? RSA_RESOURCES.cert : "shop/sidecar-tls-web/server-cert"}`,
    TLS_KEY_URI: `kbs:///${variant.rsa4096 ? RSA_RESOURCES.key : "shop/sidecar-tls-web/server-key"}`,
    CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
    CDH_URL: cdh.url,
    HTTPS_HOST: "127.0.0.1",
    HTTPS_PORT: String(port),
    FORWARD_PORT: String(backendPort),
    POD_NAME: "bench",
    ...options.env,
    ...variant.env,
    ...flagsEnv,
  }
  const [args, env, probePath] =
    id === "reference"
      ? [
          [
            ...flagsArgs,
            path.join(root, "scripts/bench/reference-proxy.ts"),
            String(port),
            String(backendPort),
            variant.rsa4096 ? (rsaFiles?.cert ?? "") : serverCertFile,
            variant.rsa4096 ? (rsaFiles?.key ?? "") : serverKeyFile,
            caFile,
          ],
          { PATH: process.env.PATH ?? "", ...flagsEnv },
          SMALL_PATH,
        ]
      : [[...flagsArgs, bundle], sidecarEnv, "/api/status"]
  const spawnedAt = Date.now()
  const t0 = performance.now()
  // With cgroup v2 a process is in one cgroup only: a CPU cgroup there carries the memory limit too.
  const joins = [
    ...(id === "flags" &&
    "add" in cgroup &&
    variant.memoryCgroup !== false &&
    variant.cpu?.memoryLimitMiB === undefined
      ? [cgroup.path]
      : []),
    ...(variant.cpu ? [variant.cpu.path] : []),
  ]
  const executable = id === "flags" ? options.flagsNode : process.execPath
  const child = track(
    joins.length === 0
      ? spawn(executable, args, {
          env,
          stdio: ["ignore", out, out],
        })
      : // The shell joins the cgroups, then becomes node: everything node allocates is charged there.
        // Output goes through this process, as a container's goes to the runtime: a log file written
        // from inside would charge its page cache to the cgroup.
        spawn(
          "/bin/sh",
          [
            "-c",
            `${joins.map((dir) => `echo $$ > "${dir}/cgroup.procs"`).join(" && ")} && exec "$0" "$@"`,
            executable,
            ...args,
          ],
          {
            env,
            stdio: ["ignore", "pipe", "pipe"],
          },
        ),
  )
  if (joins.length > 0) {
    const sink = createWriteStream("", { fd: out })
    child.stdout?.pipe(sink, { end: false })
    child.stderr?.pipe(sink, { end: false })
    child.once("exit", () => sink.end())
  } else closeSync(out)
  const deadline = t0 + 20_000
  for (;;) {
    if (child.exitCode !== null || performance.now() > deadline) {
      child.kill("SIGKILL")
      const tail = readFileSync(logFile, "utf8").split("\n").slice(-20).join("\n")
      throw new Error(`${id} did not start (exit ${child.exitCode}); its last output:\n${tail}`)
    }
    try {
      if ((await mtlsGet(port, probePath)) === 200) break
    } catch {
      await sleep(2)
    }
  }
  const startupMs = performance.now() - t0
  const readyAt = Date.now()
  const cdhAnswered = Math.max(
    ...cdhRequests
      .filter((r) => r.at >= spawnedAt && tlsResourcePaths.has(r.path))
      .map((r) => r.at + r.durationMs),
  )
  return {
    id,
    child,
    pid: child.pid ?? 0,
    port,
    startupMs,
    afterCdhMs: readyAt - cdhAnswered,
    readyAt: performance.now(),
    logFile,
  }
}

const targetOf = (id: TargetId, port: number): Target =>
  id === "direct"
    ? { kind: "plain", port }
    : { kind: "tls", port, caFile, certFile: clientCertFile, keyFile: clientKeyFile }

// ---------------------------------------------------------------------------------------------------------
// start-up, idle memory, baselines

const sidecarIds: ReadonlyArray<FrontId> = ["sidecar", "flags"]
const startups: Record<"sidecar" | "flags", Array<{ startupMs: number; afterCdhMs: number }>> = {
  sidecar: [],
  flags: [],
}
progress(`start-up: ${options.startupRuns} run(s) each, as is and with NODE_OPTIONS="${options.flags}"`)
for (let run = 1; run < options.startupRuns; run++) {
  for (const id of sidecarIds) {
    const front = await launch(id)
    startups[id as "sidecar" | "flags"].push(front)
    await stop(front.child)
  }
}

const fronts: Array<Front> = []
for (const id of [...sidecarIds, ...(options.reference ? (["reference"] as const) : [])]) {
  const front = await launch(id)
  fronts.push(front)
  if (id !== "reference") startups[id as "sidecar" | "flags"].push(front)
}
const startupPeak = new Map<FrontId, number>()

interface Memory {
  readonly rss: number
  readonly anon: number
}

/** Idle memory of a plain `node -e` process, 2 s after it started. */
const baseline = async (code: string, nodeOptions?: string): Promise<Memory> => {
  const child = track(
    spawn(process.execPath, ["-e", code], {
      env: { PATH: process.env.PATH ?? "", ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}) },
      stdio: "ignore",
    }),
  )
  await sleep(2000)
  const memory = { rss: rssMiB(child.pid ?? 0), anon: anonMiB(child.pid ?? 0) }
  await stop(child)
  return memory
}
const IDLE = "setInterval(() => {}, 1 << 30)"
const WITH_HTTPS = `require("node:https"); ${IDLE}`
progress("idle RSS: the fronts 2 s after their first served request, and node baselines")
const [idle, baselines] = await Promise.all([
  Promise.all(
    fronts.map(async (front) => {
      await sleep(Math.max(0, front.readyAt + 2000 - performance.now()))
      return {
        rss: rssMiB(front.pid),
        anon: anonMiB(front.pid),
        charge: front.id === "flags" && "read" in cgroup ? cgroup.read().workingSetMiB : undefined,
      }
    }),
  ),
  Promise.all([
    baseline(IDLE),
    baseline(IDLE, options.flags),
    baseline(WITH_HTTPS),
    baseline(WITH_HTTPS, options.flags),
  ]),
])
const idleRss = new Map<FrontId, number>(fronts.map((front, i) => [front.id, idle[i]?.rss ?? Number.NaN]))
const idleAnon = new Map<FrontId, number>(fronts.map((front, i) => [front.id, idle[i]?.anon ?? Number.NaN]))
const idleCharge = idle.find((m) => m.charge !== undefined)?.charge
for (const front of fronts) startupPeak.set(front.id, peakMiB(front.pid))

// ---------------------------------------------------------------------------------------------------------
// load

const WARMUP_MS = 1000
const allScenarios: ReadonlyArray<{ readonly label: string; readonly scenario: Scenario }> = [
  {
    label: "Small GET, keep-alive, 32 connections",
    scenario: { kind: "small", connections: 32, warmupMs: WARMUP_MS, durationMs: options.durationMs },
  },
  {
    label: "New connection per request, 16 at once",
    scenario: { kind: "handshake", concurrency: 16, warmupMs: WARMUP_MS, durationMs: options.durationMs },
  },
  {
    label: "64 MiB download, 16 MiB upload, 1 connection",
    scenario: {
      kind: "transfer",
      downloadBytes: 64 * 1024 * 1024,
      uploadBytes: 16 * 1024 * 1024,
      budgetMs: Math.min(2000, options.durationMs / 3),
      maxRepetitions: 20,
    },
  },
  {
    label: "100 WebSockets, message and echo in a loop",
    scenario: {
      kind: "ws",
      sockets: 100,
      messageBytes: 128,
      warmupMs: WARMUP_MS,
      durationMs: options.durationMs,
    },
  },
]

const scenarios = allScenarios.filter((s) => options.only?.includes(s.scenario.kind) ?? true)
const labelOf = (kind: Scenario["kind"]): string =>
  allScenarios.find((s) => s.scenario.kind === kind)?.label ?? kind

interface Cell {
  readonly result: LoadResult
  /** CPU use of the front (undefined for direct) and of the backend, % of one core. */
  readonly frontCpu: number | undefined
  readonly backendCpu: number
  /** Everything else on the machine over the same window (should be near 0: other load skews the figures). */
  readonly otherCpu: number
  /** The front's VmHWM over this scenario, MiB. */
  readonly peakMiB: number | undefined
  /** The front's largest sampled RssAnon over this scenario, MiB. */
  readonly peakAnonMiB: number | undefined
  /** The front's CPU use over parts of the window (the transfer's download and upload), % of one core. */
  readonly phaseFrontCpu: Readonly<Record<string, number>>
}

interface LoadRun {
  readonly result: LoadResult
  /** CPU use over the load generator's measured window. */
  readonly cpu: CpuReading
  /** CPU use over the parts of the window the load generator names (the transfer's download and upload). */
  readonly phases: Readonly<Record<string, CpuReading>>
}

/**
 * Runs one job in a new load-generator process, metering `pids` over its measured window;
 * `onWindow` is called when that window starts and ends.
 */
const runLoad = (
  job: LoadJob,
  pids: ReadonlyArray<number>,
  onWindow?: (window: "start" | "end") => void,
): Promise<LoadRun> =>
  new Promise((resolve, reject) => {
    const child = track(
      fork(path.join(root, "scripts/bench/load.ts"), [JSON.stringify(job)], {
        env: { PATH: process.env.PATH ?? "" },
        execArgv: [],
        stdio: ["ignore", "ignore", "inherit", "ipc"],
      }),
    )
    let meter: (() => CpuReading) | undefined
    let cpu: CpuReading = { processes: pids.map(() => Number.NaN), machine: Number.NaN }
    let result: LoadResult | undefined
    const phaseMeters = new Map<string, () => CpuReading>()
    const phases: Record<string, CpuReading> = {}
    child.on("message", (message: { window?: "start" | "end"; phase?: string; result?: LoadResult }) => {
      if (message.window !== undefined && message.phase !== undefined) {
        if (message.window === "start") phaseMeters.set(message.phase, cpuMeter(pids))
        else {
          const phaseMeter = phaseMeters.get(message.phase)
          if (phaseMeter) phases[message.phase] = phaseMeter()
        }
      } else if (message.window === "start") {
        meter = cpuMeter(pids)
        onWindow?.("start")
      } else if (message.window === "end" && meter) {
        cpu = meter()
        onWindow?.("end")
      } else if (message.result) result = message.result
    })
    child.once("exit", (code) => {
      if (code === 0 && result) resolve({ result, cpu, phases })
      else reject(new Error(`the load generator failed (exit ${code}) on ${JSON.stringify(job.scenario)}`))
    })
  })

const targets: ReadonlyArray<TargetId> = ["direct", ...fronts.map((front) => front.id)]
const cells = new Map<string, Cell>()
const cellKey = (scenario: Scenario["kind"], target: TargetId) => `${scenario}/${target}`
let peakResets = true

// Node's JIT takes seconds of load to reach speed (requests/s keep rising for 5-10 s): every
// target is primed with small GETs first, so that the scenarios compare warmed-up processes.
if (options.primeMs > 0 && scenarios.length > 0) {
  for (const target of targets) {
    const front = fronts.find((f) => f.id === target)
    progress(
      `priming ${target === "direct" ? "the backend" : target} (${options.primeMs / 1000} s of small GETs)`,
    )
    await runLoad(
      {
        target: targetOf(target, front?.port ?? backendPort),
        scenario: { kind: "small", connections: 32, warmupMs: 0, durationMs: options.primeMs },
      },
      [],
    )
  }
}

for (const { label, scenario } of scenarios) {
  for (const target of targets) {
    const front = fronts.find((f) => f.id === target)
    const exited = () =>
      front !== undefined && (front.child.exitCode !== null || front.child.signalCode !== null)
    if (exited()) {
      progress(`${label}: ${target} skipped, it has exited`)
      continue
    }
    progress(`${label}: ${target === "direct" ? "backend direct" : target}`)
    for (const f of fronts) peakResets = resetPeak(f.pid) && peakResets
    const sampler = anonSampler(front ? [front.pid] : [])
    const run = await runLoad(
      { target: targetOf(target, front?.port ?? backendPort), scenario },
      front ? [backendPid, front.pid] : [backendPid],
    ).catch(async (error: unknown) => {
      await sleep(100)
      if (!exited()) throw error
      // With a small --limit the kernel may OOM-kill it: the report says so instead of failing.
      progress(
        `${label}: ${target} exited during the load (${front?.child.signalCode ?? front?.child.exitCode})`,
      )
      return undefined
    })
    const [anonPeak] = sampler()
    if (run === undefined) continue
    const { result, cpu, phases } = run
    const [backendCpu = Number.NaN, frontCpu] = cpu.processes
    const otherCpu = cpu.machine - backendCpu - (frontCpu ?? 0) - result.loadCpuPercent
    cells.set(cellKey(scenario.kind, target), {
      result,
      frontCpu,
      backendCpu,
      otherCpu,
      peakMiB: front ? peakMiB(front.pid) : undefined,
      peakAnonMiB: anonPeak,
      phaseFrontCpu: Object.fromEntries(
        Object.entries(phases).map(([phase, reading]) => [phase, reading.processes[1] ?? Number.NaN]),
      ),
    })
  }
}

const overallPeak = new Map<FrontId, number>(
  fronts.map((front) => [
    front.id,
    Math.max(
      startupPeak.get(front.id) ?? 0,
      ...scenarios.map((s) => cells.get(cellKey(s.scenario.kind, front.id))?.peakMiB ?? 0),
    ),
  ]),
)
const overallAnonPeak = new Map<FrontId, number>(
  fronts.map((front) => [
    front.id,
    Math.max(
      idleAnon.get(front.id) ?? 0,
      ...scenarios.map((s) => cells.get(cellKey(s.scenario.kind, front.id))?.peakAnonMiB ?? 0),
    ),
  ]),
)

const cgroupReading =
  "read" in cgroup
    ? { ...cgroup.read(), alive: fronts.every((f) => f.id !== "flags" || f.child.exitCode === null) }
    : undefined
for (const front of fronts) await stop(front.child)

const frontLabel: Record<FrontId, string> = {
  sidecar: "Sidecar",
  flags: "Sidecar, container flags",
  reference: "Reference node:https proxy, container flags",
}

// ---------------------------------------------------------------------------------------------------------
// CPU limited to kubectl-coco's 100m: the sidecar as the image runs it, then the reference proxy, each
// alone in a fresh CPU cgroup (the backend and the load generator are not limited), with an RSA-4096
// server key. Each is primed without a limit first (a pod's proxy that has been serving for a while:
// the JIT warm), then the quota is set.

const CPU_QUOTA_US = 10_000
const CPU_PERIOD_US = 100_000
/** Small GETs at 100m: a fixed rate well under what 100m serves, so that latency is not queueing. */
const CPU100M_RATE = 200
const CPU100M_CONNECTIONS = 4
/** Handshakes at 100m: a closed loop, this many at once (each costs tens of ms at 100m). */
const CPU100M_HANDSHAKES = 1
const HANDSHAKE_PRIME_MS = 1000
const limitedScenarios: ReadonlyArray<{ readonly label: string; readonly scenario: Scenario }> = [
  {
    label: `Small GET, ${CPU100M_CONNECTIONS} keep-alive connections, a fixed ${CPU100M_RATE} requests/s`,
    scenario: {
      kind: "small",
      connections: CPU100M_CONNECTIONS,
      ratePerSecond: CPU100M_RATE,
      warmupMs: WARMUP_MS,
      durationMs: options.durationMs,
    },
  },
  {
    label: `New connection per request, ${CPU100M_HANDSHAKES} at a time: full TLS 1.3 handshake (RSA-4096 server key, client certificate) and one small GET`,
    scenario: {
      kind: "handshake",
      concurrency: CPU100M_HANDSHAKES,
      warmupMs: WARMUP_MS,
      durationMs: options.durationMs,
    },
  },
]

interface LimitedCell {
  readonly result: RateResult
  /** The front's CPU use over the window, % of one core (the quota allows 10 %). */
  readonly frontCpu: number
  readonly backendCpu: number
  /** The cgroup's throttling over the window. */
  readonly throttling: Cgroup.CpuThrottling
}
const limitedCells = new Map<string, LimitedCell>()
/** Why the CPU-limited scenario did not run, where it did not. */
let limitedSkipped: string | undefined
/** The limit as the cgroup holds it, read back after it was set. */
let limitedAs: string | undefined

if (wantCpu100m) {
  await ensureRsa()
  for (const id of ["flags", ...(options.reference ? (["reference"] as const) : [])] as const) {
    // With cgroup v2 the sidecar leaves its memory cgroup for this one: it carries the same memory limit.
    const memoryLimitMiB =
      id === "flags" && "version" in cgroup && cgroup.version === 2 ? cgroup.limitMiB : undefined
    const cpu = Cgroup.createCpu(`coco-bench-cpu-${id}-${process.pid}`, memoryLimitMiB)
    if ("unavailable" in cpu) {
      limitedSkipped = cpu.unavailable
      progress(`CPU limited to 100m: not measured, no CPU cgroup: ${cpu.unavailable}`)
      break
    }
    try {
      progress(`CPU limited to 100m: ${frontLabel[id]}, primed without a limit`)
      const front = await launch(id, { rsa4096: true, cpu })
      const target = targetOf(id, front.port)
      if (options.primeMs > 0)
        await runLoad(
          { target, scenario: { kind: "small", connections: 32, warmupMs: 0, durationMs: options.primeMs } },
          [],
        )
      await runLoad(
        {
          target,
          scenario: { kind: "handshake", concurrency: 4, warmupMs: 0, durationMs: HANDSHAKE_PRIME_MS },
        },
        [],
      )
      try {
        cpu.limit(CPU_QUOTA_US, CPU_PERIOD_US)
        limitedAs = cpu.describe()
      } catch (error) {
        limitedSkipped = `the CPU quota could not be set in ${cpu.path}: ${error instanceof Error ? error.message : error}`
        progress(`CPU limited to 100m: not measured, ${limitedSkipped}`)
        await stop(front.child)
        break
      }
      for (const { label, scenario } of limitedScenarios) {
        progress(`CPU limited to 100m: ${label}: ${id}`)
        let before: Cgroup.CpuThrottling | undefined
        let after: Cgroup.CpuThrottling | undefined
        const run = await runLoad({ target, scenario }, [backendPid, front.pid], (window) => {
          if (window === "start") before = cpu.throttling()
          else after = cpu.throttling()
        })
        if (run.result.kind === "transfer") continue
        const [backendCpu = Number.NaN, frontCpu = Number.NaN] = run.cpu.processes
        limitedCells.set(cellKey(scenario.kind, id), {
          result: run.result,
          frontCpu,
          backendCpu,
          throttling: {
            periods: (after?.periods ?? Number.NaN) - (before?.periods ?? Number.NaN),
            throttled: (after?.throttled ?? Number.NaN) - (before?.throttled ?? Number.NaN),
            throttledMs: (after?.throttledMs ?? Number.NaN) - (before?.throttledMs ?? Number.NaN),
          },
        })
      }
      await stop(front.child)
    } finally {
      try {
        cpu.remove()
      } catch {
        // a process still in it: the next run removes it (removeStale)
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/2 (issue 13), the sidecar with the container flags throughout. First small GETs, closed loop:
// HTTP/1.1 through a sidecar with HTTP2=false and one with HTTP2=true (both running, out of the memory
// cgroup, so that the two can alternate), and HTTP/2 through the latter; two rounds, the second in the
// reverse order, so that a drift of the machine weighs on each alike. Then browser-like page loads through
// a sidecar with HTTP2=true as the image runs it (its memory cgroup, an RSA-4096 server key), in a CPU
// cgroup: primed, measured unlimited, then limited to 100m (back to back, then at a fixed rate).

const H2_SESSIONS = 4
const H2_STREAMS = 32
const H2_ROUNDS = 2
const PAGE_ASSETS = 40
const PAGE_PARALLEL = 6
/** Page loads at once (a closed loop): one browser loading one page after the other. */
const PAGE_CONCURRENCY = 1
/**
 * At 100m, also page loads at a fixed rate well under what 100m serves (an open loop): back to back,
 * every page load finds the quota spent by the one before; paced, it mostly finds it whole, as a
 * user's click on a sidecar that is not busy. A longer window, for more of them.
 */
const PAGE_RATE = 2
const PAGE_PACED_MS = 2 * options.durationMs

type Protocol = "http/1.1" | "h2"
type ThroughputId = "h1-off" | "h1-on" | "h2-on"
type PageMode = "100m" | "100m paced" | "unlimited"
type PageId = `${PageMode} ${Protocol}`
interface H2Cell {
  readonly result: RateResult
  /** CPU use over the window, % of one core: the sidecar, the backend, everything else on the machine. */
  readonly frontCpu: number
  readonly backendCpu: number
  readonly otherCpu: number
  /** The CPU cgroup's throttling over the window (page loads in the cgroup). */
  readonly throttling?: Cgroup.CpuThrottling
}
const h2Rounds = new Map<ThroughputId, Array<H2Cell>>()
const pageCells = new Map<PageId, H2Cell>()
/** Why the page loads were not measured at 100m, or at all, where they were not. */
let pagesLimitedSkipped: string | undefined
let pagesSkipped: string | undefined
let h2ThroughputSkipped: string | undefined
/** The page loads' CPU limit as the cgroup holds it. */
let pagesLimitedAs: string | undefined
const describeError = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const measureOn = async (front: Front, scenario: Scenario, cpu?: Cgroup.CpuCgroup): Promise<H2Cell> => {
  let before: Cgroup.CpuThrottling | undefined
  let after: Cgroup.CpuThrottling | undefined
  const run = await runLoad(
    { target: targetOf(front.id, front.port), scenario },
    [backendPid, front.pid],
    (window) => {
      if (cpu === undefined) return
      if (window === "start") before = cpu.throttling()
      else after = cpu.throttling()
    },
  )
  if (run.result.kind === "transfer") throw new Error("not a rate scenario")
  const [backendCpu = Number.NaN, frontCpu = Number.NaN] = run.cpu.processes
  return {
    result: run.result,
    frontCpu,
    backendCpu,
    otherCpu: run.cpu.machine - backendCpu - frontCpu - run.result.loadCpuPercent,
    ...(before !== undefined && after !== undefined
      ? {
          throttling: {
            periods: after.periods - before.periods,
            throttled: after.throttled - before.throttled,
            throttledMs: after.throttledMs - before.throttledMs,
          },
        }
      : {}),
  }
}
const h1Small = (durationMs: number, warmupMs = WARMUP_MS): Scenario => ({
  kind: "small",
  connections: H2_STREAMS,
  warmupMs,
  durationMs,
})
const h2Small = (durationMs: number, warmupMs = WARMUP_MS): Scenario => ({
  kind: "h2small",
  sessions: H2_SESSIONS,
  streams: H2_STREAMS,
  warmupMs,
  durationMs,
})
const pageLoad = (
  protocol: Protocol,
  durationMs: number,
  warmupMs = WARMUP_MS,
  ratePerSecond?: number,
): Scenario => ({
  kind: "page",
  protocol,
  assets: PAGE_ASSETS,
  parallel: PAGE_PARALLEL,
  concurrency: PAGE_CONCURRENCY,
  ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
  warmupMs,
  durationMs,
})

if (wantHttp2) {
  progress("HTTP/2: small GETs through sidecars with HTTP2=false and HTTP2=true (container flags)")
  const h2Fronts: Array<Front> = []
  try {
    const off = await launch("flags", { env: { HTTP2: "false" }, memoryCgroup: false })
    h2Fronts.push(off)
    const on = await launch("flags", { env: { HTTP2: "true" }, memoryCgroup: false })
    h2Fronts.push(on)
    if (options.primeMs > 0) {
      // As long for both (the JIT keeps gaining for seconds): HTTP2=true's includes HTTP/2 GETs.
      progress(`HTTP/2: priming both (${(options.primeMs * 1.5) / 1000} s of small GETs each)`)
      await runLoad({ target: targetOf("flags", off.port), scenario: h1Small(options.primeMs * 1.5, 0) }, [])
      await runLoad({ target: targetOf("flags", on.port), scenario: h1Small(options.primeMs, 0) }, [])
      await runLoad({ target: targetOf("flags", on.port), scenario: h2Small(options.primeMs / 2, 0) }, [])
    }
    const order: ReadonlyArray<readonly [ThroughputId, Front, Scenario]> = [
      ["h1-off", off, h1Small(options.durationMs / H2_ROUNDS)],
      ["h1-on", on, h1Small(options.durationMs / H2_ROUNDS)],
      ["h2-on", on, h2Small(options.durationMs / H2_ROUNDS)],
    ]
    for (let round = 0; round < H2_ROUNDS; round++) {
      for (const [id, front, scenario] of round % 2 === 0 ? order : [...order].reverse()) {
        progress(`HTTP/2: small GETs, round ${round + 1}: ${id}`)
        const cell = await measureOn(front, scenario)
        h2Rounds.set(id, [...(h2Rounds.get(id) ?? []), cell])
      }
    }
  } catch (error) {
    h2ThroughputSkipped = describeError(error)
    progress(`HTTP/2: small GETs not measured: ${h2ThroughputSkipped}`)
  }
  for (const front of h2Fronts) await stop(front.child)

  const rsa = await ensureRsa()
  // With cgroup v2 the sidecar leaves its memory cgroup for this one: it carries the same memory limit.
  const memoryLimitMiB = "version" in cgroup && cgroup.version === 2 ? cgroup.limitMiB : undefined
  const cpu = Cgroup.createCpu(`coco-bench-cpu-h2-${process.pid}`, memoryLimitMiB)
  if ("unavailable" in cpu) {
    pagesLimitedSkipped = `no CPU cgroup: ${cpu.unavailable}`
    progress(`HTTP/2: page loads at 100m not measured, ${pagesLimitedSkipped}`)
  }
  const limitable = "unavailable" in cpu ? undefined : cpu
  try {
    if (rsa === undefined) throw new Error("no RSA-4096 certificate")
    progress("HTTP/2: page loads through the sidecar with HTTP2=true, as the image runs it, RSA-4096")
    const front = await launch("flags", {
      rsa4096: true,
      env: { HTTP2: "true" },
      ...(limitable ? { cpu: limitable } : {}),
    })
    try {
      if (options.primeMs > 0) {
        progress(`HTTP/2: priming (${options.primeMs / 1000} s of page loads, half of them over HTTP/2)`)
        for (const protocol of ["http/1.1", "h2"] as const)
          await runLoad(
            { target: targetOf("flags", front.port), scenario: pageLoad(protocol, options.primeMs / 2, 0) },
            [],
          )
      }
      for (const protocol of ["http/1.1", "h2"] as const) {
        progress(`HTTP/2: page loads, unlimited, ${protocol}`)
        pageCells.set(`unlimited ${protocol}`, await measureOn(front, pageLoad(protocol, options.durationMs)))
      }
      if (limitable) {
        try {
          limitable.limit(CPU_QUOTA_US, CPU_PERIOD_US)
          pagesLimitedAs = limitable.describe()
        } catch (error) {
          pagesLimitedSkipped = `the CPU quota could not be set in ${limitable.path}: ${describeError(error)}`
          progress(`HTTP/2: page loads at 100m not measured, ${pagesLimitedSkipped}`)
        }
        if (pagesLimitedSkipped === undefined) {
          for (const protocol of ["http/1.1", "h2"] as const) {
            progress(`HTTP/2: page loads, CPU limited to 100m, back to back, ${protocol}`)
            pageCells.set(
              `100m ${protocol}`,
              await measureOn(front, pageLoad(protocol, options.durationMs), limitable),
            )
          }
          for (const protocol of ["http/1.1", "h2"] as const) {
            progress(`HTTP/2: page loads, CPU limited to 100m, ${PAGE_RATE} a second, ${protocol}`)
            pageCells.set(
              `100m paced ${protocol}`,
              await measureOn(front, pageLoad(protocol, PAGE_PACED_MS, WARMUP_MS, PAGE_RATE), limitable),
            )
          }
        }
      }
    } finally {
      await stop(front.child)
    }
  } catch (error) {
    pagesSkipped = describeError(error)
    progress(`HTTP/2: page loads not measured: ${pagesSkipped}`)
  } finally {
    try {
      limitable?.remove()
    } catch {
      // a process still in it: the next run removes it (removeStale)
    }
  }
}

// Hostile clients, each front started afresh (the sidecar with the container flags, in its cgroup).
const hostile = new Map<FrontId, HostileResult>()
if (options.only?.includes("hostile") ?? true) {
  for (const id of ["flags", ...(options.reference ? (["reference"] as const) : [])] as const) {
    progress(`hostile clients: ${frontLabel[id]}`)
    const front = await launch(id)
    hostile.set(
      id,
      await runHostile(
        front,
        { ca: pki.ca.certPem, cert: pki.client.certPem, key: pki.client.keyPem },
        backendPort,
        SMALL_PATH,
      ),
    )
    await stop(front.child)
  }
}
if ("remove" in cgroup) cgroup.remove()
await stop(backend)
await cdh.close()
const totalSeconds = (performance.now() - started) / 1000

// ---------------------------------------------------------------------------------------------------------
// report

const int = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "n/a")
const ms = (x: number): string => (!Number.isFinite(x) ? "n/a" : x < 10 ? x.toFixed(2) : x.toFixed(1))
const mib = (x: number | undefined): string => (x === undefined || !Number.isFinite(x) ? "n/a" : x.toFixed(1))
const percentOf = (x: number, ceiling: number): string =>
  ceiling > 0 && Number.isFinite(x) ? `${Math.round((100 * x) / ceiling)} %` : "n/a"
const times = (x: number, floor: number): string =>
  floor > 0 && Number.isFinite(x) ? `${(x / floor).toFixed(1)}×` : "n/a"

const rate = (kind: Scenario["kind"], target: TargetId): RateResult | undefined => {
  const r = cells.get(cellKey(kind, target))?.result
  return r && r.kind !== "transfer" ? r : undefined
}
const transfer = (target: TargetId): TransferResult | undefined => {
  const r = cells.get(cellKey("transfer", target))?.result
  return r?.kind === "transfer" ? r : undefined
}

/**
 * The front's CPU over a scenario's window (or a phase of it), in cores (cpu-seconds per
 * wall-second): undefined for the backend direct, which has no front.
 */
const frontCores = (kind: Scenario["kind"], target: TargetId, phase?: string): number => {
  const cell = target === "direct" ? undefined : cells.get(cellKey(kind, target))
  const percent = phase === undefined ? cell?.frontCpu : cell?.phaseFrontCpu[phase]
  return percent === undefined ? Number.NaN : percent / 100
}
/** Throughput per core of the front's own CPU: `x` divided by the cores it used over the window. */
const perCore = (x: number, cores: number): number => (cores > 0 ? x / cores : Number.NaN)

type Row = readonly [
  kind: Scenario["kind"],
  scenario: string,
  metric: string,
  get: (target: TargetId) => number,
  higherIsBetter: boolean,
  /** A figure per core of the front's CPU: none for the backend direct, no ratio to it. */
  frontOnly?: boolean,
]
const PER_CORE = "per core of the front's CPU"
const allRows: ReadonlyArray<Row> = [
  ["small", labelOf("small"), "requests/s", (t) => rate("small", t)?.perSecond ?? Number.NaN, true],
  [
    "small",
    "",
    `requests/s ${PER_CORE}`,
    (t) => perCore(rate("small", t)?.perSecond ?? Number.NaN, frontCores("small", t)),
    true,
    true,
  ],
  ["small", "", "p50 latency, ms", (t) => rate("small", t)?.p50Ms ?? Number.NaN, false],
  ["small", "", "p99 latency, ms", (t) => rate("small", t)?.p99Ms ?? Number.NaN, false],
  [
    "handshake",
    `${labelOf("handshake")} (direct: TCP; fronts: full TLS 1.3 handshake with client certificate)`,
    "connections/s",
    (t) => rate("handshake", t)?.perSecond ?? Number.NaN,
    true,
  ],
  [
    "handshake",
    "",
    `connections/s ${PER_CORE}`,
    (t) => perCore(rate("handshake", t)?.perSecond ?? Number.NaN, frontCores("handshake", t)),
    true,
    true,
  ],
  ["handshake", "", "p99 connect + request, ms", (t) => rate("handshake", t)?.p99Ms ?? Number.NaN, false],
  ["transfer", labelOf("transfer"), "download MB/s", (t) => transfer(t)?.downloadMBps ?? Number.NaN, true],
  [
    "transfer",
    "",
    `download MB/s ${PER_CORE}`,
    (t) => perCore(transfer(t)?.downloadMBps ?? Number.NaN, frontCores("transfer", t, "download")),
    true,
    true,
  ],
  ["transfer", "", "upload MB/s", (t) => transfer(t)?.uploadMBps ?? Number.NaN, true],
  [
    "transfer",
    "",
    `upload MB/s ${PER_CORE}`,
    (t) => perCore(transfer(t)?.uploadMBps ?? Number.NaN, frontCores("transfer", t, "upload")),
    true,
    true,
  ],
  ["ws", labelOf("ws"), "messages/s", (t) => rate("ws", t)?.perSecond ?? Number.NaN, true],
  [
    "ws",
    "",
    `messages/s ${PER_CORE}`,
    (t) => perCore(rate("ws", t)?.perSecond ?? Number.NaN, frontCores("ws", t)),
    true,
    true,
  ],
  ["ws", "", "p50 round trip, ms", (t) => rate("ws", t)?.p50Ms ?? Number.NaN, false],
  ["ws", "", "p99 round trip, ms", (t) => rate("ws", t)?.p99Ms ?? Number.NaN, false],
]
const rows = allRows.filter(([kind]) => scenarios.some((s) => s.scenario.kind === kind))

const table = (header: ReadonlyArray<string>, align: string, body: ReadonlyArray<ReadonlyArray<string>>) =>
  [`| ${header.join(" | ")} |`, `|${align}|`, ...body.map((r) => `| ${r.join(" | ")} |`)].join("\n")

const loadTable = table(
  [
    "Scenario",
    "Metric",
    "Backend direct (ceiling)",
    ...fronts.flatMap((f) => [frontLabel[f.id], "vs ceiling"]),
  ],
  ["---", "---", "---:", ...fronts.flatMap(() => ["---:", "---:"])].join("|"),
  rows.map(([, scenario, metric, get, higher, frontOnly]) => {
    const ceiling = get("direct")
    const format = metric.includes("ms") ? ms : int
    return [
      scenario,
      metric,
      frontOnly ? "—" : format(ceiling),
      ...fronts.flatMap((f) => {
        const x = get(f.id)
        return [format(x), frontOnly ? "—" : higher ? percentOf(x, ceiling) : times(x, ceiling)]
      }),
    ]
  }),
)

const cpuTable = table(
  [
    "Scenario",
    "Target",
    "Front CPU",
    "Backend CPU",
    "Load generator CPU",
    "Other processes CPU",
    "Front peak RSS / anonymous, MiB",
    "Errors",
  ],
  ["---", "---", "---:", "---:", "---:", "---:", "---:", "---:"].join("|"),
  scenarios.flatMap(({ label, scenario }) =>
    targets.map((target, i) => {
      const cell = cells.get(cellKey(scenario.kind, target))
      const pct = (x: number | undefined) =>
        x === undefined || !Number.isFinite(x) ? "—" : `${Math.round(x)} %`
      return [
        i === 0 ? label : "",
        target === "direct" ? "backend direct" : frontLabel[target],
        pct(cell?.frontCpu),
        pct(cell?.backendCpu),
        pct(cell?.result.loadCpuPercent),
        pct(cell === undefined ? undefined : Math.max(0, cell.otherCpu)),
        cell?.peakMiB === undefined ? "—" : `${mib(cell.peakMiB)} / ${mib(cell.peakAnonMiB)}`,
        String(cell?.result.errors ?? "n/a"),
      ]
    }),
  ),
)

const startupOf = (id: FrontId) => (id === "reference" ? undefined : startups[id])
const memoryTable = table(
  ["", ...fronts.map((f) => frontLabel[f.id])],
  ["---", ...fronts.map(() => "---:")].join("|"),
  [
    [
      "Idle RSS (VmRSS, 2 s after the first served request), MiB",
      ...fronts.map((f) => mib(idleRss.get(f.id))),
    ],
    ["… of which anonymous (RssAnon), MiB", ...fronts.map((f) => mib(idleAnon.get(f.id)))],
    ["Peak RSS over the whole run (VmHWM), MiB", ...fronts.map((f) => mib(overallPeak.get(f.id)))],
    [
      "Peak anonymous memory (RssAnon, sampled every 50 ms), MiB",
      ...fronts.map((f) => mib(overallAnonPeak.get(f.id))),
    ],
    ["Peak RSS during start-up, MiB", ...fronts.map((f) => mib(startupPeak.get(f.id)))],
    [
      `Start-up: spawn to first served request, median of ${options.startupRuns} (min–max), ms`,
      ...fronts.map((f) => {
        const runs = startupOf(f.id)?.map((r) => r.startupMs)
        return runs === undefined
          ? `${int(f.startupMs)} (1 run)`
          : `${int(median(runs))} (${int(Math.min(...runs))}–${int(Math.max(...runs))})`
      }),
    ],
    [
      "Start-up: the CDH's last answer to first served request, median, ms",
      ...fronts.map((f) => {
        const runs = startupOf(f.id)?.map((r) => r.afterCdhMs)
        return runs === undefined ? "—" : int(median(runs))
      }),
    ],
  ],
)

const hostileFronts = fronts.filter((f) => hostile.has(f.id))
const hostileTable = table(
  ["Hostile clients (a fresh process each)", ...hostileFronts.map((f) => frontLabel[f.id])],
  ["---", ...hostileFronts.map(() => "---:")].join("|"),
  [
    [
      "60 clients ask for 1 GiB and never read: memory added (VmRSS), MiB",
      ...hostileFronts.map((f) => mib(hostile.get(f.id)?.stalled.addedMiB)),
    ],
    [
      "… a well-behaved request meanwhile (new connection), ms",
      ...hostileFronts.map((f) => ms(hostile.get(f.id)?.stalled.requestMs ?? Number.NaN)),
    ],
    [
      "200 idle TCP connections that never start TLS: a well-behaved request (new connection), ms",
      ...hostileFronts.map((f) => ms(hostile.get(f.id)?.idleTcp.requestMs ?? Number.NaN)),
    ],
    [
      "One client pipelines 1000 GETs of 1 MiB and never reads: memory added, MiB",
      ...hostileFronts.map((f) => mib(hostile.get(f.id)?.pipelined.addedMiB)),
    ],
    [
      "… connections it made the front open to the app",
      ...hostileFronts.map((f) => int(hostile.get(f.id)?.pipelined.appConnections ?? Number.NaN)),
    ],
  ],
)

const [bareDefault, bareFlags, httpsDefault, httpsFlags] = baselines
const rssAndAnon = (m: Memory | undefined) => `${mib(m?.rss)} / ${mib(m?.anon)}`
const baselineTable = table(
  [
    "Idle `node`, 2 s after start: RSS / anonymous",
    "as is, MiB",
    "container flags, MiB",
    ...fronts.map((f) => `${frontLabel[f.id]}, idle, MiB`),
  ],
  ["---", "---:", "---:", ...fronts.map(() => "---:")].join("|"),
  [
    ["`node -e 'setInterval(…)'`", rssAndAnon(bareDefault), rssAndAnon(bareFlags), ...fronts.map(() => "")],
    [
      "`node -e 'require(\"node:https\"); setInterval(…)'`",
      rssAndAnon(httpsDefault),
      rssAndAnon(httpsFlags),
      ...fronts.map((f) =>
        rssAndAnon({ rss: idleRss.get(f.id) ?? Number.NaN, anon: idleAnon.get(f.id) ?? Number.NaN }),
      ),
    ],
  ],
)

// Page cache is charged to the cgroup that first reads a page: with the bench's own node the
// executable's pages are already cached (as when the runtime unpacked the image), with a fresh
// copy (--flags-node) the sidecar pays for them.
const executablePages =
  options.flagsNode === process.execPath
    ? "(node's executable pages cached beforehand, charged elsewhere)"
    : "(a fresh copy of node: its executable pages charged to the cgroup)"
const BUDGET_IDLE = 64
const BUDGET_PEAK = 96
const BUDGET_LIMIT = 128
const BUDGET_STARTUP = 500
const verdict = (met: boolean) => (met ? "met" : "**not met**")
const sidecarFronts = fronts.filter((f) => f.id !== "reference")
const budgetTable = table(
  ["Budget", ...sidecarFronts.map((f) => frontLabel[f.id])],
  ["---", ...sidecarFronts.map(() => "---")].join("|"),
  [
    [
      `Idle RSS within the ${BUDGET_IDLE} MiB memory request`,
      ...sidecarFronts.map((f) => {
        const x = idleRss.get(f.id) ?? Number.NaN
        return `${verdict(x <= BUDGET_IDLE)}: ${mib(x)} MiB (anonymous ${mib(idleAnon.get(f.id))})`
      }),
    ],
    [
      `Idle working set of the container's cgroup (what the kubelet measures: charge minus inactive page cache) within the ${BUDGET_IDLE} MiB request ${executablePages}`,
      ...sidecarFronts.map((f) =>
        f.id !== "flags"
          ? "not limited"
          : idleCharge === undefined
            ? `not measured: ${"unavailable" in cgroup ? cgroup.unavailable : ""}`
            : `${verdict(idleCharge <= BUDGET_IDLE)}: ${mib(idleCharge)} MiB`,
      ),
    ],
    [
      `Peak RSS well inside the ${BUDGET_LIMIT} MiB limit (at most ${BUDGET_PEAK} MiB, 75 %)`,
      ...sidecarFronts.map((f) => {
        const x = overallPeak.get(f.id) ?? Number.NaN
        return `${verdict(x <= BUDGET_PEAK)}: ${mib(x)} MiB (anonymous ${mib(overallAnonPeak.get(f.id))})`
      }),
    ],
    [
      `Runs in a memory cgroup limited to ${options.limitMiB} MiB, as the kubelet limits the container, without an OOM kill`,
      ...sidecarFronts.map((f) => {
        if (f.id !== "flags") return "not limited"
        if (cgroupReading === undefined)
          return `not measured: ${"unavailable" in cgroup ? cgroup.unavailable : ""}`
        const { peakMiB, oomKills, alive } = cgroupReading
        return `${verdict(oomKills === 0 && alive)}: peak charge ${mib(peakMiB)} MiB, OOM kills: ${oomKills}`
      }),
    ],
    [
      `First served request under ${BUDGET_STARTUP} ms after the CDH answers`,
      ...sidecarFronts.map((f) => {
        const x = median(startupOf(f.id)?.map((r) => r.afterCdhMs) ?? [])
        return `${verdict(x < BUDGET_STARTUP)}: ${int(x)} ms`
      }),
    ],
  ],
)

// Issue 11's targets: the sidecar as the image runs it against the reference proxy, same V8 flags.
const TARGET_RATIO = 0.95
const TARGET_IDLE_MIB = 4
type Goal = "at-least-ratio" | "not-above" | "within-mib" | "none"
interface Check {
  readonly scenario: string
  readonly metric: string
  readonly sidecar: number
  readonly reference: number
  readonly format: (x: number) => string
  readonly goal: Goal
}
const limitedRate = (kind: Scenario["kind"], id: FrontId) => limitedCells.get(cellKey(kind, id))?.result
const hasFront = (id: FrontId) => fronts.some((f) => f.id === id)
const ran = (kind: Scenario["kind"]) => scenarios.some((s) => s.scenario.kind === kind)
type Spec = readonly [
  metric: string,
  get: (target: TargetId) => number,
  format: (x: number) => string,
  goal: Goal,
]
/** The checks of one scenario of the load, where it ran: the sidecar with the container flags against the reference. */
const checksOf = (kind: Scenario["kind"], specs: ReadonlyArray<Spec>): Array<Check> =>
  ran(kind)
    ? specs.map(([metric, get, format, goal], i) => ({
        scenario: i === 0 ? labelOf(kind) : "",
        metric,
        sidecar: get("flags"),
        reference: get("reference"),
        format,
        goal,
      }))
    : []
const smallRate = (t: TargetId) => rate("small", t)?.perSecond ?? Number.NaN
const download = (t: TargetId) => transfer(t)?.downloadMBps ?? Number.NaN
const upload = (t: TargetId) => transfer(t)?.uploadMBps ?? Number.NaN
const wsRate = (t: TargetId) => rate("ws", t)?.perSecond ?? Number.NaN
const handshakeRate = (t: TargetId) => rate("handshake", t)?.perSecond ?? Number.NaN
const checks: ReadonlyArray<Check> = [
  ...checksOf("small", [
    ["requests/s", smallRate, int, "at-least-ratio"],
    [`requests/s ${PER_CORE}`, (t) => perCore(smallRate(t), frontCores("small", t)), int, "at-least-ratio"],
    ["p99 latency, ms", (t) => rate("small", t)?.p99Ms ?? Number.NaN, ms, "not-above"],
  ]),
  ...checksOf("transfer", [
    ["download MB/s", download, int, "at-least-ratio"],
    [
      `download MB/s ${PER_CORE}`,
      (t) => perCore(download(t), frontCores("transfer", t, "download")),
      int,
      "at-least-ratio",
    ],
    ["upload MB/s", upload, int, "at-least-ratio"],
    [
      `upload MB/s ${PER_CORE}`,
      (t) => perCore(upload(t), frontCores("transfer", t, "upload")),
      int,
      "at-least-ratio",
    ],
  ]),
  ...checksOf("ws", [
    ["messages/s", wsRate, int, "at-least-ratio"],
    [`messages/s ${PER_CORE}`, (t) => perCore(wsRate(t), frontCores("ws", t)), int, "at-least-ratio"],
    ["p99 round trip, ms", (t) => rate("ws", t)?.p99Ms ?? Number.NaN, ms, "not-above"],
  ]),
  ...checksOf("handshake", [
    ["connections/s", handshakeRate, int, "none"],
    [`connections/s ${PER_CORE}`, (t) => perCore(handshakeRate(t), frontCores("handshake", t)), int, "none"],
    ["p99 connect + request, ms", (t) => rate("handshake", t)?.p99Ms ?? Number.NaN, ms, "not-above"],
  ]),
  {
    scenario: "Idle",
    metric: "RSS (VmRSS, 2 s after the first served request), MiB",
    sidecar: idleRss.get("flags") ?? Number.NaN,
    reference: idleRss.get("reference") ?? Number.NaN,
    format: mib,
    goal: "within-mib",
  },
  ...(limitedCells.size === 0
    ? []
    : limitedScenarios.flatMap(({ label, scenario }) =>
        (["p50", "p99"] as const).map(
          (p, i): Check => ({
            scenario: i === 0 ? `CPU limited to 100m: ${label}` : "",
            metric: `${p} ${scenario.kind === "handshake" ? "handshake + request" : "latency"}, ms`,
            sidecar: limitedRate(scenario.kind, "flags")?.[`${p}Ms`] ?? Number.NaN,
            reference: limitedRate(scenario.kind, "reference")?.[`${p}Ms`] ?? Number.NaN,
            format: ms,
            goal: p === "p99" ? "not-above" : "none",
          }),
        ),
      )),
]
const goalText: Record<Goal, string> = {
  "at-least-ratio": `at least ${TARGET_RATIO.toFixed(2)}×`,
  "not-above": "not above the reference (at most 1.00×)",
  "within-mib": `within ${TARGET_IDLE_MIB} MiB of the reference`,
  none: "— (no target)",
}
const checkMet = (c: Check): boolean | undefined => {
  if (!Number.isFinite(c.sidecar) || !Number.isFinite(c.reference)) return undefined
  switch (c.goal) {
    case "at-least-ratio":
      return c.sidecar >= TARGET_RATIO * c.reference
    case "not-above":
      return c.sidecar <= c.reference
    case "within-mib":
      return c.sidecar - c.reference <= TARGET_IDLE_MIB
    case "none":
      return undefined
  }
}
const comparedChecks = hasFront("flags") && hasFront("reference") ? checks : []
const targetsTable = table(
  [
    "Scenario",
    "Metric",
    frontLabel.flags,
    frontLabel.reference,
    "Sidecar / reference",
    "Target (issue 11)",
    "Status",
  ],
  ["---", "---", "---:", "---:", "---:", "---", "---"].join("|"),
  comparedChecks.map((c) => {
    const met = checkMet(c)
    const compared =
      c.goal === "within-mib"
        ? Number.isFinite(c.sidecar - c.reference)
          ? `${c.sidecar >= c.reference ? "+" : "−"}${mib(Math.abs(c.sidecar - c.reference))} MiB`
          : "n/a"
        : c.reference > 0 && Number.isFinite(c.sidecar)
          ? `${(c.sidecar / c.reference).toFixed(2)}×`
          : "n/a"
    return [
      c.scenario,
      c.metric,
      c.format(c.sidecar),
      c.format(c.reference),
      compared,
      goalText[c.goal],
      c.goal === "none" ? "" : met === undefined ? "n/a" : verdict(met),
    ]
  }),
)
const scored = comparedChecks.filter((c) => checkMet(c) !== undefined)
const targetsMet = scored.filter((c) => checkMet(c) === true).length

const limitedIds = (["flags", "reference"] as const).filter((id) =>
  limitedScenarios.some((s) => limitedCells.has(cellKey(s.scenario.kind, id))),
)
const limitedLabel: Record<"flags" | "reference", string> = {
  flags: "Sidecar, as the image runs it",
  reference: frontLabel.reference,
}
const limitedTable = table(
  [
    "Scenario",
    "Metric",
    ...limitedIds.map((id) => limitedLabel[id]),
    ...(limitedIds.length === 2 ? ["Sidecar / reference"] : []),
  ],
  ["---", "---", ...limitedIds.map(() => "---:"), ...(limitedIds.length === 2 ? ["---:"] : [])].join("|"),
  limitedScenarios.flatMap(({ label, scenario }) => {
    const cellOf = (id: FrontId) => limitedCells.get(cellKey(scenario.kind, id))
    const unit = scenario.kind === "handshake" ? "handshakes/s" : "requests/s"
    const metrics: ReadonlyArray<
      readonly [string, (c: LimitedCell) => number, (x: number) => string, boolean]
    > = [
      [unit, (c) => c.result.perSecond, int, true],
      [`${unit} ${PER_CORE}`, (c) => perCore(c.result.perSecond, c.frontCpu / 100), int, true],
      ["p50 latency, ms", (c) => c.result.p50Ms, ms, true],
      ["p99 latency, ms", (c) => c.result.p99Ms, ms, true],
      ["front CPU, % of one core (the quota: 10 %)", (c) => c.frontCpu, (x) => `${x.toFixed(1)} %`, false],
      ["periods throttled, of those with work", (c) => c.throttling.throttled, int, false],
      ["time throttled, ms", (c) => c.throttling.throttledMs, int, false],
      ["failed requests", (c) => c.result.errors, int, false],
    ]
    return metrics.map(([metric, get, format, ratio], i) => {
      const values = limitedIds.map((id) => {
        const c = cellOf(id)
        return c === undefined ? Number.NaN : get(c)
      })
      const [a = Number.NaN, b = Number.NaN] = values
      return [
        i === 0 ? label : "",
        metric,
        ...limitedIds.map((id, j) => {
          const c = cellOf(id)
          if (c === undefined) return "n/a"
          if (metric.startsWith("periods"))
            return `${int(c.throttling.throttled)} of ${int(c.throttling.periods)}`
          return format(values[j] ?? Number.NaN)
        }),
        ...(limitedIds.length === 2 ? [ratio && b > 0 ? `${(a / b).toFixed(2)}×` : ""] : []),
      ]
    })
  }),
)
const limitedSection = !wantCpu100m
  ? []
  : [
      "",
      "#### CPU limited to 100m (kubectl-coco's CPU limit)",
      "",
      ...(limitedCells.size === 0
        ? [`Not measured: ${limitedSkipped ?? "no figures (see the progress output)"}.`]
        : [
            `Each proxy alone in a fresh CPU cgroup limited to ${CPU_QUOTA_US / 1000} ms of CPU per ${CPU_PERIOD_US / 1000} ms (${limitedAs}), ` +
              "one after the other: the sidecar as the image runs it (container flags" +
              ("add" in cgroup ? `, and the ${cgroup.limitMiB} MiB memory cgroup` : "") +
              (limitedIds.includes("reference")
                ? "), then the reference proxy with the same flags. "
                : "). ") +
              "The backend and the load generator are not limited. " +
              `${limitedIds.length === 2 ? "Both serve" : "It serves"} an RSA-4096 server certificate (the client's key stays ECDSA P-256). ` +
              `Each was first primed without a limit (${options.primeMs / 1000} s of small GETs over 32 connections, ` +
              `${HANDSHAKE_PRIME_MS / 1000} s of handshakes), as a proxy that has been serving for a while, then the quota was set. ` +
              `Load, modest so that a 100m proxy is not driven into queueing: small GETs at a fixed ${CPU100M_RATE} requests/s over ` +
              `${CPU100M_CONNECTIONS} keep-alive connections (an open loop, each latency counted from the request's scheduled time); ` +
              `handshakes in a closed loop, ${CPU100M_HANDSHAKES} at a time, each a new connection with no session resumption and one small GET. ` +
              `${WARMUP_MS / 1000} s warm-up, then ${options.durationMs / 1000} s measured.`,
            "",
            limitedTable,
          ]),
    ]
// HTTP/2: page loads, then small-GET throughput.
const sumOf = (xs: ReadonlyArray<number>): number => xs.reduce((a, b) => a + b, 0)
const meanOf = (xs: ReadonlyArray<number>): number => (xs.length > 0 ? sumOf(xs) / xs.length : Number.NaN)
/** The sidecar's CPU over a cell's window, seconds. */
const frontCpuSeconds = (c: H2Cell): number => (c.frontCpu / 100) * c.result.seconds
const ratioOf = (a: number, b: number): string =>
  b > 0 && Number.isFinite(a) && Number.isFinite(b) ? `${(a / b).toFixed(2)}×` : "n/a"
const pct = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(1)} %` : "n/a")

const pageModes = (["100m", "100m paced", "unlimited"] as const).filter(
  (mode) => pageCells.has(`${mode} http/1.1`) || pageCells.has(`${mode} h2`),
)
const pageModeLabel: Record<PageMode, string> = {
  "100m": "CPU limited to 100m, back to back",
  "100m paced": `CPU limited to 100m, ${PAGE_RATE} page loads a second`,
  unlimited: "No CPU limit, back to back",
}
const pageTable = table(
  [
    `Page load: HTML, then ${PAGE_ASSETS} assets, ${PAGE_PARALLEL} at a time, a new client each`,
    "Metric",
    `HTTP/1.1 (up to ${PAGE_PARALLEL} connections)`,
    `HTTP/2 (1 connection, ${PAGE_PARALLEL} streams)`,
    "HTTP/2 / HTTP/1.1",
  ],
  ["---", "---", "---:", "---:", "---:"].join("|"),
  pageModes.flatMap((mode) => {
    const h1 = pageCells.get(`${mode} http/1.1`)
    const h2 = pageCells.get(`${mode} h2`)
    const metrics: ReadonlyArray<
      readonly [string, (c: H2Cell) => number, (x: number) => string, boolean, boolean?]
    > = [
      ["page loads/s", (c) => c.result.perSecond, (x) => (x < 100 ? x.toFixed(1) : int(x)), true],
      ["p50 page-load time, ms", (c) => c.result.p50Ms, ms, true],
      ["p99 page-load time, ms", (c) => c.result.p99Ms, ms, true],
      ["page loads measured", (c) => c.result.count, int, false],
      [
        "TLS connections per page load (full handshakes)",
        (c) => c.result.connections?.perPage ?? Number.NaN,
        (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a"),
        false,
      ],
      ["sidecar CPU per page load, ms", (c) => (frontCpuSeconds(c) / c.result.count) * 1000, ms, true],
      [
        `sidecar CPU, % of one core${mode === "unlimited" ? "" : " (the quota: 10 %)"}`,
        (c) => c.frontCpu,
        pct,
        false,
      ],
      ...(mode !== "unlimited"
        ? [
            [
              "periods throttled, of those with work",
              (c: H2Cell) => c.throttling?.throttled ?? Number.NaN,
              int,
              false,
            ] as const,
          ]
        : []),
      ["load generator CPU, % of one core", (c) => c.result.loadCpuPercent, pct, false],
      ["failed page loads", (c) => c.result.errors, int, false],
    ]
    return metrics.map(([metric, get, format, ratio], i) => {
      const cell = (c: H2Cell | undefined): string => {
        if (c === undefined) return "n/a"
        if (metric.startsWith("periods"))
          return `${int(c.throttling?.throttled ?? Number.NaN)} of ${int(c.throttling?.periods ?? Number.NaN)}`
        return format(get(c))
      }
      return [
        i === 0 ? pageModeLabel[mode] : "",
        metric,
        cell(h1),
        cell(h2),
        ratio && h1 !== undefined && h2 !== undefined ? ratioOf(get(h2), get(h1)) : "",
      ]
    })
  }),
)

interface Throughput {
  readonly perSecond: number
  readonly rounds: ReadonlyArray<number>
  readonly p50Ms: number
  readonly p99Ms: number
  readonly frontCpu: number
  readonly cpuPerRequestUs: number
  readonly loadCpu: number
  readonly errors: number
}
const throughputOf = (id: ThroughputId): Throughput | undefined => {
  const runs = h2Rounds.get(id) ?? []
  if (runs.length === 0) return undefined
  const count = sumOf(runs.map((c) => c.result.count))
  const seconds = sumOf(runs.map((c) => c.result.seconds))
  const cpuSeconds = sumOf(runs.map(frontCpuSeconds))
  return {
    perSecond: count / seconds,
    rounds: runs.map((c) => c.result.perSecond),
    p50Ms: meanOf(runs.map((c) => c.result.p50Ms)),
    p99Ms: meanOf(runs.map((c) => c.result.p99Ms)),
    frontCpu: (cpuSeconds / seconds) * 100,
    cpuPerRequestUs: (cpuSeconds / count) * 1e6,
    loadCpu: meanOf(runs.map((c) => c.result.loadCpuPercent)),
    errors: sumOf(runs.map((c) => c.result.errors)),
  }
}
const throughputIds: ReadonlyArray<ThroughputId> = ["h1-off", "h1-on", "h2-on"]
const throughputLabel: Record<ThroughputId, string> = {
  "h1-off": "HTTP/1.1, `HTTP2=false`",
  "h1-on": "HTTP/1.1, `HTTP2=true`",
  "h2-on": "HTTP/2, `HTTP2=true`",
}
const throughputs = throughputIds.map(throughputOf)
const throughputTable = table(
  [
    `Small GET, ${H2_STREAMS} at once`,
    "Metric",
    ...throughputIds.map((id) => throughputLabel[id]),
    "HTTP/1.1: `HTTP2=true` / `false`",
    "HTTP/2 / HTTP/1.1, `HTTP2=true`",
  ],
  ["---", "---", "---:", "---:", "---:", "---:", "---:"].join("|"),
  (
    [
      ["requests/s", (t) => t.perSecond, int, true],
      ["requests/s of each round", () => Number.NaN, int, false],
      ["p50 latency, ms (mean of the rounds)", (t) => t.p50Ms, ms, true],
      ["p99 latency, ms (mean of the rounds)", (t) => t.p99Ms, ms, true],
      ["sidecar CPU, % of one core", (t) => t.frontCpu, pct, false],
      [
        "sidecar CPU per request, µs",
        (t) => t.cpuPerRequestUs,
        (x) => (Number.isFinite(x) ? x.toFixed(1) : "n/a"),
        true,
      ],
      ["load generator CPU, % of one core", (t) => t.loadCpu, pct, false],
      ["failed requests", (t) => t.errors, int, false],
    ] as ReadonlyArray<readonly [string, (t: Throughput) => number, (x: number) => string, boolean]>
  ).map(([metric, get, format, ratio], i) => {
    const [off, on, h2] = throughputs
    const value = (t: Throughput | undefined): number => (t === undefined ? Number.NaN : get(t))
    return [
      i === 0
        ? `HTTP/1.1: ${H2_STREAMS} keep-alive connections; HTTP/2: ${H2_SESSIONS} connections of ${H2_STREAMS / H2_SESSIONS} streams`
        : "",
      metric,
      ...throughputs.map((t) =>
        t === undefined
          ? "n/a"
          : metric.endsWith("each round")
            ? t.rounds.map(int).join(" / ")
            : format(get(t)),
      ),
      ratio ? ratioOf(value(on), value(off)) : "",
      ratio ? ratioOf(value(h2), value(on)) : "",
    ]
  }),
)
const h2LoadBound = (throughputs[2]?.loadCpu ?? 0) > 90
const http2Section = !wantHttp2
  ? []
  : [
      "",
      "#### HTTP/2",
      "",
      "The sidecar with the container flags and `HTTP2=true` (ALPN `h2` and `http/1.1`); HTTP/1.1 clients offer `http/1.1` only. " +
        `**Page loads**, each by a new client: full TLS 1.3 handshakes (client certificate, RSA-4096 server key, no session resumption), ` +
        `\`GET ${PAGE_PATH}\` (the backend's ${(pageHtml(PAGE_ASSETS).length / 1000).toFixed(1)} kB HTML), then the ${PAGE_ASSETS} assets it references (\`${SMALL_PATH}?asset=i\`, ${SMALL_BODY.length} bytes each), ` +
        `${PAGE_PARALLEL} requests at a time, the next as soon as one ends. HTTP/1.1 through a fresh node:https keep-alive agent of at most ${PAGE_PARALLEL} connections, ` +
        `as a browser (the page's connection, then more for the assets); HTTP/2 over one node:http2 connection, ${PAGE_PARALLEL} concurrent streams. ` +
        "Page-load time: from the first connect to the last asset's end. " +
        `The sidecar as the image runs it${"add" in cgroup ? ` (its ${cgroup.limitMiB} MiB memory cgroup)` : ""}, in a CPU cgroup: primed with ${options.primeMs / 1000} s of page loads, ` +
        `measured without a limit, then limited to ${CPU_QUOTA_US / 1000} ms of CPU per ${CPU_PERIOD_US / 1000} ms (${pagesLimitedAs ?? "not set"}). ` +
        "Back to back: one page load at a time, each started when the one before has ended (a closed loop); " +
        `paced: one every ${1000 / PAGE_RATE} ms whether or not the one before has ended (an open loop, each timed from its scheduled start). ` +
        `${WARMUP_MS / 1000} s warm-up, then ${options.durationMs / 1000} s measured (${PAGE_PACED_MS / 1000} s paced). ` +
        `**Small GETs**, a closed loop, ${H2_STREAMS} at once: HTTP/1.1 over ${H2_STREAMS} keep-alive connections (undici, offering \`http/1.1\` only), HTTP/2 over ${H2_SESSIONS} node:http2 connections ` +
        `of ${H2_STREAMS / H2_SESSIONS} concurrent streams each; through two sidecars with the container flags, \`HTTP2=false\` and \`HTTP2=true\`, running side by side outside the memory cgroup, ` +
        `each primed with ${(options.primeMs * 1.5) / 1000} s of small GETs (of which ${options.primeMs / 2000} s over HTTP/2 for the second); then ${H2_ROUNDS} rounds of the three, ` +
        `the second in the reverse order, each ${WARMUP_MS / 1000} s warm-up and ${options.durationMs / H2_ROUNDS / 1000} s measured. Sidecar CPU per request or page load: ` +
        "the utime + stime of its process (`/proc/<pid>/stat`) over the measured windows, divided by the requests or page loads served in them.",
      ...(pagesSkipped ? ["", `Page loads not measured: ${pagesSkipped}.`] : []),
      ...(pagesLimitedSkipped ? ["", `Page loads at 100m not measured: ${pagesLimitedSkipped}.`] : []),
      ...(pageModes.length > 0 ? ["", pageTable] : []),
      ...(h2ThroughputSkipped ? ["", `Small GETs over HTTP/2 not measured: ${h2ThroughputSkipped}.`] : []),
      ...(throughputs.some((t) => t !== undefined) ? ["", throughputTable] : []),
      ...(h2LoadBound
        ? [
            "",
            `The HTTP/2 load generator used ${pct(throughputs[2]?.loadCpu ?? Number.NaN)} of a core: it, not the sidecar, may bound the HTTP/2 requests/s (the CPU per request is unaffected).`,
          ]
        : []),
    ]
const targetsSection =
  comparedChecks.length === 0
    ? []
    : [
        "",
        "#### Against the reference proxy (issue 11's targets)",
        "",
        `The sidecar as the image runs it (container flags) against the reference proxy run with the same V8 flags ` +
          `(\`${options.flags}\`), both in this run. Per core: the throughput divided by the CPU the proxy ` +
          "process itself used over the measured window (utime + stime from `/proc/<pid>/stat`; cores = CPU seconds / wall seconds). " +
          `Targets met: ${targetsMet} of ${scored.length}.` +
          (limitedCells.size > 0 ? " The 100m rows are from the CPU-limited section below." : ""),
        "",
        targetsTable,
      ]

const integrity = scenarios.some((s) => s.scenario.kind === "transfer")
  ? targets.every((t) => transfer(t)?.verified ?? true)
    ? "intact"
    : "**MISMATCH**"
  : "not run"
const h2Cells = [...pageCells.values(), ...[...h2Rounds.values()].flat()]
const errors = [...cells.values(), ...h2Cells].reduce((n, c) => n + c.result.errors, 0)
const busiest = Math.max(0, ...[...cells.values(), ...h2Cells].map((c) => c.otherCpu).filter(Number.isFinite))
const OTHER_LOAD_WARNING = 15
if (busiest > OTHER_LOAD_WARNING)
  progress(`warning: other processes used up to ${Math.round(busiest)} % of a core during the load`)
const nodeVersion = process.version
const nproc = spawnSync("nproc", { encoding: "utf8" }).stdout?.trim() || String(availableParallelism())
const date = new Date().toISOString().replace(/\.\d+Z$/, "Z")
const report = [
  `### Figures of ${date.slice(0, 10)}`,
  "",
  `Run ${date} on ${cpuModel()}, \`nproc\` ${nproc} (${cpus().length} CPUs), ` +
    `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${nodeVersion}, Linux ${release()} ${process.arch}; ` +
    `the run took ${totalSeconds.toFixed(0)} s. ` +
    (options.flagsAsArgs
      ? `Container flags, on the command line: \`node ${options.flags} dist/main.js\``
      : `Container flags: \`NODE_OPTIONS="${options.flags}"\``) +
    (Object.keys(options.env).length > 0
      ? `; sidecar environment: ${Object.entries(options.env)
          .map(([k, v]) => `\`${k}=${v}\``)
          .join(", ")}`
      : "") +
    `. Each target was first primed with ${options.primeMs / 1000} s of small GETs; ` +
    `rate scenarios: 1 s warm-up, then ${options.durationMs / 1000} s measured. ` +
    `Bodies hash-checked: ${integrity}; failed requests: ${errors}.` +
    (peakResets ? "" : " (VmHWM could not be reset per scenario: peaks are cumulative.)") +
    (busiest > OTHER_LOAD_WARNING
      ? ` **Other processes used up to ${Math.round(busiest)} % of a core during the load: these figures are skewed.**`
      : ""),
  "",
  "#### Budgets",
  "",
  budgetTable,
  ...(scenarios.length === 0
    ? []
    : [
        "",
        "#### Load, against the backend direct (plain HTTP on 127.0.0.1) as the ceiling",
        "",
        loadTable,
        "",
        "Ratios: throughput as a share of the ceiling; latency as a multiple of the ceiling's. " +
          "Per core: the throughput divided by the CPU the front itself used over the window (in cores).",
      ]),
  ...targetsSection,
  ...limitedSection,
  ...http2Section,
  ...(scenarios.length === 0
    ? []
    : ["", `#### CPU and memory per scenario (CPU in % of one core; \`nproc\` is ${nproc})`, "", cpuTable]),
  "",
  "#### Memory and start-up",
  "",
  memoryTable,
  "",
  baselineTable,
  ...(hostileFronts.length > 0
    ? [
        "",
        "#### Hostile clients",
        "",
        hostileTable,
        "",
        "A request that failed shows n/a (for the sidecar at its MAX_CONNECTIONS, or a refused handshake).",
      ]
    : []),
].join("\n")

process.stdout.write(`${report}\n`)

if (options.json) {
  const raw = {
    date,
    options,
    fronts: fronts.map((f) => ({
      id: f.id,
      idleRssMiB: idleRss.get(f.id),
      idleAnonMiB: idleAnon.get(f.id),
      peakMiB: overallPeak.get(f.id),
      peakAnonMiB: overallAnonPeak.get(f.id),
      startup: (startupOf(f.id) ?? [f]).map((r) => ({ startupMs: r.startupMs, afterCdhMs: r.afterCdhMs })),
    })),
    baselines,
    cells: Object.fromEntries(cells),
    cpu100m: { limit: limitedAs, skipped: limitedSkipped, cells: Object.fromEntries(limitedCells) },
    hostile: Object.fromEntries(hostile),
    http2: {
      smallGetRounds: Object.fromEntries(h2Rounds),
      pageLoads: Object.fromEntries(pageCells),
      limit: pagesLimitedAs,
      skipped: {
        smallGets: h2ThroughputSkipped,
        pageLoads: pagesSkipped,
        pageLoadsAt100m: pagesLimitedSkipped,
      },
    },
  }
  writeFileSync(options.json, `${JSON.stringify(raw, null, 1)}\n`)
}

if (options.write) {
  // Everything between the two markers is replaced; the rest of the document is left alone.
  const doc = path.join(root, "docs/PERFORMANCE.md")
  const text = readFileSync(doc, "utf8")
  const begin = /<!-- bench:figures:begin[^>]*-->/.exec(text)
  const end = text.indexOf("<!-- bench:figures:end -->")
  if (begin === null || end < begin.index)
    throw new Error(
      "docs/PERFORMANCE.md: the <!-- bench:figures:begin … --> and <!-- bench:figures:end --> markers are missing",
    )
  const head = text.slice(0, begin.index + begin[0].length)
  writeFileSync(doc, `${head}\n\n${report}\n\n${text.slice(end)}`)
  progress("docs/PERFORMANCE.md: figures section rewritten")
}
progress(`done in ${totalSeconds.toFixed(1)} s`)
process.exit(0)
