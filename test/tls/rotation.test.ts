/**
 * Certificate and client-CA rotation in a running sidecar (in-process, real
 * mTLS on 127.0.0.1): new handshakes get the new material, established
 * connections and WebSockets carry on, broken material is refused and reported.
 */
import { X509Certificate } from "node:crypto"
import * as tls from "node:tls"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import { createCa, type Issued, issue } from "../../src/dev/DevPki.ts"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { capture } from "../support/logs.ts"
import { inProcess, settingsFor, start } from "../support/sidecar.ts"
import { nextMessage, openWebSocket, sessionRequest } from "../support/tlsClient.ts"

const CERT = "shop/sidecar-tls-web/server-cert"
const KEY = "shop/sidecar-tls-web/server-key"
const CA = "default/sidecar-tls/client-ca"

let pki: Fixtures
let backend: Backend
let memory: ReturnType<typeof MemoryResourceClient.make>
let url: string
const scope = Effect.runSync(Scope.make())

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
  memory = MemoryResourceClient.make(resourcesFor(pki))
  url = await Effect.runPromise(
    start(
      settingsFor({ FORWARD_PORT: String(backend.port), TLS_REFRESH_INTERVAL: "150ms" }),
      memory.layer,
    ).pipe(Effect.provide(capture().layer), Scope.provide(scope)),
  )
})
/** Sidecars of their own, for the tests that must not disturb the shared one. */
const own = inProcess()

afterAll(async () => {
  await own.closeAll()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await backend.close()
})

/** The serial number a new handshake is served, and whether the client was accepted. */
const handshake = (client: Issued, ca: string = pki.ca.certPem) => handshakeAt({ url }, client, ca)

const handshakeAt = (target: { readonly url: string }, client: Issued, ca: string = pki.ca.certPem) =>
  new Promise<{ readonly serial: string; readonly accepted: boolean }>((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: Number(new URL(target.url).port),
      cert: client.certPem,
      key: client.keyPem,
      ca,
      servername: "localhost",
    })
    socket.once("secureConnect", () => {
      const serial = socket.getPeerCertificate().serialNumber
      // Under TLS 1.3 the server judges the client certificate after the handshake: ask something.
      socket.write("GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      let answered = false
      socket.on("data", () => {
        answered = true
      })
      socket.once("close", () => resolve({ serial, accepted: answered }))
    })
    socket.once("error", (error: NodeJS.ErrnoException) =>
      error.code === "ECONNRESET" ? undefined : reject(error),
    )
  })

const waitFor = async <A>(probe: () => Promise<A>, done: (a: A) => boolean, ms = 5000): Promise<A> => {
  const until = Date.now() + ms
  for (;;) {
    const value = await probe()
    if (done(value) || Date.now() > until) return value
    await new Promise((r) => setTimeout(r, 50))
  }
}

const status = async () => JSON.parse((await get(`${url}/api/status`, client())).body)
const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

