/**
 * A faithful stand-in for the in-guest CoCo REST API (api-server-rest, "ASR",
 * in front of the Confidential Data Hub and the Attestation Agent), as the
 * sidecar sees it over HTTP. Modelled on ASR v0.18-v0.21 (global request
 * mutex, `rpc status` error bodies) with knobs for `main` error bodies and the
 * v0.17 routing. See /work/shared/docs/coco-interfaces.md sections 2, 3.3, 6.
 *
 * Deliberately plain `node:http`: the point is byte-level fidelity (no
 * Content-Type on errors, bodies verbatim, any method fetching a resource).
 * Not a security boundary: everything here is fake, including the token.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import * as http from "node:http"
import * as net from "node:net"
import { join } from "node:path"
// Module paths instead of the "effect" barrel: the CLI starts ~4x faster (same modules, same types).
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { type EarSigner, earToken, newSigner } from "../earToken.ts"
import { sampleEvidence, snpEvidence, tdxEvidence } from "../evidence.ts"

export type MockCdhFeatures = "resource" | "attestation" | "all"
export type MockCdhErrorStyle = "released" | "main"

export interface MockCdhOptions {
  /** Seed store: key `repo/type/tag` -> bytes (strings are encoded as UTF-8). */
  readonly resources?: Record<string, string | Uint8Array>
  /** Default 0 (ephemeral). The real one is 8006. */
  readonly port?: number
  /** Default `127.0.0.1` (the real ASR binds IPv4 loopback only). */
  readonly host?: string
  /** Boot: connections are refused (nothing listens) for this long, then it listens on the same port. */
  readonly unavailableForMs?: number
  /** The first N resource requests answer 500, then normal. */
  readonly failFirst?: number
  /** Delay before answering each resource request (a KBS round trip). */
  readonly delayMs?: number
  /** Extra delay before the 500 for a missing resource (the real stack retries with re-attestation). */
  readonly missingDelayMs?: number
  /** ASR `--features`; default `resource` (the Kata default). */
  readonly features?: MockCdhFeatures
  /** `/info` version; default `v0.0.0-mock`. */
  readonly version?: string
  /** `/info` tee when the attestation feature is on; default `sample` (= no TEE detected). */
  readonly tee?: string
  /**
   * `/aa/token`'s JWT; default: an ES256 EAR token of the mock's own key, valid 5 minutes. Tests
   * pass tokens they made (expired, badly signed, other statuses).
   */
  readonly token?: () => string
  /**
   * `/aa/evidence`'s JSON for the runtime data; default: the format of the `tee` attester (sample,
   * tdx, snp: src/dev/evidence.ts). Tests pass replayed or foreign evidence.
   */
  readonly evidence?: (runtimeData: Uint8Array) => string
  /** Default true: one request at a time, FIFO (the global mutex of ASR <= v0.21). */
  readonly serialize?: boolean
  /** 500 body style: `released` (<= v0.21, default) or `main` (`ttrpc request error`). */
  readonly errorStyle?: MockCdhErrorStyle
  /** v0.17 mode: 405 for non-GET on resources, empty-body 404s, no `/info`, per-handler loopback check. */
  readonly legacy?: boolean
  /** Skip the loopback-peer check (403 `Forbidden`), for container-to-container tests. Default false. */
  readonly allowAnyPeer?: boolean
  /** Called after each request was answered (same record as in `requests`). */
  readonly onRequest?: (request: MockCdhRequest) => void
}

export interface MockCdhRequest {
  readonly method: string
  /** The request path, without the query string. */
  readonly path: string
  /** The request-target exactly as received (path and query). */
  readonly target: string
  readonly status: number
  /** Epoch milliseconds when the request arrived. */
  readonly at: number
  /** Milliseconds from arrival to the answer, including time spent waiting for the mutex. */
  readonly durationMs: number
}

