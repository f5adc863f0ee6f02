/**
 * The sidecar's configuration: kubectl-coco's injection contract plus our
 * additions, each with a default that keeps kubectl-coco working unchanged.
 * Every problem is reported with the variable and the offending value, all at
 * once, before anything else starts.
 */
import type { KeyObject } from "node:crypto"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Result from "effect/Result"
import { type AllowRules, NO_RULES, parseRules } from "../auth/ClientAuthorization.ts"
import * as ResourceUri from "../kbs/ResourceUri.ts"
import { parseAllowlist } from "../runtime/Environment.ts"
import * as Parse from "./parse.ts"

export interface CdhSettings {
  readonly url: string
  /** One HTTP attempt; above ASR's own 50 s ttrpc deadline. */
  readonly requestTimeout: Duration.Duration
  /** Total time start-up keeps retrying a resource (attestation can be slow). */
  readonly startupTimeout: Duration.Duration
  readonly retryBase: Duration.Duration
  readonly retryMax: Duration.Duration
}

export interface ForwardSettings {
  /** Time allowed to open a connection to the application. */
  readonly connectTimeout: Duration.Duration
  /** Time allowed for the application to start its response (headers); bodies and WebSockets are not limited. */
  readonly responseTimeout: Duration.Duration
}

export interface Http2Settings {
  /** Offer h2 in ALPN (with http/1.1). */
  readonly enabled: boolean
  /** SETTINGS_MAX_CONCURRENT_STREAMS: exchanges one connection may have open at once. */
  readonly maxConcurrentStreams: number
}

export interface Limits {
  /** Largest request head (request line + headers) in bytes; bigger gets 431. */
  readonly maxHeaderSize: number
  /** Time a client has to send its request headers (slowloris); too slow gets 408 and a close. */
  readonly headersTimeout: Duration.Duration
  /** Time a client has to complete the TLS handshake, from its TCP connection (a deadline, not idle time). */
  readonly handshakeTimeout: Duration.Duration
  /** Established (authenticated) connections at most; further ones are closed at once. */
  readonly maxConnections: number
  /**
   * Connections still in their TLS handshake at most, counted apart from the established ones; when
   * full, the oldest is closed for the newcomer, so idle TCP connections cannot lock clients out.
   */
  readonly maxHandshakes: number
}

export interface Settings {
  readonly tlsCertUri: ResourceUri.ResourceUri
  readonly tlsKeyUri: ResourceUri.ResourceUri
  readonly clientCaUri: ResourceUri.ResourceUri
  readonly attestationStatusUri: ResourceUri.ResourceUri
  readonly httpsPort: number
  /** Undefined: every interface, as upstream's `:8443`. */
  readonly httpsHost: string | undefined
  readonly forwardPort: Option.Option<number>
  readonly forward: ForwardSettings
  /** Prefix of the sidecar's own paths ("" or "/seg[/seg…]"), so they need not shadow the app's. */
  readonly pathPrefix: string
  readonly podName: string
  readonly podNamespace: string
  readonly cdh: CdhSettings
  readonly shutdownGrace: Duration.Duration
  readonly limits: Limits
  readonly http2: Http2Settings
  /** The plain-HTTP probe listener for kubelet; off unless HEALTH_PORT is set. */
  readonly health:
    | { readonly port: number; readonly host: string | undefined; readonly requireApp: boolean }
    | undefined
  /** Client-certificate allow-lists beyond the CA (ALLOW_CN/OU/DNS/URI); none = any client of the CA. */
  readonly allow: AllowRules
  /** How often cert, key and client CA are fetched again (and on SIGHUP). */
  readonly tlsRefreshInterval: Duration.Duration
  /** How often the attestation-status resource is checked again after the first check. */
  readonly attestationInterval: Duration.Duration
  /**
   * The KBS's EAR token (CDH attestation feature): fetched this often, each time a full
   * attestation; its signature checked against `pinnedKey` when set (ATTESTATION_TOKEN_KEY).
   */
  readonly attestationToken: {
    readonly interval: Duration.Duration
    readonly pinnedKey: KeyObject | undefined
  }
  /** How often an open dashboard refreshes its live parts from the API. */
  readonly dashboardRefresh: Duration.Duration
  /** Extra environment variable names (or PREFIX_* globs) whose values the status may show. */
  readonly envAllowlist: ReadonlyArray<string>
  readonly logLevel: Parse.LogLevelName
  readonly logFormat: "json" | "logfmt"
}

export interface Problem {
  readonly variable: string
  readonly value: string | undefined
  readonly reason: string
}

export class InvalidConfig extends Data.TaggedError("InvalidConfig")<{
  readonly problems: ReadonlyArray<Problem>
}> {
  override get message(): string {
    return this.problems.map(describe).join("\n")
  }
}

