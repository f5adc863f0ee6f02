import { assert, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Duration, Effect, Option, Result } from "effect"
import {
  DEFAULTS,
  decode,
  type Env,
  InvalidConfig,
  load,
  type Settings,
  SidecarConfig,
  summary,
} from "../../src/config/SidecarConfig.ts"

/** What kubectl-coco injects into the sidecar container. */
const KUBECTL_COCO_ENV = {
  TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
  TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
  CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
  HTTPS_PORT: "8443",
  POD_NAME: "web-7d9f8c6b5-x2x4q",
  POD_NAMESPACE: "shop",
} as const satisfies Env

const decodeOk = (env: Env): Settings => {
  const result = decode(env)
  if (Result.isFailure(result)) throw new Error(`expected the env to decode:\n${result.failure.message}`)
  return result.success
}

const decodeErr = (env: Env): InvalidConfig => {
  const result = decode(env)
  if (Result.isSuccess(result)) throw new Error("expected the env to be rejected")
  return result.failure
}

const millis = (d: Duration.Duration): number => Duration.toMillis(d)

describe("decode", () => {
  it("decodes the minimal kubectl-coco env with the documented defaults", () => {
    const s = decodeOk(KUBECTL_COCO_ENV)
    assert.strictEqual(s.tlsCertUri.uri, KUBECTL_COCO_ENV.TLS_CERT_URI)
    assert.strictEqual(s.tlsCertUri.path, "shop/sidecar-tls-web/server-cert")
    assert.strictEqual(s.tlsKeyUri.path, "shop/sidecar-tls-web/server-key")
    assert.strictEqual(s.clientCaUri.path, "default/sidecar-tls/client-ca")
    assert.strictEqual(s.attestationStatusUri.uri, "kbs:///default/attestation-status/status")
    assert.strictEqual(s.attestationStatusUri.uri, DEFAULTS.ATTESTATION_STATUS_URI)
    assert.strictEqual(s.httpsPort, 8443)
    assert.strictEqual(s.httpsHost, undefined)
    assert.isTrue(Option.isNone(s.forwardPort))
    assert.strictEqual(s.podName, "web-7d9f8c6b5-x2x4q")
    assert.strictEqual(s.podNamespace, "shop")
    assert.strictEqual(s.cdh.url, "http://127.0.0.1:8006")
    assert.strictEqual(s.cdh.url, DEFAULTS.CDH_URL)
    assert.strictEqual(millis(s.cdh.requestTimeout), 60_000)
    assert.strictEqual(millis(s.cdh.startupTimeout), 300_000)
    assert.strictEqual(millis(s.cdh.retryBase), 250)
    assert.strictEqual(millis(s.cdh.retryMax), 10_000)
    assert.strictEqual(millis(s.shutdownGrace), 20_000)
    assert.strictEqual(s.logLevel, "info")
    assert.strictEqual(s.logFormat, "json")
  })

  it("defaults HTTPS_PORT, POD_NAME and POD_NAMESPACE like upstream", () => {
    const s = decodeOk({
      TLS_CERT_URI: KUBECTL_COCO_ENV.TLS_CERT_URI,
      TLS_KEY_URI: KUBECTL_COCO_ENV.TLS_KEY_URI,
      CLIENT_CA_URI: KUBECTL_COCO_ENV.CLIENT_CA_URI,
    })
    assert.strictEqual(s.httpsPort, 8443)
    assert.strictEqual(s.podName, "unknown")
    assert.strictEqual(s.podNamespace, "default")
  })

  it("treats empty values as unset (Downward API)", () => {
    const s = decodeOk({ ...KUBECTL_COCO_ENV, HTTPS_PORT: "", POD_NAME: "", CDH_URL: "", LOG_LEVEL: "" })
    assert.strictEqual(s.httpsPort, 8443)
    assert.strictEqual(s.podName, "unknown")
    assert.strictEqual(s.cdh.url, "http://127.0.0.1:8006")
    assert.strictEqual(s.logLevel, "info")
  })

  it.each([
    { forward: undefined, expected: Option.none<number>() },
    { forward: "", expected: Option.none<number>() },
    { forward: "8888", expected: Option.some(8888) },
    { forward: "80", expected: Option.some(80) },
  ])("FORWARD_PORT=$forward", ({ forward, expected }) => {
    const env: Env = forward === undefined ? KUBECTL_COCO_ENV : { ...KUBECTL_COCO_ENV, FORWARD_PORT: forward }
    assert.deepStrictEqual(decodeOk(env).forwardPort, expected)
  })

  it.each([
    { https: "8443", forward: "8443" },
    { https: "9000", forward: "9000" },
    { https: undefined, forward: "8443" },
  ])("rejects FORWARD_PORT=$forward equal to HTTPS_PORT=$https", ({ https, forward }) => {
    const env: Env = { ...KUBECTL_COCO_ENV, FORWARD_PORT: forward }
    if (https === undefined) delete env.HTTPS_PORT
    else env.HTTPS_PORT = https
    const error = decodeErr(env)
    assert.strictEqual(error._tag, "InvalidConfig")
    assert.strictEqual(error.problems.length, 1)
    assert.deepStrictEqual(error.problems[0], {
      variable: "FORWARD_PORT",
      value: forward,
      reason: "must differ from HTTPS_PORT",
    })
    expect(error.message).toContain(`FORWARD_PORT="${forward}"`)
    expect(error.message).toContain("HTTPS_PORT")
  })

  it("finding 12: rejects HEALTH_PORT equal to FORWARD_PORT", () => {
    const error = decodeErr({ ...KUBECTL_COCO_ENV, FORWARD_PORT: "8888", HEALTH_PORT: "8888" })
    assert.deepStrictEqual(error.problems, [
      {
        variable: "HEALTH_PORT",
        value: "8888",
        reason: "must differ from FORWARD_PORT (the application's port)",
      },
    ])
  })

  it.each([
    "FORWARD_RESPONSE_TIMEOUT",
    "FORWARD_CONNECT_TIMEOUT",
    "SHUTDOWN_GRACE_PERIOD",
    "TLS_HANDSHAKE_TIMEOUT",
    "HEADERS_TIMEOUT",
    "TLS_REFRESH_INTERVAL",
    "ATTESTATION_CHECK_INTERVAL",
    "CDH_REQUEST_TIMEOUT",
  ] as const)("finding 10: rejects %s=1000h, above Node's longest timer", (variable) => {
    const error = decodeErr({ ...KUBECTL_COCO_ENV, [variable]: "1000h" })
    assert.strictEqual(error.problems.length, 1)
    assert.strictEqual(error.problems[0]?.variable, variable)
    expect(error.message).toContain(`${variable}="1000h": must be at most 2147483647ms`)
  })

  it.each(["0", "70000", "abc", "-1", "80.5", " 80"])(
    "rejects HTTPS_PORT=%j naming the variable and value",
    (raw) => {
      const error = decodeErr({ ...KUBECTL_COCO_ENV, HTTPS_PORT: raw })
      expect(error).toBeInstanceOf(InvalidConfig)
      assert.strictEqual(error.problems.length, 1)
      assert.deepStrictEqual(error.problems[0], {
        variable: "HTTPS_PORT",
        value: raw,
        reason: "must be a TCP port number from 1 to 65535",
      })
      expect(error.message).toContain("HTTPS_PORT")
      expect(error.message).toContain(JSON.stringify(raw))
      expect(error.message).toContain(`HTTPS_PORT=${JSON.stringify(raw)}`)
    },
  )

  it.each(["TLS_CERT_URI", "TLS_KEY_URI", "CLIENT_CA_URI"] as const)(
    "reports a missing %s as not set",
    (name) => {
      const env: Env = { ...KUBECTL_COCO_ENV }
      delete env[name]
      const error = decodeErr(env)
      assert.deepStrictEqual(error.problems, [{ variable: name, value: undefined, reason: "required" }])
      assert.strictEqual(error.message, `invalid configuration: ${name} is not set: required`)
    },
  )

  it("reports an empty TLS_CERT_URI as not set", () => {
    const error = decodeErr({ ...KUBECTL_COCO_ENV, TLS_CERT_URI: "" })
    assert.strictEqual(error.message, "invalid configuration: TLS_CERT_URI is not set: required")
  })

  it.each([
    { variable: "TLS_CERT_URI", uri: "kbs://kbs.example:8080/a/b/c", reason: "host is not allowed" },
    { variable: "TLS_KEY_URI", uri: "kbs:///a/b", reason: "exactly 3 path segments" },
    { variable: "CLIENT_CA_URI", uri: "kbs:///a/../c", reason: "must match" },
    { variable: "ATTESTATION_STATUS_URI", uri: "kbs+resource:///a/b/c", reason: "expected the form" },
    { variable: "TLS_CERT_URI", uri: "kbs:///a/b/c?x=1", reason: "query" },
  ] as const)("a bad $variable names the variable and the URI $uri", ({ variable, uri, reason }) => {
    const error = decodeErr({ ...KUBECTL_COCO_ENV, [variable]: uri })
    assert.strictEqual(error.problems.length, 1)
    const [problem] = error.problems
    assert.strictEqual(problem?.variable, variable)
    assert.strictEqual(problem?.value, uri)
    expect(problem?.reason).toContain(reason)
    expect(error.message).toContain(variable)
    expect(error.message).toContain(uri)
    expect(error.message).toContain(reason)
  })

  it("reports every problem at once, one line each", () => {
    const error = decodeErr({
      TLS_KEY_URI: "kbs:///a/b",
      CLIENT_CA_URI: "http://example/a/b/c",
      HTTPS_PORT: "abc",
      FORWARD_PORT: "0",
      CDH_URL: "ftp://127.0.0.1:8006",
      CDH_STARTUP_TIMEOUT: "0s",
      CDH_RETRY_BASE: "soon",
      LOG_LEVEL: "verbose",
      LOG_FORMAT: "xml",
    })
    const variables = error.problems.map((p) => p.variable)
    assert.deepStrictEqual(variables, [
      "TLS_CERT_URI",
      "TLS_KEY_URI",
      "CLIENT_CA_URI",
      "HTTPS_PORT",
      "FORWARD_PORT",
      "CDH_URL",
      "CDH_STARTUP_TIMEOUT",
      "CDH_RETRY_BASE",
      "LOG_LEVEL",
      "LOG_FORMAT",
    ])
    const lines = error.message.split("\n")
    assert.strictEqual(lines.length, error.problems.length)
    for (const [i, line] of lines.entries()) {
      const problem = error.problems[i]
      expect(line).toMatch(/^invalid configuration: /)
      expect(line).toContain(problem?.variable)
      if (problem?.value !== undefined) expect(line).toContain(problem.value)
    }
    expect(lines[0]).toBe("invalid configuration: TLS_CERT_URI is not set: required")
    expect(lines[3]).toContain('HTTPS_PORT="abc"')
    expect(lines[4]).toContain('FORWARD_PORT="0"')
    expect(lines[6]).toContain('CDH_STARTUP_TIMEOUT="0s": must be greater than zero')
  })

  it("decodes every optional variable", () => {
    const s = decodeOk({
      ...KUBECTL_COCO_ENV,
      ATTESTATION_STATUS_URI: "kbs:///shop/attestation-status/status",
      HTTPS_PORT: "9443",
      HTTPS_HOST: "::",
      FORWARD_PORT: "8080",
      CDH_URL: "http://127.0.0.1:9006/",
      CDH_REQUEST_TIMEOUT: "5s",
      CDH_STARTUP_TIMEOUT: "1s",
      CDH_RETRY_BASE: "10ms",
      CDH_RETRY_MAX: "100ms",
      SHUTDOWN_GRACE_PERIOD: "0s",
      LOG_LEVEL: "DEBUG",
      LOG_FORMAT: "logfmt",
    })
    assert.strictEqual(s.attestationStatusUri.path, "shop/attestation-status/status")
    assert.strictEqual(s.httpsPort, 9443)
    assert.strictEqual(s.httpsHost, "::")
    assert.deepStrictEqual(s.forwardPort, Option.some(8080))
    assert.strictEqual(s.cdh.url, "http://127.0.0.1:9006")
    assert.deepStrictEqual(
      [s.cdh.requestTimeout, s.cdh.startupTimeout, s.cdh.retryBase, s.cdh.retryMax, s.shutdownGrace].map(
        millis,
      ),
      [5_000, 1_000, 10, 100, 0],
    )
    assert.strictEqual(s.logLevel, "debug")
    assert.strictEqual(s.logFormat, "logfmt")
  })

  it("truncates very long values in the message", () => {
    const long = `kbs:///${"a".repeat(300)}`
    const error = decodeErr({ ...KUBECTL_COCO_ENV, TLS_CERT_URI: long })
    assert.strictEqual(error.problems[0]?.value, long)
    expect(error.message).toContain(`${long.slice(0, 200)}…`)
    expect(error.message).not.toContain(long)
  })

  it("summary shows the effective settings", () => {
    const s = decodeOk({ ...KUBECTL_COCO_ENV, FORWARD_PORT: "8888" })
    const sum = summary(s)
    assert.strictEqual(sum.tlsCertUri, KUBECTL_COCO_ENV.TLS_CERT_URI)
    assert.strictEqual(sum.httpsHost, "*")
    assert.strictEqual(sum.forwardPort, 8888)
    assert.strictEqual(sum.cdhUrl, "http://127.0.0.1:8006")
    assert.strictEqual(summary(decodeOk(KUBECTL_COCO_ENV)).forwardPort, null)
  })
})