export interface MockCdhServer {
  readonly port: number
  /** `http://127.0.0.1:<port>` (or the configured host). */
  readonly url: string
  /** Log of every answered request, oldest first. */
  readonly requests: ReadonlyArray<MockCdhRequest>
  /** Whether the mock is accepting connections right now. */
  readonly listening: boolean
  /** Resolves once the mock listens for the first time (at once unless `unavailableForMs`). */
  readonly ready: Promise<void>
  setResource(path: string, value: string | Uint8Array): void
  deleteResource(path: string): void
  /** The next n resource requests answer 500. */
  setFailNext(n: number): void
  setDelay(ms: number): void
  /** Stop listening (connections refused, open connections dropped, like a crash); keep the state. */
  stop(): Promise<void>
  /** Listen again on the same port. */
  start(): Promise<void>
  /** Final shutdown: destroys open sockets and pending timers. Idempotent. */
  close(): Promise<void>
}

/** Trustee's resource plugin accepts exactly this per segment (anchored). */
const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/

const OCTET_STREAM = "application/octet-stream"
const JSON_TYPE = "application/json"

/** What the mock hands out as `tee_keypair`: tests check that it never leaves the sidecar. */
export const FAKE_TEE_KEYPAIR =
  "-----BEGIN PRIVATE KEY-----\nMOCK ONLY: not a real key, produced by the mock CDH\n-----END PRIVATE KEY-----\n"

const rpcStatus = (message: string): string =>
  `rpc status: Status { code: INTERNAL, message: ${JSON.stringify(message)}, details: [], ` +
  "special_fields: SpecialFields { unknown_fields: UnknownFields { fields: None }, " +
  "cached_size: CachedSize { size: 0 } } }"

interface Reply {
  readonly status: number
  readonly body: string | Uint8Array
  readonly contentType?: string
}

const text = (status: number, body: string): Reply => ({ status, body })

export const isLoopback = (address: string | undefined): boolean =>
  address !== undefined &&
  (address.startsWith("127.") || address === "::1" || address.startsWith("::ffff:127."))

/** ASR's `split_nth_slash(path, 2)`: split before the 2nd `/`, if there is one. */
const splitAtSecondSlash = (path: string): readonly [string, string] | undefined => {
  const first = path.indexOf("/")
  if (first === -1) return undefined
  const second = path.indexOf("/", first + 1)
  if (second === -1) return undefined
  return [path.slice(0, second), path.slice(second)]
}

/** Path and query of a request-target (origin-form, or absolute-form as hyper's `uri().path()`). */
const splitTarget = (target: string): { readonly path: string; readonly query: string } => {
  let rest = target
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(rest)
  if (absolute !== null) rest = rest.slice(absolute[0].length)
  const q = rest.indexOf("?")
  const path = q === -1 ? rest : rest.slice(0, q)
  const query = q === -1 ? "" : rest.slice(q + 1)
  return { path: absolute !== null && path === "" ? "/" : path, query }
}

/** Rust's query_pairs().collect::<HashMap>(): the last occurrence wins. */
const queryParam = (query: string, name: string): string | undefined => {
  const all = new URLSearchParams(query).getAll(name)
  return all.length === 0 ? undefined : all[all.length - 1]
}

const toBytes = (value: string | Uint8Array): Uint8Array =>
  typeof value === "string" ? new Uint8Array(Buffer.from(value, "utf8")) : new Uint8Array(value)

const nonNegative = (name: string, value: number | undefined, fallback: number): number => {
  if (value === undefined) return fallback
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`mock CDH: ${name} must be >= 0, got ${value}`)
  return value
}

interface Mutex {
  run<A>(task: () => Promise<A>): Promise<A>
}

/** FIFO: each task starts after the previous one settled. */
const makeMutex = (): Mutex => {
  let tail: Promise<unknown> = Promise.resolve()
  return {
    run: (task) => {
      const result = tail.then(task)
      tail = result.then(
        () => undefined,
        () => undefined,
      )
      return result
    },
  }
}

const reservePort = (host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once("error", reject)
    probe.listen({ port: 0, host }, () => {
      const address = probe.address()
      probe.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port)
        else reject(new Error("mock CDH: could not reserve a port"))
      })
    })
  })

