/**
 * The metrics endpoint (`SidecarPaths.metrics`) over mTLS, scraped like Prometheus would: the Prometheus text format, every metric the
 * sidecar documents (with HELP and TYPE), values that make sense at start, and values that move with
 * traffic (forwarded requests, refused handshakes, sidecar 404s, denials, WebSockets).
 *
 * The exposition is parsed twice: with parse-prometheus-text-format (a third-party parser: the
 * format is what Prometheus-style tooling accepts, families with HELP/TYPE and histogram buckets), and
 * with a strict line parser below for exact label sets (that library merges a labelled histogram's
 * series and drops their `_count`/`_sum`, so it cannot read a per-route count).
 */
import { X509Certificate } from "node:crypto"
import * as https from "node:https"
import { createRequire } from "node:module"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { Env } from "../../src/config/SidecarConfig.ts"
import { issue } from "../../src/dev/DevPki.ts"
import * as SidecarPaths from "../../src/server/SidecarPaths.ts"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { type ClientTls, get, refusal } from "../support/https.ts"
import { inProcess } from "../support/sidecar.ts"
import { openWebSocket } from "../support/tlsClient.ts"

// ---------------------------------------------------------------------------------------------------------
// parsing

/** What parse-prometheus-text-format returns (the package ships no types). */
interface Family {
  readonly name: string
  readonly help: string
  readonly type: string
  readonly metrics: ReadonlyArray<{
    readonly labels?: Readonly<Record<string, string>>
    readonly value?: string
    readonly buckets?: Readonly<Record<string, string>>
    readonly count?: string
    readonly sum?: string
  }>
}
const parsePrometheusTextFormat = createRequire(import.meta.url)("parse-prometheus-text-format") as (
  text: string,
) => ReadonlyArray<Family>

interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"\s*(,|$)/y

const number = (text: string, line: string): number => {
  if (text === "+Inf") return Number.POSITIVE_INFINITY
  if (text === "-Inf") return Number.NEGATIVE_INFINITY
  if (text === "NaN") return Number.NaN
  if (!/^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$/.test(text)) throw new Error(`bad value in: ${line}`)
  return Number(text)
}

const parseLabels = (text: string, line: string): Record<string, string> => {
  const labels: Record<string, string> = {}
  LABEL.lastIndex = 0
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text)
    if (match === null) throw new Error(`bad labels in: ${line}`)
    const [, name = "", raw = ""] = match
    if (name in labels) throw new Error(`duplicate label ${name} in: ${line}`)
    labels[name] = raw.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c))
  }
  return labels
}

/**
 * A strict reader of the text format (version 0.0.4) as prom-client writes it: `# HELP name text`,
 * `# TYPE name type` before the family's samples, samples `name{l="v",...} value` without timestamps.
 * Anything else throws.
 */
