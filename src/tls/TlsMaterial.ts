/**
 * TlsMaterial: the server certificate, its key and the client CA, fetched
 * from the CDH and validated before the HTTPS server may listen.
 */
import { Clock, Context, Effect, Layer, type Redacted, Ref, Result } from "effect"
import { fetchRetrying, type ResourceClient, type ResourceUnavailable } from "../cdh/ResourceClient.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import type { ResourceUri } from "../kbs/ResourceUri.ts"
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

/** Pure: parse and check all three resources as of `now`. */
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

export const daysUntil = (date: Date, now: Date): number =>
  Math.floor((date.getTime() - now.getTime()) / DAY_MS)

export class TlsMaterial extends Context.Service<
  TlsMaterial,
  {
    readonly current: Effect.Effect<Material>
  }
>()("coco-secure-access/TlsMaterial") {
  static readonly layer: Layer.Layer<
    TlsMaterial,
    ResourceUnavailable | TlsMaterialError,
    ResourceClient | SidecarConfig
  > = Layer.effect(
    TlsMaterial,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const material = yield* load
      const now = new Date(yield* Clock.currentTimeMillis)
      const days = daysUntil(material.server.validTo, now)
      yield* Effect.logInfo("TLS material loaded").pipe(
        Effect.annotateLogs({
          subject: material.server.subject,
          serial: material.server.serialNumber,
          notAfter: material.server.validTo.toISOString(),
          clientCas: material.clientCas.map((ca) => ca.subject).join("; "),
        }),
      )
      if (days < EXPIRY_WARNING_DAYS) {
        yield* Effect.logWarning("server certificate expires soon").pipe(
          Effect.annotateLogs({
            uri: config.tlsCertUri.uri,
            notAfter: material.server.validTo.toISOString(),
            days,
          }),
        )
      }
      const ref = yield* Ref.make(material)
      return TlsMaterial.of({ current: Ref.get(ref) })
    }),
  )
}

/** Fetch the three resources (retrying per config) and validate them. */
export const load = Effect.gen(function* () {
  const config = yield* SidecarConfig
  const policy = { base: config.cdh.retryBase, max: config.cdh.retryMax, budget: config.cdh.startupTimeout }
  const fetch = (uri: ResourceUri) =>
    fetchRetrying(uri, policy).pipe(Effect.map((bytes) => ({ uri: uri.uri, bytes })))
  const [cert, key, ca] = yield* Effect.all(
    [fetch(config.tlsCertUri), fetch(config.tlsKeyUri), fetch(config.clientCaUri)],
    {
      concurrency: "unbounded",
    },
  )
  const now = new Date(yield* Clock.currentTimeMillis)
  return yield* Effect.fromResult(validate({ cert, key, ca }, now))
}).pipe(Effect.withSpan("TlsMaterial.load"))