const withEnv = (env: Record<string, string>) =>
  Effect.provideService(ConfigProvider.ConfigProvider, ConfigProvider.fromEnv({ env }))

describe("load (ConfigProvider)", () => {
  it.effect("reads the kubectl-coco env", () =>
    Effect.gen(function* () {
      const s = yield* load.pipe(withEnv({ ...KUBECTL_COCO_ENV, FORWARD_PORT: "8888", PATH: "/usr/bin" }))
      assert.strictEqual(s.tlsCertUri.uri, KUBECTL_COCO_ENV.TLS_CERT_URI)
      assert.strictEqual(s.clientCaUri.uri, KUBECTL_COCO_ENV.CLIENT_CA_URI)
      assert.strictEqual(s.httpsPort, 8443)
      assert.strictEqual(s.podNamespace, "shop")
      assert.deepStrictEqual(s.forwardPort, Option.some(8888))
      assert.strictEqual(s.cdh.url, "http://127.0.0.1:8006")
    }),
  )

  it.effect("treats an empty FORWARD_PORT as unset", () =>
    Effect.gen(function* () {
      const s = yield* load.pipe(withEnv({ ...KUBECTL_COCO_ENV, FORWARD_PORT: "" }))
      assert.isTrue(Option.isNone(s.forwardPort))
    }),
  )

  it.effect("fails with InvalidConfig listing every problem", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip(load.pipe(withEnv({ HTTPS_PORT: "70000", POD_NAME: "p" })))
      assert.strictEqual(error._tag, "InvalidConfig")
      if (!(error instanceof InvalidConfig)) return assert.fail("expected InvalidConfig")
      assert.deepStrictEqual(
        error.problems.map((p) => p.variable),
        ["TLS_CERT_URI", "TLS_KEY_URI", "CLIENT_CA_URI", "HTTPS_PORT"],
      )
      expect(error.message).toContain('HTTPS_PORT="70000"')
    }),
  )

  it.effect("SidecarConfig.layer provides the decoded settings", () =>
    Effect.gen(function* () {
      const s = yield* SidecarConfig
      assert.strictEqual(s.tlsKeyUri.uri, KUBECTL_COCO_ENV.TLS_KEY_URI)
    }).pipe(Effect.provide(SidecarConfig.layer), withEnv(KUBECTL_COCO_ENV)),
  )

  it.effect("SidecarConfig.layerFrom provides given settings", () =>
    Effect.gen(function* () {
      const settings = decodeOk(KUBECTL_COCO_ENV)
      const s = yield* Effect.service(SidecarConfig).pipe(Effect.provide(SidecarConfig.layerFrom(settings)))
      assert.strictEqual(s, settings)
    }),
  )
})

