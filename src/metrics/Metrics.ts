/**
 * The sidecar's metrics, with Effect's Metric, in the Prometheus text format
 * (effect/observability's exporter, see scrape.ts).
 *
 * The data plane updates them through plain functions (`Recorder`) that increment plain cells,
 * registered in the sidecar's own registry (each sidecar in a process, as tests start several,
 * has its own): no fiber and no registry lookup per request.
 *
 * Nothing here knows the services whose state the scrape-time gauges show: scrape.ts reads them.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Metric from "effect/Metric"

/** `sidecar`: the sidecar's own paths; `app`: forwarded; `denied`: refused by the allow-lists. */
export type RouteClass = "sidecar" | "app" | "denied"

export const requests = Metric.counter("coco_http_requests_total", {
  description: "HTTP requests answered, by route class and status code",
  incremental: true,
})
const BOUNDARIES = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
export const duration = Metric.histogram("coco_http_request_duration_seconds", {
  description: "Time from request to the end of the response, by route class",
  boundaries: BOUNDARIES,
})
export const bytes = Metric.counter("coco_proxy_bytes_total", {
  description: "Body bytes forwarded, by direction (in: client to app, out: app to client)",
  incremental: true,
})
export const connections = Metric.gauge("coco_tls_connections_active", {
  description: "Established mTLS connections",
})
export const handshakeFailures = Metric.counter("coco_tls_handshake_failures_total", {
  description:
    "TLS handshakes refused, by reason (e.g. ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE, CERT_HAS_EXPIRED)",
  incremental: true,
})
export const cdhFetches = Metric.counter("coco_cdh_fetches_total", {
  description: "Requests to the CDH, by outcome (ok, http_4xx, http_5xx, unreachable)",
  incremental: true,
})

/** What the data plane records, as plain calls. */
export interface Recorder {
  readonly request: (route: RouteClass, status: number, seconds: number) => void
  readonly bytes: (bytesIn: number, bytesOut: number) => void
  readonly connectionOpened: () => void
  readonly connectionClosed: () => void
  readonly handshakeFailure: (reason: string) => void
}

const ignore = () => {}

/**
 * A series whose value the data plane keeps in a plain cell, read by the exporter through
 * `registerUnsafe`: an update is a property increment, with no key to compute and no registry to
 * look up (Metric.update's way costs about 1.5 us per request on the sidecar's path).
 */
const register = <S>(metric: Metric.Metric<number, S>, context: Context.Context<never>, get: () => S) =>
  Metric.registerUnsafe(metric, context, { get, update: ignore, modify: ignore })

interface CounterCell {
  count: number
}
const counterCell = (
  metric: Metric.Metric<number, Metric.CounterState<number>>,
  context: Context.Context<never>,
): CounterCell => {
  const cell = { count: 0 }
  register(metric, context, () => ({ count: cell.count, incremental: true }))
  return cell
}

/** Effect's histogram state (cumulative buckets), kept by plain code. */
const histogramCell = (
  metric: Metric.Metric<number, Metric.HistogramState>,
  boundaries: ReadonlyArray<number>,
  context: Context.Context<never>,
) => {
  const counts = new Float64Array(boundaries.length + 1)
  let count = 0
  let sum = 0
  let min = Number.MAX_VALUE
  let max = -Number.MAX_VALUE
  register(metric, context, () => {
    let cumulated = 0
    const buckets: Array<[number, number]> = []
    for (let i = 0; i < boundaries.length; i++) {
      cumulated += counts[i] ?? 0
      buckets.push([boundaries[i] as number, cumulated])
    }
    return { buckets, count, min, max, sum }
  })
  return (value: number) => {
    let i = 0
    while (i < boundaries.length && value > (boundaries[i] as number)) i++
    counts[i] = (counts[i] ?? 0) + 1
    count++
    sum += value
    if (value < min) min = value
    if (value > max) max = value
  }
}

const ROUTES: ReadonlyArray<RouteClass> = ["sidecar", "app", "denied"]

export const makeRecorder = (context: Context.Context<never>): Recorder => {
  // Per route, a cell per status code (0: no answer sent), made at the first use of each.
  const byStatus = new Map<RouteClass, Array<CounterCell | undefined>>(ROUTES.map((route) => [route, []]))
  const observe = new Map(
    ROUTES.map((route) => [
      route,
      histogramCell(Metric.withAttributes(duration, { route }), BOUNDARIES, context),
    ]),
  )
  const bytesIn = counterCell(Metric.withAttributes(bytes, { direction: "in" }), context)
  const bytesOut = counterCell(Metric.withAttributes(bytes, { direction: "out" }), context)
  const reasons = new Map<string, CounterCell>()
  const failure = (reason: string) => {
    let cell = reasons.get(reason)
    if (cell === undefined) {
      cell = counterCell(Metric.withAttributes(handshakeFailures, { reason }), context)
      reasons.set(reason, cell)
    }
    cell.count++
  }
  // These show from the start, at 0, as scrapers and alert rules expect.
  for (const reason of ["handshake_evicted", "max_connections", "resumed_certificate_invalid"]) {
    reasons.set(reason, counterCell(Metric.withAttributes(handshakeFailures, { reason }), context))
  }
  let open = 0
  register(connections, context, () => ({ value: open }))
  return {
    request: (route, status, seconds) => {
      const cells = byStatus.get(route) as Array<CounterCell | undefined>
      let cell = cells[status]
      if (cell === undefined) {
        cell = counterCell(Metric.withAttributes(requests, { route, status: String(status) }), context)
        cells[status] = cell
      }
      cell.count++
      observe.get(route)?.(seconds)
    },
    bytes: (into, out) => {
      bytesIn.count += into
      bytesOut.count += out
    },
    connectionOpened: () => void open++,
    connectionClosed: () => void open--,
    handshakeFailure: failure,
  }
}

export class Metrics extends Context.Service<Metrics, Recorder>()("coco-secure-access/Metrics") {
  /** The recorder over the registry in context (see `layerRegistry`). */
  static readonly layer: Layer.Layer<Metrics> = Layer.effect(
    Metrics,
    Effect.map(Effect.context<never>(), makeRecorder),
  )

  /** A registry of the sidecar's own, provided to everything it builds. */
  static readonly layerRegistry: Layer.Layer<never> = Layer.sync(Metric.MetricRegistry, () => new Map())
}
