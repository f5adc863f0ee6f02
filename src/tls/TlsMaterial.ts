/**
 * TlsMaterial: the server certificate, its key and the client CA, fetched
 * from the CDH and validated before the HTTPS server may listen.
 */
import type { SecureContextOptions } from "node:tls"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Queue from "effect/Queue"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as Result from "effect/Result"
import * as Schedule from "effect/Schedule"
import * as Semaphore from "effect/Semaphore"
import * as Stream from "effect/Stream"
import * as SubscriptionRef from "effect/SubscriptionRef"
import { fetchRetrying, ResourceClient, type ResourceUnavailable } from "../cdh/ResourceClient.ts"
import { type Settings, SidecarConfig } from "../config/SidecarConfig.ts"
import type { ResourceUri } from "../kbs/ResourceUri.ts"
import type * as Api from "../server/api/SidecarApi.ts"
import type { TlsMaterialError } from "./errors.ts"
import * as Validate from "./validate.ts"

export interface Material {
  /** Leaf first, then any intermediates, as served. */
  readonly certPem: string
  readonly keyPem: Redacted.Redacted<string>
  readonly caPem: string
  readonly server: Validate.CertificateInfo
  readonly clientCas: ReadonlyArray<Validate.CertificateInfo>
  readonly fetchedAt: Date
}

export interface Sources {
  readonly cert: { readonly uri: string; readonly bytes: Uint8Array }
  readonly key: { readonly uri: string; readonly bytes: Uint8Array }
  readonly ca: { readonly uri: string; readonly bytes: Uint8Array }
}

export const EXPIRY_WARNING_DAYS = 30
const DAY_MS = 86_400_000

/** What the server's secure context is built from, on start and on every rotation. */
export const secureContextOptions = (material: Material): SecureContextOptions => ({
  cert: material.certPem,
  key: Redacted.value(material.keyPem),
  ca: material.caPem,
  minVersion: "TLSv1.3",
})

/**
 * Pure: parse and check all three resources as of `now`. Not yet what OpenSSL makes of them:
 * that is {@link accept}, run only on material that is new.
 */
export const validate = (sources: Sources, now: Date): Result.Result<Material, TlsMaterialError> =>
  Result.gen(function* () {
    const chain = yield* Validate.parseCertificates(
      sources.cert.bytes,
      sources.cert.uri,
      "server certificate",
    )
    const leaf = chain.certs[0]
    const key = yield* Validate.parsePrivateKey(sources.key.bytes, sources.key.uri)
    yield* Validate.checkKeyMatches(leaf, key.key, sources.cert.uri, sources.key.uri)
    yield* Validate.checkValidity(leaf, sources.cert.uri, now)
    const cas = yield* Validate.parseCertificates(sources.ca.bytes, sources.ca.uri, "client CA certificate")
    yield* Validate.checkClientCas(cas.certs, sources.ca.uri, now)
    return {
      certPem: chain.pem,
      keyPem: key.pem,
      caPem: cas.pem,
      server: Validate.describe(leaf),
      clientCas: cas.certs.map(Validate.describe),
      fetchedAt: now,
    }
  })

/**
 * Whether OpenSSL builds a secure context from the material: only then may the server use it.
 * Failures name the resource they blame, from the configuration's URIs.
 */
export const accept = (material: Material, config: Settings): Result.Result<Material, TlsMaterialError> =>
  Result.map(
    Validate.checkAcceptedByOpenSsl(
      secureContextOptions(material),
      Validate.pemBlocks(material.caPem).map((pem, i) => ({
        pem,
        subject: material.clientCas[i]?.subject ?? "",
      })),
      { cert: config.tlsCertUri.uri, key: config.tlsKeyUri.uri, ca: config.clientCaUri.uri },
    ),
    () => material,
  )

export const daysUntil = (date: Date, now: Date): number =>
  Math.floor((date.getTime() - now.getTime()) / DAY_MS)

/** How the background refresh is doing, for status and metrics: the API's schema. */
export type RefreshState = typeof Api.TlsRefreshState.Type

export type RefreshOutcome = "unchanged" | "rotated" | "failed"