describe("decode: SIDECAR_PATH_PREFIX", () => {
  it.each([
    { label: "unset", value: undefined, expected: "" },
    { label: "empty", value: "", expected: "" },
    { label: "/.sidecar", value: "/.sidecar", expected: "/.sidecar" },
    { label: "/coco/sidecar", value: "/coco/sidecar", expected: "/coco/sidecar" },
  ])("$label gives pathPrefix $expected", ({ value, expected }) => {
    const env: Env =
      value === undefined ? KUBECTL_COCO_ENV : { ...KUBECTL_COCO_ENV, SIDECAR_PATH_PREFIX: value }
    assert.strictEqual(decodeOk(env).pathPrefix, expected)
  })

  it.each(["/bad/", "/", "sidecar", "/..", "/a/../b", "/a b", "/%2e", "//a"])(
    "rejects %j naming the variable and the value",
    (value) => {
      const error = decodeErr({ ...KUBECTL_COCO_ENV, SIDECAR_PATH_PREFIX: value })
      assert.deepStrictEqual(
        error.problems.map((p) => [p.variable, p.value]),
        [["SIDECAR_PATH_PREFIX", value]],
      )
      expect(error.message).toContain(`SIDECAR_PATH_PREFIX=${JSON.stringify(value)}`)
    },
  )
})

