/**
 * The KBS's EAR token (IETF RATS "Entity Attestation Result", a JWT signed ES256 by Trustee's
 * attestation service) as the in-guest CDH hands it out on `GET /aa/token?token_type=kbs`, and what
 * the sidecar shows of it. See /work/shared/docs/coco-interfaces.md section 4.3.
 *
 * Pure functions on node:crypto; no network, no clock (the caller passes `now`).
 *
 * Decisions (spelled out because a UI shows the result):
 *
 * - Overall verdict. The EAR `ear.status` values ranked from best to worst:
 *   `affirming` < `none` < `warning` < `contraindicated`, and the overall status is the worst over all
 *   submods. So it is `affirming` only if every submod says `affirming`: a submod without a verdict
 *   (`none`: the verifier makes no statement) keeps the whole from being affirming, yet a concrete
 *   finding elsewhere (`warning`, `contraindicated`: the verifier appraised evidence and found a
 *   problem) outranks an absence of one. An unknown or missing `ear.status` counts as `none`; no
 *   submods at all gives `none`.
 * - Trust in the token. `status` (overall and per submod) is the verdict the sidecar vouches for;
 *   `claimedStatus` is what the token says. When anything undermines the token (signature invalid,
 *   expired, not yet valid, no expiry) every `status` is `none` and `problems` says why, so a UI that
 *   reads only `status` can never show a forged, stale or premature `affirming`. When `problems` is
 *   empty, `status` equals `claimedStatus`.
 * - Signature. `valid-pinned`: verified against the configured key (ATTESTATION_TOKEN_KEY); the
 *   header's `jwk` is then ignored. `valid-unpinned`: verified against the `jwk` the token carries
 *   itself, which proves the token is intact, not who made it (anyone can sign with a key of their
 *   own), so a UI must show this field next to the status. Anything else is `invalid`.
 * - Untrusted text. Every string from the token is cut to MAX_TEXT characters and stripped of control
 *   and bidi characters; the trustworthiness vector keeps finite numbers only; at most MAX_SUBMODS
 *   submods are listed (the overall status still counts all of them).
 * - Secrets and size. Errors never quote the token or the CDH's body (the body holds the TEE's private
 *   key, `tee_keypair`, which is dropped while parsing and never reaches the result).
 */
import { createPublicKey, type KeyObject, verify, X509Certificate } from "node:crypto"
import * as Schema from "effect/Schema"

// ---------------------------------------------------------------------------------------------
// Output types (Schemas, so the API can serve them as they are)
// ---------------------------------------------------------------------------------------------

export const EarStatus = Schema.Literals(["affirming", "warning", "contraindicated", "none"])
export type EarStatus = typeof EarStatus.Type

export const SignatureCheck = Schema.Literals(["valid-pinned", "valid-unpinned", "invalid"])
export type SignatureCheck = typeof SignatureCheck.Type

export const SubmodAppraisal = Schema.Struct({
  name: Schema.String.annotate({ description: "the submod's key in the token, e.g. cpu0, gpu0" }),
  status: EarStatus.annotate({
    description: "the verdict the sidecar vouches for: none whenever the token has problems",
  }),
  claimedStatus: EarStatus.annotate({ description: "the submod's ear.status as the token says it" }),
  trustworthinessVector: Schema.Record(Schema.String, Schema.Number).annotate({
    description: "ear.trustworthiness-vector (finite numbers only)",
  }),
  appraisalPolicyId: Schema.NullOr(Schema.String),
})
export type SubmodAppraisal = typeof SubmodAppraisal.Type

export const Appraisal = Schema.Struct({
  status: EarStatus.annotate({
    description:
      "worst ear.status over all submods (affirming < none < warning < contraindicated); none whenever problems is not empty",
  }),
  claimedStatus: EarStatus.annotate({ description: "the same worst status, as the token claims it" }),
  submods: Schema.Array(SubmodAppraisal),
  issuer: Schema.NullOr(Schema.String),
  issuedAt: Schema.NullOr(Schema.String).annotate({ description: "iat, RFC 3339" }),
  expiresAt: Schema.NullOr(Schema.String).annotate({ description: "exp, RFC 3339" }),
  signature: SignatureCheck,
  checkedAt: Schema.String.annotate({ description: "when this appraisal was made, RFC 3339" }),
  problems: Schema.Array(Schema.String).annotate({
    description: "why the token's verdict is not taken: signature invalid, expired, not yet valid",
  }),
})
export type Appraisal = typeof Appraisal.Type

export interface AppraiseOptions {
  /** The key the attestation service signs with; when given, the token's own `jwk` is ignored. */
  readonly pinnedKey?: KeyObject | undefined
  readonly now: Date
}

