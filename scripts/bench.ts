/**
 * `make bench`: throughput, latency, memory and start-up of the production bundle, each load
 * figure next to the backend's own (the ceiling), measured in the same run. For the record and
 * for docs/PERFORMANCE.md, which explains the set-up and the figures: nothing is asserted.
 *
 *   node scripts/bench.ts [--write] [--no-build] [--duration S] [--prime S] [--startup-runs N]
 *                         [--no-reference] [--flags "<NODE_OPTIONS>"] [--flags-as-args]
 *                         [--env NAME=VALUE]... [--only small,handshake,transfer,ws,hostile] [--json FILE]
 *                         [--limit MiB] [--flags-node PATH]
 *
 * Everything runs on 127.0.0.1, each part in its own process: the backend
 * (scripts/bench/backend.ts), the sidecar (`node dist/main.js`, built first) against the mock CDH
 * over HTTP, a minimal node:https proxy for reference (scripts/bench/reference-proxy.ts), and the
 * load generator (scripts/bench/load.ts, one process per scenario and target, presenting the
 * client certificate). The sidecar runs twice side by side: as is, and with the container image's
 * NODE_OPTIONS. Every target is primed with small GETs (the JIT takes seconds to reach speed),
 * then each scenario runs time-bounded:
 *  1. small GET over 32 keep-alive connections: requests/s, p50, p99;
 *  2. a new connection per request (TLS: a full handshake with the client certificate): connections/s;
 *  3. a 64 MiB download and a 16 MiB upload on one connection: MB/s, the first of each hash-checked;
 *  4. 100 WebSockets, each sending a message and awaiting its echo in a loop: messages/s, p50, p99.
 *  5. hostile clients (scripts/bench/hostile.ts), on fresh processes: 60 stalled readers, 200 idle
 *     TCP connections, a pipelining flood.
 * Plus idle RSS (2 s after the first served request), peak RSS (VmHWM, reset before each scenario)
 * and peak anonymous memory, CPU use per process and scenario, start-up to the first served
 * request (median), and the idle RSS of a bare `node` and of `node` with node:https, for scale.
 * The sidecar with the container flags runs in a memory cgroup limited to kubectl-coco's 128 MiB
 * (`--limit`, 0 for none; where this machine lets us make one): its idle working set, peak charge
 * and OOM kills are reported too.
 *
 * Prints a Markdown report on stdout (progress on stderr); `--write` also replaces the figures
 * section of docs/PERFORMANCE.md. The other options are for experiments: `--flags` replaces the
 * container NODE_OPTIONS of the second column (`--flags-as-args` passes them on the command line,
 * for V8 flags Node refuses in NODE_OPTIONS), `--env` sets a variable for both sidecars, `--only`
 * runs some scenarios, `--no-reference` drops the reference proxy, `--json` dumps the raw figures,
 * `--flags-node` runs the limited sidecar on another copy of node (a fresh one: a cold page cache).
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
import { createDevPki } from "../src/dev/DevPki.ts"
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
import { SMALL_PATH } from "./bench/shared.ts"

// ---------------------------------------------------------------------------------------------------------
// options

const CONTAINER_FLAGS = "--max-semi-space-size=2 --max-old-space-size=64"

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
    else if (arg === "--only") options.only = value(i++).split(",")
    else if (arg === "--json") options.json = path.resolve(value(i++))
    else if (arg === "--limit") options.limitMiB = Math.max(0, Number(value(i++)))
    else if (arg === "--flags-node") options.flagsNode = path.resolve(value(i++))
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

if (options.build) {
  progress("building dist/main.js")
  const built = spawnSync(process.execPath, [path.join(root, "scripts/build.ts")], {
    cwd: root,
    stdio: ["ignore", process.stderr, process.stderr],
  })
  if (built.status !== 0) throw new Error("the build failed")
}
const bundle = path.join(root, "dist/main.js")

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
const tlsResourcePaths = new Set(Object.keys(TLS_RESOURCES).map((key) => `/cdh/resource/${key}`))

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

let launches = 0
const launch = async (id: FrontId): Promise<Front> => {
  const port = await freePort()
  const logFile = path.join(work, `${id}-${++launches}.log`)
  const out = openSync(logFile, "w")
  const sidecarEnv = {
    PATH: process.env.PATH ?? "",
    TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
    TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
    CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
    CDH_URL: cdh.url,
    HTTPS_HOST: "127.0.0.1",
    HTTPS_PORT: String(port),
    FORWARD_PORT: String(backendPort),
    POD_NAME: "bench",
    ...options.env,
    ...(id === "flags" && !options.flagsAsArgs ? { NODE_OPTIONS: options.flags } : {}),
  }
  const [args, env, probePath] =
    id === "reference"
      ? [
          [
            path.join(root, "scripts/bench/reference-proxy.ts"),
            String(port),
            String(backendPort),
            serverCertFile,
            serverKeyFile,
            caFile,
          ],
          { PATH: process.env.PATH ?? "" },
          SMALL_PATH,
        ]
      : [
          [...(id === "flags" && options.flagsAsArgs ? options.flags.split(/\s+/) : []), bundle],
          sidecarEnv,
          "/api/status",
        ]
  const spawnedAt = Date.now()
  const t0 = performance.now()
  const limited = id === "flags" && "add" in cgroup ? cgroup : undefined
  const child = track(
    limited === undefined
      ? spawn(id === "flags" ? options.flagsNode : process.execPath, args, {
          env,
          stdio: ["ignore", out, out],
        })
      : // The shell joins the cgroup, then becomes node: everything node allocates is charged there.
        // Output goes through this process, as a container's goes to the runtime: a log file written
        // from inside would charge its page cache to the cgroup.
        spawn(
          "/bin/sh",
          ["-c", `echo $$ > ${limited.path}/cgroup.procs && exec "$0" "$@"`, options.flagsNode, ...args],
          {
            env,
            stdio: ["ignore", "pipe", "pipe"],
          },
        ),
  )
  if (limited !== undefined) {
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
}

interface LoadRun {
  readonly result: LoadResult
  /** CPU use over the load generator's measured window. */
  readonly cpu: CpuReading
}