const sameMaterial = (a: Material, b: Material) =>
  a.certPem === b.certPem && a.caPem === b.caPem && Redacted.value(a.keyPem) === Redacted.value(b.keyPem)

export class TlsMaterial extends Context.Service<
  TlsMaterial,
  {
    readonly current: Effect.Effect<Material>
    /** Every material in use, the current one first: the server swaps its secure context on each. */
    readonly changes: Stream.Stream<Material>
    /** Fetch and validate once more; valid and different material replaces the current one. */
    readonly refresh: Effect.Effect<RefreshOutcome>
    readonly refreshState: Effect.Effect<RefreshState>
  }
>()("coco-secure-access/TlsMaterial") {
  /**
   * Loads the material (retrying within the start-up budget), then refreshes
   * it every TLS_REFRESH_INTERVAL and on SIGHUP. A failed refresh keeps the
   * current material: the sidecar never stops serving because the CDH had a
   * bad moment.
   */
  static readonly layer: Layer.Layer<
    TlsMaterial,
    ResourceUnavailable | TlsMaterialError,
    ResourceClient | SidecarConfig
  > = Layer.effect(
    TlsMaterial,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const client = yield* ResourceClient
      const material = yield* load
      yield* logLoaded("TLS material loaded", material)
      const ref = yield* SubscriptionRef.make(material)
      const state = yield* Ref.make<RefreshState>({
        lastAttemptAt: null,
        lastSuccessAt: material.fetchedAt.toISOString(),
        lastChangeAt: null,
        lastError: null,
        rotations: 0,
      })
      let warnedBelowDays = Number.POSITIVE_INFINITY
      const warnExpiry = (current: Material, now: Date) => {
        const days = daysUntil(current.server.validTo, now)
        const threshold = EXPIRY_THRESHOLDS.find((t) => days < t && t < warnedBelowDays)
        if (threshold === undefined) return Effect.void
        warnedBelowDays = threshold
        return Effect.logWarning("server certificate expires soon").pipe(
          Effect.annotateLogs({
            uri: config.tlsCertUri.uri,
            notAfter: current.server.validTo.toISOString(),
            days,
          }),
        )
      }
      yield* warnExpiry(material, material.fetchedAt)

      const refresh: Effect.Effect<RefreshOutcome> = Effect.gen(function* () {
        const startedAt = new Date(yield* Clock.currentTimeMillis)
        const previous = yield* SubscriptionRef.get(ref)
        // New material must also pass OpenSSL before it replaces what is served.
        const fetched = yield* fetchOnce(config, client).pipe(
          Effect.flatMap((next) =>
            sameMaterial(previous, next) ? Effect.succeed(next) : Effect.fromResult(accept(next, config)),
          ),
          Effect.result,
        )
        const now = new Date(yield* Clock.currentTimeMillis)
        if (fetched._tag === "Failure") {
          const message = fetched.failure.message
          yield* Ref.update(state, (s) => ({
            ...s,
            lastAttemptAt: startedAt.toISOString(),
            lastError: message,
          }))
          yield* Effect.logWarning("TLS material refresh failed; keeping the current material").pipe(
            Effect.annotateLogs({ cause: message }),
          )
          return "failed" as const
        }
        const changed = !sameMaterial(previous, fetched.success)
        yield* Ref.update(state, (s) => ({
          lastAttemptAt: startedAt.toISOString(),
          lastSuccessAt: now.toISOString(),
          lastChangeAt: changed ? now.toISOString() : s.lastChangeAt,
          lastError: null,
          rotations: s.rotations + (changed ? 1 : 0),
        }))
        if (changed) {
          yield* SubscriptionRef.set(ref, fetched.success)
          yield* logLoaded("TLS material rotated", fetched.success)
          warnedBelowDays = Number.POSITIVE_INFINITY
        }
        yield* warnExpiry(changed ? fetched.success : previous, now)
        return changed ? ("rotated" as const) : ("unchanged" as const)
      }).pipe(Effect.withSpan("TlsMaterial.refresh"))

      // One refresh at a time, whether from the timer or a signal. A defect (a bug) is reported as a
      // failed refresh: it must not end the loop, which would silently stop every later rotation.
      const semaphore = yield* Semaphore.make(1)
      const serialized = semaphore.withPermits(1)(
        refresh.pipe(
          Effect.catchDefect((defect) =>
            Effect.gen(function* () {
              const message = `refresh failed unexpectedly: ${Cause.pretty(Cause.die(defect)).split("\n")[0]}`
              yield* Ref.update(state, (s) => ({ ...s, lastError: message }))
              yield* Effect.logError("TLS material refresh failed; keeping the current material").pipe(
                Effect.annotateLogs({ cause: message }),
              )
              return "failed" as const
            }),
          ),
        ),
      )
      // `schedule`, not `repeat`: the first refresh waits an interval, the material was just loaded.
      yield* Effect.forkScoped(Effect.schedule(serialized, Schedule.spaced(config.tlsRefreshInterval)))
      // Node's default action for SIGHUP ends the process: the layer is built only once the listener is
      // on. Starting the fiber immediately puts it on synchronously, so the build does not yield here.
      const listening = yield* Deferred.make<void>()
      yield* Effect.forkScoped(
        signals("SIGHUP", listening).pipe(
          Stream.runForEach(() =>
            Effect.logInfo("SIGHUP: refreshing TLS material").pipe(Effect.andThen(serialized)),
          ),
        ),
        { startImmediately: true },
      )
      yield* Deferred.await(listening)
      return TlsMaterial.of({
        current: SubscriptionRef.get(ref),
        changes: SubscriptionRef.changes(ref),
        refresh: serialized,
        refreshState: Ref.get(state),
      })
    }),
  )
}

