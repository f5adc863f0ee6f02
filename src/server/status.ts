/**
 * The status and attestation views, assembled from the services' cached
 * state: no I/O happens here, so the API and the dashboard answer at once.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import { Appraisal } from "../attestation/Appraisal.ts"
import { AttestationReporter } from "../attestation/AttestationReporter.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import { Forwarder } from "../proxy/Forwarder.ts"
import { Environment } from "../runtime/Environment.ts"
import { RuntimeInfo } from "../runtime/RuntimeInfo.ts"
import { TeeInfo } from "../runtime/TeeHints.ts"
import { daysUntil, TlsMaterial } from "../tls/TlsMaterial.ts"
import type { CertificateInfo } from "../tls/validate.ts"
import type { AttestationResponse, StatusResponse } from "./api/SidecarApi.ts"

const certificate = (info: CertificateInfo, now: Date) => ({
  subject: info.subject,
  issuer: info.issuer,
  serialNumber: info.serialNumber,
  fingerprint256: info.fingerprint256,
  subjectAltName: info.subjectAltName ?? null,
  notBefore: info.validFrom.toISOString(),
  notAfter: info.validTo.toISOString(),
  daysUntilExpiry: daysUntil(info.validTo, now),
  secondsUntilExpiry: Math.floor((info.validTo.getTime() - now.getTime()) / 1000),
})

export const attestation = Effect.gen(function* () {
  const state = yield* (yield* AttestationReporter).current
  const material = yield* (yield* TlsMaterial).current
  const appraisal = yield* (yield* Appraisal).current
  const view: typeof AttestationResponse.Type = {
    ...state,
    ...appraisal,
    certificatesFromKBS: true,
    certificatesFetchedAt: material.fetchedAt.toISOString(),
  }
  return view
})

export const status = Effect.gen(function* () {
  const config = yield* SidecarConfig
  const runtime = yield* RuntimeInfo
  const state = yield* (yield* AttestationReporter).current
  const tls = yield* TlsMaterial
  const material = yield* tls.current
  const refresh = yield* tls.refreshState
  const environment = yield* Environment
  const tee = yield* TeeInfo
  const forwarder = yield* Forwarder
  const reach = forwarder.port === undefined ? undefined : yield* forwarder.reachability
  const now = new Date(yield* Clock.currentTimeMillis)
  const forwardPort = forwarder.port ?? null
  const view: typeof StatusResponse.Type = {
    podName: config.podName,
    namespace: config.podNamespace,
    attested: state.status === "verified",
    attestationStatus: state.status,
    version: runtime.version,
    nodeVersion: runtime.nodeVersion,
    startedAt: runtime.startedAt.toISOString(),
    uptimeSeconds: Math.floor((now.getTime() - runtime.startedAt.getTime()) / 1000),
    forwardPort,
    forwarding: {
      enabled: forwardPort !== null,
      target: forwardPort === null ? null : `http://127.0.0.1:${forwardPort}`,
      pathPrefix: config.pathPrefix,
      appAnswering: reach?.answering ?? null,
      appCheckedAt: reach?.checkedAt ?? null,
      appError: reach?.error ?? null,
    },
    serverCertificate: certificate(material.server, now),
    clientCas: material.clientCas.map((ca) => certificate(ca, now)),
    certificatesFetchedAt: material.fetchedAt.toISOString(),
    tlsRefresh: { intervalSeconds: Duration.toSeconds(config.tlsRefreshInterval), ...refresh },
    tee,
    environment: environment.entries,
  }
  return view
})