/** Runs one job in a new load-generator process, metering `pids` over its measured window. */
const runLoad = (job: LoadJob, pids: ReadonlyArray<number>): Promise<LoadRun> =>
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
    child.on("message", (message: { window?: "start" | "end"; result?: LoadResult }) => {
      if (message.window === "start") meter = cpuMeter(pids)
      else if (message.window === "end" && meter) cpu = meter()
      else if (message.result) result = message.result
    })
    child.once("exit", (code) => {
      if (code === 0 && result) resolve({ result, cpu })
      else reject(new Error(`the load generator failed (exit ${code}) on ${JSON.stringify(job.scenario)}`))
    })
  })

const targets: ReadonlyArray<TargetId> = ["direct", ...fronts.map((front) => front.id)]
const cells = new Map<string, Cell>()
const cellKey = (scenario: Scenario["kind"], target: TargetId) => `${scenario}/${target}`
let peakResets = true

// Node's JIT takes seconds of load to reach speed (requests/s keep rising for 5-10 s): every
// target is primed with small GETs first, so that the scenarios compare warmed-up processes.
if (options.primeMs > 0) {
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
    const { result, cpu } = run
    const [backendCpu = Number.NaN, frontCpu] = cpu.processes
    const otherCpu = cpu.machine - backendCpu - (frontCpu ?? 0) - result.loadCpuPercent
    cells.set(cellKey(scenario.kind, target), {
      result,
      frontCpu,
      backendCpu,
      otherCpu,
      peakMiB: front ? peakMiB(front.pid) : undefined,
      peakAnonMiB: anonPeak,
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
  reference: "Reference node:https proxy",
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

type Row = readonly [
  kind: Scenario["kind"],
  scenario: string,
  metric: string,
  get: (target: TargetId) => number,
  higherIsBetter: boolean,
]
const allRows: ReadonlyArray<Row> = [
  ["small", labelOf("small"), "requests/s", (t) => rate("small", t)?.perSecond ?? Number.NaN, true],
  ["small", "", "p50 latency, ms", (t) => rate("small", t)?.p50Ms ?? Number.NaN, false],
  ["small", "", "p99 latency, ms", (t) => rate("small", t)?.p99Ms ?? Number.NaN, false],
  [
    "handshake",
    `${labelOf("handshake")} (direct: TCP; fronts: full TLS 1.3 handshake with client certificate)`,
    "connections/s",
    (t) => rate("handshake", t)?.perSecond ?? Number.NaN,
    true,
  ],
  ["handshake", "", "p99 connect + request, ms", (t) => rate("handshake", t)?.p99Ms ?? Number.NaN, false],
  ["transfer", labelOf("transfer"), "download MB/s", (t) => transfer(t)?.downloadMBps ?? Number.NaN, true],
  ["transfer", "", "upload MB/s", (t) => transfer(t)?.uploadMBps ?? Number.NaN, true],
  ["ws", labelOf("ws"), "messages/s", (t) => rate("ws", t)?.perSecond ?? Number.NaN, true],
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
  rows.map(([, scenario, metric, get, higher]) => {
    const ceiling = get("direct")
    const format = metric.includes("ms") ? ms : int
    return [
      scenario,
      metric,
      format(ceiling),
      ...fronts.flatMap((f) => {
        const x = get(f.id)
        return [format(x), higher ? percentOf(x, ceiling) : times(x, ceiling)]
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

const integrity = scenarios.some((s) => s.scenario.kind === "transfer")
  ? targets.every((t) => transfer(t)?.verified ?? true)
    ? "intact"
    : "**MISMATCH**"
  : "not run"
const errors = [...cells.values()].reduce((n, c) => n + c.result.errors, 0)
const busiest = Math.max(0, ...[...cells.values()].map((c) => c.otherCpu).filter(Number.isFinite))
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
  "",
  "#### Load, against the backend direct (plain HTTP on 127.0.0.1) as the ceiling",
  "",
  loadTable,
  "",
  "Ratios: throughput as a share of the ceiling; latency as a multiple of the ceiling's.",
  "",
  `#### CPU and memory per scenario (CPU in % of one core; \`nproc\` is ${nproc})`,
  "",
  cpuTable,
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
    hostile: Object.fromEntries(hostile),
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