const urlFor = (host: string, port: number): string => {
  const shown = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host
  return shown.includes(":") ? `http://[${shown}]:${port}` : `http://${shown}:${port}`
}

/** How long a delayed listen keeps retrying a taken port before `ready` rejects. */
const LISTEN_RETRY_MS = 100
const LISTEN_RETRIES = 50

export const startMockCdh = async (options: MockCdhOptions = {}): Promise<MockCdhServer> => {
  const host = options.host ?? "127.0.0.1"
  const features = options.features ?? "resource"
  if (features !== "resource" && features !== "attestation" && features !== "all") {
    throw new RangeError(`mock CDH: unknown features ${JSON.stringify(features)}`)
  }
  const resourceOn = features !== "attestation"
  const attestationOn = features !== "resource"
  const version = options.version ?? "v0.0.0-mock"
  const tee = options.tee ?? "sample"
  const serialize = options.serialize ?? true
  const errorStyle = options.errorStyle ?? "released"
  const legacy = options.legacy ?? false
  const allowAnyPeer = options.allowAnyPeer ?? false
  const unavailableForMs = nonNegative("unavailableForMs", options.unavailableForMs, 0)
  const missingDelayMs = nonNegative("missingDelayMs", options.missingDelayMs, 0)
  let delayMs = nonNegative("delayMs", options.delayMs, 0)
  let failNext = nonNegative("failFirst", options.failFirst, 0)
  let port = nonNegative("port", options.port, 0)

  const store = new Map<string, Uint8Array>()
  for (const [key, value] of Object.entries(options.resources ?? {})) store.set(key, toBytes(value))

  const requests: Array<MockCdhRequest> = []
  const sockets = new Set<net.Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let mutex = makeMutex()
  let server: http.Server | undefined
  let pendingListen: NodeJS.Timeout | undefined
  let closed = false
  let signingKey: EarSigner | undefined

  let markReady: () => void = () => {}
  let failReady: (error: unknown) => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve
    failReady = reject
  })
  ready.catch(() => {}) // only awaited by those who care

  const sleep = (ms: number): Promise<void> =>
    ms <= 0
      ? Promise.resolve()
      : new Promise((resolve) => {
          const timer = setTimeout(() => {
            timers.delete(timer)
            resolve()
          }, ms)
          timers.add(timer)
        })

  // ---- responses -------------------------------------------------------------------------------------

  const notFound = (message: string): Reply => text(404, legacy ? "" : message)

  const downstreamError = (cdhMessage: string): Reply =>
    text(500, errorStyle === "main" ? "ttrpc request error" : rpcStatus(cdhMessage))

  const resourceFailed = (): Reply => downstreamError("[CDH] [ERROR]: Get Resource failed")

  const info = (): Reply => {
    const body: Record<string, string> = { version, feature: features }
    if (attestationOn) body.tee = tee
    return { status: 200, body: JSON.stringify(body), contentType: JSON_TYPE }
  }

  const fakeToken = (): string => {
    signingKey ??= newSigner()
    return earToken(signingKey, { tee, issuer: "mock-cdh (NOT A REAL ATTESTATION)" })
  }

  /** `runtime_data` (+ `encoding`) as AA would get it; a Reply for a 400. */
  const runtimeData = (query: string): Uint8Array | Reply => {
    const raw = queryParam(query, "runtime_data")
    if (raw === undefined) return text(400, "BAD REQUEST")
    const encoding = legacy ? undefined : queryParam(query, "encoding")
    if (encoding === undefined) return toBytes(raw)
    if (encoding !== "base64") return text(400, "BAD REQUEST")
    // URL-safe base64 without padding (Rust URL_SAFE_NO_PAD rejects padding and a lone trailing char).
    if (!/^[A-Za-z0-9_-]*$/.test(raw) || raw.length % 4 === 1) return text(400, "BAD REQUEST")
    return new Uint8Array(Buffer.from(raw, "base64url"))
  }

  const evidenceFor = (data: Uint8Array): Reply => {
    if (options.evidence !== undefined)
      return { status: 200, body: options.evidence(data), contentType: OCTET_STREAM }
    // Hardware TEEs take at most 64 bytes of report data and zero-pad; the sample attester takes anything.
    if ((tee === "tdx" || tee === "snp") && data.byteLength > 64) {
      return downstreamError("[ERROR:attestation-agent] AA-KBC get evidence failed")
    }
    const evidence =
      tee === "tdx" ? tdxEvidence(data) : tee === "snp" ? snpEvidence(data) : sampleEvidence(data)
    return { status: 200, body: JSON.stringify(evidence), contentType: OCTET_STREAM }
  }

  const readBody = (req: http.IncomingMessage, limit: number): Promise<Buffer> =>
    new Promise((resolve, reject) => {
      const chunks: Array<Buffer> = []
      let size = 0
      req.on("data", (chunk: Buffer) => {
        size += chunk.byteLength
        if (size <= limit) chunks.push(chunk)
      })
      req.once("end", () => resolve(Buffer.concat(chunks)))
      req.once("error", reject)
    })

  const aael = async (req: http.IncomingMessage): Promise<Reply> => {
    const body = await readBody(req, 1024 * 1024)
    if (legacy) return text(200, "")
    let parsed: unknown
    try {
      parsed = JSON.parse(body.toString("utf8"))
    } catch (error) {
      return text(500, `Illegal AAEL eventry format: ${String(error)}`)
    }
    const wellFormed =
      typeof parsed === "object" &&
      parsed !== null &&
      ["domain", "operation", "content"].every(
        (k) => typeof (parsed as Record<string, unknown>)[k] === "string",
      )
    if (!wellFormed) return text(500, "Illegal AAEL eventry format: missing domain, operation or content")
    const answer = { success: "false", message: "mock CDH: runtime measurement is not available" }
    return { status: 200, body: JSON.stringify(answer), contentType: JSON_TYPE }
  }

  const attestation = async (req: http.IncomingMessage, sub: string, query: string): Promise<Reply> => {
    const method = req.method ?? "GET"
    const legacyMethod = (wanted: string): Reply | undefined =>
      legacy && method !== wanted ? text(405, "Method Not Allowed") : undefined
    if (sub === "/token" && (method === "GET" || legacy)) {
      const refused = legacyMethod("GET")
      if (refused !== undefined) return refused
      const tokenType = queryParam(query, "token_type")
      if (tokenType === undefined) return text(400, "BAD REQUEST")
      if (tokenType !== "kbs") return downstreamError("[ERROR:attestation-agent] AA-KBC get token failed")
      const body = JSON.stringify({ token: options.token?.() ?? fakeToken(), tee_keypair: FAKE_TEE_KEYPAIR })
      return { status: 200, body, contentType: OCTET_STREAM }
    }
    if (sub === "/evidence" && (method === "GET" || legacy)) {
      const refused = legacyMethod("GET")
      if (refused !== undefined) return refused
      const data = runtimeData(query)
      return data instanceof Uint8Array ? evidenceFor(data) : data
    }
    if (sub === "/additional-evidence" && method === "GET" && !legacy) {
      const data = runtimeData(query)
      return data instanceof Uint8Array ? { status: 200, body: "", contentType: OCTET_STREAM } : data
    }
    if (sub === "/aael" && (method === "POST" || legacy)) {
      const refused = legacyMethod("POST")
      if (refused !== undefined) return refused
      return aael(req)
    }
    return notFound("URL NOT FOUND")
  }

  /** `remainder` is what follows `/cdh/resource`, starting with `/`. */
  const resource = async (remainder: string): Promise<Reply> => {
    if (failNext > 0) {
      failNext -= 1
      await sleep(delayMs)
      return resourceFailed()
    }
    // ASR sends `kbs://` + remainder to CDH; CDH (<= v0.20) wants exactly 3 parts and fails at once.
    const segments = remainder.slice(1).split("/")
    if (segments.length !== 3) return resourceFailed()
    await sleep(delayMs)
    // A segment failing Trustee's regex is a KBS 401 like a missing one: just as slow.
    const value = segments.every((s) => SEGMENT.test(s)) ? store.get(segments.join("/")) : undefined
    if (value === undefined) {
      await sleep(missingDelayMs)
      return resourceFailed()
    }
    return { status: 200, body: value, contentType: OCTET_STREAM }
  }

  /** api-server-rest's router (v0.18+), or the v0.17 one with `legacy`. */
  const route = async (req: http.IncomingMessage, path: string, query: string): Promise<Reply> => {
    const method = req.method ?? "GET"
    const peerAllowed = allowAnyPeer || isLoopback(req.socket.remoteAddress)
    if (!legacy && !peerAllowed) return text(403, "Forbidden")
    if (!legacy && path === "/info") return method === "GET" ? info() : text(405, "Method Not Allowed")
    const split = splitAtSecondSlash(path)
    if (split === undefined) return notFound("URL NOT FOUND")
    const [root, rest] = split
    if (root === "/aa") {
      if (!attestationOn) return notFound("Attestation Feature Not Enabled")
      if (!peerAllowed) return text(403, "Forbidden")
      return attestation(req, rest, query)
    }
    if (root === "/cdh") {
      if (!resourceOn) return notFound("Resource Feature Not Enabled")
      const sub = splitAtSecondSlash(rest)
      if (sub === undefined || sub[0] !== "/resource") return notFound("URL NOT FOUND")
      if (!peerAllowed) return text(403, "Forbidden")
      if (legacy && method !== "GET") return text(405, "Method Not Allowed")
      return resource(sub[1])
    }
    return notFound("URL NOT FOUND")
  }

  // ---- HTTP plumbing ---------------------------------------------------------------------------------

  const send = (res: http.ServerResponse, reply: Reply): void => {
    if (res.destroyed || res.writableEnded || res.headersSent) return
    const body = typeof reply.body === "string" ? Buffer.from(reply.body, "utf8") : reply.body
    const headers: http.OutgoingHttpHeaders = { "content-length": body.byteLength }
    // Errors carry no Content-Type at all, exactly like ASR.
    if (reply.contentType !== undefined) headers["content-type"] = reply.contentType
    res.writeHead(reply.status, headers)
    res.end(body)
  }

  const handle = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const at = Date.now()
    const started = performance.now()
    const method = req.method ?? "GET"
    const target = req.url ?? "/"
    const { path, query } = splitTarget(target)
    const isAael = path === "/aa/aael"
    if (!isAael) req.resume() // routing never needs the body; drain it so keep-alive works
    const work = async (): Promise<void> => {
      let reply: Reply
      try {
        reply = await route(req, path, query)
      } catch (error) {
        reply = text(500, `mock CDH internal error: ${String(error)}`)
      }
      if (isAael && !req.readableEnded) req.resume()
      send(res, reply)
      const record: MockCdhRequest = {
        method,
        path,
        target,
        status: reply.status,
        at,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      }
      requests.push(record)
      options.onRequest?.(record)
    }
    const task = serialize ? mutex.run(work) : work()
    task.catch(() => {})
  }

  const listenOnce = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const candidate = http.createServer({ requireHostHeader: false }, handle)
      candidate.on("connection", (socket: net.Socket) => {
        sockets.add(socket)
        socket.once("close", () => sockets.delete(socket))
      })
      const onError = (error: Error): void => {
        candidate.close()
        reject(error)
      }
      candidate.once("error", onError)
      candidate.listen({ port, host }, () => {
        candidate.off("error", onError)
        candidate.on("error", () => {})
        const address = candidate.address()
        if (address !== null && typeof address === "object") port = address.port
        if (closed) {
          candidate.close()
          reject(new Error("mock CDH closed"))
          return
        }
        server = candidate
        markReady()
        resolve()
      })
    })

  const scheduleListen = (ms: number, attemptsLeft: number): void => {
    pendingListen = setTimeout(() => {
      pendingListen = undefined
      listenOnce().catch((error: unknown) => {
        if (closed) return
        if (attemptsLeft <= 0) failReady(error)
        else scheduleListen(LISTEN_RETRY_MS, attemptsLeft - 1)
      })
    }, ms)
  }

  const cancelPendingListen = (): void => {
    if (pendingListen !== undefined) clearTimeout(pendingListen)
    pendingListen = undefined
  }

  const stopListening = (): Promise<void> => {
    const current = server
    server = undefined
    mutex = makeMutex() // a restarted ASR has a fresh mutex; stale in-flight work cannot block it
    if (current === undefined) return Promise.resolve()
    return new Promise((resolve) => {
      current.close(() => resolve())
      current.closeAllConnections()
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    })
  }

  if (unavailableForMs > 0) {
    if (port === 0) port = await reservePort(host)
    scheduleListen(unavailableForMs, LISTEN_RETRIES)
  } else {
    await listenOnce()
  }

  const self: MockCdhServer = {
    get port() {
      return port
    },
    get url() {
      return urlFor(host, port)
    },
    requests,
    get listening() {
      return server !== undefined
    },
    ready,
    setResource: (path, value) => {
      store.set(path, toBytes(value))
    },
    deleteResource: (path) => {
      store.delete(path)
    },
    setFailNext: (n) => {
      failNext = nonNegative("setFailNext", n, 0)
    },
    setDelay: (ms) => {
      delayMs = nonNegative("setDelay", ms, 0)
    },
    stop: () => {
      cancelPendingListen()
      return stopListening()
    },
    start: async () => {
      if (closed) throw new Error("mock CDH: start() after close()")
      cancelPendingListen()
      if (server !== undefined) return
      await listenOnce()
    },
    close: async () => {
      if (closed) return
      closed = true
      cancelPendingListen()
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      failReady(new Error("mock CDH closed before it listened"))
      await stopListening()
    },
  }
  return self
}

