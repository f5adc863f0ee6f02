/**
 * The Prometheus text of the sidecar's metrics, for `/api/metrics`: the gauges that show other
 * services' state are set from it here, in Effect, at each scrape, then the registry is written
 * out by effect/observability's exporter.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import * as PrometheusMetrics from "effect/observability/PrometheusMetrics"
import { AttestationReporter } from "../attestation/AttestationReporter.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { TlsMaterial } from "../tls/TlsMaterial.ts"

const expiry = Metric.gauge("coco_server_certificate_expiry_seconds", {
  description: "Seconds until the served certificate expires",
})
const lastRefresh = Metric.gauge("coco_tls_last_refresh_success_timestamp_seconds", {
  description: "Unix time of the last successful fetch of the TLS material",
})
const rotations = Metric.gauge("coco_tls_rotations", {
  description: "Times new TLS material was swapped in since start",
})
const refreshFailing = Metric.gauge("coco_tls_refresh_failing", {
  description: "1 when the last refresh of the TLS material failed (the previous material is still served)",
})
const attestation = Metric.gauge("coco_attestation_status", {
  description: "1 for the current attestation status (verified, failed, unavailable), 0 for the others",
})
const STATUSES = ["verified", "failed", "unavailable"] as const
const attestationByStatus = STATUSES.map(
  (status) => [status, Metric.withAttributes(attestation, { status })] as const,
)
const websockets = Metric.gauge("coco_websockets_active", { description: "Proxied WebSockets open" })

export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

export const scrape: Effect.Effect<string, never, TlsMaterial | AttestationReporter | Forwarder> = Effect.gen(
  function* () {
    const tls = yield* TlsMaterial
    const material = yield* tls.current
    const refresh = yield* tls.refreshState
    const current = (yield* (yield* AttestationReporter).current).status
    const forwarder = yield* Forwarder
    yield* Metric.update(expiry, (material.server.validTo.getTime() - Date.now()) / 1000)
    if (refresh.lastSuccessAt !== null)
      yield* Metric.update(lastRefresh, Date.parse(refresh.lastSuccessAt) / 1000)
    yield* Metric.update(rotations, refresh.rotations)
    yield* Metric.update(refreshFailing, refresh.lastError === null ? 0 : 1)
    for (const [status, gauge] of attestationByStatus) yield* Metric.update(gauge, current === status ? 1 : 0)
    yield* Metric.update(websockets, forwarder.openWebSockets())
    return yield* PrometheusMetrics.format()
  },
)
