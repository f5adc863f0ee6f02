/**
 * The container environment, filtered for display on the dashboard and in `/api/status`.
 *
 * The viewer is an authenticated developer, but secret values must never leave the process, so the
 * default is safe:
 *
 * - Every name is listed (sorted by UTF-16 code unit, so the order does not depend on the locale).
 * - A value is shown ONLY when the name is allow-listed AND neither the name nor the value looks
 *   sensitive. Hidden entries carry no value at all: no prefix, no length, no hash.
 *
 * Decisions for the ambiguous cases:
 *
 * - Sensitive names are matched on word parts (split on `_`, `-`, `.`, camelCase and letter/digit
 *   boundaries) for short words (`KEY`, `PASS`, `PWD`, `PIN`, `DSN`, `SALT`, ...) and as substrings
 *   for longer, unambiguous ones (`SECRET`, `TOKEN`, `PASSWORD`, `AUTH`, `CERT`, `APIKEY`, ...).
 *   So `MONKEY` and `KEYBOARD_LAYOUT` are NOT sensitive (`KEY` is not a whole part), while `API_KEY`,
 *   `apiKey` and `MYAPP_APIKEY` are.
 * - `AUTH` is a substring match: `AUTHOR_NAME` is hidden. A false positive is cheap; missing
 *   `OAUTHTOKEN` or `BASICAUTH` is not.
 * - `PWD` is hidden even though it is usually the shell's working directory: it is also the common
 *   abbreviation of "password" (`DB_PWD`), and the cwd is worth little to the viewer. It is not on
 *   the default allow-list either.
 * - `DB_PASS_FILE` and `TOKEN_URL` are hidden: the name rule cannot tell a path or endpoint from a
 *   secret, and the safe side is to hide.
 * - The extra allow-list can reveal non-sensitive names only: `MY_SECRET` stays hidden whatever the
 *   operator allows. The only sensitive-looking names that may be shown are the kubectl-coco contract
 *   names `TLS_CERT_URI`, `TLS_KEY_URI` and `CLIENT_CA_URI`, which hold `kbs:///` URIs, not key
 *   material; the value checks still apply to them.
 * - URLs with any userinfo are hidden, including `scheme://user@host` without a password: tokens are
 *   often passed as the user part (`https://<token>@github.com/...`, Sentry DSNs).
 * - A `name=value` (or JSON `"name":`) pair inside a value whose name looks sensitive hides the value
 *   (`?token=...`, `Server=db;Password=...`).
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import * as Result from "effect/Result"
import type * as Api from "../server/api/SidecarApi.ts"

/** One variable as `/api/status` serves it. */
export type EnvEntry = typeof Api.EnvironmentEntry.Type

/** What the UI shows in place of a hidden value. Hidden entries never carry the value itself. */
export const REDACTED_MARKER = "<redacted>"

/** Contract names that look sensitive (`KEY`, `CERT`) but hold KBS URIs, not key material. */
const CONTRACT_URI_NAMES: ReadonlySet<string> = new Set(["TLS_CERT_URI", "TLS_KEY_URI", "CLIENT_CA_URI"])

/**
 * Exact names and globs (`*` matches one or more characters) whose values may be shown.
 * Sensitive names and values are hidden even when they match.
 */
export const DEFAULT_ALLOWLIST: ReadonlyArray<string> = [
  // kubectl-coco contract and the sidecar's own (non-secret) settings
  "TLS_CERT_URI",
  "TLS_KEY_URI",
  "CLIENT_CA_URI",
  "HTTPS_PORT",
  "HTTPS_HOST",
  "FORWARD_PORT",
  "POD_NAME",
  "POD_NAMESPACE",
  "CDH_URL",
  "ATTESTATION_STATUS_URI",
  "SIDECAR_PATH_PREFIX",
  "LOG_LEVEL",
  "LOG_FORMAT",
  "SHUTDOWN_GRACE_PERIOD",
  "CDH_*",
  "FORWARD_*",
  // Kubernetes service discovery and docker-link style variables
  "KUBERNETES_*",
  "*_SERVICE_HOST",
  "*_SERVICE_PORT",
  "*_SERVICE_PORT_*",
  "*_PORT",
  "*_PORT_*_TCP",
  "*_PORT_*_TCP_*",
  "*_PORT_*_UDP",
  "*_PORT_*_UDP_*",
  "*_PORT_*_SCTP",
  "*_PORT_*_SCTP_*",
  // Generic process environment
  "HOSTNAME",
  "HOME",
  "PATH",
  "LANG",
  "LC_*",
  "TZ",
  "NODE_VERSION",
  "NODE_ENV",
  "TERM",
]