/** The mock as a scoped resource: started on acquire, closed when the scope closes. */
export const scoped = (options?: MockCdhOptions): Effect.Effect<MockCdhServer, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startMockCdh(options)),
    (server) => Effect.promise(() => server.close()),
  )

/**
 * Reads `<dir>/<repo>/<type>/<tag>` files (Trustee's local filesystem KBS backend layout).
 * Entries whose name fails the KBS segment regex are skipped, which also skips the `..data`
 * machinery of Kubernetes secret/configmap volumes; symlinks are followed.
 */
export const loadResourcesFromDir = (dir: string): Record<string, Uint8Array> => {
  const result: Record<string, Uint8Array> = {}
  const children = (path: string, wantDirectory: boolean): Array<string> =>
    readdirSync(path)
      .filter((name) => SEGMENT.test(name))
      .filter((name) => {
        const stat = statSync(join(path, name), { throwIfNoEntry: false })
        return stat !== undefined && (wantDirectory ? stat.isDirectory() : stat.isFile())
      })
      .sort()
  for (const repo of children(dir, true)) {
    for (const type of children(join(dir, repo), true)) {
      for (const tag of children(join(dir, repo, type), false)) {
        result[`${repo}/${type}/${tag}`] = new Uint8Array(readFileSync(join(dir, repo, type, tag)))
      }
    }
  }
  return result
}

const STANDARD_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Reads the offline-fs KBC resource file (`/etc/aa-offline_fs_kbc-resources.json`): a JSON object
 * whose keys are `repo/type/tag` and whose values are standard (padded) base64. Throws on anything else.
 */
export const loadResourcesFromJson = (file: string): Record<string, Uint8Array> => {
  const parsed: unknown = JSON.parse(readFileSync(file, "utf8"))
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`${file}: expected a JSON object of "repo/type/tag": "<base64>"`)
  }
  const result: Record<string, Uint8Array> = {}
  for (const [key, value] of Object.entries(parsed)) {
    if (typeof value !== "string" || !STANDARD_BASE64.test(value)) {
      throw new TypeError(`${file}: value of ${JSON.stringify(key)} is not standard base64`)
    }
    result[key] = new Uint8Array(Buffer.from(value, "base64"))
  }
  return result
}