const strictParse = (text: string) => {
  const help = new Map<string, string>()
  const type = new Map<string, string>()
  const samples: Array<Sample> = []
  if (!text.endsWith("\n")) throw new Error("the exposition must end with a newline")
  for (const line of text.split("\n")) {
    if (line === "") continue
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line)
    if (meta !== null) {
      const [, kind, name = "", rest = ""] = meta
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in: ${line}`)
      const into = kind === "HELP" ? help : type
      if (into.has(name)) throw new Error(`second ${kind} for ${name}`)
      if (kind === "TYPE" && !["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) {
        throw new Error(`bad type in: ${line}`)
      }
      into.set(name, rest)
      continue
    }
    if (line.startsWith("#")) throw new Error(`unexpected comment: ${line}`)
    const match = SAMPLE.exec(line)
    if (match === null) throw new Error(`bad sample line: ${line}`)
    const [, name = "", labelText, value = ""] = match
    const family = name.replace(/_(bucket|count|sum)$/, "")
    if (!type.has(name) && !(type.get(family) === "histogram" && family !== name)) {
      throw new Error(`sample before its TYPE: ${line}`)
    }
    samples.push({
      name,
      labels: labelText === undefined ? {} : parseLabels(labelText, line),
      value: number(value, line),
    })
  }
  return { help, type, samples }
}

interface Scrape {
  readonly families: ReadonlyArray<Family>
  readonly help: ReadonlyMap<string, string>
  readonly type: ReadonlyMap<string, string>
  readonly samples: ReadonlyArray<Sample>
  /** The value of the series with exactly these labels; undefined when absent. */
  readonly value: (name: string, labels?: Readonly<Record<string, string>>) => number | undefined
}

const sameLabels = (a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>) => {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k])
}

const parseScrape = (text: string): Scrape => {
  const families = parsePrometheusTextFormat(text)
  const { help, type, samples } = strictParse(text)
  return {
    families,
    help,
    type,
    samples,
    value: (name, labels = {}) => samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value,
  }
}

// ---------------------------------------------------------------------------------------------------------
// the sidecar

let pki: Fixtures
let backend: Backend
const sidecars = inProcess()

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

const sidecar = async (env: Env = {}): Promise<string> =>
  (await sidecars.start(pki, { FORWARD_PORT: String(backend.port), ...env })).url

/** The sidecar's metrics path (without SIDECAR_PATH_PREFIX), wherever the sidecar puts it. */
const METRICS = SidecarPaths.make("").metrics

const client = (): ClientTls => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

const scrape = async (url: string): Promise<Scrape> => {
  const reply = await get(`${url}${METRICS}`, client())
  expect(reply.status).toBe(200)
  expect(String(reply.headers["content-type"])).toMatch(/^text\/plain/)
  return parseScrape(reply.body)
}

/** Scrapes until `ready` holds (counters are updated when a response's socket closes), at most ~3 s. */
const scrapeUntil = async (url: string, ready: (s: Scrape) => boolean): Promise<Scrape> => {
  let last = await scrape(url)
  for (let attempt = 0; attempt < 30 && !ready(last); attempt++) {
    await sleep(100)
    last = await scrape(url)
  }
  return last
}

const request = (url: string, method: string, path: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = https.request(`${url}${path}`, { method, agent: false, ...client() }, (response) => {
      response.resume()
      response.on("end", () => resolve(response.statusCode ?? 0))
    })
    req.on("error", reject)
    req.end()
  })

const counter = (s: Scrape, name: string, labels: Readonly<Record<string, string>>) =>
  s.value(name, labels) ?? 0

// ---------------------------------------------------------------------------------------------------------

describe(`GET ${METRICS}`, () => {
  let url: string
  const startedAt = Date.now() / 1000
  beforeAll(async () => {
    url = await sidecar()
    // Some traffic so that the labelled families have series.
    expect((await get(`${url}/warm-up`, client())).status).toBe(200)
  })

  it("is answered by the sidecar itself, never forwarded to the application", async () => {
    const before = backend.seen.length
    const reply = await get(`${url}${METRICS}`, client())
    expect(reply.status).toBe(200)
    expect(reply.body).toContain("# TYPE coco_http_requests_total counter")
    await sleep(100)
    expect(backend.seen.length).toBe(before)
  })

  it("is the Prometheus text format with every documented metric, HELP and TYPE", async () => {
    const s = await scrapeUntil(url, (x) => x.value("coco_attestation_status", { status: "verified" }) === 1)
    const expected: ReadonlyArray<readonly [string, string]> = [
      ["coco_http_requests_total", "counter"],
      ["coco_http_request_duration_seconds", "histogram"],
      ["coco_proxy_bytes_total", "counter"],
      ["coco_tls_connections_active", "gauge"],
      ["coco_websockets_active", "gauge"],
      ["coco_tls_handshake_failures_total", "counter"],
      ["coco_cdh_fetches_total", "counter"],
      ["coco_server_certificate_expiry_seconds", "gauge"],
      ["coco_tls_last_refresh_success_timestamp_seconds", "gauge"],
      ["coco_tls_rotations", "gauge"],
      ["coco_tls_refresh_failing", "gauge"],
      ["coco_attestation_status", "gauge"],
    ]
    for (const [name, type] of expected) {
      const family = s.families.find((f) => f.name === name)
      expect(family, name).toBeDefined()
      expect(family?.type).toBe(type.toUpperCase())
      expect(family?.help.length, `${name} HELP`).toBeGreaterThan(10)
      expect(s.type.get(name)).toBe(type)
      expect(s.help.get(name)).toBe(family?.help)
    }
    // The library reads the histogram's buckets: the configured bounds up to +Inf, cumulative.
    const histogram = s.families.find((f) => f.name === "coco_http_request_duration_seconds")
    const buckets = histogram?.metrics[0]?.buckets ?? {}
    expect(Object.keys(buckets)).toEqual(
      expect.arrayContaining(["0.001", "0.01", "0.1", "1", "10", "30", "+Inf"]),
    )
    const app = s.samples.filter(
      (x) => x.name === "coco_http_request_duration_seconds_bucket" && x.labels.route === "app",
    )
    expect(app.at(-1)?.labels.le).toBe("+Inf")
    const counts = app.map((x) => x.value)
    expect(counts).toEqual([...counts].sort((a, b) => a - b))
    expect(app.at(-1)?.value).toBe(s.value("coco_http_request_duration_seconds_count", { route: "app" }))
    expect(s.value("coco_http_request_duration_seconds_sum", { route: "app" })).toBeGreaterThan(0)
  })

  it("reports the served certificate, the TLS refresh, the CDH and attestation at start", async () => {
    const s = await scrapeUntil(url, (x) => x.value("coco_attestation_status", { status: "verified" }) === 1)
    // The dev server certificate is valid for 365 days from its issue.
    const validTo = Date.parse(new X509Certificate(pki.server.certPem).validTo) / 1000
    const expiry = s.value("coco_server_certificate_expiry_seconds")
    expect(expiry).toBeGreaterThan(0)
    expect(Math.abs((expiry ?? 0) - (validTo - Date.now() / 1000))).toBeLessThan(60)
    expect(Math.abs((expiry ?? 0) - 365 * 86_400)).toBeLessThan(3600)

    const refreshed = s.value("coco_tls_last_refresh_success_timestamp_seconds") ?? 0
    expect(refreshed).toBeGreaterThanOrEqual(Math.floor(startedAt) - 1)
    expect(refreshed).toBeLessThanOrEqual(Date.now() / 1000 + 1)
    expect(s.value("coco_tls_rotations")).toBe(0)
    expect(s.value("coco_tls_refresh_failing")).toBe(0)

    // Server certificate, key and client CA at least (the attestation check comes on top).
    expect(s.value("coco_cdh_fetches_total", { outcome: "ok" })).toBeGreaterThanOrEqual(3)
    for (const outcome of ["http_4xx", "http_5xx", "unreachable"]) {
      expect(counter(s, "coco_cdh_fetches_total", { outcome })).toBe(0)
    }

    expect(s.value("coco_attestation_status", { status: "verified" })).toBe(1)
    expect(s.value("coco_attestation_status", { status: "failed" })).toBe(0)
    expect(s.value("coco_attestation_status", { status: "unavailable" })).toBe(0)
    // The scrape's own connection is an established mTLS connection.
    expect(s.value("coco_tls_connections_active")).toBeGreaterThanOrEqual(1)
    expect(s.value("coco_websockets_active")).toBe(0)
  })

  it("moves with traffic: forwarded requests, a refused handshake, a sidecar 404", async () => {
    const before = await scrape(url)
    const failures = (s: Scrape) =>
      counter(s, "coco_tls_handshake_failures_total", { reason: "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE" })
    const appOk = (s: Scrape) => counter(s, "coco_http_requests_total", { route: "app", status: "200" })
    const sidecar404 = (s: Scrape) =>
      counter(s, "coco_http_requests_total", { route: "sidecar", status: "404" })
    const appCount = (s: Scrape) => counter(s, "coco_http_request_duration_seconds_count", { route: "app" })
    const bytesOut = (s: Scrape) => counter(s, "coco_proxy_bytes_total", { direction: "out" })

    for (let i = 0; i < 5; i++) expect((await get(`${url}/moving/${i}`, client())).status).toBe(200)
    expect(await refusal(get(`${url}/moving/no-cert`, { ca: pki.ca.certPem }))).toMatch(
      /CERTIFICATE_REQUIRED|ECONNRESET/,
    )
    // A method the sidecar's own path does not serve: answered by the sidecar's router.
    expect(await request(url, "POST", "/dashboard")).toBe(404)

    const after = await scrapeUntil(
      url,
      (s) =>
        appOk(s) >= appOk(before) + 5 &&
        failures(s) >= failures(before) + 1 &&
        sidecar404(s) >= sidecar404(before) + 1,
    )
    expect(appOk(after) - appOk(before)).toBe(5)
    expect(failures(after) - failures(before)).toBe(1)
    expect(sidecar404(after) - sidecar404(before)).toBe(1)
    expect(appCount(after) - appCount(before)).toBe(5)
    expect(bytesOut(after)).toBeGreaterThan(bytesOut(before))
    // GETs carry no body to the app.
    expect(counter(after, "coco_proxy_bytes_total", { direction: "in" })).toBe(
      counter(before, "coco_proxy_bytes_total", { direction: "in" }),
    )
    // Nothing reached the app for the refused handshake or the sidecar 404.
    expect(backend.seen.filter((x) => x.url.startsWith("/moving/")).map((x) => x.url)).toEqual(
      [0, 1, 2, 3, 4].map((i) => `/moving/${i}`),
    )
  })

  it("counts open WebSockets: 1 while open, 0 after close", async () => {
    const socket = await openWebSocket(url, pki, "/ws?metrics=1")
    const open = await scrapeUntil(url, (s) => s.value("coco_websockets_active") === 1)
    expect(open.value("coco_websockets_active")).toBe(1)
    // The WebSocket's connection and the scrape's.
    expect(open.value("coco_tls_connections_active")).toBeGreaterThanOrEqual(2)
    await new Promise((resolve) => socket.once("close", resolve).close(1000, "done"))
    const closed = await scrapeUntil(url, (s) => s.value("coco_websockets_active") === 0)
    expect(closed.value("coco_websockets_active")).toBe(0)
  })

  it("is not reachable without a client certificate, nor with one from another CA", async () => {
    expect(await refusal(get(`${url}${METRICS}`, { ca: pki.ca.certPem }))).toMatch(
      /CERTIFICATE_REQUIRED|ECONNRESET|socket hang up/,
    )
    const stranger = { cert: pki.strangerClient.certPem, key: pki.strangerClient.keyPem, ca: pki.ca.certPem }
    expect(await refusal(get(`${url}${METRICS}`, stranger))).toMatch(/ECONNRESET|socket hang up/)
    const unverified = (x: Scrape) =>
      counter(x, "coco_tls_handshake_failures_total", { reason: "UNABLE_TO_VERIFY_LEAF_SIGNATURE" })
    expect(unverified(await scrapeUntil(url, (x) => unverified(x) >= 1))).toBe(1)
  })
})

describe(`${METRICS} with an allow-list`, () => {
  it("is refused to a client of the CA that is not allowed, and counts the denial", async () => {
    const url = await sidecar({ ALLOW_CN: "developer" })
    const mallory = await issue(pki.ca, { cn: "mallory", kind: "client" })
    const denied = await get(`${url}${METRICS}`, {
      cert: mallory.certPem,
      key: mallory.keyPem,
      ca: pki.ca.certPem,
    })
    expect(denied.status).toBe(403)
    expect(denied.body).not.toContain("coco_")
    const s = await scrapeUntil(
      url,
      (x) => x.value("coco_http_requests_total", { route: "denied", status: "403" }) === 1,
    )
    expect(s.value("coco_http_requests_total", { route: "denied", status: "403" })).toBe(1)
    expect(s.value("coco_http_request_duration_seconds_count", { route: "denied" })).toBe(1)
  })
})
