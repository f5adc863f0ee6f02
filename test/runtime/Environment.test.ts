import { assert, describe, expect, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import {
  DEFAULT_ALLOWLIST,
  type EnvEntry,
  Environment,
  filterEnvironment,
  isSensitiveName,
  isSensitiveValue,
  parseAllowlist,
  REDACTED_MARKER,
} from "../../src/runtime/Environment.ts"

type Expected = "shown" | "sensitive" | "not-allowlisted"

interface Row {
  readonly name: string
  readonly value: string
  readonly extra?: ReadonlyArray<string>
  readonly expected: Expected
  readonly why: string
}

// Fake secrets, built at run time so that no real-looking token sits in the source.
const PEM = [
  "-----BEGIN PRIVATE KEY-----",
  "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg",
  "-----END PRIVATE KEY-----",
].join("\n")
const JWT = [
  "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9",
  "eyJzdWIiOiJ3ZWIiLCJpYXQiOjE3NjcyMjU2MDB9",
  "c2lnbmF0dXJlLWJ5dGVzLWhlcmU",
].join(".")
const HEX_KEY = "3f9a".repeat(16) // 64 hex chars
const B64_KEY = "TqdPxbvH98rvHCzJK6jKmXcQ8hBsWomn" // 32 chars of base64
const B64URL_KEY = "l_edVO4FyZQsA4SmgoJDzq9ii-6QXcY_g-8AdlYoqSo"
const GITHUB_PAT = `${"ghp"}_${"EXAMPLE0example0EXAMPLE0"}`
const OPENAI_KEY = `${"sk"}-${"proj-EXAMPLE0example"}`
const SLACK_TOKEN = `${"xoxb"}-${"000000000-EXAMPLE"}`
const AWS_KEY_ID = `${"AKIA"}${"IOSFODNN7EXAMPLE"}`

const ROWS: ReadonlyArray<Row> = [
  // kubectl-coco contract and the sidecar's own settings
  { name: "POD_NAME", value: "web-7d9f8c6b5-x2x4q", expected: "shown", why: "contract" },
  { name: "POD_NAMESPACE", value: "shop", expected: "shown", why: "contract" },
  { name: "HTTPS_PORT", value: "8443", expected: "shown", why: "contract" },
  { name: "FORWARD_PORT", value: "8888", expected: "shown", why: "contract" },
  {
    name: "TLS_KEY_URI",
    value: "kbs:///shop/sidecar-tls-web/server-key",
    expected: "shown",
    why: "URI, not key",
  },
  { name: "TLS_CERT_URI", value: "kbs:///shop/sidecar-tls-web/server-cert", expected: "shown", why: "URI" },
  { name: "CLIENT_CA_URI", value: "kbs:///default/sidecar-tls/client-ca", expected: "shown", why: "URI" },
  { name: "TLS_KEY_URI", value: PEM, expected: "sensitive", why: "contract name, but key material" },
  { name: "CDH_URL", value: "http://127.0.0.1:8006", expected: "shown", why: "contract" },
  { name: "CDH_URL", value: "http://user:pw@cdh.local:8006", expected: "sensitive", why: "URL userinfo" },
  { name: "CDH_URL", value: "https://tok3n@cdh.local", expected: "sensitive", why: "URL user@ only" },
  { name: "CDH_REQUEST_TIMEOUT", value: "60 seconds", expected: "shown", why: "CDH_* glob" },
  { name: "FORWARD_CONNECT_TIMEOUT", value: "Bearer abcdefghijkl", expected: "sensitive", why: "bearer" },
  { name: "SIDECAR_PATH_PREFIX", value: "/.coco", expected: "shown", why: "setting" },
  {
    name: "ATTESTATION_STATUS_URI",
    value: "kbs:///default/attestation-status/status",
    expected: "shown",
    why: "",
  },
  { name: "LOG_LEVEL", value: PEM, expected: "sensitive", why: "PEM under an allowed name" },
  { name: "LOG_FORMAT", value: OPENAI_KEY, expected: "sensitive", why: "sk- prefix" },
  { name: "SHUTDOWN_GRACE_PERIOD", value: "20 seconds", expected: "shown", why: "setting" },
  // Kubernetes service discovery
  { name: "KUBERNETES_SERVICE_HOST", value: "10.96.0.1", expected: "shown", why: "KUBERNETES_*" },
  { name: "KUBERNETES_SERVICE_PORT_HTTPS", value: "443", expected: "shown", why: "KUBERNETES_*" },
  { name: "KUBERNETES_PORT_443_TCP", value: "tcp://10.96.0.1:443", expected: "shown", why: "docker link" },
  { name: "REDIS_SERVICE_HOST", value: "10.0.0.11", expected: "shown", why: "*_SERVICE_HOST" },
  { name: "REDIS_SERVICE_PORT_CLIENT", value: "6379", expected: "shown", why: "*_SERVICE_PORT_*" },
  { name: "REDIS_PORT", value: "tcp://10.0.0.11:6379", expected: "shown", why: "*_PORT" },
  { name: "REDIS_PORT_6379_TCP_ADDR", value: "10.0.0.11", expected: "shown", why: "*_PORT_*_TCP_*" },
  { name: "DB_PASSWORD_PORT", value: "5432", expected: "sensitive", why: "*_PORT admits, name hides" },
  { name: "API_KEY_SERVICE_HOST", value: "10.0.0.12", expected: "sensitive", why: "name hides" },
  // generic process environment
  {
    name: "PATH",
    value: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    expected: "shown",
    why: "",
  },
  { name: "HOME", value: "/root", expected: "shown", why: "" },
  {
    name: "HOSTNAME",
    value: "coco-secure-access-demo-7d9f8c6b5-x2x4q",
    expected: "shown",
    why: "long pod name",
  },
  { name: "HOSTNAME", value: JWT, expected: "sensitive", why: "JWT under an allowed name" },
  { name: "LANG", value: "C.UTF-8", expected: "shown", why: "" },
  { name: "LC_ALL", value: "en_US.UTF-8", expected: "shown", why: "LC_*" },
  { name: "TZ", value: "America/Argentina/Buenos_Aires", expected: "shown", why: "" },
  { name: "NODE_VERSION", value: "24.19.4", expected: "shown", why: "" },
  { name: "NODE_ENV", value: "production", expected: "shown", why: "" },
  { name: "NODE_ENV", value: HEX_KEY, expected: "sensitive", why: "long hex" },
  { name: "NODE_ENV", value: B64_KEY, expected: "sensitive", why: "long base64" },
  { name: "TERM", value: "xterm-256color", expected: "shown", why: "" },
  { name: "TERM", value: B64URL_KEY, expected: "sensitive", why: "long base64url" },
  { name: "TERM", value: AWS_KEY_ID, expected: "sensitive", why: "AWS key id" },
  { name: "TERM", value: GITHUB_PAT, expected: "sensitive", why: "ghp_ prefix" },
  { name: "TERM", value: SLACK_TOKEN, expected: "sensitive", why: "xoxb- prefix" },
  { name: "PWD", value: "/app", expected: "sensitive", why: "PWD decision: hidden" },
  { name: "path", value: "/usr/bin", expected: "not-allowlisted", why: "allow-list is case-sensitive" },
  // unknown names and the extra allow-list
  { name: "FOO", value: "bar", expected: "not-allowlisted", why: "default is hide" },
  { name: "FOO", value: "bar", extra: ["FOO"], expected: "shown", why: "extra allow-list" },
  { name: "APP_MODE", value: "debug", extra: ["APP_*"], expected: "shown", why: "extra glob" },
  { name: "APP_DATABASE_URL", value: "postgres://db/app", extra: ["APP_*"], expected: "sensitive", why: "" },
  { name: "MY_SECRET", value: "s3cr3t", extra: ["MY_SECRET"], expected: "sensitive", why: "never revealed" },
  { name: "MY_SECRET", value: "s3cr3t", expected: "sensitive", why: "sensitive wins over unlisted" },
  {
    name: "APP_URL",
    value: "https://api.example.com/v1?token=abc",
    extra: ["APP_URL"],
    expected: "sensitive",
    why: "",
  },
  {
    name: "APP_DB",
    value: "Server=db;Database=app;Password=x",
    extra: ["APP_DB"],
    expected: "sensitive",
    why: "",
  },
  {
    name: "APP_CFG",
    value: '{"mode":"a","apiKey":"b"}',
    extra: ["APP_CFG"],
    expected: "sensitive",
    why: "JSON",
  },
  {
    name: "APP_REDIS",
    value: "default:hunter2@redis:6379",
    extra: ["APP_REDIS"],
    expected: "sensitive",
    why: "",
  },
  {
    name: "APP_OWNER",
    value: "ada@example.com",
    extra: ["APP_OWNER"],
    expected: "shown",
    why: "plain e-mail",
  },
  // tricky names
  { name: "db_password", value: "hunter2", extra: ["db_password"], expected: "sensitive", why: "lowercase" },
  { name: "dbPassword", value: "hunter2", extra: ["dbPassword"], expected: "sensitive", why: "camelCase" },
  { name: "DB_PASS", value: "hunter2", expected: "sensitive", why: "PASS part" },
  { name: "DB_PASS2", value: "hunter2", expected: "sensitive", why: "PASS part + digit" },
  { name: "DB_PASS_FILE", value: "/run/secrets/db", extra: ["DB_PASS_FILE"], expected: "sensitive", why: "" },
  { name: "DB_PWD", value: "hunter2", expected: "sensitive", why: "PWD part" },
  { name: "MYAPP_APIKEY", value: "abc", extra: ["MYAPP_*"], expected: "sensitive", why: "APIKEY substring" },
  { name: "apiKey", value: "abc", extra: ["apiKey"], expected: "sensitive", why: "camelCase key" },
  { name: "MY_API_KEY", value: "abc", expected: "sensitive", why: "KEY part" },
  { name: "monkey", value: "banana", expected: "not-allowlisted", why: "KEY is not a whole part" },
  { name: "monkey", value: "banana", extra: ["monkey"], expected: "shown", why: "KEY is not a whole part" },
  {
    name: "KEYBOARD_LAYOUT",
    value: "us",
    extra: ["KEYBOARD_LAYOUT"],
    expected: "shown",
    why: "KEYBOARD != KEY",
  },
  {
    name: "TOKEN_URL",
    value: "https://idp/token",
    extra: ["TOKEN_URL"],
    expected: "sensitive",
    why: "TOKEN",
  },
  { name: "AUTHOR_NAME", value: "Ada", extra: ["AUTHOR_NAME"], expected: "sensitive", why: "AUTH decision" },
  { name: "OAUTH_CLIENT_ID", value: "abc", extra: ["OAUTH_CLIENT_ID"], expected: "sensitive", why: "AUTH" },
  { name: "GITHUB_TOKEN", value: GITHUB_PAT, expected: "sensitive", why: "TOKEN" },
  { name: "AWS_ACCESS_KEY_ID", value: AWS_KEY_ID, expected: "sensitive", why: "KEY" },
  { name: "AWS_SECRET_ACCESS_KEY", value: B64_KEY, expected: "sensitive", why: "SECRET" },
  { name: "SSL_CERT_FILE", value: "/etc/ssl/cert.pem", extra: ["SSL_*"], expected: "sensitive", why: "CERT" },
  { name: "PRIVATE_REGISTRY", value: "quay.io", extra: ["PRIVATE_REGISTRY"], expected: "sensitive", why: "" },
  {
    name: "SESSION_TIMEOUT",
    value: "30 minutes",
    extra: ["SESSION_TIMEOUT"],
    expected: "sensitive",
    why: "SESSION",
  },
  { name: "COOKIE_DOMAIN", value: "example.com", extra: ["COOKIE_DOMAIN"], expected: "sensitive", why: "" },
  { name: "SENTRY_DSN", value: "https://k@o0.ingest.sentry.io/1", expected: "sensitive", why: "DSN" },
  {
    name: "DATABASE_URL",
    value: "postgres://db/app",
    extra: ["DATABASE_URL"],
    expected: "sensitive",
    why: "",
  },
  {
    name: "CONNECTION_STRING",
    value: "v4lue-x",
    extra: ["CONNECTION_STRING"],
    expected: "sensitive",
    why: "",
  },
  { name: "JWT_ISSUER", value: "issuer-me", extra: ["JWT_ISSUER"], expected: "sensitive", why: "JWT" },
  { name: "PASSWORD_SALT", value: "v4lue-x", expected: "sensitive", why: "SALT/PASSWORD" },
  {
    name: "REQUEST_SIGNATURE",
    value: "v4lue-x",
    extra: ["REQUEST_SIGNATURE"],
    expected: "sensitive",
    why: "",
  },
  { name: "BEARER", value: "v4lue-x", extra: ["BEARER"], expected: "sensitive", why: "" },
  { name: "GOOGLE_CREDENTIALS", value: '{"type":"sa"}', expected: "sensitive", why: "CREDENTIAL(S)" },
  { name: "SSH_PASSPHRASE", value: "v4lue-x", expected: "sensitive", why: "PASSPHRASE" },
]

const entryFor = (row: Row): EnvEntry => {
  const entries = filterEnvironment({ [row.name]: row.value }, row.extra ?? [])
  assert.strictEqual(entries.length, 1)
  const entry = entries[0]
  if (entry === undefined) throw new Error("no entry")
  return entry
}

describe("filterEnvironment", () => {
  it("has a table of at least 40 rows", () => {
    expect(ROWS.length).toBeGreaterThanOrEqual(40)
  })

  it.each(ROWS)("$name = $value (extra $extra) -> $expected ($why)", (row) => {
    const entry = entryFor(row)
    assert.strictEqual(entry.name, row.name)
    if (row.expected === "shown") {
      assert.deepStrictEqual(entry, { name: row.name, value: row.value, shown: true })
    } else {
      assert.deepStrictEqual(entry, { name: row.name, shown: false, reason: row.expected })
      assert.isFalse("value" in entry)
      assert.notInclude(JSON.stringify(entry), row.value)
    }
  })

  it("never serialises a hidden value, for the whole table at once", () => {
    const env: Record<string, string> = {}
    const extra: Array<string> = []
    // one env per row, since names repeat across rows
    for (const row of ROWS) {
      env[row.name] = row.value
      extra.push(...(row.extra ?? []))
      const entries = filterEnvironment(env, extra)
      const json = JSON.stringify(entries)
      for (const entry of entries) {
        if (!entry.shown) {
          const secret = env[entry.name]
          if (secret !== undefined) assert.notInclude(json, secret, entry.name)
        }
      }
      delete env[row.name]
    }
  })

  it("lists every name, sorted, and skips undefined values", () => {
    const entries = filterEnvironment(
      {
        POD_NAME: "p",
        b: "x",
        API_TOKEN: "t",
        UNSET: undefined,
        A: "a",
        KUBERNETES_SERVICE_HOST: "10.0.0.1",
      },
      [],
    )
    assert.deepStrictEqual(
      entries.map((e) => e.name),
      ["A", "API_TOKEN", "KUBERNETES_SERVICE_HOST", "POD_NAME", "b"],
    )
    assert.deepStrictEqual(
      entries.map((e) => (e.shown ? e.value : REDACTED_MARKER)),
      [REDACTED_MARKER, REDACTED_MARKER, "10.0.0.1", "p", REDACTED_MARKER],
    )
  })

  it("shows an empty allow-listed value", () => {
    assert.deepStrictEqual(filterEnvironment({ LOG_LEVEL: "" }, []), [
      { name: "LOG_LEVEL", value: "", shown: true },
    ])
  })

  it("lists the contract names in the default allow-list", () => {
    for (const name of [
      "TLS_CERT_URI",
      "TLS_KEY_URI",
      "CLIENT_CA_URI",
      "HTTPS_PORT",
      "POD_NAME",
      "POD_NAMESPACE",
    ]) {
      assert.include(DEFAULT_ALLOWLIST, name)
    }
  })
})

describe("isSensitiveName / isSensitiveValue", () => {
  it.each([
    ["API_KEY", true],
    ["x-api-key", true],
    ["client.secret", true],
    ["MONKEY", false],
    ["KEYCLOAK_URL", false],
    ["BYPASS_CACHE", false],
    ["HOSTNAME", false],
    ["OLDPWD", false],
    ["PIN", true],
  ] as const)("name %s -> %s", (name, expected) => {
    assert.strictEqual(isSensitiveName(name), expected)
  })

  it.each([
    ["http://auth.example.com:8080/path", false],
    ["tcp://10.0.0.1:6379", false],
    ["/usr/local/lib/node_modules/npm/bin", false],
    ["sha256:".concat("ab".repeat(32)), true],
    ["123e4567-e89b-12d3-a456-426614174000", true],
    ["basic dXNlcjpwYXNzd29yZA==", true],
    ["--max-old-space-size=4096", false],
    ["--auth-token=abc", true],
  ] as const)("value %s -> %s", (value, expected) => {
    assert.strictEqual(isSensitiveValue(value), expected)
  })
})

describe("parseAllowlist", () => {
  it.each([
    ["", []],
    ["  ", []],
    ["FOO", ["FOO"]],
    ["FOO, BAR_*", ["FOO", "BAR_*"]],
    ["FOO,,BAR,", ["FOO", "BAR"]],
    ["FOO,FOO", ["FOO"]],
    ["my.app-setting", ["my.app-setting"]],
  ] as const)("accepts %j", (raw, expected) => {
    const result = parseAllowlist(raw)
    assert.isTrue(Result.isSuccess(result))
    if (Result.isSuccess(result)) assert.deepStrictEqual(result.success, expected)
  })

  it.each(["*", "FOO*BAR", "*_PORT", "FOO BAR", "FOO=1", "1ABC", "OK,BAD NAME"])("rejects %j", (raw) => {
    const result = parseAllowlist(raw)
    assert.isTrue(Result.isFailure(result))
    const bad = raw.split(",").at(-1) ?? raw
    if (Result.isFailure(result)) assert.include(result.failure, JSON.stringify(bad.trim()))
  })
})

describe("Environment", () => {
  it.effect("layerFrom filters the given env", () =>
    Effect.gen(function* () {
      const env = yield* Environment
      assert.deepStrictEqual(env.entries, [
        { name: "FOO", value: "bar", shown: true },
        { name: "MY_TOKEN", shown: false, reason: "sensitive" },
        { name: "POD_NAME", value: "web", shown: true },
      ])
    }).pipe(
      Effect.provide(
        Environment.layerFrom({ POD_NAME: "web", MY_TOKEN: "t0k", FOO: "bar" }, ["FOO", "MY_TOKEN"]),
      ),
    ),
  )
})
