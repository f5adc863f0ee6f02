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
      /**
       * Small GETs over HTTP/2 (node:http2): `streams` busy at once, in a closed loop, spread over
       * `sessions` connections (stream i on connection i mod `sessions`).
       */
      readonly kind: "h2small"
      readonly sessions: number
      readonly streams: number
      readonly warmupMs: number
      readonly durationMs: number
    }
  | {
      /**
       * Browser-like page loads, `concurrency` at once in a closed loop, each on a new client (full
       * TLS handshakes, no session resumption): the page's HTML, then the `assets` it references,
       * `parallel` requests at a time. HTTP/1.1: a fresh keep-alive agent of at most `parallel`
       * connections (ALPN http/1.1); h2: one connection, `parallel` concurrent streams. With
       * `ratePerSecond`, an open loop instead: a page load started at that fixed rate, each timed
       * from its scheduled start (`concurrency` is then unused).
       */
      readonly kind: "page"
      readonly protocol: "http/1.1" | "h2"
      readonly assets: number
      readonly parallel: number
      readonly concurrency: number
      readonly ratePerSecond?: number
      readonly warmupMs: number
      readonly durationMs: number
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
  readonly kind: "small" | "handshake" | "ws" | "h2small" | "page"
  /** Requests, connections, echoed messages or page loads completed in the measured window. */
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
  /**
   * Page loads only, over all of them (warm-up included): TLS connections opened per page load,
   * how many of them resumed a TLS session (0 expected), and those whose ALPN was not the one asked for.
   */
  readonly connections?: { readonly perPage: number; readonly resumed: number; readonly wrongAlpn: number }
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
/** The page of the page loads: HTML referencing `assets` small assets (see {@link pageHtml}). */
export const PAGE_PATH = "/page"
export const pagePath = (assets: number): string => `${PAGE_PATH}?assets=${assets}`
export const assetPath = (i: number): string => `${SMALL_PATH}?asset=${i}`
/**
 * The page's HTML: a document that references `assets` images, each {@link assetPath}, padded with
 * text to about 9 KB (a small real page); the page-load client fetches what it references.
 */
export const pageHtml = (assets: number): string => {
  const images = Array.from({ length: assets }, (_, i) => `<img src="${assetPath(i)}" alt="">`).join("\n")
  const text = "<p>A page of the application, served through the sidecar.</p>\n".repeat(120)
  return `<!doctype html>\n<html><head><title>bench</title></head><body>\n${images}\n${text}</body></html>\n`
}
/** The assets a page references, in order. */
export const assetsOf = (html: string): ReadonlyArray<string> =>
  [...html.matchAll(/<img src="([^"]+)"/g)].map((m) => m[1] ?? "")
export const downloadPath = (bytes: number): string => `/download?bytes=${bytes}`
export const uploadPath = (hash: boolean): string => (hash ? "/upload?hash=1" : "/upload")
export const WS_PATH = "/ws"

/** The backend's answer to an upload. */
export interface UploadAnswer {
  readonly bytes: number
  readonly sha256: string | null
}
