/**
 * The whole sidecar in-process over real TLS on 127.0.0.1, its CDH being the
 * mock CDH HTTP server: what a client with and without the right certificate
 * gets, and how start-up behaves when the CDH is slow or a resource missing.
 */
import { execFile } from "node:child_process"
import { mkdtemp, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { assert, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import * as MockCdh from "../src/dev/cdh/MockCdhServer.ts"
import { AttestationResponse, StatusResponse } from "../src/server/api/SidecarApi.ts"
import { type Fixtures, makeFixtures, resourcesFor, URIS } from "./support/fixtures.ts"
import { get, refusal } from "./support/https.ts"
import { capture } from "./support/logs.ts"
import { httpClient, settingsFor, start } from "./support/sidecar.ts"

const run = promisify(execFile)

let pki: Fixtures
beforeAll(async () => {
  pki = await makeFixtures()
})

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

/** A running sidecar with a healthy mock CDH; the URL and captured logs. */
const running = (env: Record<string, string> = {}) =>
  Effect.gen(function* () {
    const cdh = yield* MockCdh.scoped({ resources: resourcesFor(pki) })
    const logs = capture()
    const settings = settingsFor({ CDH_URL: cdh.url, ...env })
    const url = yield* start(settings, httpClient(settings)).pipe(Effect.provide(logs.layer))
    return { url, cdh, logs }
  })

describe("Sidecar over mTLS", () => {
  it.live("serves /api/status, /api/attestation and the dashboard to a client of the CA", () =>
    Effect.gen(function* () {
      const { url, cdh } = yield* running()
      const status = yield* Effect.promise(() => get(`${url}/api/status`, client()))
      expect(status.status).toBe(200)
      expect(status.headers["content-type"]).toMatch(/^application\/json/)
      const body = JSON.parse(status.body)
      expect(body).toMatchObject({ podName: "web-0", namespace: "shop", version: "0.1.0", forwardPort: null })
      expect(body.serverCertificate.subject).toContain("CN=localhost")

      // The attestation check runs in the background; wait for it rather than for a fixed time.
      let attestation = JSON.parse(
        (yield* Effect.promise(() => get(`${url}/api/attestation`, client()))).body,
      )
      for (let i = 0; i < 50 && attestation.status !== "verified"; i++) {
        yield* Effect.sleep("20 millis")
        attestation = JSON.parse((yield* Effect.promise(() => get(`${url}/api/attestation`, client()))).body)
      }
      expect(attestation.details).toMatch(
        /^TEE attestation successful: the KBS released kbs:\/\/\/default\/attestation-status\/status/,
      )
      expect(attestation.meaning).toContain("not an appraisal of the TEE evidence")
      expect(attestation).toMatchObject({
        status: "verified",
        resource: "kbs:///default/attestation-status/status",
        httpStatus: 200,
        certificatesFromKBS: true,
      })
      expect(Date.parse(attestation.timestamp)).not.toBeNaN()
      const again = JSON.parse((yield* Effect.promise(() => get(`${url}/api/status`, client()))).body)
      expect(again.attested).toBe(true)

      // Served from cache: the requests above did not reach the CDH again.
      const statusFetches = cdh.requests.filter((r) => r.path.endsWith("/attestation-status/status"))
      expect(statusFetches).toHaveLength(1)

      for (const path of ["/", "/dashboard"]) {
        const page = yield* Effect.promise(() => get(`${url}${path}`, client()))
        expect(page.status).toBe(200)
        expect(page.headers["content-type"]).toMatch(/^text\/html/)
        expect(page.body).toContain('<dd id="client-cn">developer</dd>')
        expect(page.body).toContain("web-0")
        expect(page.body).toContain("shop")
        expect(page.headers["content-security-policy"]).toContain("default-src 'none'")
        expect(page.headers["x-content-type-options"]).toBe("nosniff")
        // Nothing loaded from outside the pod: no absolute URL in src/href at all.
        expect(page.body).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i)
      }
    }),
  )

  it.live("serves JSON that decodes with the API's schemas, and the OpenAPI document describing it", () =>
    Effect.gen(function* () {
      const { url } = yield* running()
      const status = yield* Effect.promise(() => get(`${url}/api/status`, client()))
      const decoded = Schema.decodeUnknownSync(StatusResponse)(JSON.parse(status.body))
      expect(decoded.serverCertificate.subject).toContain("CN=localhost")
      expect(decoded.clientCas[0]?.subject).toContain("CN=CoCo Sidecar Dev CA")
      expect(status.headers["x-content-type-options"]).toBe("nosniff")
      expect(status.headers["cache-control"]).toBe("no-store")
      expect(status.headers["content-security-policy"]).toContain("default-src 'none'")
      const attestation = yield* Effect.promise(() => get(`${url}/api/attestation`, client()))
      expect(() => Schema.decodeUnknownSync(AttestationResponse)(JSON.parse(attestation.body))).not.toThrow()

      const openapi = yield* Effect.promise(() => get(`${url}/api/openapi.json`, client()))
      expect(openapi.status).toBe(200)
      const document = JSON.parse(openapi.body)
      expect(document.openapi).toMatch(/^3\./)
      expect(Object.keys(document.paths).sort()).toEqual(["/api/attestation", "/api/evidence", "/api/status"])
      expect(document.paths["/api/evidence"].get.parameters[0].name).toBe("nonce")
      expect(JSON.stringify(document.paths["/api/evidence"].get.responses["200"])).toContain(
        "serverPublicKeySha256",
      )
      expect(JSON.stringify(document.paths["/api/status"])).toContain("podName")
    }),
  )

  it.live("never shows a sensitive environment value in the status", () =>
    Effect.gen(function* () {
      const cdh = yield* MockCdh.scoped({ resources: resourcesFor(pki) })
      const settings = settingsFor({ CDH_URL: cdh.url, ENV_ALLOWLIST: "APP_MODE,DB_TOKEN" })
      const environment = {
        APP_MODE: "production",
        DB_TOKEN: "tok-123456",
        API_KEY: "key-abcdef",
        HOSTNAME: "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----",
        UNLISTED: "hello",
      }
      const url = yield* start(settings, httpClient(settings), environment).pipe(
        Effect.provide(capture().layer),
      )
      const status = yield* Effect.promise(() => get(`${url}/api/status`, client()))
      const body = JSON.parse(status.body)
      expect(body.environment).toEqual([
        { name: "API_KEY", shown: false, reason: "sensitive" },
        { name: "APP_MODE", shown: true, value: "production" },
        { name: "DB_TOKEN", shown: false, reason: "sensitive" },
        { name: "HOSTNAME", shown: false, reason: "sensitive" },
        { name: "UNLISTED", shown: false, reason: "not-allowlisted" },
      ])
      const page = yield* Effect.promise(() => get(`${url}/dashboard`, client()))
      for (const secret of ["tok-123456", "key-abcdef", "MIIB", "hello"]) {
        expect(status.body).not.toContain(secret)
        expect(page.body).not.toContain(secret)
      }
    }),
  )

  it.live("answers unknown paths with 404 as JSON or HTML by Accept", () =>
    Effect.gen(function* () {
      const { url } = yield* running()
      const asJson = yield* Effect.promise(() => get(`${url}/nope`, client()))
      expect(asJson.status).toBe(404)
      expect(JSON.parse(asJson.body)).toMatchObject({ status: 404, error: "Not Found" })
      const asHtml = yield* Effect.promise(() => get(`${url}/nope`, client(), { accept: "text/html" }))
      expect(asHtml.status).toBe(404)
      expect(asHtml.body).toContain("<h1>404 Not Found</h1>")
    }),
  )

  it.live("moves the dashboard to /dashboard when FORWARD_PORT is set", () =>
    Effect.gen(function* () {
      const { url } = yield* running({ FORWARD_PORT: "8888" })
      expect((yield* Effect.promise(() => get(`${url}/dashboard`, client()))).status).toBe(200)
      const root = yield* Effect.promise(() => get(`${url}/`, client()))
      expect(root.body).not.toContain("client-cn")
      const status = JSON.parse((yield* Effect.promise(() => get(`${url}/api/status`, client()))).body)
      expect(status.forwardPort).toBe(8888)
    }),
  )

  it.live(
    "refuses, at the TLS layer, clients without a certificate, of another CA, expired, or on TLS 1.2",
    () =>
      Effect.gen(function* () {
        const { url, logs } = yield* running()
        const ca = pki.ca.certPem
        // The positive control: the same URL answers a good client.
        expect((yield* Effect.promise(() => get(`${url}/api/status`, client()))).status).toBe(200)

        const noCert = yield* Effect.promise(() => refusal(get(`${url}/api/status`, { ca })))
        expect(noCert).toMatch(/^ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED/)

        // Node verifies after the handshake and drops the connection before reading a request.
        const stranger = { cert: pki.strangerClient.certPem, key: pki.strangerClient.keyPem, ca }
        expect(yield* Effect.promise(() => refusal(get(`${url}/api/status`, stranger)))).toMatch(
          /ECONNRESET|socket hang up/,
        )
        const expired = { cert: pki.expiredClient.certPem, key: pki.expiredClient.keyPem, ca }
        expect(yield* Effect.promise(() => refusal(get(`${url}/api/status`, expired)))).toMatch(
          /ECONNRESET|socket hang up/,
        )

        const tls12 = yield* Effect.promise(() =>
          refusal(get(`${url}/api/status`, { ...client(), maxVersion: "TLSv1.2" })),
        )
        expect(tls12).toMatch(/^EPROTO: .*protocol version/)

        // Each refusal leaves a log line with its reason.
        yield* Effect.sleep("50 millis")
        const reasons = logs.lines
          .filter((l) => l.message === "TLS handshake rejected")
          .map((l) => l.annotations.reason)
        expect(reasons).toEqual([
          "ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE",
          "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
          "CERT_HAS_EXPIRED",
          "ERR_SSL_UNSUPPORTED_PROTOCOL",
        ])
      }),
  )

  it.live(
    "is refused by curl and openssl without a client certificate and over TLS 1.2, and serves curl with one",
    () =>
      Effect.gen(function* () {
        const { url } = yield* running()
        const dir = yield* Effect.promise(() => writeClientFiles())
        const ok = yield* Effect.promise(() =>
          run("curl", ["-sS", "--cacert", dir.ca, "--cert", dir.cert, "--key", dir.key, `${url}/api/status`]),
        )
        expect(JSON.parse(ok.stdout).podName).toBe("web-0")
        const noCert = yield* Effect.promise(() =>
          run("curl", ["-sS", "--cacert", dir.ca, `${url}/api/status`]).then(
            () => "served",
            (e: { code: number; stderr: string }) => `${e.code} ${e.stderr}`,
          ),
        )
        expect(noCert).toMatch(/certificate required/)
        const { port } = new URL(url)
        const tls12 = yield* Effect.promise(() =>
          run("openssl", [
            "s_client",
            "-connect",
            `127.0.0.1:${port}`,
            "-tls1_2",
            "-cert",
            dir.cert,
            "-key",
            dir.key,
            "-CAfile",
            dir.ca,
          ]).then(
            () => "connected",
            (e: { code: number; stdout: string; stderr: string }) => `${e.code} ${e.stdout} ${e.stderr}`,
          ),
        )
        expect(tls12).toMatch(/protocol version|no protocols available|wrong version/i)
      }),
  )
})

describe("Sidecar start-up", () => {
  it.live("waits for a CDH that is not listening yet, retrying, then serves", () =>
    Effect.gen(function* () {
      const cdh = yield* MockCdh.scoped({ resources: resourcesFor(pki), unavailableForMs: 1200 })
      const logs = capture()
      const settings = settingsFor({ CDH_URL: cdh.url, CDH_RETRY_BASE: "100ms", CDH_RETRY_MAX: "400ms" })
      const url = yield* start(settings, httpClient(settings)).pipe(Effect.provide(logs.layer))
      expect((yield* Effect.promise(() => get(`${url}/api/status`, client()))).status).toBe(200)
      const retries = logs.lines.filter((l) => l.message === "CDH fetch failed, retrying")
      expect(retries.length).toBeGreaterThan(0)
      expect(String(retries[0]?.annotations.cause)).toContain("ECONNREFUSED")
      expect(retries.map((l) => l.annotations.uri)).toContain(URIS.TLS_CERT_URI)
    }),
  )

  it.live("fails start-up naming the URI when a resource is missing, and never listens", () =>
    Effect.gen(function* () {
      const { "default/sidecar-tls/client-ca": _, ...withoutCa } = resourcesFor(pki)
      const cdh = yield* MockCdh.scoped({ resources: withoutCa })
      const logs = capture()
      const settings = settingsFor({ CDH_URL: cdh.url, CDH_STARTUP_TIMEOUT: "1s", CDH_RETRY_BASE: "50ms" })
      const error = yield* start(settings, httpClient(settings)).pipe(Effect.provide(logs.layer), Effect.flip)
      assert.strictEqual(error._tag, "ResourceUnavailable")
      expect(error.message).toContain(URIS.CLIENT_CA_URI)
      expect(error.message).toContain("HTTP 500")
      expect(logs.lines.some((l) => l.message === "listening")).toBe(false)
    }),
  )

  it.live("fails start-up when the key does not match the certificate, naming both URIs", () =>
    Effect.gen(function* () {
      const resources = { ...resourcesFor(pki), "shop/sidecar-tls-web/server-key": pki.client.keyPem }
      const cdh = yield* MockCdh.scoped({ resources })
      const settings = settingsFor({ CDH_URL: cdh.url })
      const error = yield* start(settings, httpClient(settings)).pipe(
        Effect.provide(capture().layer),
        Effect.flip,
      )
      assert.strictEqual(error._tag, "KeyMismatch")
      expect(error.message).toContain(URIS.TLS_KEY_URI)
      expect(error.message).toContain(URIS.TLS_CERT_URI)
      expect(error.message).not.toContain("PRIVATE KEY")
    }),
  )

  it.live("serves with attested=false when the attestation-status resource is missing", () =>
    Effect.gen(function* () {
      const { "default/attestation-status/status": _, ...resources } = resourcesFor(pki)
      const cdh = yield* MockCdh.scoped({ resources })
      const settings = settingsFor({ CDH_URL: cdh.url, CDH_RETRY_BASE: "1s" })
      const url = yield* start(settings, httpClient(settings)).pipe(Effect.provide(capture().layer))
      let attestation = JSON.parse(
        (yield* Effect.promise(() => get(`${url}/api/attestation`, client()))).body,
      )
      for (let i = 0; i < 50 && attestation.httpStatus === null; i++) {
        yield* Effect.sleep("20 millis")
        attestation = JSON.parse((yield* Effect.promise(() => get(`${url}/api/attestation`, client()))).body)
      }
      expect(attestation).toMatchObject({ status: "unavailable", timestamp: "unavailable", httpStatus: 500 })
      expect(attestation.details).toContain("kbs:///default/attestation-status/status")
      const status = JSON.parse((yield* Effect.promise(() => get(`${url}/api/status`, client()))).body)
      expect(status.attested).toBe(false)
    }),
  )
})

const writeClientFiles = async () => {
  const dir = await mkdtemp(join(tmpdir(), "sidecar-client-"))
  const files = { ca: join(dir, "ca.pem"), cert: join(dir, "client.pem"), key: join(dir, "client-key.pem") }
  await writeFile(files.ca, pki.ca.certPem)
  await writeFile(files.cert, pki.client.certPem)
  await writeFile(files.key, pki.client.keyPem, { mode: 0o600 })
  return files
}
