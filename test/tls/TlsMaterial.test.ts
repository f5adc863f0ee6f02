import { X509Certificate } from "node:crypto"
import { assert, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Logger, Redacted, References, Result } from "effect"
import { TestClock } from "effect/testing"
import { CdhHttpError, ResourceUnavailable } from "../../src/cdh/ResourceClient.ts"
import { decode, type Settings, SidecarConfig } from "../../src/config/SidecarConfig.ts"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import { createDevPki, type DevPki, type Issued, issue } from "../../src/dev/DevPki.ts"
import { CertificateExpired, KeyMismatch } from "../../src/tls/errors.ts"
import { daysUntil, EXPIRY_WARNING_DAYS, TlsMaterial } from "../../src/tls/TlsMaterial.ts"

const CERT_PATH = "shop/sidecar-tls-web/server-cert"
const KEY_PATH = "shop/sidecar-tls-web/server-key"
const CA_PATH = "default/sidecar-tls/client-ca"
const CERT_URI = `kbs:///${CERT_PATH}`
const KEY_URI = `kbs:///${KEY_PATH}`
const CA_URI = `kbs:///${CA_PATH}`
const DAY_MS = 86_400_000

const settings: Settings = (() => {
  const result = decode({
    TLS_CERT_URI: CERT_URI,
    TLS_KEY_URI: KEY_URI,
    CLIENT_CA_URI: CA_URI,
    HTTPS_PORT: "8443",
    POD_NAME: "web-0",
    POD_NAMESPACE: "shop",
    CDH_STARTUP_TIMEOUT: "1s",
    CDH_RETRY_BASE: "10ms",
    CDH_RETRY_MAX: "100ms",
  })
  if (Result.isFailure(result)) throw new Error(result.failure.message)
  return result.success
})()

let pki: DevPki
let expiringSoon: Issued
let expired: Issued

beforeAll(async () => {
  pki = await createDevPki()
  const now = Date.now()
  ;[expiringSoon, expired] = await Promise.all([
    issue(pki.ca, { cn: "soon", kind: "server", notAfter: new Date(now + 10 * DAY_MS) }),
    issue(pki.ca, {
      cn: "expired",
      kind: "server",
      notBefore: new Date(now - 30 * DAY_MS),
      notAfter: new Date(now - DAY_MS),
    }),
  ])
})

interface Captured {
  readonly level: string
  readonly text: string
}

/** Replaces the loggers with one that records level, message and annotations as text. */
const capturing = (into: Array<Captured>) =>
  Logger.layer([
    Logger.make(({ logLevel, message, fiber }) => {
      const annotations = fiber.getRef(References.CurrentLogAnnotations)
      into.push({ level: logLevel, text: JSON.stringify({ message, annotations }) })
    }),
  ])

const goodStore = (): Record<string, string> => ({
  [CERT_PATH]: pki.server.certPem,
  [KEY_PATH]: pki.server.keyPem,
  [CA_PATH]: pki.ca.certPem,
})

const tlsLayer = (store: Record<string, string>, logs: Array<Captured> = []) =>
  TlsMaterial.layer.pipe(
    Layer.provide(Layer.mergeAll(MemoryResourceClient.layer(store), SidecarConfig.layerFrom(settings))),
    Layer.provide(capturing(logs)),
  )

const current = Effect.gen(function* () {
  const tls = yield* TlsMaterial
  return yield* tls.current
})

const keyLines = (pem: string): Array<string> =>
  pem
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0)