const describe = ({ variable, value, reason }: Problem): string =>
  value === undefined
    ? `invalid configuration: ${variable} is not set: ${reason}`
    : `invalid configuration: ${variable}=${JSON.stringify(value.length > 200 ? `${value.slice(0, 200)}…` : value)}: ${reason}`

export const DEFAULTS = {
  HTTPS_PORT: "8443",
  POD_NAME: "unknown",
  POD_NAMESPACE: "default",
  CDH_URL: "http://127.0.0.1:8006",
  ATTESTATION_STATUS_URI: ResourceUri.ATTESTATION_STATUS,
  CDH_REQUEST_TIMEOUT: "60s",
  CDH_STARTUP_TIMEOUT: "5m",
  CDH_RETRY_BASE: "250ms",
  CDH_RETRY_MAX: "10s",
  SHUTDOWN_GRACE_PERIOD: "20s",
  ATTESTATION_CHECK_INTERVAL: "60s",
  TLS_REFRESH_INTERVAL: "5m",
  HTTP2: "true",
  HTTP2_MAX_CONCURRENT_STREAMS: "100",
  ATTESTATION_TOKEN_INTERVAL: "10m",
  MAX_HEADER_SIZE: "16384",
  HEADERS_TIMEOUT: "20s",
  TLS_HANDSHAKE_TIMEOUT: "5s",
  MAX_CONNECTIONS: "256",
  MAX_HANDSHAKES: "128",
  DASHBOARD_REFRESH_INTERVAL: "5s",
  FORWARD_CONNECT_TIMEOUT: "5s",
  FORWARD_RESPONSE_TIMEOUT: "5m",
  SIDECAR_PATH_PREFIX: "",
  LOG_LEVEL: "info",
  LOG_FORMAT: "json",
} as const

export const VARIABLES = [
  "TLS_CERT_URI",
  "TLS_KEY_URI",
  "CLIENT_CA_URI",
  "ATTESTATION_STATUS_URI",
  "HTTPS_PORT",
  "HTTPS_HOST",
  "FORWARD_PORT",
  "FORWARD_CONNECT_TIMEOUT",
  "FORWARD_RESPONSE_TIMEOUT",
  "SIDECAR_PATH_PREFIX",
  "POD_NAME",
  "POD_NAMESPACE",
  "CDH_URL",
  "CDH_REQUEST_TIMEOUT",
  "CDH_STARTUP_TIMEOUT",
  "CDH_RETRY_BASE",
  "CDH_RETRY_MAX",
  "SHUTDOWN_GRACE_PERIOD",
  "ATTESTATION_CHECK_INTERVAL",
  "ATTESTATION_TOKEN_INTERVAL",
  "ATTESTATION_TOKEN_KEY",
  "TLS_REFRESH_INTERVAL",
  "MAX_HEADER_SIZE",
  "HEADERS_TIMEOUT",
  "TLS_HANDSHAKE_TIMEOUT",
  "MAX_CONNECTIONS",
  "MAX_HANDSHAKES",
  "HTTP2",
  "HTTP2_MAX_CONCURRENT_STREAMS",
  "HEALTH_PORT",
  "HEALTH_HOST",
  "READY_REQUIRES_APP",
  "ALLOW_CN",
  "ALLOW_OU",
  "ALLOW_DNS",
  "ALLOW_URI",
  "DASHBOARD_REFRESH_INTERVAL",
  "ENV_ALLOWLIST",
  "LOG_LEVEL",
  "LOG_FORMAT",
] as const
export type Variable = (typeof VARIABLES)[number]
export type Env = Partial<Record<Variable, string>>

