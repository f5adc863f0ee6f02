/**
 * Metrics in the Prometheus text format, with prom-client. `Metrics` holds
 * the registry and the instruments the request path updates (synchronously:
 * a counter increment must not cost a fiber); `layerCollectors` adds the
 * gauges read from other services' state at scrape time.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { AttestationReporter } from "../attestation/AttestationReporter.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { TlsMaterial } from "../tls/TlsMaterial.ts"
import { Counter, Gauge, Histogram, Registry } from "./promClient.ts"

/** `sidecar`: the sidecar's own paths; `app`: forwarded; `denied`: refused by the allow-lists. */
export type RouteClass = "sidecar" | "app" | "denied"

const make = () => {
  const registry = new Registry()
  const registers = [registry]
  return {
    registry,
    requests: new Counter({
      name: "coco_http_requests_total",
      help: "HTTP requests answered, by route class and status code",
      labelNames: ["route", "status"] as const,
      registers,
    }),
    duration: new Histogram({
      name: "coco_http_request_duration_seconds",
      help: "Time from request to the end of the response, by route class",
      labelNames: ["route"] as const,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    bytes: new Counter({
      name: "coco_proxy_bytes_total",
      help: "Body bytes forwarded, by direction (in: client to app, out: app to client)",
      labelNames: ["direction"] as const,
      registers,
    }),
    connections: new Gauge({
      name: "coco_tls_connections_active",
      help: "Established mTLS connections",
      registers,
    }),
    handshakeFailures: new Counter({
      name: "coco_tls_handshake_failures_total",
      help: "TLS handshakes refused, by reason (e.g. ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE, CERT_HAS_EXPIRED)",
      labelNames: ["reason"] as const,
      registers,
    }),
    cdhFetches: new Counter({
      name: "coco_cdh_fetches_total",
      help: "Requests to the CDH, by outcome (ok, http_4xx, http_5xx, unreachable)",
      labelNames: ["outcome"] as const,
      registers,
    }),
  }
}

export class Metrics extends Context.Service<Metrics, ReturnType<typeof make>>()(
  "coco-secure-access/Metrics",
) {
  static readonly layer: Layer.Layer<Metrics> = Layer.sync(Metrics, make)

  /** Gauges computed from the services' cached state on each scrape (prom-client `collect`). */
  static readonly layerCollectors: Layer.Layer<never, never, Metrics | TlsMaterial | AttestationReporter> =
    Layer.effectDiscard(
      Effect.gen(function* () {
        const { registry } = yield* Metrics
        const tls = yield* TlsMaterial
        const reporter = yield* AttestationReporter
        const forwarder = yield* Effect.serviceOption(Forwarder)
        // Scrapes are synchronous; these effects only read Refs.
        const read = <A>(effect: Effect.Effect<A>): A => Effect.runSync(effect)
        const registers = [registry]
        new Gauge({
          name: "coco_server_certificate_expiry_seconds",
          help: "Seconds until the served certificate expires",
          registers,
          collect() {
            this.set((read(tls.current).server.validTo.getTime() - Date.now()) / 1000)
          },
        })
        new Gauge({
          name: "coco_tls_last_refresh_success_timestamp_seconds",
          help: "Unix time of the last successful fetch of the TLS material",
          registers,
          collect() {
            const last = read(tls.refreshState).lastSuccessAt
            if (last !== null) this.set(Date.parse(last) / 1000)
          },
        })
        new Gauge({
          name: "coco_tls_rotations",
          help: "Times new TLS material was swapped in since start",
          registers,
          collect() {
            this.set(read(tls.refreshState).rotations)
          },
        })
        new Gauge({
          name: "coco_tls_refresh_failing",
          help: "1 when the last refresh of the TLS material failed (the previous material is still served)",
          registers,
          collect() {
            this.set(read(tls.refreshState).lastError === null ? 0 : 1)
          },
        })
        new Gauge({
          name: "coco_attestation_status",
          help: "1 for the current attestation status (verified, failed, unavailable), 0 for the others",
          labelNames: ["status"] as const,
          registers,
          collect() {
            const current = read(reporter.current).status
            for (const status of ["verified", "failed", "unavailable"] as const) {
              this.set({ status }, current === status ? 1 : 0)
            }
          },
        })
        new Gauge({
          name: "coco_websockets_active",
          help: "Proxied WebSockets open",
          registers,
          collect() {
            this.set(Option.isSome(forwarder) ? read(forwarder.value.openWebSockets) : 0)
          },
        })
      }),
    )
}
