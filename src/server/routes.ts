/**
 * The sidecar's own routes: `/api/status`, `/api/attestation` and the
 * dashboard (at `/` too when nothing is forwarded), under SIDECAR_PATH_PREFIX;
 * everything else that reaches the router is a 404.
 */
import { Clock, Effect, Layer, Option } from "effect"
import { HttpRouter } from "effect/http"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import { AttestationReporter } from "../attestation/AttestationReporter.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { RuntimeInfo } from "../runtime/RuntimeInfo.ts"
import { daysUntil, TlsMaterial } from "../tls/TlsMaterial.ts"
import * as ClientIdentity from "./ClientIdentity.ts"
import * as Dashboard from "./dashboard.ts"
import { error, json, page } from "./responses.ts"
import * as SidecarPaths from "./SidecarPaths.ts"

const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms)))

const status = Effect.gen(function* () {
  const config = yield* SidecarConfig
  const runtime = yield* RuntimeInfo
  const attestation = yield* (yield* AttestationReporter).current
  const material = yield* (yield* TlsMaterial).current
  const at = yield* now
  return json({
    podName: config.podName,
    namespace: config.podNamespace,
    attested: attestation.status === "verified",
    attestationStatus: attestation.status,
    version: runtime.version,
    uptimeSeconds: Math.floor((at.getTime() - runtime.startedAt.getTime()) / 1000),
    forwardPort: Option.getOrNull(config.forwardPort),
    serverCertificate: {
      subject: material.server.subject,
      notAfter: material.server.validTo.toISOString(),
      daysUntilExpiry: daysUntil(material.server.validTo, at),
    },
  })
})

const attestation = Effect.gen(function* () {
  const state = yield* (yield* AttestationReporter).current
  const material = yield* (yield* TlsMaterial).current
  return json({
    ...state,
    // The CDH released the server key to this pod: the same evidence as the status resource.
    certificatesFromKBS: true,
    certificatesFetchedAt: material.fetchedAt.toISOString(),
  })
})

const dashboard = Effect.gen(function* () {
  const request = yield* HttpServerRequest
  const config = yield* SidecarConfig
  const paths = SidecarPaths.make(config.pathPrefix)
  const runtime = yield* RuntimeInfo
  const attestation = yield* (yield* AttestationReporter).current
  const material = yield* (yield* TlsMaterial).current
  const at = yield* now
  return page(
    Dashboard.render({
      client: ClientIdentity.fromRequest(request),
      podName: config.podName,
      namespace: config.podNamespace,
      attestation,
      server: material.server,
      serverDaysLeft: daysUntil(material.server.validTo, at),
      forwardPort: Option.getOrNull(config.forwardPort),
      paths: { status: paths.status, attestation: paths.attestation },
      version: runtime.version,
      startedAt: runtime.startedAt,
    }),
  )
})

const notFound = Effect.gen(function* () {
  const request = yield* HttpServerRequest
  return error(request, 404, "Not Found", "This path is not served by the sidecar.")
})

export const layer = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* SidecarConfig
    const paths = SidecarPaths.make(config.pathPrefix)
    const routes = [
      HttpRouter.route("GET", paths.status, status),
      HttpRouter.route("GET", paths.attestation, attestation),
      HttpRouter.route("GET", paths.dashboard, dashboard),
      ...(Option.isNone(config.forwardPort) ? [HttpRouter.route("GET", "/", dashboard)] : []),
      HttpRouter.route("*", "*", notFound),
    ]
    return HttpRouter.addAll(routes)
  }),
)