describe("rotation", () => {
  it("rotates the server certificate 3 times under load without failing a request or a WebSocket", async () => {
    const socket = await openWebSocket(url, pki)
    let failures = 0
    let done = 0
    let stop = false
    // A steady stream of requests, each on a new connection (so each does a handshake).
    const load = (async () => {
      while (!stop) {
        try {
          const reply = await get(`${url}/load`, client())
          if (reply.status !== 200) failures++
        } catch {
          failures++
        }
        done++
      }
    })()
    const serials = [(await handshake(pki.client)).serial]
    for (let round = 0; round < 3; round++) {
      const next = await issue(pki.ca, {
        cn: "localhost",
        kind: "server",
        dnsNames: ["localhost"],
        ipAddresses: ["127.0.0.1"],
      })
      memory.controls.set(CERT, next.certPem)
      memory.controls.set(KEY, next.keyPem)
      const seen = await waitFor(
        () => handshake(pki.client),
        (h) => h.serial === next.cert.serialNumber.toUpperCase(),
      )
      expect(seen.serial).toBe(next.cert.serialNumber.toUpperCase())
      expect(seen.accepted).toBe(true)
      serials.push(seen.serial)
      // The WebSocket opened before any rotation still works.
      socket.send(`round ${round}`)
      expect((await nextMessage(socket)).data.toString()).toBe(`round ${round}`)
    }
    stop = true
    await load
    expect(new Set(serials).size).toBe(4)
    expect(done).toBeGreaterThan(10)
    expect(failures).toBe(0)
    const body = await status()
    expect(body.tlsRefresh.rotations).toBeGreaterThanOrEqual(3)
    expect(body.tlsRefresh.lastError).toBeNull()
    socket.close(1000)
  }, 30_000)

  it("keeps serving the current certificate when the new one is broken, and reports why", async () => {
    const before = (await handshake(pki.client)).serial
    const good = { cert: pki.server.certPem, key: pki.server.keyPem }
    memory.controls.set(CERT, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    const failing = await waitFor(status, (s) => s.tlsRefresh.lastError !== null)
    expect(failing.tlsRefresh.lastError).toContain("kbs:///shop/sidecar-tls-web/server-cert")
    const during = await handshake(pki.client)
    expect(during.serial).toBe(before)
    expect(during.accepted).toBe(true)
    // A key that does not match is refused the same way.
    memory.controls.set(CERT, pki.server.certPem)
    memory.controls.set(KEY, pki.client.keyPem)
    const mismatch = await waitFor(status, (s) => String(s.tlsRefresh.lastError).includes("does not belong"))
    expect(mismatch.tlsRefresh.lastError).toContain("kbs:///shop/sidecar-tls-web/server-key")
    memory.controls.set(CERT, good.cert)
    memory.controls.set(KEY, good.key)
    const recovered = await waitFor(status, (s) => s.tlsRefresh.lastError === null)
    expect(recovered.tlsRefresh.lastError).toBeNull()
  }, 15_000)

  it("applies a rotated client CA to new handshakes", async () => {
    const newCa = await createCa({ cn: "Rotated Client CA" })
    const newClient = await issue(newCa, { cn: "new-developer", kind: "client" })
    expect((await handshake(newClient)).accepted).toBe(false)
    memory.controls.set(CA, newCa.certPem)
    const accepted = await waitFor(
      () => handshake(newClient),
      (h) => h.accepted,
    )
    expect(accepted.accepted).toBe(true)
    expect((await handshake(pki.client)).accepted).toBe(false)
    // Both during a CA rollover: a bundle of the two.
    memory.controls.set(CA, `${pki.ca.certPem}\n${newCa.certPem}`)
    const both = await waitFor(
      () => handshake(pki.client),
      (h) => h.accepted,
    )
    expect(both.accepted).toBe(true)
    expect((await handshake(newClient)).accepted).toBe(true)
  }, 15_000)
})

describe("finding 2: material OpenSSL refuses", () => {
  it("is refused with its URI, keeps the served material, and later rotations still apply", async () => {
    const { url: ownUrl, logs, cdh } = await own.start(pki, { TLS_REFRESH_INTERVAL: "100ms" })
    const shake = (who: Issued) => handshakeAt({ url: ownUrl }, who)
    const ownStatus = async () => JSON.parse((await get(`${ownUrl}/api/status`, client())).body)
    const before = (await shake(pki.client)).serial

    // An RSA-1024 key parses and matches its certificate, but OpenSSL refuses it at Node's level.
    const weak = await issue(pki.ca, {
      cn: "localhost",
      kind: "server",
      algorithm: "rsa-1024",
      dnsNames: ["localhost"],
    })
    cdh.set(CERT, weak.certPem)
    cdh.set(KEY, weak.keyPem)
    const refused = await waitFor(ownStatus, (s) => s.tlsRefresh.lastError !== null)
    expect(refused.tlsRefresh.lastError).toContain("kbs:///shop/sidecar-tls-web/server-key")
    expect(refused.tlsRefresh.lastError).toContain("OpenSSL refuses the private key")
    expect(refused.serverCertificate.serialNumber).toBe(new X509Certificate(pki.server.certPem).serialNumber)
    expect(logs.some((l) => l.message === "TLS material rotated")).toBe(false)
    const line = logs.find((l) => l.message.startsWith("TLS material refresh failed"))
    expect(String(line?.annotations.cause)).toContain("kbs:///shop/sidecar-tls-web/server-key")
    expect((await shake(pki.client)).serial).toBe(before)

    // A weak client CA is refused too: as a trust anchor OpenSSL would only fail every client.
    cdh.set(CERT, pki.server.certPem)
    cdh.set(KEY, pki.server.keyPem)
    const weakCa = await createCa({ cn: "Weak CA", algorithm: "rsa-1024" })
    cdh.set(CA, weakCa.certPem)
    const caRefused = await waitFor(ownStatus, (s) => String(s.tlsRefresh.lastError).includes("Weak CA"))
    expect(caRefused.tlsRefresh.lastError).toContain("kbs:///default/sidecar-tls/client-ca")
    expect((await shake(pki.client)).accepted).toBe(true)

    // The loop is alive: a client-CA replacement meant to revoke the old clients takes effect.
    const newCa = await createCa({ cn: "Replacement Client CA" })
    const newClient = await issue(newCa, { cn: "new-developer", kind: "client" })
    cdh.set(CA, newCa.certPem)
    const accepted = await waitFor(
      () => shake(newClient),
      (h) => h.accepted,
    )
    expect(accepted.accepted).toBe(true)
    expect((await shake(pki.client)).accepted).toBe(false)
    // The old client can no longer ask; the new one sees the truth.
    const truth = JSON.parse(
      (
        await get(`${ownUrl}/api/status`, {
          cert: newClient.certPem,
          key: newClient.keyPem,
          ca: pki.ca.certPem,
        })
      ).body,
    )
    expect(truth.tlsRefresh.lastError).toBeNull()
    expect(truth.clientCas.map((c: { subject: string }) => c.subject)).toEqual([
      "C=US, CN=Replacement Client CA",
    ])
  }, 20_000)
})

describe("finding 3: sessions across a client-CA rotation", () => {
  it("resumes no session from before the rotation: the old CA's client is refused", async () => {
    const { url: ownUrl, cdh } = await own.start(pki, { TLS_REFRESH_INTERVAL: "100ms" })
    const first = await sessionRequest(ownUrl, pki, "/api/status")
    expect(first.status).toBe(200)
    const resumed = await sessionRequest(ownUrl, pki, "/api/status", pki.client, first.session)
    expect(resumed).toMatchObject({ resumed: true, status: 200 })
    const newCa = await createCa({ cn: "Next Client CA" })
    const newClient = await issue(newCa, { cn: "next", kind: "client" })
    cdh.set(CA, newCa.certPem)
    await waitFor(
      () => handshakeAt({ url: ownUrl }, newClient),
      (h) => h.accepted,
    )
    const after = await sessionRequest(ownUrl, pki, "/api/status", pki.client, first.session)
    expect(after.resumed).toBe(false)
    expect(after.status).toBe(0)
  }, 15_000)
})

describe("SIGHUP", () => {
  it("refreshes the TLS material at once", async () => {
    const { url: hupUrl, cdh } = await own.start(pki, { TLS_REFRESH_INTERVAL: "1h" })
    const fetches = () => cdh.requests.filter((p) => p === CERT).length
    expect(fetches()).toBe(1)
    process.emit("SIGHUP", "SIGHUP")
    const after = await waitFor(
      async () => fetches(),
      (n) => n >= 2,
    )
    expect(after).toBeGreaterThanOrEqual(2)
    const body = JSON.parse((await get(`${hupUrl}/api/status`, client())).body)
    expect(body.tlsRefresh.lastAttemptAt).not.toBeNull()
  })
})