describe("decode: FORWARD_CONNECT_TIMEOUT / FORWARD_RESPONSE_TIMEOUT", () => {
  it("defaults to 5s and 5m", () => {
    const s = decodeOk(KUBECTL_COCO_ENV)
    assert.strictEqual(millis(s.forward.connectTimeout), 5_000)
    assert.strictEqual(millis(s.forward.responseTimeout), 300_000)
  })

  it("treats empty values as unset", () => {
    const s = decodeOk({ ...KUBECTL_COCO_ENV, FORWARD_CONNECT_TIMEOUT: "", FORWARD_RESPONSE_TIMEOUT: "" })
    assert.strictEqual(millis(s.forward.connectTimeout), 5_000)
    assert.strictEqual(millis(s.forward.responseTimeout), 300_000)
  })

  it("reads both", () => {
    const s = decodeOk({
      ...KUBECTL_COCO_ENV,
      FORWARD_PORT: "8080",
      FORWARD_CONNECT_TIMEOUT: "1500ms",
      FORWARD_RESPONSE_TIMEOUT: "1m30s",
    })
    assert.strictEqual(millis(s.forward.connectTimeout), 1_500)
    assert.strictEqual(millis(s.forward.responseTimeout), 90_000)
  })

  it.each([
    { variable: "FORWARD_CONNECT_TIMEOUT", value: "0s", reason: "greater than zero" },
    { variable: "FORWARD_CONNECT_TIMEOUT", value: "0ms", reason: "greater than zero" },
    { variable: "FORWARD_CONNECT_TIMEOUT", value: "abc", reason: "duration" },
    { variable: "FORWARD_CONNECT_TIMEOUT", value: "5", reason: "duration" },
    { variable: "FORWARD_RESPONSE_TIMEOUT", value: "0s", reason: "greater than zero" },
    { variable: "FORWARD_RESPONSE_TIMEOUT", value: "abc", reason: "duration" },
    { variable: "FORWARD_RESPONSE_TIMEOUT", value: "-1s", reason: "duration" },
  ] as const)("rejects $variable=$value", ({ variable, value, reason }) => {
    const error = decodeErr({ ...KUBECTL_COCO_ENV, [variable]: value })
    assert.deepStrictEqual(
      error.problems.map((p) => [p.variable, p.value]),
      [[variable, value]],
    )
    expect(error.message).toContain(`${variable}=${JSON.stringify(value)}`)
    expect(error.message).toContain(reason)
  })

  it("reports both timeouts and the prefix at once", () => {
    const error = decodeErr({
      ...KUBECTL_COCO_ENV,
      FORWARD_CONNECT_TIMEOUT: "0s",
      FORWARD_RESPONSE_TIMEOUT: "abc",
      SIDECAR_PATH_PREFIX: "/bad/",
    })
    assert.deepStrictEqual(
      error.problems.map((p) => p.variable),
      ["FORWARD_CONNECT_TIMEOUT", "FORWARD_RESPONSE_TIMEOUT", "SIDECAR_PATH_PREFIX"],
    )
  })
})
