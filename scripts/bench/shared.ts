/**
 * What the benchmark's processes share: the deterministic payload, the scenario
 * descriptions the orchestrator (scripts/bench.ts) hands to the load generator
 * (load.ts), and the results it gets back.
 */
import { createCipheriv, createHash } from "node:crypto"

/**
 * `n` bytes of deterministic pseudo-random content (an AES-128-CTR key stream with a fixed
 * key): incompressible, different in every 16 bytes, and the same in every process.
 */
export const payload = (n: number): Buffer => {
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 0x5a), Buffer.alloc(16, 0))
  return Buffer.concat([cipher.update(Buffer.alloc(n)), cipher.final()])
}

export const sha256 = (data: Buffer): string => createHash("sha256").update(data).digest("hex")

/** Where the load goes: the backend itself (plain HTTP) or a TLS front (the sidecar, mTLS). */
export type Target =
  | { readonly kind: "plain"; readonly port: number }
  | {
      readonly kind: "tls"
      readonly port: number
      /** PEM files: the CA that signed the server certificate, the client certificate and its key. */
      readonly caFile: string
      readonly certFile: string
      readonly keyFile: string
    }

export type Scenario =
  | {
      /**
       * Small GETs over keep-alive connections: a closed loop, `connections` of them busy at once;
       * or, with `ratePerSecond`, an open loop at that fixed rate over the `connections`, each
       * latency counted from the request's scheduled time (queueing in the client included).
       */
      readonly kind: "small"
      readonly connections: number
      readonly ratePerSecond?: number
      readonly warmupMs: number
      readonly durationMs: number
    }
  | {
      /** One new connection (TLS: full handshake, no resumption) per request. */
      readonly kind: "handshake"
      readonly concurrency: number
      readonly warmupMs: number
      readonly durationMs: number
    }
  | {
      /** One large download and one large upload on one connection, repeated within a time budget each. */
      readonly kind: "transfer"
      readonly downloadBytes: number
      readonly uploadBytes: number
      /** Per direction, after the hash-checked first transfer. */
      readonly budgetMs: number
      readonly maxRepetitions: number
    }
  | {
      /** `sockets` WebSockets, each sending a message and awaiting its echo in a loop. */
      readonly kind: "ws"
      readonly sockets: number
      readonly messageBytes: number
      readonly warmupMs: number
      readonly durationMs: number
    }

export interface LoadJob {
  readonly target: Target
  readonly scenario: Scenario
}

export interface RateResult {
  readonly kind: "small" | "handshake" | "ws"
  /** Requests, connections or echoed messages completed in the measured window. */
  readonly count: number
  readonly seconds: number
  readonly perSecond: number
  readonly p50Ms: number
  readonly p99Ms: number
  readonly errors: number
  /** The load generator's own CPU use over the window, in % of one core. */
  readonly loadCpuPercent: number
  /** Completions per second of the window, to see a trend (JIT warm-up, GC, other load). */
  readonly timeline: ReadonlyArray<number>
}

export interface TransferResult {
  readonly kind: "transfer"
  readonly downloadMBps: number
  readonly uploadMBps: number
  readonly downloads: number
  readonly uploads: number
  /** The first download and upload were hashed end to end and matched. */
  readonly verified: boolean
  readonly errors: number
  readonly loadCpuPercent: number
}

export type LoadResult = RateResult | TransferResult

/** Backend routes (scripts/bench/backend.ts). */
export const SMALL_PATH = "/small"
export const SMALL_BODY = "ok: a small response from the application\n"
export const downloadPath = (bytes: number): string => `/download?bytes=${bytes}`
export const uploadPath = (hash: boolean): string => (hash ? "/upload?hash=1" : "/upload")
export const WS_PATH = "/ws"

/** The backend's answer to an upload. */
export interface UploadAnswer {
  readonly bytes: number
  readonly sha256: string | null
}
