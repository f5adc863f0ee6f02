/**
 * The load generator: one scenario against one target, in its own process so that it never
 * shares an event loop with the sidecar or the backend.
 *
 *   node scripts/bench/load.ts '<LoadJob as JSON>'
 *
 * Prints one LoadResult as JSON on stdout. HTTP goes through undici (keep-alive pools, HTTP/1.1 only), new
 * connections through raw `net`/`tls` sockets (no client-side HTTP machinery, no TLS session
 * resumption: every TLS connection is a full handshake with the client certificate), WebSockets
 * through `ws`, HTTP/2 through node:http2. Page loads, a new client each, go through a fresh
 * node:https keep-alive agent (HTTP/1.1) or a new node:http2 session (h2), never resuming a session.
 */
import { readFileSync } from "node:fs"
import * as http2 from "node:http2"
import * as https from "node:https"
import * as net from "node:net"
import { createHistogram, type RecordableHistogram } from "node:perf_hooks"
import * as tls from "node:tls"
import { Pool } from "undici"
import WebSocket from "ws"
import {
  assetsOf,
  downloadPath,
  type LoadJob,
  type LoadResult,
  pagePath,
  payload,
  type RateResult,
  type Scenario,
  SMALL_BODY,
  SMALL_PATH,
  sha256,
  type Target,
  type TransferResult,
  type UploadAnswer,
  uploadPath,
  WS_PATH,
} from "./shared.ts"

interface TlsFiles {
  readonly ca: Buffer
  readonly cert: Buffer
  readonly key: Buffer
}

const tlsFiles = (target: Target): TlsFiles | undefined =>
  target.kind === "tls"
    ? {
        ca: readFileSync(target.caFile),
        cert: readFileSync(target.certFile),
        key: readFileSync(target.keyFile),
      }
    : undefined

const tlsClientOptions = (files: TlsFiles) => ({
  ...files,
  servername: "localhost",
  minVersion: "TLSv1.3" as const,
})

const origin = (target: Target): string =>
  `${target.kind === "tls" ? "https" : "http"}://127.0.0.1:${target.port}`

const pool = (target: Target, connections: number): Pool => {
  const files = tlsFiles(target)
  return new Pool(origin(target), {
    connections,
    pipelining: 1,
    // HTTP/1.1 only: undici 8 offers h2 too (ALPN http/1.1, h2), and a sidecar with HTTP2=true picks h2.
    allowH2: false,
    ...(files ? { connect: { ...tlsClientOptions(files), maxCachedSessions: 0 } } : {}),
  })
}

/**
 * Tells the orchestrator (when forked) that the measured window starts or ends, so it can meter CPU;
 * with `phase`, a part of the window (the transfer's download and upload).
 */
const signal = (window: "start" | "end", phase?: string): void => {
  process.send?.(phase === undefined ? { window } : { window, phase })
}

const histogram = (): RecordableHistogram => createHistogram({ lowest: 1, highest: 600e9, figures: 3 })
const recordMs = (h: RecordableHistogram, ms: number): void => h.record(Math.max(1, Math.round(ms * 1e6)))
const percentileMs = (h: RecordableHistogram, p: number): number => (h.count > 0 ? h.percentile(p) / 1e6 : 0)

/** A rate scenario's result over its measured window of `durationMs`. */
const rateResult = (
  kind: RateResult["kind"],
  count: number,
  durationMs: number,
  h: RecordableHistogram,
  errors: number,
  cpu: NodeJS.CpuUsage,
  timeline: RateResult["timeline"],
): RateResult => {
  const seconds = durationMs / 1000
  return {
    kind,
    count,
    seconds,
    perSecond: count / seconds,
    p50Ms: percentileMs(h, 50),
    p99Ms: percentileMs(h, 99),
    errors,
    loadCpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
    timeline,
  }
}

/**
 * Runs `workers` loops of `once` until warm-up + duration have passed; counts and times the
 * operations that started after the warm-up and ended within the window.
 */