/** Pure decoding of the raw values (empty counts as unset, as in the Downward API). */
export const decode = (env: Env): Result.Result<Settings, InvalidConfig> => {
  const problems: Array<Problem> = []
  const get = (name: Variable): string | undefined => (env[name] === "" ? undefined : env[name])
  const field = <A>(name: Variable, parse: (s: string) => Result.Result<A, string>, fallback?: string) => {
    const value = get(name)
    const input = value ?? fallback
    if (input === undefined) {
      problems.push({ variable: name, value, reason: "required" })
      return undefined
    }
    const parsed = parse(input)
    if (Result.isFailure(parsed)) {
      problems.push({ variable: name, value: input, reason: parsed.failure })
      return undefined
    }
    return parsed.success
  }
  const withDefault = <A>(
    name: Variable & keyof typeof DEFAULTS,
    parse: (s: string) => Result.Result<A, string>,
  ) => field(name, parse, DEFAULTS[name])
  const optional = <A>(name: Variable, parse: (s: string) => Result.Result<A, string>) =>
    get(name) === undefined ? undefined : field(name, parse)
  const resource = (s: string) => Result.mapError(ResourceUri.parse(s), (e) => e.reason)
  const text = (s: string) => Result.succeed(s)

  const tlsCertUri = field("TLS_CERT_URI", resource)
  const tlsKeyUri = field("TLS_KEY_URI", resource)
  const clientCaUri = field("CLIENT_CA_URI", resource)
  const attestationStatusUri = withDefault("ATTESTATION_STATUS_URI", resource)
  const httpsPort = withDefault("HTTPS_PORT", Parse.port)
  const httpsHost = optional("HTTPS_HOST", Parse.host)
  const forwardPort = optional("FORWARD_PORT", Parse.port)
  if (forwardPort !== undefined && forwardPort === httpsPort) {
    problems.push({
      variable: "FORWARD_PORT",
      value: get("FORWARD_PORT"),
      reason: "must differ from HTTPS_PORT",
    })
  }
  const connectTimeout = withDefault("FORWARD_CONNECT_TIMEOUT", Parse.positiveDuration)
  const responseTimeout = withDefault("FORWARD_RESPONSE_TIMEOUT", Parse.positiveDuration)
  const pathPrefix = optional("SIDECAR_PATH_PREFIX", Parse.pathPrefix) ?? ""
  const podName = withDefault("POD_NAME", text)
  const podNamespace = withDefault("POD_NAMESPACE", text)
  const url = withDefault("CDH_URL", Parse.httpBaseUrl)
  const requestTimeout = withDefault("CDH_REQUEST_TIMEOUT", Parse.positiveDuration)
  const startupTimeout = withDefault("CDH_STARTUP_TIMEOUT", Parse.positiveDuration)
  const retryBase = withDefault("CDH_RETRY_BASE", Parse.positiveDuration)
  const retryMax = withDefault("CDH_RETRY_MAX", Parse.positiveDuration)
  const shutdownGrace = withDefault("SHUTDOWN_GRACE_PERIOD", Parse.duration)
  const tlsRefreshInterval = withDefault("TLS_REFRESH_INTERVAL", Parse.positiveDuration)
  const maxHeaderSize = withDefault("MAX_HEADER_SIZE", Parse.intBetween(1024, 1_048_576))
  const headersTimeout = withDefault("HEADERS_TIMEOUT", Parse.positiveDuration)
  const handshakeTimeout = withDefault("TLS_HANDSHAKE_TIMEOUT", Parse.positiveDuration)
  const maxConnections = withDefault("MAX_CONNECTIONS", Parse.intBetween(1, 1_000_000))
  const maxHandshakes = withDefault("MAX_HANDSHAKES", Parse.intBetween(1, 100_000))
  const http2Enabled = withDefault("HTTP2", Parse.boolean)
  const maxConcurrentStreams = withDefault("HTTP2_MAX_CONCURRENT_STREAMS", Parse.intBetween(1, 1000))
  const healthPort = optional("HEALTH_PORT", Parse.port)
  const healthHost = optional("HEALTH_HOST", Parse.host)
  const requireApp = field("READY_REQUIRES_APP", Parse.boolean, "false")
  if (healthPort !== undefined && healthPort === httpsPort) {
    problems.push({
      variable: "HEALTH_PORT",
      value: get("HEALTH_PORT"),
      reason: "must differ from HTTPS_PORT",
    })
  }
  if (healthPort !== undefined && healthPort === forwardPort) {
    problems.push({
      variable: "HEALTH_PORT",
      value: get("HEALTH_PORT"),
      reason: "must differ from FORWARD_PORT (the application's port)",
    })
  }
  const allowEnv: Record<string, string> = {}
  for (const name of ["ALLOW_CN", "ALLOW_OU", "ALLOW_DNS", "ALLOW_URI"] as const) {
    const value = get(name)
    if (value !== undefined) allowEnv[name] = value
  }
  const allowed = parseRules(allowEnv)
  if (Result.isFailure(allowed)) problems.push(allowed.failure)
  const allow = Result.isSuccess(allowed) ? allowed.success : NO_RULES
  const attestationInterval = withDefault("ATTESTATION_CHECK_INTERVAL", Parse.positiveDuration)
  const tokenInterval = withDefault("ATTESTATION_TOKEN_INTERVAL", Parse.positiveDuration)
  const pinnedKey = optional("ATTESTATION_TOKEN_KEY", Parse.p256PublicKey)
  const dashboardRefresh = withDefault("DASHBOARD_REFRESH_INTERVAL", Parse.positiveDuration)
  const envAllowlist = optional("ENV_ALLOWLIST", parseAllowlist) ?? []
  const logLevel = withDefault("LOG_LEVEL", Parse.logLevel)
  const logFormat = withDefault("LOG_FORMAT", Parse.oneOf(["json", "logfmt"] as const))

  if (
    problems.length > 0 ||
    tlsCertUri === undefined ||
    tlsKeyUri === undefined ||
    clientCaUri === undefined ||
    attestationStatusUri === undefined ||
    httpsPort === undefined ||
    connectTimeout === undefined ||
    responseTimeout === undefined ||
    podName === undefined ||
    podNamespace === undefined ||
    url === undefined ||
    requestTimeout === undefined ||
    startupTimeout === undefined ||
    retryBase === undefined ||
    retryMax === undefined ||
    shutdownGrace === undefined ||
    attestationInterval === undefined ||
    tokenInterval === undefined ||
    tlsRefreshInterval === undefined ||
    maxHeaderSize === undefined ||
    headersTimeout === undefined ||
    handshakeTimeout === undefined ||
    maxConnections === undefined ||
    maxHandshakes === undefined ||
    http2Enabled === undefined ||
    maxConcurrentStreams === undefined ||
    dashboardRefresh === undefined ||
    logLevel === undefined ||
    logFormat === undefined
  ) {
    return Result.fail(new InvalidConfig({ problems }))
  }
  return Result.succeed({
    tlsCertUri,
    tlsKeyUri,
    clientCaUri,
    attestationStatusUri,
    httpsPort,
    httpsHost,
    forwardPort: Option.fromUndefinedOr(forwardPort),
    forward: { connectTimeout, responseTimeout },
    pathPrefix,
    podName,
    podNamespace,
    cdh: { url, requestTimeout, startupTimeout, retryBase, retryMax },
    shutdownGrace,
    limits: { maxHeaderSize, headersTimeout, handshakeTimeout, maxConnections, maxHandshakes },
    http2: { enabled: http2Enabled, maxConcurrentStreams },
    allow,
    health:
      healthPort === undefined
        ? undefined
        : { port: healthPort, host: healthHost, requireApp: requireApp ?? false },
    tlsRefreshInterval,
    attestationInterval,
    attestationToken: { interval: tokenInterval, pinnedKey },
    dashboardRefresh,
    envAllowlist,
    logLevel,
    logFormat,
  })
}

