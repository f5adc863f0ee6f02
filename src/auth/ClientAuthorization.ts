/**
 * Optional client authorization beyond "signed by the client CA", modelled on ghostunnel's `--allow-cn`,
 * `--allow-ou`, `--allow-dns` and `--allow-uri`.
 *
 * - No allow-list configured: every certificate the client CA signed is allowed (the default).
 * - Any allow-list configured: a client is allowed when it matches ANY entry of ANY configured list
 *   (the lists are alternatives, as in ghostunnel).
 *
 * Matching:
 * - CN: exact, case-sensitive, against the subject's most specific (last) CN, the one logs, the dashboard and
 *   the identity headers name (as Go's `Subject.CommonName`, which ghostunnel matches).
 * - OU: exact, case-sensitive (any of the subject's OUs).
 * - DNS: DNS SANs, case-insensitive. `*.example.com` matches exactly one left-most label (`a.example.com`, not
 *   `example.com`, not `a.b.example.com`). The wildcard must be the whole left-most label and be followed by at
 *   least two labels (`*`, `*.com`, `a*.example.com`, `a.*.example.com` are rejected at parse time).
 * - URI: URI SANs, exact and case-sensitive, or a prefix pattern ending in `/*`: `spiffe://td/ns/shop/*` matches
 *   any URI below `spiffe://td/ns/shop/` (one or more non-empty segments, no dot segments) but neither the bare
 *   `spiffe://td/ns/shop` nor `spiffe://td/ns/shop/` nor `spiffe://td/ns/shopping/x`.
 *
 * Entries are comma-separated, so a CN or OU containing a comma cannot be allowed by name.
 */
import * as Result from "effect/Result"

export interface AllowRules {
  /** Subject CNs, exact (case-sensitive). */
  readonly cns: ReadonlyArray<string>
  /** Subject OUs, exact (case-sensitive); a certificate matches if any of its OUs is listed. */
  readonly ous: ReadonlyArray<string>
  /** DNS SANs, stored lower-case; `*.example.com` matches exactly one left-most label. */
  readonly dnsNames: ReadonlyArray<string>
  /** URI SANs, exact, or a prefix pattern ending in `/*`. */
  readonly uris: ReadonlyArray<string>
}

export const NO_RULES: AllowRules = { cns: [], ous: [], dnsNames: [], uris: [] }

/** True when at least one allow-list entry is configured (then only matching clients are allowed). */
export const isRestricted = (rules: AllowRules): boolean =>
  rules.cns.length > 0 || rules.ous.length > 0 || rules.dnsNames.length > 0 || rules.uris.length > 0

export interface RuleError {
  /** The environment variable, e.g. "ALLOW_DNS". */
  readonly variable: string
  /** The offending entry (trimmed). */
  readonly value: string
  readonly reason: string
}

export interface AllowEnv {
  readonly ALLOW_CN?: string
  readonly ALLOW_OU?: string
  readonly ALLOW_DNS?: string
  readonly ALLOW_URI?: string
}

// ---------------------------------------------------------------------------------------------------------
// parsing the allow-lists

/** Comma-separated entries, trimmed; empty entries (`a,,b`, trailing commas, blank values) are ignored. */
const entries = (value: string | undefined): ReadonlyArray<string> =>
  (value ?? "")
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0)

const unique = (values: ReadonlyArray<string>): ReadonlyArray<string> => [...new Set(values)]

// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const CONTROL = /[\u0000-\u001f\u007f]/

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/

/** Undefined when fine, else the reason. `name` is already lower-case. */
const dnsPatternProblem = (name: string): string | undefined => {
  if (name.length > 253) return "longer than 253 characters"
  const labels = name.split(".")
  const [first, ...rest] = labels
  if (first === "*") {
    if (rest.length < 2) return 'a wildcard needs at least two labels after "*." (e.g. *.example.com)'
  } else if (name.includes("*")) {
    return 'a wildcard is only allowed as the whole left-most label ("*.example.com")'
  }
  const named = first === "*" ? rest : labels
  if (named.some((label) => label.length === 0)) return "empty label"
  if (named.some((label) => label.includes("*"))) {
    return 'a wildcard is only allowed as the whole left-most label ("*.example.com")'
  }
  const bad = named.find((label) => !LABEL.test(label))
  if (bad !== undefined) return `invalid label "${bad}" (letters, digits, "-", "_"; at most 63 characters)`
  return undefined
}

const SCHEME = /^[a-z][a-z0-9+.-]*:/i
/** `scheme://authority/` with a non-empty authority: where a `/*` prefix pattern may start its path. */
const HIERARCHICAL_PREFIX = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+\//i