const timedLoops = async (
  kind: RateResult["kind"],
  workers: number,
  warmupMs: number,
  durationMs: number,
  once: (worker: number) => Promise<boolean>,
): Promise<RateResult> => {
  const h = histogram()
  const start = performance.now()
  const measureFrom = start + warmupMs
  const end = measureFrom + durationMs
  let count = 0
  let errors = 0
  const timeline: Array<number> = []
  let cpuAtWindow: NodeJS.CpuUsage | undefined
  const windowTimer = setTimeout(() => {
    cpuAtWindow = process.cpuUsage()
    signal("start")
  }, warmupMs)
  let ended = false
  const finish = (): void => {
    if (!ended) signal("end")
    ended = true
  }
  const endTimer = setTimeout(finish, warmupMs + durationMs)
  const loop = async (worker: number): Promise<void> => {
    while (performance.now() < end) {
      const t0 = performance.now()
      let ok = false
      try {
        ok = await once(worker)
      } catch {
        ok = false
      }
      const t1 = performance.now()
      if (t0 < measureFrom || t1 > end) continue
      if (ok) {
        count++
        const second = Math.floor((t1 - measureFrom) / 1000)
        timeline[second] = (timeline[second] ?? 0) + 1
        recordMs(h, t1 - t0)
      } else {
        errors++
      }
    }
  }
  await Promise.all(Array.from({ length: workers }, (_, i) => loop(i)))
  clearTimeout(windowTimer)
  clearTimeout(endTimer)
  finish()
  const cpu = process.cpuUsage(cpuAtWindow)
  return rateResult(kind, count, durationMs, h, errors, cpu, timeline)
}

/**
 * Starts `once` at a fixed rate until warm-up + duration have passed, whether or not the earlier
 * ones have ended (an open loop), and times each from its scheduled start, so that a stalled target
 * shows in the latency rather than in fewer requests sent. Counts the operations scheduled within
 * the window, waiting for them to end.
 */
const fixedRate = async (
  kind: RateResult["kind"],
  ratePerSecond: number,
  warmupMs: number,
  durationMs: number,
  once: () => Promise<boolean>,
): Promise<RateResult> => {
  const h = histogram()
  const start = performance.now()
  const measureFrom = start + warmupMs
  const end = measureFrom + durationMs
  const interval = 1000 / ratePerSecond
  let count = 0
  let errors = 0
  const timeline: Array<number> = []
  const pending: Array<Promise<void>> = []
  const fire = (scheduled: number): void => {
    const measured = scheduled >= measureFrom
    pending.push(
      once()
        .catch(() => false)
        .then((ok) => {
          if (!measured) return
          if (ok) {
            count++
            const second = Math.floor((scheduled - measureFrom) / 1000)
            timeline[second] = (timeline[second] ?? 0) + 1
            recordMs(h, performance.now() - scheduled)
          } else errors++
        }),
    )
  }
  let cpuAtWindow: NodeJS.CpuUsage | undefined
  let windowStarted = false
  let next = 0
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now()
      if (!windowStarted && now >= measureFrom) {
        windowStarted = true
        cpuAtWindow = process.cpuUsage()
        signal("start")
      }
      for (let at = start + next * interval; at <= now && at < end; at = start + ++next * interval) fire(at)
      if (start + next * interval >= end) {
        signal("end")
        resolve()
        return
      }
      setTimeout(tick, Math.max(0, start + next * interval - performance.now()))
    }
    tick()
  })
  const cpu = process.cpuUsage(cpuAtWindow)
  await Promise.all(pending)
  return rateResult(kind, count, durationMs, h, errors, cpu, timeline)
}

const small = async (target: Target, s: Extract<Scenario, { kind: "small" }>): Promise<RateResult> => {
  const p = pool(target, s.connections)
  const get = async (): Promise<boolean> => {
    const { statusCode, body } = await p.request({ path: SMALL_PATH, method: "GET" })
    const text = await body.text()
    return statusCode === 200 && text === SMALL_BODY
  }
  const result =
    s.ratePerSecond === undefined
      ? await timedLoops("small", s.connections, s.warmupMs, s.durationMs, get)
      : await fixedRate("small", s.ratePerSecond, s.warmupMs, s.durationMs, get)
  await p.destroy()
  return result
}

