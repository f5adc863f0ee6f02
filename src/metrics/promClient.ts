/**
 * prom-client's classes from their own modules. Its index also loads the
 * cluster aggregator (node:cluster), the Pushgateway (zlib), the default
 * metrics (v8, perf_hooks) and @opentelemetry/api: none used here, and they
 * cost the sidecar memory at every start. See docs/PERFORMANCE.md.
 */
// biome-ignore lint/style/noRestrictedImports: types only, erased from the bundle
import type * as PromClient from "prom-client"
import CounterClass from "prom-client/lib/counter.js"
import GaugeClass from "prom-client/lib/gauge.js"
import HistogramClass from "prom-client/lib/histogram.js"
import RegistryClass from "prom-client/lib/registry.js"

export const Counter: typeof PromClient.Counter = CounterClass
export const Gauge: typeof PromClient.Gauge = GaugeClass
export const Histogram: typeof PromClient.Histogram = HistogramClass
export const Registry: typeof PromClient.Registry = RegistryClass
