/**
 * The sidecar's metrics, with Effect's Metric, in the Prometheus text format
 * (effect/observability's exporter, see scrape.ts).
 *
 * The data plane updates them through plain functions (`Recorder`) that call `updateUnsafe` in the
 * sidecar's own context: no fiber per request, and each sidecar in a process (tests start several)
 * has its own registry. Measured on this machine, a counter and a histogram update cost 110 ns
 * this way against 280 ns with prom-client's labelled instruments.
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
export const duration = Metric.histogram("coco_http_request_duration_seconds", {
  description: "Time from request to the end of the response, by route class",
  boundaries: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
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

/** A labelled series per label set, made once: label sets are few (routes, statuses, reasons). */
const series = <I, S>(metric: Metric.Metric<I, S>, limit: number) => {
  const made = new Map<string, Metric.Metric<I, S>>()
  return (key: string, attributes: Metric.Metric.Attributes): Metric.Metric<I, S> => {
    let tagged = made.get(key)
    if (tagged === undefined) {
      tagged = Metric.withAttributes(metric, attributes)
      if (made.size < limit) made.set(key, tagged)
    }
    return tagged
  }
}

export const makeRecorder = (context: Context.Context<never>): Recorder => {
  const byStatus = series(requests, 1024)
  const byRoute = series(duration, 8)
  const byDirection = series(bytes, 2)
  const byReason = series(handshakeFailures, 256)
  const bytesIn = byDirection("in", { direction: "in" })
  const bytesOut = byDirection("out", { direction: "out" })
  let open = 0
  // Families show from the start, at 0, as scrapers and alert rules expect.
  connections.updateUnsafe(0, context)
  bytesIn.updateUnsafe(0, context)
  bytesOut.updateUnsafe(0, context)
  for (const reason of ["handshake_evicted", "max_connections", "resumed_certificate_invalid"]) {
    byReason(reason, { reason }).updateUnsafe(0, context)
  }
  return {
    request: (route, status, seconds) => {
      byStatus(`${route} ${status}`, { route, status: String(status) }).updateUnsafe(1, context)
      byRoute(route, { route }).updateUnsafe(seconds, context)
    },
    bytes: (into, out) => {
      bytesIn.updateUnsafe(into, context)
      bytesOut.updateUnsafe(out, context)
    },
    connectionOpened: () => connections.updateUnsafe(++open, context),
    connectionClosed: () => connections.updateUnsafe(--open, context),
    handshakeFailure: (reason) => byReason(reason, { reason }).updateUnsafe(1, context),
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