const REQUEST_CLOSE = Buffer.from(
  `GET ${SMALL_PATH} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
)

/** One request on a new connection, read until the server closes it; true for a 200. */
const oneConnection = (target: Target, secureContext: tls.SecureContext | undefined): Promise<boolean> =>
  new Promise((resolve) => {
    const socket: net.Socket = secureContext
      ? tls.connect({ host: "127.0.0.1", port: target.port, servername: "localhost", secureContext })
      : net.connect({ host: "127.0.0.1", port: target.port })
    let head = ""
    socket.once(secureContext ? "secureConnect" : "connect", () => socket.write(REQUEST_CLOSE))
    socket.on("data", (chunk: Buffer) => {
      if (head.length < 12) head += chunk.toString("latin1", 0, 12)
    })
    socket.on("error", () => {})
    socket.once("close", () => resolve(head.startsWith("HTTP/1.1 200")))
  })

const handshake = (target: Target, s: Extract<Scenario, { kind: "handshake" }>): Promise<RateResult> => {
  const files = tlsFiles(target)
  // Parsed once: the client's own per-connection cost stays that of the handshake.
  const secureContext = files ? tls.createSecureContext(tlsClientOptions(files)) : undefined
  return timedLoops("handshake", s.concurrency, s.warmupMs, s.durationMs, () =>
    oneConnection(target, secureContext),
  )
}

const transfer = async (
  target: Target,
  s: Extract<Scenario, { kind: "transfer" }>,
): Promise<TransferResult> => {
  const p = pool(target, 1)
  const upBody = payload(s.uploadBytes)
  const cpuStart = process.cpuUsage()
  const wallStart = performance.now()
  let errors = 0

  const download = async (verify: boolean): Promise<boolean> => {
    const { statusCode, body } = await p.request({ path: downloadPath(s.downloadBytes), method: "GET" })
    const chunks: Array<Buffer> = []
    let bytes = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      bytes += chunk.length
      if (verify) chunks.push(chunk)
    }
    if (verify)
      return statusCode === 200 && sha256(Buffer.concat(chunks)) === sha256(payload(s.downloadBytes))
    return statusCode === 200 && bytes === s.downloadBytes
  }

  const upload = async (verify: boolean): Promise<boolean> => {
    const { statusCode, body } = await p.request({
      path: uploadPath(verify),
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: upBody,
    })
    const answer = (await body.json()) as UploadAnswer
    return (
      statusCode === 200 && answer.bytes === s.uploadBytes && (!verify || answer.sha256 === sha256(upBody))
    )
  }

  const repeat = async (once: () => Promise<boolean>, bytes: number) => {
    let done = 0
    let seconds = 0
    while (done < s.maxRepetitions && (seconds * 1000 < s.budgetMs || done === 0)) {
      const t0 = performance.now()
      const ok = await once()
      seconds += (performance.now() - t0) / 1000
      if (ok) done++
      else errors++
      if (errors > 3) break
    }
    return { done, mbps: seconds > 0 ? (done * bytes) / 1e6 / seconds : 0 }
  }

  const verified = (await download(true)) && (await upload(true))
  signal("start")
  signal("start", "download")
  const down = await repeat(() => download(false), s.downloadBytes)
  signal("end", "download")
  signal("start", "upload")
  const up = await repeat(() => upload(false), s.uploadBytes)
  signal("end", "upload")
  signal("end")
  const cpu = process.cpuUsage(cpuStart)
  const wallSeconds = (performance.now() - wallStart) / 1000
  await p.destroy()
  return {
    kind: "transfer",
    downloadMBps: down.mbps,
    uploadMBps: up.mbps,
    downloads: down.done,
    uploads: up.done,
    verified,
    errors,
    loadCpuPercent: ((cpu.user + cpu.system) / 1e6 / wallSeconds) * 100,
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP/2 and page loads

/** The client's TLS context, parsed once: its own per-connection cost stays that of the handshake. */
const secureContextOf = (target: Target): tls.SecureContext => {
  const files = tlsFiles(target)
  if (files === undefined) throw new Error("HTTP/2 and page loads need a TLS target")
  return tls.createSecureContext(tlsClientOptions(files))
}

/** A new HTTP/2 connection (ALPN h2 only, full handshake), once the server's SETTINGS have come. */
const h2Connect = (target: Target, secureContext: tls.SecureContext): Promise<http2.ClientHttp2Session> =>
  new Promise((resolve, reject) => {
    const session = http2.connect(`https://127.0.0.1:${target.port}`, {
      secureContext,
      servername: "localhost",
    })
    session.on("error", reject)
    session.once("connect", () => {
      session.off("error", reject)
      session.on("error", () => {})
      if (session.alpnProtocol === "h2") resolve(session)
      else {
        session.destroy()
        reject(new Error(`ALPN ${session.alpnProtocol}`))
      }
    })
  })