/**
 * Each `signal` the process receives while the stream runs. `listening` completes once the listener
 * is on, or with the defect that kept it off: whoever awaits it never hangs.
 */
const signals = (signal: NodeJS.Signals, listening: Deferred.Deferred<void>): Stream.Stream<NodeJS.Signals> =>
  Stream.callback<NodeJS.Signals>((queue) =>
    Effect.acquireRelease(
      Effect.sync(() => {
        const onSignal = () => Queue.offerUnsafe(queue, signal)
        process.on(signal, onSignal)
        return onSignal
      }),
      (onSignal) => Effect.sync(() => process.off(signal, onSignal)),
    ).pipe(Effect.asVoid, Deferred.into(listening)),
  )

/** Warned once each as the server certificate's remaining days drop below them. */
export const EXPIRY_THRESHOLDS = [EXPIRY_WARNING_DAYS, 7, 1] as const

const logLoaded = (message: string, material: Material) =>
  Effect.logInfo(message).pipe(
    Effect.annotateLogs({
      subject: material.server.subject,
      serial: material.server.serialNumber,
      notAfter: material.server.validTo.toISOString(),
      clientCas: material.clientCas.map((ca) => ca.subject).join("; "),
    }),
  )

/** The three resources, fetched with `fetch`, then validated as of now. */
const fetchAll = <E, R>(config: Settings, fetch: (uri: ResourceUri) => Effect.Effect<Uint8Array, E, R>) =>
  Effect.gen(function* () {
    const tagged = (uri: ResourceUri) => fetch(uri).pipe(Effect.map((bytes) => ({ uri: uri.uri, bytes })))
    const [cert, key, ca] = yield* Effect.all(
      [tagged(config.tlsCertUri), tagged(config.tlsKeyUri), tagged(config.clientCaUri)],
      { concurrency: "unbounded" },
    )
    const now = new Date(yield* Clock.currentTimeMillis)
    return yield* Effect.fromResult(validate({ cert, key, ca }, now))
  })

/** One attempt at each resource, for refreshes: the next interval is the retry. */
const fetchOnce = (config: Settings, client: ResourceClient["Service"]) => fetchAll(config, client.get)

/** Fetch the three resources (retrying per config), validate them and have OpenSSL accept them. */
export const load = Effect.gen(function* () {
  const config = yield* SidecarConfig
  const policy = { base: config.cdh.retryBase, max: config.cdh.retryMax, budget: config.cdh.startupTimeout }
  const material = yield* fetchAll(config, (uri) => fetchRetrying(uri, policy))
  return yield* Effect.fromResult(accept(material, config))
}).pipe(Effect.withSpan("TlsMaterial.load"))