/** A token (or CDH answer) that cannot be read at all. The message never quotes the input. */
export class EarTokenError extends Error {
  override readonly name = "EarTokenError"
}

// ---------------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------------

/** Strings from the token are cut to this many characters (the last one then is `…`). */
export const MAX_TEXT = 256
/** At most this many submods are listed. */
export const MAX_SUBMODS = 16
/** At most this many entries of a trustworthiness vector are kept (EAR defines 8). */
export const MAX_VECTOR_ENTRIES = 32
/** `iat` / `nbf` may be this far in the future (clock skew between the AS and the guest). */
export const CLOCK_SKEW_SECONDS = 60
/** Tokens longer than this are refused before decoding (a real one is a few KiB to some 100 KiB). */
export const MAX_TOKEN_LENGTH = 1024 * 1024
/** CDH answers longer than this are refused. */
export const MAX_RESPONSE_BYTES = 2 * 1024 * 1024

// ---------------------------------------------------------------------------------------------
// The CDH's answer
// ---------------------------------------------------------------------------------------------

const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/**
 * The token out of the CDH's `{"token": "<JWT>", "tee_keypair": "<PEM>"}`. The private key is
 * dropped by the JSON parser itself (it never reaches a parsed object) and nothing of the body
 * appears in an error.
 */
export const parseTokenResponse = (body: Uint8Array | string): { readonly token: string } => {
  const size = typeof body === "string" ? Buffer.byteLength(body, "utf8") : body.byteLength
  if (size > MAX_RESPONSE_BYTES) {
    throw new EarTokenError(`CDH token response too large (${size} bytes, limit ${MAX_RESPONSE_BYTES})`)
  }
  let text: string
  if (typeof body === "string") {
    text = body
  } else {
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(body)
    } catch {
      throw new EarTokenError(`CDH token response is not UTF-8 (${size} bytes)`)
    }
  }
  let parsed: unknown
  try {
    // The reviver deletes the key pair where the parser produces it. JSON.parse's own error
    // message quotes the input (that is, the key), so it is neither kept nor chained as a cause.
    parsed = JSON.parse(text, (key, value: unknown) => (key === "tee_keypair" ? undefined : value))
  } catch {
    throw new EarTokenError(`CDH token response is not JSON (${size} bytes)`)
  }
  if (!isObject(parsed)) throw new EarTokenError("CDH token response is not a JSON object")
  const token = parsed.token
  if (typeof token !== "string") throw new EarTokenError('CDH token response has no "token" string')
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new EarTokenError(`CDH token too long (${token.length} characters, limit ${MAX_TOKEN_LENGTH})`)
  }
  if (!COMPACT_JWS.test(token)) {
    throw new EarTokenError("CDH token is not a compact JWS (three base64url parts separated by dots)")
  }
  return Object.freeze({ token })
}

// ---------------------------------------------------------------------------------------------
// Appraisal
// ---------------------------------------------------------------------------------------------

/** Rank from best to worst; see the module comment for why `none` sits between. */
const RANK: Readonly<Record<EarStatus, number>> = { affirming: 0, none: 1, warning: 2, contraindicated: 3 }

const worse = (a: EarStatus, b: EarStatus): EarStatus => (RANK[b] > RANK[a] ? b : a)

const toStatus = (value: unknown): EarStatus =>
  value === "affirming" || value === "warning" || value === "contraindicated" || value === "none"
    ? value
    : "none"

/**
 * What the sidecar makes of an EAR token at `now`. Throws EarTokenError if the token cannot be
 * decoded at all (not three parts, bad base64url, header or claims not a JSON object); everything
 * else, including every signature failure, is an Appraisal.
 */