const uriPatternProblem = (uri: string): string | undefined => {
  if (/\s/.test(uri) || CONTROL.test(uri)) return "must not contain whitespace or control characters"
  if (!SCHEME.test(uri) || !URL.canParse(uri)) return "not an absolute URI (scheme:...)"
  const star = uri.indexOf("*")
  if (star === -1) return undefined
  if (star !== uri.length - 1 || !uri.endsWith("/*") || uri.indexOf("*") !== uri.lastIndexOf("*")) {
    return '"*" is only allowed as the whole final path segment ("spiffe://domain/path/*")'
  }
  const prefix = uri.slice(0, -1)
  if (!HIERARCHICAL_PREFIX.test(prefix) || /[?#]/.test(prefix)) {
    return 'a "/*" pattern needs scheme://authority/ before it, without query or fragment'
  }
  return undefined
}

const parseList = (
  variable: string,
  value: string | undefined,
  normalize: (entry: string) => string,
  problem: (entry: string) => string | undefined,
): Result.Result<ReadonlyArray<string>, RuleError> => {
  const out: Array<string> = []
  for (const raw of entries(value)) {
    const entry = normalize(raw)
    const reason = problem(entry)
    if (reason !== undefined) return Result.fail({ variable, value: raw, reason })
    out.push(entry)
  }
  return Result.succeed(unique(out))
}

const textProblem = (entry: string): string | undefined =>
  CONTROL.test(entry) ? "must not contain control characters" : undefined

const identity = (entry: string): string => entry

/** Parses the env values (comma-separated; empty/undefined = none). Errors name the variable and the bad entry. */
export const parseRules = (env: AllowEnv): Result.Result<AllowRules, RuleError> => {
  const cns = parseList("ALLOW_CN", env.ALLOW_CN, identity, textProblem)
  if (Result.isFailure(cns)) return Result.fail(cns.failure)
  const ous = parseList("ALLOW_OU", env.ALLOW_OU, identity, textProblem)
  if (Result.isFailure(ous)) return Result.fail(ous.failure)
  const dnsNames = parseList("ALLOW_DNS", env.ALLOW_DNS, (entry) => entry.toLowerCase(), dnsPatternProblem)
  if (Result.isFailure(dnsNames)) return Result.fail(dnsNames.failure)
  const uris = parseList("ALLOW_URI", env.ALLOW_URI, identity, uriPatternProblem)
  if (Result.isFailure(uris)) return Result.fail(uris.failure)
  return Result.succeed({
    cns: cns.success,
    ous: ous.success,
    dnsNames: dnsNames.success,
    uris: uris.success,
  })
}

// ---------------------------------------------------------------------------------------------------------
// the peer's identity

/** What the decision reads of the client certificate (see gateway/clientCertificate.ts). */
export interface PeerIdentity {
  /** The most specific (last) CN: the only one ALLOW_CN is matched against. */
  readonly commonName: string | undefined
  readonly organizationalUnits: ReadonlyArray<string>
  readonly dnsNames: ReadonlyArray<string>
  readonly uris: ReadonlyArray<string>
}

// ---------------------------------------------------------------------------------------------------------
// the decision

export type Decision = { readonly allowed: true } | { readonly allowed: false; readonly reason: string }

const ALLOWED: Decision = { allowed: true }

const dnsMatches = (pattern: string, name: string): boolean => {
  const host = name.toLowerCase().replace(/\.$/, "")
  if (!pattern.startsWith("*.")) return host === pattern
  const suffix = pattern.slice(1) // ".example.com"
  if (!host.endsWith(suffix)) return false
  const label = host.slice(0, -suffix.length)
  return label.length > 0 && !label.includes(".") && !label.includes("*")
}

const uriMatches = (pattern: string, uri: string): boolean => {
  if (!pattern.endsWith("/*")) return uri === pattern
  const prefix = pattern.slice(0, -1) // keeps the trailing "/"
  if (!uri.startsWith(prefix)) return false
  const rest = uri.slice(prefix.length)
  if (rest.length === 0 || /[?#\\]/.test(rest)) return false
  return rest.split("/").every((segment) => {
    if (segment.length === 0) return false
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      return false
    }
    return decoded !== "." && decoded !== ".." && !decoded.includes("/")
  })
}

/** Short rendering of the CN for the denial reason (logs and pages escape it where it leaves). */
const describeCn = (cn: string | undefined): string => {
  if (cn === undefined) return "without a CN"
  return `CN=${cn.length > 64 ? `${cn.slice(0, 64)}…` : cn}`
}

export const authorize = (rules: AllowRules, identity: PeerIdentity): Decision => {
  if (!isRestricted(rules)) return ALLOWED
  const allowed =
    (identity.commonName !== undefined && rules.cns.includes(identity.commonName)) ||
    identity.organizationalUnits.some((ou) => rules.ous.includes(ou)) ||
    identity.dnsNames.some((name) => rules.dnsNames.some((pattern) => dnsMatches(pattern, name))) ||
    identity.uris.some((uri) => rules.uris.some((pattern) => uriMatches(pattern, uri)))
  return allowed
    ? ALLOWED
    : {
        allowed: false,
        reason: `client certificate ${describeCn(identity.commonName)} is not on the allow-list`,
      }
}