describe("TlsMaterial.layer", () => {
  it.live("loads good material; the key stays redacted", () =>
    Effect.gen(function* () {
      const logs: Array<Captured> = []
      const m = yield* current.pipe(Effect.provide(tlsLayer(goodStore(), logs)))
      assert.strictEqual(m.certPem, pki.server.certPem.trimEnd())
      assert.strictEqual(m.caPem, pki.ca.certPem.trimEnd())
      assert.strictEqual(m.server.subject, "C=US, O=Confidential Containers, CN=localhost")
      assert.strictEqual(m.server.serialNumber.toLowerCase(), pki.server.cert.serialNumber.toLowerCase())
      expect(m.server.subjectAltName).toContain("DNS:localhost")
      expect(m.server.subjectAltName).toContain("IP Address:127.0.0.1")
      assert.deepStrictEqual(
        m.clientCas.map((c) => c.subject),
        ["C=US, O=Confidential Containers, CN=CoCo Sidecar Dev CA"],
      )
      assert.isTrue(Redacted.isRedacted(m.keyPem))
      assert.strictEqual(Redacted.value(m.keyPem), pki.server.keyPem)
      const shown = [String(m.keyPem), `${m.keyPem}`, JSON.stringify(m), JSON.stringify({ key: m.keyPem })]
      for (const text of shown) {
        expect(text).not.toContain("PRIVATE KEY")
        for (const line of keyLines(pki.server.keyPem)) expect(text).not.toContain(line)
      }
      const loaded = logs.find((l) => l.text.includes("TLS material loaded"))
      assert.isDefined(loaded)
      expect(loaded?.text).toContain("CN=localhost")
      assert.isUndefined(logs.find((l) => l.text.includes("expires soon")))
      for (const log of logs) {
        for (const line of keyLines(pki.server.keyPem)) expect(log.text).not.toContain(line)
      }
    }),
  )

  it.live("warns when the server certificate expires within the warning window", () =>
    Effect.gen(function* () {
      const logs: Array<Captured> = []
      const store = { ...goodStore(), [CERT_PATH]: expiringSoon.certPem, [KEY_PATH]: expiringSoon.keyPem }
      const m = yield* current.pipe(Effect.provide(tlsLayer(store, logs)))
      assert.strictEqual(m.server.subject, "C=US, CN=soon")
      const warning = logs.find((l) => l.text.includes("server certificate expires soon"))
      assert.isDefined(warning)
      assert.strictEqual(warning?.level, "Warn")
      expect(warning?.text).toContain(CERT_URI)
    }),
  )

  it.live("retries a transient CDH failure during start-up", () =>
    Effect.gen(function* () {
      const layer = Layer.mergeAll(MemoryResourceClient.layer(goodStore()), SidecarConfig.layerFrom(settings))
      const program = Effect.gen(function* () {
        const cdh = yield* MemoryResourceClient.MemoryCdh
        cdh.failNext(2, { _tag: "Unreachable" })
        const m = yield* current.pipe(Effect.provide(TlsMaterial.layer))
        return { m, requests: cdh.requests.length }
      })
      const { m, requests } = yield* program.pipe(Effect.provide(layer), Effect.provide(capturing([])))
      assert.strictEqual(m.server.subject, "C=US, O=Confidential Containers, CN=localhost")
      assert.strictEqual(requests, 5)
    }),
  )

  it.effect("fails with ResourceUnavailable naming the CA URI when the CA resource is missing", () =>
    Effect.gen(function* () {
      const store = goodStore()
      delete store[CA_PATH]
      const fiber = yield* Effect.forkChild(Effect.flip(current.pipe(Effect.provide(tlsLayer(store)))))
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      if (!(error instanceof ResourceUnavailable))
        return assert.fail(`expected ResourceUnavailable, got ${error._tag}`)
      assert.strictEqual(error._tag, "ResourceUnavailable")
      assert.strictEqual(error.uri, CA_URI)
      assert.isAbove(error.attempts, 1)
      expect(error.message).toContain(CA_URI)
      expect(error.message).toContain("HTTP 500")
      assert.instanceOf(error.last, CdhHttpError)
      assert.strictEqual(error.last.status, 500)
    }),
  )

  it.effect("fails with the validation error when the material is unusable", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(Date.now())
      const mismatch = yield* Effect.flip(
        current.pipe(Effect.provide(tlsLayer({ ...goodStore(), [KEY_PATH]: pki.client.keyPem }))),
      )
      if (!(mismatch instanceof KeyMismatch)) return assert.fail(`expected KeyMismatch, got ${mismatch._tag}`)
      assert.strictEqual(mismatch.certUri, CERT_URI)
      assert.strictEqual(mismatch.keyUri, KEY_URI)

      const store = { ...goodStore(), [CERT_PATH]: expired.certPem, [KEY_PATH]: expired.keyPem }
      const error = yield* Effect.flip(current.pipe(Effect.provide(tlsLayer(store))))
      if (!(error instanceof CertificateExpired))
        return assert.fail(`expected CertificateExpired, got ${error._tag}`)
      assert.strictEqual(error.uri, CERT_URI)
      assert.strictEqual(error.notAfter, new X509Certificate(expired.certPem).validToDate.toISOString())
    }),
  )

  it.effect("judges validity by the Effect clock", () =>
    Effect.gen(function* () {
      // The TestClock starts at the epoch, long before any certificate's notBefore.
      const error = yield* Effect.flip(current.pipe(Effect.provide(tlsLayer(goodStore()))))
      assert.strictEqual(error._tag, "CertificateNotYetValid")
      const now = Date.now()
      yield* TestClock.setTime(now)
      const m = yield* current.pipe(Effect.provide(tlsLayer(goodStore())))
      assert.strictEqual(m.fetchedAt.getTime(), now)
    }),
  )
})

describe("daysUntil", () => {
  it.each([
    { deltaMs: 0, days: 0 },
    { deltaMs: DAY_MS - 1, days: 0 },
    { deltaMs: DAY_MS, days: 1 },
    { deltaMs: 45 * DAY_MS + 5, days: 45 },
    { deltaMs: -1, days: -1 },
  ])("$deltaMs ms ahead is $days days", ({ deltaMs, days }) => {
    const now = new Date("2025-01-01T00:00:00Z")
    assert.strictEqual(daysUntil(new Date(now.getTime() + deltaMs), now), days)
  })

  it("warns 30 days ahead", () => {
    assert.strictEqual(EXPIRY_WARNING_DAYS, 30)
  })
})
