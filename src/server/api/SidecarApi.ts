/**
 * The sidecar's JSON API as an Effect HttpApi: every response has a Schema,
 * responses are encoded from it, and the OpenAPI document is derived from it.
 * The paths depend on SIDECAR_PATH_PREFIX, hence a function. The services' cached states are
 * typed from these schemas (`typeof X.Type`), so the API and the state cannot drift apart.
 */

import * as HttpApi from "effect/http-api/HttpApi"
import * as HttpApiEndpoint from "effect/http-api/HttpApiEndpoint"
import * as HttpApiGroup from "effect/http-api/HttpApiGroup"
import * as OpenApi from "effect/http-api/OpenApi"
import * as Schema from "effect/Schema"
import { Appraisal } from "../../attestation/ear.ts"

const Timestamp = Schema.String.annotate({ description: "RFC 3339 date-time" })
const NullableTimestamp = Schema.NullOr(Timestamp)

export const AttestationStatus = Schema.Literals(["verified", "failed", "unavailable"])

export const Transition = Schema.Struct({
  status: AttestationStatus,
  at: Timestamp,
  details: Schema.String,
})

export const GuestComponents = Schema.Struct({
  version: Schema.String.annotate({ description: "guest-components version from the CDH's /info" }),
  features: Schema.String.annotate({ description: "api-server-rest features: resource, attestation or all" }),
  tee: Schema.NullOr(Schema.String).annotate({
    description: "TEE named by the attestation agent; `sample` = none",
  }),
  teeNote: Schema.String,
})

/** What AttestationReporter caches: `/api/attestation` without the certificate facts. */
export const AttestationState = Schema.Struct({
  status: AttestationStatus.annotate({ description: "upstream field" }),
  timestamp: Schema.String.annotate({
    description: 'upstream field: when a 200 was last received for the check, or "unavailable"',
  }),
  details: Schema.String.annotate({ description: "upstream field, in plain words" }),
  source: Schema.Literal("kbs-resource"),
  resource: Schema.String,
  meaning: Schema.String.annotate({ description: "what verified does and does not prove" }),
  checkedAt: NullableTimestamp.annotate({
    description: "when the last check finished, whatever its outcome",
  }),
  changedAt: NullableTimestamp.annotate({ description: "when status last changed" }),
  nextCheckAt: NullableTimestamp,
  httpStatus: Schema.NullOr(Schema.Int),
  lastError: Schema.NullOr(Schema.String).annotate({
    description: "the last failure to reach or read the CDH, short; null after a successful check",
  }),
  consecutiveFailures: Schema.Int,
  history: Schema.Array(Transition).annotate({ description: "status changes, newest first" }),
  guestComponents: Schema.NullOr(GuestComponents).annotate({
    description: "from the CDH's GET /info, where it answers",
  }),
})

export const AttestationResponse = Schema.Struct({
  ...AttestationState.fields,
  appraisal: Schema.NullOr(Appraisal).annotate({
    description:
      "the attestation service's verdict, from the KBS's EAR token (CDH attestation feature); status is affirming only for a valid, unexpired token whose every submod affirms",
  }),
  appraisalUnavailable: Schema.NullOr(Schema.String).annotate({ description: "why there is no appraisal" }),
  certificatesFromKBS: Schema.Boolean.annotate({
    description: "the sidecar serves TLS only because the CDH released its key to this pod",
  }),
  certificatesFetchedAt: Timestamp,
})

/** `GET /api/evidence`: fresh evidence over the client's nonce and this TLS key, not appraised. */
export const EvidenceResponse = Schema.Struct({
  nonce: Schema.String.annotate({ description: "as given: base64url of 16 to 64 bytes" }),
  serverPublicKeySha256: Schema.String.annotate({
    description:
      "hex SHA-256 of the DER SubjectPublicKeyInfo of the certificate this connection was served with",
  }),
  runtimeData: Schema.String.annotate({
    description:
      'hex SHA-256("coco-secure-access/evidence/v1" || 0x00 || nonce || serverPublicKeySha256): what the report data must carry',
  }),
  tee: Schema.NullOr(Schema.String).annotate({ description: "the CDH's /info tee; `sample` = no TEE" }),
  evidence: Schema.Unknown.annotate({ description: "the attestation agent's evidence JSON, as it gave it" }),
  obtainedAt: Timestamp,
  verified: Schema.Literal(false),
  note: Schema.String,
})

export const Certificate = Schema.Struct({
  subject: Schema.String,
  issuer: Schema.String,
  serialNumber: Schema.String,
  fingerprint256: Schema.String,
  subjectAltName: Schema.NullOr(Schema.String),
  notBefore: Timestamp,
  notAfter: Timestamp,
  daysUntilExpiry: Schema.Int,
  secondsUntilExpiry: Schema.Int,
})

