/**
 * ResourceClient: bytes for a KBS resource URI, from the in-guest CDH.
 *
 * `get` is one attempt with a typed, classified failure. `fetchRetrying`
 * adds the start-up policy: the real CDH answers 500 for nearly everything
 * (missing resource, policy deny, KBS down, attestation failed) and may not
 * be listening yet at boot, so connection errors and 5xx are retried with
 * capped, jittered exponential backoff inside a total budget; 4xx are not.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type { ResourceUri } from "../kbs/ResourceUri.ts"

/** The CDH could not be reached or did not answer in time. */
export class CdhUnreachable extends Data.TaggedError("CdhUnreachable")<{
  readonly uri: string
  readonly url: string
  readonly reason: string
}> {
  readonly retryable = true
  override get message(): string {
    return `${this.uri}: the CDH at ${this.url} is not reachable (${this.reason})`
  }
}

/** The CDH answered with a status other than 200. */
export class CdhHttpError extends Data.TaggedError("CdhHttpError")<{
  readonly uri: string
  readonly url: string
  readonly status: number
  /** An excerpt for logs only; the real CDH's bodies are not a contract. */
  readonly body: string
}> {
  get retryable(): boolean {
    return this.status >= 500
  }
  override get message(): string {
    const hint =
      this.status === 500
        ? " (the CDH answers 500 when the resource does not exist, the KBS policy refuses it, or attestation failed)"
        : ""
    const body = this.body ? `: ${JSON.stringify(this.body)}` : ""
    return `${this.uri}: the CDH answered HTTP ${this.status}${body}${hint}`
  }
}

export type FetchError = CdhUnreachable | CdhHttpError

/** Start-up gave up: the last failure, how often and how long it was tried. */
export class ResourceUnavailable extends Data.TaggedError("ResourceUnavailable")<{
  readonly uri: string
  readonly attempts: number
  readonly elapsed: Duration.Duration
  readonly last: FetchError
}> {
  override get message(): string {
    const tries = this.attempts === 1 ? "1 attempt, not retryable" : `${this.attempts} attempts`
    return `could not fetch ${this.last.message} [${tries} in ${Duration.format(this.elapsed)}]`
  }
}

/** What the CDH's api-server-rest says about itself at `GET /info` (v0.18 and later). */
export interface CdhInfo {
  readonly version: string
  /** `resource`, `attestation` or `all`. */
  readonly features: string
  /** The TEE the attestation agent detected; only reported with the attestation feature on. */
  readonly tee: string | undefined
  readonly additionalTees: ReadonlyArray<string>
}

export class ResourceClient extends Context.Service<
  ResourceClient,
  {
    /** One attempt: no retry, no logging. */
    readonly get: (resource: ResourceUri) => Effect.Effect<Uint8Array, FetchError>
    /** `GET /info`, one attempt; undefined where the CDH has no such endpoint (v0.17 and older). */
    readonly info: Effect.Effect<CdhInfo | undefined, FetchError>
    /** Where the bytes come from, for logs and the status API. */
    readonly source: string
  }
>()("coco-secure-access/ResourceClient") {}

export interface RetryPolicy {
  readonly base: Duration.Duration
  readonly max: Duration.Duration
  readonly budget: Duration.Duration
}

/**
 * Capped, jittered exponential backoff over retryable failures. No attempt
 * starts after the budget, counted from `startedAt` (the first attempt) when
 * given, else from the first failure.
 */
export const retrySchedule = (policy: RetryPolicy, startedAt?: number) =>
  Schedule.exponential(policy.base).pipe(
    Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, policy.max))),
    Schedule.jittered,
    Schedule.setInputType<FetchError>(),
    Schedule.while(
      ({ input, now, start, duration }) =>
        input.retryable &&
        now - (startedAt ?? start) + Duration.toMillis(duration) <= Duration.toMillis(policy.budget),
    ),
    Schedule.tap(({ input, duration, attempt }) =>
      Effect.logWarning("CDH fetch failed, retrying").pipe(
        Effect.annotateLogs({
          uri: input.uri,
          cause: input.message,
          attempt,
          retryInMs: Math.round(Duration.toMillis(duration)),
        }),
      ),
    ),
  )

/** `get` under the retry policy; the final failure names the URI. */
export const fetchRetrying = Effect.fn("ResourceClient.fetchRetrying")(function* (
  resource: ResourceUri,
  policy: RetryPolicy,
) {
  const client = yield* ResourceClient
  let attempts = 0
  const started = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
  return yield* Effect.suspend(() => {
    attempts++
    return client.get(resource)
  }).pipe(
    Effect.retry(retrySchedule(policy, started)),
    Effect.catch((last) =>
      Effect.clockWith((clock) => clock.currentTimeMillis).pipe(
        Effect.flatMap((now) =>
          Effect.fail(
            new ResourceUnavailable({
              uri: resource.uri,
              attempts,
              elapsed: Duration.millis(now - started),
              last,
            }),
          ),
        ),
      ),
    ),
  )
})

/** Reads `/info`'s JSON defensively: unknown shapes give undefined, not an error. */
export const parseInfo = (body: unknown): CdhInfo | undefined => {
  if (typeof body !== "object" || body === null) return undefined
  const record = body as Record<string, unknown>
  if (typeof record.version !== "string") return undefined
  return {
    version: record.version,
    features: typeof record.feature === "string" ? record.feature : "unknown",
    tee: typeof record.tee === "string" ? record.tee : undefined,
    additionalTees: Array.isArray(record.additional_tees)
      ? record.additional_tees.filter((t): t is string => typeof t === "string")
      : [],
  }
}