/** GET on a stream of `session`: the body for a 200, undefined otherwise. */
const h2Get = (session: http2.ClientHttp2Session, requestPath: string): Promise<Buffer | undefined> =>
  new Promise((resolve) => {
    const stream = session.request({ ":path": requestPath }, { endStream: true })
    let status = 0
    const chunks: Array<Buffer> = []
    stream.on("response", (headers) => {
      status = Number(headers[":status"])
    })
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(status === 200 ? Buffer.concat(chunks) : undefined))
    stream.on("error", () => resolve(undefined))
    stream.on("close", () => resolve(undefined))
  })

const h2small = async (target: Target, s: Extract<Scenario, { kind: "h2small" }>): Promise<RateResult> => {
  const secureContext = secureContextOf(target)
  const sessions = await Promise.all(
    Array.from({ length: s.sessions }, () => h2Connect(target, secureContext)),
  )
  // A connection that went away is replaced, once, by the first of its streams to notice.
  const reconnecting = new Map<number, Promise<http2.ClientHttp2Session>>()
  const sessionOf = async (i: number): Promise<http2.ClientHttp2Session> => {
    const session = sessions[i]
    if (session !== undefined && !session.closed && !session.destroyed) return session
    let pending = reconnecting.get(i)
    if (pending === undefined) {
      pending = h2Connect(target, secureContext)
        .then((fresh) => {
          sessions[i] = fresh
          return fresh
        })
        .finally(() => reconnecting.delete(i))
      reconnecting.set(i, pending)
    }
    return pending
  }
  const result = await timedLoops("h2small", s.streams, s.warmupMs, s.durationMs, async (worker) => {
    const body = await h2Get(await sessionOf(worker % s.sessions), SMALL_PATH)
    return body !== undefined && body.toString("latin1") === SMALL_BODY
  })
  for (const session of sessions) session.destroy()
  return result
}

/** One page load's client: a GET (the body for a 200, undefined otherwise), and the end of the client. */
interface PageClient {
  readonly get: (requestPath: string) => Promise<string | undefined>
  /** Closes the client; its connections: how many, how many resumed a session, how many with another ALPN. */
  readonly close: () => { connections: number; resumed: number; wrongAlpn: number }
}

/** HTTP/1.1 as a browser: a fresh keep-alive agent of at most `parallel` connections, ALPN http/1.1. */
const http1Client = (target: Target, secureContext: tls.SecureContext, parallel: number): PageClient => {
  const agent = new https.Agent({
    keepAlive: true,
    maxSockets: parallel,
    maxCachedSessions: 0,
    secureContext,
    servername: "localhost",
    ALPNProtocols: ["http/1.1"],
  })
  const sockets = new Set<tls.TLSSocket>()
  return {
    get: (requestPath) =>
      new Promise((resolve) => {
        const request = https.get(
          { host: "127.0.0.1", port: target.port, path: requestPath, agent },
          (response) => {
            const chunks: Array<Buffer> = []
            response.on("data", (chunk: Buffer) => chunks.push(chunk))
            response.on("end", () =>
              resolve(response.statusCode === 200 ? Buffer.concat(chunks).toString() : undefined),
            )
            response.on("error", () => resolve(undefined))
          },
        )
        request.on("socket", (socket) => sockets.add(socket as tls.TLSSocket))
        request.on("error", () => resolve(undefined))
      }),
    close: () => {
      const all = [...sockets]
      agent.destroy()
      return {
        connections: all.length,
        resumed: all.filter((socket) => socket.isSessionReused()).length,
        wrongAlpn: all.filter((socket) => socket.alpnProtocol !== "http/1.1").length,
      }
    },
  }
}

/** HTTP/2 as a browser: one new connection, its streams. */
const h2Client = async (target: Target, secureContext: tls.SecureContext): Promise<PageClient> => {
  const session = await h2Connect(target, secureContext)
  const resumed = (session.socket as tls.TLSSocket).isSessionReused()
  return {
    get: async (requestPath) => (await h2Get(session, requestPath))?.toString(),
    close: () => {
      session.close()
      return { connections: 1, resumed: resumed ? 1 : 0, wrongAlpn: 0 }
    },
  }
}