// ---------------------------------------------------------------------------------------------
// Sensitive names

/** Matched only as a whole word part (after splitting; trailing digits ignored). */
const SENSITIVE_PARTS: ReadonlySet<string> = new Set([
  "key",
  "keys",
  "pass",
  "pwd",
  "pw",
  "pin",
  "otp",
  "sig",
  "sas",
  "dsn",
  "salt",
  "cred",
  "creds",
  "crt",
  "pem",
  "pfx",
  "p12",
  "jks",
])

/** Matched as substrings of the name with separators removed, lowercased. */
const SENSITIVE_SUBSTRINGS: ReadonlyArray<string> = [
  "secret",
  "token",
  "passw", // password, passwd
  "passphrase",
  "credential",
  "private",
  "privkey",
  "apikey",
  "accesskey",
  "signingkey",
  "masterkey",
  "encryptionkey",
  "sshkey",
  "keyfile",
  "keystore",
  "keypair",
  "auth", // also AUTHOR: hidden on purpose (see the module comment)
  "cert",
  "cookie",
  "session",
  "signature",
  "bearer",
  "jwt",
  "hmac",
  "mnemonic",
  "kubeconfig",
  "connectionstring",
  "connstr",
  "databaseurl",
  "dburl",
]

const nameParts = (name: string): ReadonlyArray<string> =>
  name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2") // camelCase -> camel_Case
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2") // APIKey -> API_Key
    .split(/[^A-Za-z0-9]+/)
    .filter((part) => part.length > 0)
    .map((part) => part.toLowerCase())

/** Whether a variable name (or a key inside a value) looks like it names a secret. */
export const isSensitiveName = (name: string): boolean => {
  for (const part of nameParts(name)) {
    if (SENSITIVE_PARTS.has(part) || SENSITIVE_PARTS.has(part.replace(/[0-9]+$/, ""))) return true
  }
  const squashed = name.toLowerCase().replace(/[^a-z0-9]/g, "")
  return SENSITIVE_SUBSTRINGS.some((word) => squashed.includes(word))
}

// ---------------------------------------------------------------------------------------------
// Sensitive values