/** Reads the variables through Effect's ConfigProvider (the process env by default), then decodes. */
export const load: Effect.Effect<Settings, InvalidConfig | Config.ConfigError> = Effect.gen(function* () {
  const env: Env = {}
  for (const name of VARIABLES) {
    const value = yield* Config.String(name).pipe(Config.option)
    if (Option.isSome(value)) env[name] = value.value
  }
  return yield* Effect.fromResult(decode(env))
})

export class SidecarConfig extends Context.Service<SidecarConfig, Settings>()(
  "coco-secure-access/SidecarConfig",
) {
  /** From the ambient ConfigProvider: the process environment in production. */
  static readonly layer: Layer.Layer<SidecarConfig, InvalidConfig | Config.ConfigError> = Layer.effect(
    SidecarConfig,
    load,
  )

  static readonly layerFrom = (settings: Settings): Layer.Layer<SidecarConfig> =>
    Layer.succeed(SidecarConfig, settings)
}

/** The start-up summary: everything effective, nothing secret (there are no secrets in config). */
export const summary = (s: Settings) => ({
  tlsCertUri: s.tlsCertUri.uri,
  tlsKeyUri: s.tlsKeyUri.uri,
  clientCaUri: s.clientCaUri.uri,
  attestationStatusUri: s.attestationStatusUri.uri,
  httpsHost: s.httpsHost ?? "*",
  httpsPort: s.httpsPort,
  forwardPort: Option.getOrNull(s.forwardPort),
  ...(Option.isSome(s.forwardPort)
    ? {
        forwardConnectTimeout: Duration.format(s.forward.connectTimeout),
        forwardResponseTimeout: Duration.format(s.forward.responseTimeout),
      }
    : {}),
  sidecarPathPrefix: s.pathPrefix,
  podName: s.podName,
  podNamespace: s.podNamespace,
  cdhUrl: s.cdh.url,
  cdhRequestTimeout: Duration.format(s.cdh.requestTimeout),
  cdhStartupTimeout: Duration.format(s.cdh.startupTimeout),
  shutdownGracePeriod: Duration.format(s.shutdownGrace),
  attestationCheckInterval: Duration.format(s.attestationInterval),
  attestationTokenInterval: Duration.format(s.attestationToken.interval),
  attestationTokenKey: s.attestationToken.pinnedKey === undefined ? "not pinned" : "pinned",
  tlsRefreshInterval: Duration.format(s.tlsRefreshInterval),
  envAllowlist: s.envAllowlist.join(","),
  allowCn: s.allow.cns.join(","),
  allowOu: s.allow.ous.join(","),
  allowDns: s.allow.dnsNames.join(","),
  allowUri: s.allow.uris.join(","),
  maxConnections: s.limits.maxConnections,
  maxHandshakes: s.limits.maxHandshakes,
  http2: s.http2.enabled,
  healthPort: s.health?.port ?? null,
  logLevel: s.logLevel,
})