export const appraise = (token: string, options: AppraiseOptions): Appraisal => {
  const { header, claims, signingInput, signature } = decode(token)
  const problems: Array<string> = []

  const signatureProblem = checkSignature(header, signingInput, signature, options.pinnedKey)
  const signatureCheck: SignatureCheck =
    signatureProblem !== undefined
      ? "invalid"
      : options.pinnedKey !== undefined
        ? "valid-pinned"
        : "valid-unpinned"
  if (signatureProblem !== undefined) problems.push(`signature invalid: ${signatureProblem}`)

  const now = options.now.getTime()
  const iat = numericDate(claims.iat)
  const exp = numericDate(claims.exp)
  const nbf = numericDate(claims.nbf)
  if (exp === undefined) {
    problems.push("no expiry time (exp)")
  } else if (exp * 1000 <= now) {
    problems.push(`expired at ${isoOrNumber(exp)}`)
  }
  const latest = now + CLOCK_SKEW_SECONDS * 1000
  if (iat !== undefined && iat * 1000 > latest) problems.push(`not yet valid: issued at ${isoOrNumber(iat)}`)
  if (nbf !== undefined && nbf * 1000 > latest) problems.push(`not yet valid: not before ${isoOrNumber(nbf)}`)

  const trusted = problems.length === 0
  const effective = (claimed: EarStatus): EarStatus => (trusted ? claimed : "none")

  let claimedStatus: EarStatus | undefined
  const submods: Array<SubmodAppraisal> = []
  const allSubmods = isObject(claims.submods) ? claims.submods : {}
  for (const name in allSubmods) {
    if (!Object.hasOwn(allSubmods, name)) continue
    const submod = allSubmods[name]
    const fields = isObject(submod) ? submod : {}
    const status = toStatus(fields["ear.status"])
    // All submods count for the overall status, even those not listed.
    claimedStatus = claimedStatus === undefined ? status : worse(claimedStatus, status)
    if (submods.length < MAX_SUBMODS) {
      submods.push({
        name: clean(name),
        status: effective(status),
        claimedStatus: status,
        trustworthinessVector: vector(fields["ear.trustworthiness-vector"]),
        appraisalPolicyId: text(fields["ear.appraisal-policy-id"]),
      })
    }
  }
  const claimed = claimedStatus ?? "none"

  return {
    status: effective(claimed),
    claimedStatus: claimed,
    submods,
    issuer: text(claims.iss),
    issuedAt: iat === undefined ? null : iso(iat),
    expiresAt: exp === undefined ? null : iso(exp),
    signature: signatureCheck,
    checkedAt: options.now.toISOString(),
    problems,
  }
}

interface Decoded {
  readonly header: Readonly<Record<string, unknown>>
  readonly claims: Readonly<Record<string, unknown>>
  readonly signingInput: string
  readonly signature: Buffer
}

const BASE64URL = /^[A-Za-z0-9_-]*$/

const base64urlPart = (part: string, what: string): Buffer => {
  // Buffer.from(…, "base64url") skips what it does not understand; be strict instead.
  if (!BASE64URL.test(part) || part.length % 4 === 1) {
    throw new EarTokenError(`EAR token malformed: the ${what} is not base64url`)
  }
  return Buffer.from(part, "base64url")
}

const jsonPart = (part: string, what: string): Readonly<Record<string, unknown>> => {
  let value: unknown
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(base64urlPart(part, what)))
  } catch (error) {
    if (error instanceof EarTokenError) throw error
    // The parser's message quotes the input: not kept.
    throw new EarTokenError(`EAR token malformed: the ${what} is not UTF-8 JSON`)
  }
  if (!isObject(value)) throw new EarTokenError(`EAR token malformed: the ${what} is not a JSON object`)
  return value
}

const decode = (token: string): Decoded => {
  if (typeof token !== "string") throw new EarTokenError("EAR token is not a string")
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new EarTokenError(`EAR token too long (${token.length} characters, limit ${MAX_TOKEN_LENGTH})`)
  }
  const parts = token.split(".")
  if (parts.length !== 3) {
    throw new EarTokenError(
      `EAR token malformed: ${parts.length} dot-separated parts, expected 3 (a compact JWS)`,
    )
  }
  const [headerPart = "", payloadPart = "", signaturePart = ""] = parts
  if (headerPart === "") throw new EarTokenError("EAR token malformed: the header is empty")
  if (payloadPart === "") throw new EarTokenError("EAR token malformed: the claims are empty")
  return {
    header: jsonPart(headerPart, "header"),
    claims: jsonPart(payloadPart, "claims"),
    signingInput: `${headerPart}.${payloadPart}`,
    signature: base64urlPart(signaturePart, "signature"),
  }
}

/** undefined if the signature holds, else why not (short, safe to show). */
const checkSignature = (
  header: Readonly<Record<string, unknown>>,
  signingInput: string,
  signature: Buffer,
  pinnedKey: KeyObject | undefined,
): string | undefined => {
  const alg = header.alg
  if (alg !== "ES256") {
    return typeof alg === "string"
      ? `alg ${JSON.stringify(clean(alg))} is not ES256`
      : "no alg, expected ES256"
  }
  // RFC 7515 4.1.11: extensions that must be understood, and none is.
  if (header.crit !== undefined) return "crit header parameter not supported"
  if (signature.length !== 64) return `signature is ${signature.length} bytes, ES256 has 64`
  let key: KeyObject
  if (pinnedKey !== undefined) {
    if (!isP256(pinnedKey)) return "the pinned key is not an EC P-256 key"
    key = pinnedKey
  } else {
    const fromHeader = headerKey(header.jwk)
    if (fromHeader === undefined) return "no EC P-256 public key (jwk) in the header"
    key = fromHeader
  }
  let ok = false
  try {
    ok = verify("sha256", Buffer.from(signingInput, "latin1"), { key, dsaEncoding: "ieee-p1363" }, signature)
  } catch {
    ok = false
  }
  if (ok) return undefined
  return pinnedKey !== undefined
    ? "does not verify against the pinned key"
    : "does not verify against the header's jwk"
}

