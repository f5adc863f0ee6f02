/**
 * The paths the sidecar answers itself when it forwards everything else.
 *
 * Matching is exact on the raw path (the query is ignored), with no decoding
 * or slash merging: the proxy forwards raw paths byte for byte, so this is
 * the same view of the path. `/dashboard/`, `//dashboard` and `/%64ashboard`
 * are therefore the application's, and only the listed spellings are ours.
 */
type Path = `/${string}`

export interface SidecarPaths {
  readonly dashboard: Path
  readonly status: Path
  readonly attestation: Path
  readonly evidence: Path
  readonly openapi: Path
  readonly metrics: Path
  /** Whether a raw request-target belongs to the sidecar. */
  readonly owns: (rawUrl: string) => boolean
}

/** The path of a raw request-target: everything before the query. */
export const pathOf = (rawUrl: string): string => {
  const query = rawUrl.indexOf("?")
  return query === -1 ? rawUrl : rawUrl.slice(0, query)
}

export const make = (prefix: string): SidecarPaths => {
  // The prefix is "" or starts with "/" (checked in configuration).
  const dashboard = `${prefix}/dashboard` as Path
  const status = `${prefix}/api/status` as Path
  const attestation = `${prefix}/api/attestation` as Path
  const evidence = `${prefix}/api/evidence` as Path
  const openapi = `${prefix}/api/openapi.json` as Path
  // Under /api/: a bare /metrics would shadow the many apps that serve their own.
  const metrics = `${prefix}/api/metrics` as Path
  const owned = new Set<string>([dashboard, status, attestation, evidence, openapi, metrics])
  return {
    dashboard,
    status,
    attestation,
    evidence,
    openapi,
    metrics,
    owns: (rawUrl) => owned.has(pathOf(rawUrl)),
  }
}