const VALUE_PATTERNS: ReadonlyArray<RegExp> = [
  // PEM blocks and anything announcing a private key
  /-----BEGIN/,
  /PRIVATE KEY/i,
  // URL with userinfo (`scheme://user:pass@host` and `scheme://user@host`)
  /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#\s@]*@/,
  // scheme-less `user:pass@host`
  /(?:^|[\s,;])[^\s:@/]+:[^\s@/]+@\S/,
  // JWT / JWS / JWE
  /eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*/,
  // HTTP authorization schemes
  /\b(?:bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/i,
  // AWS access key ids, Google API keys
  /(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![0-9A-Z])/,
  /AIza[0-9A-Za-z_-]{35}/,
  // well-known token prefixes (GitHub, GitLab, Slack, OpenAI/Stripe, npm, PyPI, Hugging Face)
  /(?<![A-Za-z0-9])(?:ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|glpat-|xox[abps]-|xapp-|sk-|sk_live_|sk_test_|rk_live_|rk_test_|npm_|pypi-|hf_)[A-Za-z0-9_-]{8,}/,
]

/** `name=...` or JSON `"name":` pairs inside a value; the names are checked with `isSensitiveName`. */
const EMBEDDED_KEY = /([A-Za-z][A-Za-z0-9_.-]*)(?:\s*=|["']\s*:)/g

const shannonBits = (s: string): number => {
  const counts = new Map<string, number>()
  for (const c of s) counts.set(c, (counts.get(c) ?? 0) + 1)
  let bits = 0
  for (const n of counts.values()) {
    const p = n / s.length
    bits -= p * Math.log2(p)
  }
  return bits
}

/**
 * Whether one whitespace/punctuation-free run of base64/hex characters looks like random key material.
 * Tuned so that paths (`/usr/local/bin`), pod names (`web-7d9f8c6b5-x2x4q`) and KBS URIs pass.
 */
const looksRandom = (run: string): boolean => {
  const hexDigits = run.replace(/[^0-9a-fA-F]/g, "").length
  if (/^[0-9a-fA-F-]+$/.test(run) && hexDigits >= 32) return true // hex keys, digests, UUID-like ids
  const upper = /[A-Z]/.test(run)
  const lower = /[a-z]/.test(run)
  const digit = /[0-9]/.test(run)
  if ((/^[a-z0-9]{32,}$/.test(run) || /^[A-Z0-9]{32,}$/.test(run)) && digit && (upper || lower)) return true
  if (run.length >= 24 && upper && lower && digit && shannonBits(run) >= 3.5) return true
  return run.length >= 32 && upper && lower && shannonBits(run) >= 4.3
}

/** Whether a value looks like a secret, whatever its name. */
export const isSensitiveValue = (value: string): boolean => {
  if (VALUE_PATTERNS.some((re) => re.test(value))) return true
  for (const m of value.matchAll(EMBEDDED_KEY)) {
    const key = m[1]
    if (key !== undefined && isSensitiveName(key)) return true
  }
  const runs = value.match(/[A-Za-z0-9+/=_-]{24,}/g) ?? []
  return runs.some(looksRandom)
}

// ---------------------------------------------------------------------------------------------
// Allow-list

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")

const globToRegExp = (pattern: string): RegExp =>
  new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".+")}$`)

const ALLOW_ENTRY = /^[A-Za-z_][A-Za-z0-9_.-]*\*?$/

/**
 * Parses an operator-supplied allow-list: comma-separated variable names or `PREFIX_*` globs.
 * Blank entries (e.g. a trailing comma) are ignored; duplicates are dropped.
 */
export const parseAllowlist = (raw: string): Result.Result<ReadonlyArray<string>, string> => {
  const out: Array<string> = []
  for (const piece of raw.split(",")) {
    const entry = piece.trim()
    if (entry === "") continue
    if (!ALLOW_ENTRY.test(entry)) {
      return Result.fail(
        `invalid allow-list entry ${JSON.stringify(entry)}: expected an environment variable name (letters, digits, '_', '.', '-') or a PREFIX_* glob`,
      )
    }
    if (!out.includes(entry)) out.push(entry)
  }
  return Result.succeed(out)
}

// ---------------------------------------------------------------------------------------------
// Filtering

/**
 * Lists every variable of `env` (undefined values are skipped), sorted by name, showing only the
 * values that are allow-listed (by `DEFAULT_ALLOWLIST` or `extraAllow`) and not sensitive.
 */
export const filterEnvironment = (
  env: Readonly<Record<string, string | undefined>>,
  extraAllow: ReadonlyArray<string>,
): ReadonlyArray<EnvEntry> => {
  const allow = [...DEFAULT_ALLOWLIST, ...extraAllow].map(globToRegExp)
  const names = Object.keys(env)
    .filter((name) => env[name] !== undefined)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
  return names.map((name): EnvEntry => {
    if (isSensitiveName(name) && !CONTRACT_URI_NAMES.has(name))
      return { name, shown: false, reason: "sensitive" }
    if (!allow.some((re) => re.test(name))) return { name, shown: false, reason: "not-allowlisted" }
    const value = env[name] ?? ""
    if (isSensitiveValue(value)) return { name, shown: false, reason: "sensitive" }
    return { name, value, shown: true }
  })
}

export class Environment extends Context.Service<
  Environment,
  { readonly entries: ReadonlyArray<EnvEntry> }
>()("coco-secure-access/Environment") {
  /** Filters `env` once, when the layer is built. */
  static readonly layerFrom = (
    env: Readonly<Record<string, string | undefined>>,
    extraAllow: ReadonlyArray<string>,
  ): Layer.Layer<Environment> =>
    Layer.sync(Environment, () => Environment.of({ entries: filterEnvironment(env, extraAllow) }))
}