const pages = async (target: Target, s: Extract<Scenario, { kind: "page" }>): Promise<RateResult> => {
  const secureContext = secureContextOf(target)
  const totals = { pages: 0, connections: 0, resumed: 0, wrongAlpn: 0 }
  const pageLoad = async (): Promise<boolean> => {
    const client =
      s.protocol === "h2"
        ? await h2Client(target, secureContext)
        : http1Client(target, secureContext, s.parallel)
    let ok = true
    try {
      const html = await client.get(pagePath(s.assets))
      const assets = html === undefined ? [] : assetsOf(html)
      if (assets.length !== s.assets) return false
      // As a browser: `parallel` requests at a time, the next asset as soon as one is done.
      let next = 0
      const fetcher = async (): Promise<void> => {
        for (let i = next++; i < assets.length; i = next++) {
          if ((await client.get(assets[i] ?? "")) !== SMALL_BODY) ok = false
        }
      }
      await Promise.all(Array.from({ length: s.parallel }, fetcher))
    } finally {
      const { connections, resumed, wrongAlpn } = client.close()
      totals.pages++
      totals.connections += connections
      totals.resumed += resumed
      totals.wrongAlpn += wrongAlpn
      if (resumed > 0 || wrongAlpn > 0) ok = false
    }
    return ok
  }
  const result =
    s.ratePerSecond === undefined
      ? await timedLoops("page", s.concurrency, s.warmupMs, s.durationMs, pageLoad)
      : await fixedRate("page", s.ratePerSecond, s.warmupMs, s.durationMs, pageLoad)
  return {
    ...result,
    connections: {
      perPage: totals.pages > 0 ? totals.connections / totals.pages : Number.NaN,
      resumed: totals.resumed,
      wrongAlpn: totals.wrongAlpn,
    },
  }
}

// ---------------------------------------------------------------------------------------------------------

const openSocket = (target: Target, files: TlsFiles | undefined): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const ws = new WebSocket(`${target.kind === "tls" ? "wss" : "ws"}://127.0.0.1:${target.port}${WS_PATH}`, {
      perMessageDeflate: false,
      ...(files ? tlsClientOptions(files) : {}),
    })
    ws.once("open", () => resolve(ws))
    ws.once("error", reject)
  })

const websockets = async (target: Target, s: Extract<Scenario, { kind: "ws" }>): Promise<RateResult> => {
  const files = tlsFiles(target)
  const sockets = await Promise.all(Array.from({ length: s.sockets }, () => openSocket(target, files)))
  const message = payload(s.messageBytes)
  const waiting: Array<((ok: boolean) => void) | undefined> = sockets.map(() => undefined)
  sockets.forEach((ws, i) => {
    ws.on("message", (data: WebSocket.RawData) => {
      const resolve = waiting[i]
      waiting[i] = undefined
      resolve?.(Buffer.isBuffer(data) && data.length === message.length)
    })
    ws.on("close", () => {
      const resolve = waiting[i]
      waiting[i] = undefined
      resolve?.(false)
    })
  })
  const result = await timedLoops(
    "ws",
    s.sockets,
    s.warmupMs,
    s.durationMs,
    (i) =>
      new Promise<boolean>((resolve) => {
        const ws = sockets[i]
        if (ws === undefined || ws.readyState !== WebSocket.OPEN) return resolve(false)
        waiting[i] = resolve
        ws.send(message, { binary: true })
      }),
  )
  for (const ws of sockets) ws.terminate()
  return result
}

const run = (job: LoadJob): Promise<LoadResult> => {
  switch (job.scenario.kind) {
    case "small":
      return small(job.target, job.scenario)
    case "handshake":
      return handshake(job.target, job.scenario)
    case "transfer":
      return transfer(job.target, job.scenario)
    case "ws":
      return websockets(job.target, job.scenario)
    case "h2small":
      return h2small(job.target, job.scenario)
    case "page":
      return pages(job.target, job.scenario)
  }
}

const job = JSON.parse(process.argv[2] ?? "") as LoadJob
const result = await run(job)
if (process.send) process.send({ result }, () => process.exit(0))
else {
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0)
}