/** A hidden entry carries no value at all: no prefix, no length, no hash. */
export const EnvironmentEntry = Schema.Union([
  Schema.Struct({ name: Schema.String, value: Schema.String, shown: Schema.Literal(true) }),
  Schema.Struct({
    name: Schema.String,
    shown: Schema.Literal(false),
    reason: Schema.Literals(["sensitive", "not-allowlisted"]),
  }),
])

export const TeeHint = Schema.Struct({ name: Schema.String, present: Schema.Boolean, detail: Schema.String })

export const TeeHints = Schema.Struct({
  likely: Schema.Literals(["tdx", "sev-snp", "sev", "none-detected"]),
  hints: Schema.Array(TeeHint),
  note: Schema.String,
})

/** How TlsMaterial's background refresh is doing. */
export const TlsRefreshState = Schema.Struct({
  lastAttemptAt: NullableTimestamp,
  lastSuccessAt: NullableTimestamp,
  lastChangeAt: NullableTimestamp.annotate({ description: "when different material was last swapped in" }),
  lastError: Schema.NullOr(Schema.String),
  rotations: Schema.Int,
})

export const StatusResponse = Schema.Struct({
  podName: Schema.String.annotate({ description: "upstream field" }),
  namespace: Schema.String.annotate({ description: "upstream field" }),
  attested: Schema.Boolean.annotate({ description: "upstream field: attestation status is verified" }),
  attestationStatus: AttestationStatus,
  version: Schema.String,
  nodeVersion: Schema.String,
  startedAt: Timestamp,
  uptimeSeconds: Schema.Int,
  forwardPort: Schema.NullOr(Schema.Int),
  forwarding: Schema.Struct({
    enabled: Schema.Boolean,
    target: Schema.NullOr(Schema.String),
    pathPrefix: Schema.String,
    appAnswering: Schema.NullOr(Schema.Boolean),
    appCheckedAt: NullableTimestamp,
    appError: Schema.NullOr(Schema.String),
  }),
  serverCertificate: Certificate,
  clientCas: Schema.Array(Certificate),
  certificatesFetchedAt: Timestamp,
  tlsRefresh: Schema.Struct({ intervalSeconds: Schema.Number, ...TlsRefreshState.fields }).annotate({
    description: "the background refresh of cert, key and client CA from the CDH",
  }),
  tee: TeeHints,
  environment: Schema.Array(EnvironmentEntry).annotate({
    description: "the sidecar container's environment: every name, values only where safe",
  }),
})

type Path = `/${string}`

const errorResponse = (description: string) => ({
  description,
  content: {
    "application/json": {
      schema: {
        type: "object",
        properties: { error: { type: "string" }, status: { type: "integer" }, detail: { type: "string" } },
      },
    },
  },
})

/**
 * `/api/evidence` is a plain route (it needs the connection's own certificate and answers 429 with
 * Retry-After), so the HttpApi does not know it: its entry is added to the generated document here,
 * its 200 schema derived from EvidenceResponse.
 */
const withEvidence = (spec: Record<string, unknown>, path: string): Record<string, unknown> => {
  const document = Schema.toJsonSchemaDocument(EvidenceResponse)
  const paths = (spec.paths ?? {}) as Record<string, unknown>
  return {
    ...spec,
    paths: {
      ...paths,
      [path]: {
        get: {
          operationId: "sidecar.evidence",
          summary: "Fresh hardware evidence over your nonce and this connection's server key (unappraised)",
          parameters: [
            {
              name: "nonce",
              in: "query",
              required: true,
              description: "base64url without padding of 16 to 64 random bytes",
              schema: { type: "string", pattern: "^[A-Za-z0-9_-]{22,86}$" },
            },
          ],
          responses: {
            "200": {
              description: "the evidence",
              content: { "application/json": { schema: document.schema } },
            },
            "400": errorResponse("the nonce is refused; detail says why"),
            "429": errorResponse("another evidence request is in flight, or too many a second (Retry-After)"),
            "502": errorResponse("the attestation agent failed"),
            "503": errorResponse(
              "the CDH's attestation feature is off, the CDH is too old, or not reachable",
            ),
          },
        },
      },
    },
  }
}

export const make = (prefix: string) =>
  HttpApi.make("coco-secure-access")
    .add(
      HttpApiGroup.make("sidecar", { topLevel: true }).add(
        HttpApiEndpoint.get("status", `${prefix}/api/status` as Path, { success: StatusResponse }),
        HttpApiEndpoint.get("attestation", `${prefix}/api/attestation` as Path, {
          success: AttestationResponse,
        }),
      ),
    )
    .annotateMerge(
      OpenApi.annotations({
        title: "coco-secure-access",
        description: "Status and attestation API of the CoCo secure-access sidecar (mTLS only).",
        transform: (spec) => withEvidence(spec, `${prefix}/api/evidence`),
      }),
    )

export type SidecarApi = ReturnType<typeof make>
