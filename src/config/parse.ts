/**
 * Parsers for single environment values. Each returns a Result whose failure
 * is the reason in words; SidecarConfig adds the variable name and value.
 */
import type { KeyObject } from "node:crypto"
import * as Duration from "effect/Duration"
import * as Result from "effect/Result"
import { loadPinnedKey } from "../attestation/ear.ts"

export const port = (raw: string): Result.Result<number, string> =>
  /^\d{1,5}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 65535
    ? Result.succeed(Number(raw))
    : Result.fail("must be a TCP port number from 1 to 65535")

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/

/**
 * The longest delay a Node timer takes: setTimeout fires longer ones after 1 ms, so a duration
 * above it would turn "never" into "at once" (a 1000h response timeout would time out every request).
 */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** Go-style durations as Kubernetes users write them: `250ms`, `30s`, `5m`, `1m30s`; at most ~596h. */
export const duration = (raw: string): Result.Result<Duration.Duration, string> => {
  if (!DURATION.test(raw)) return Result.fail("must be a duration such as 500ms, 30s, 5m or 1m30s")
  let ms = 0
  for (const [, amount, unit] of raw.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    ms += Number(amount) * (UNIT_MS[unit as string] ?? 0)
  }
  if (!(ms <= MAX_TIMER_MS)) {
    return Result.fail(
      `must be at most ${MAX_TIMER_MS}ms (about 596h or 24.8 days), the longest timer Node can set`,
    )
  }
  return Result.succeed(Duration.millis(ms))
}

export const positiveDuration = (raw: string): Result.Result<Duration.Duration, string> =>
  Result.flatMap(duration(raw), (d) =>
    Duration.toMillis(d) > 0 ? Result.succeed(d) : Result.fail("must be greater than zero"),
  )

/** The CDH REST base URL: plain http(s), no credentials, query or fragment. */
export const httpBaseUrl = (raw: string): Result.Result<string, string> => {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return Result.fail("must be an http:// URL such as http://127.0.0.1:8006")
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    return Result.fail("must use http:// or https://")
  if (url.username || url.password) return Result.fail("must not carry credentials")
  // `url.search` is empty for a bare "?", which would still end up in every request URL.
  if (raw.includes("?") || raw.includes("#")) return Result.fail("must not have a query or fragment")
  return Result.succeed(url.href.replace(/\/+$/, ""))
}

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error"] as const
export type LogLevelName = (typeof LOG_LEVELS)[number]

export const logLevel = (raw: string): Result.Result<LogLevelName, string> => {
  const lower = raw.toLowerCase()
  return (LOG_LEVELS as ReadonlyArray<string>).includes(lower)
    ? Result.succeed(lower as LogLevelName)
    : Result.fail(`must be one of ${LOG_LEVELS.join(", ")}`)
}

export const oneOf =
  <const A extends string>(values: ReadonlyArray<A>) =>
  (raw: string): Result.Result<A, string> =>
    (values as ReadonlyArray<string>).includes(raw)
      ? Result.succeed(raw as A)
      : Result.fail(`must be one of ${values.join(", ")}`)

/** A host to bind: an IP literal or a DNS-ish name, no port or scheme. */
export const host = (raw: string): Result.Result<string, string> =>
  /^[A-Za-z0-9.:_-]+$/.test(raw) && !raw.includes("://")
    ? Result.succeed(raw)
    : Result.fail("must be an address to listen on, such as 0.0.0.0, :: or 127.0.0.1")

/** `""` or `/seg[/seg…]`: unreserved characters only, no trailing slash, no dot segments. */
export const pathPrefix = (raw: string): Result.Result<string, string> =>
  /^(?:\/[A-Za-z0-9._~-]+)+$/.test(raw) && !/\/\.\.?(?:\/|$)/.test(raw)
    ? Result.succeed(raw)
    : Result.fail(
        "must be a path such as /.sidecar or /coco/sidecar (no trailing slash, no dots-only segments)",
      )

export const intBetween =
  (min: number, max: number) =>
  (raw: string): Result.Result<number, string> =>
    /^\d+$/.test(raw) && Number(raw) >= min && Number(raw) <= max
      ? Result.succeed(Number(raw))
      : Result.fail(`must be a whole number from ${min} to ${max}`)

export const boolean = (raw: string): Result.Result<boolean, string> => {
  const lower = raw.toLowerCase()
  if (["true", "1", "yes"].includes(lower)) return Result.succeed(true)
  if (["false", "0", "no"].includes(lower)) return Result.succeed(false)
  return Result.fail("must be true or false")
}

/** ATTESTATION_TOKEN_KEY: a PEM public key or certificate of EC P-256 (ES256 tokens), see ear.ts. */
export const p256PublicKey = (raw: string): Result.Result<KeyObject, string> => {
  try {
    return Result.succeed(loadPinnedKey(raw))
  } catch (error) {
    return Result.fail(error instanceof Error ? error.message : "not a usable public key")
  }
}