const headerKey = (jwk: unknown): KeyObject | undefined => {
  if (!isObject(jwk) || jwk.kty !== "EC" || jwk.crv !== "P-256") return undefined
  const { x, y } = jwk
  if (typeof x !== "string" || typeof y !== "string") return undefined
  try {
    // Only the public coordinates: a `d` someone left in the header is not looked at.
    const key = createPublicKey({ key: { kty: "EC", crv: "P-256", x, y }, format: "jwk" })
    return isP256(key) ? key : undefined
  } catch {
    return undefined
  }
}

const isP256 = (key: KeyObject): boolean =>
  key.type !== "secret" &&
  key.asymmetricKeyType === "ec" &&
  key.asymmetricKeyDetails?.namedCurve === "prime256v1"

// ---------------------------------------------------------------------------------------------
// The pinned key
// ---------------------------------------------------------------------------------------------

/**
 * ATTESTATION_TOKEN_KEY: the attestation service's public key as a PEM SPKI public key or a PEM
 * certificate (its public key is taken). Must be EC P-256; a private key is refused (its public half
 * would do, but a private key has no business in the sidecar's configuration). Errors never quote
 * the PEM.
 */
export const loadPinnedKey = (pem: string): KeyObject => {
  if (typeof pem !== "string" || !pem.includes("-----BEGIN ")) {
    throw new EarTokenError("pinned attestation token key: not PEM (expected a PUBLIC KEY or a CERTIFICATE)")
  }
  if (/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(pem)) {
    throw new EarTokenError(
      "pinned attestation token key: this is a PRIVATE KEY; give the attestation service's public key or certificate",
    )
  }
  let key: KeyObject
  if (pem.includes("-----BEGIN CERTIFICATE-----")) {
    try {
      key = new X509Certificate(pem).publicKey
    } catch {
      throw new EarTokenError("pinned attestation token key: the CERTIFICATE cannot be parsed")
    }
  } else {
    try {
      key = createPublicKey({ key: pem, format: "pem" })
    } catch {
      throw new EarTokenError("pinned attestation token key: not a PEM public key (SPKI) or certificate")
    }
  }
  if (!isP256(key))
    throw new EarTokenError(`pinned attestation token key: ${describeKey(key)}, expected EC P-256`)
  return key
}

const describeKey = (key: KeyObject): string => {
  const type = key.asymmetricKeyType ?? "unknown"
  const details = key.asymmetricKeyDetails
  if (type === "ec") return `an EC key on ${details?.namedCurve ?? "an unknown curve"}`
  if (type === "rsa" || type === "rsa-pss" || type === "dsa") {
    const bits = details?.modulusLength !== undefined ? ` (${details.modulusLength} bits)` : ""
    return `${type === "dsa" ? "a" : "an"} ${type.toUpperCase()} key${bits}`
  }
  return `an ${type} key`
}

// ---------------------------------------------------------------------------------------------
// Untrusted values
// ---------------------------------------------------------------------------------------------

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

// C0 and C1 controls, and the bidi embeddings, overrides and isolates ("Trojan Source").
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** At most MAX_TEXT characters, no control or bidi characters. */
const clean = (value: string): string => {
  let cut = value.length > MAX_TEXT ? value.slice(0, MAX_TEXT - 1) : value
  if (cut.length < value.length) {
    // Do not leave half a surrogate pair behind.
    const last = cut.charCodeAt(cut.length - 1)
    if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1)
    cut = `${cut}…`
  }
  return cut.replace(UNSAFE, "\ufffd")
}

const text = (value: unknown): string | null => (typeof value === "string" ? clean(value) : null)

const vector = (value: unknown): Readonly<Record<string, number>> => {
  if (!isObject(value)) return {}
  const entries: Array<[string, number]> = []
  for (const key in value) {
    if (entries.length >= MAX_VECTOR_ENTRIES) break
    const n = value[key]
    if (Object.hasOwn(value, key) && typeof n === "number" && Number.isFinite(n))
      entries.push([clean(key), n])
  }
  // fromEntries defines own properties: a "__proto__" key stays a plain key.
  return Object.fromEntries(entries)
}

/** A JWT NumericDate (seconds since the epoch), if the claim is one. */
const numericDate = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined

const MAX_DATE_MS = 8.64e15

const iso = (seconds: number): string | null => {
  const ms = seconds * 1000
  return Math.abs(ms) <= MAX_DATE_MS ? new Date(ms).toISOString() : null
}

const isoOrNumber = (seconds: number): string => iso(seconds) ?? `${seconds} s after the epoch`
