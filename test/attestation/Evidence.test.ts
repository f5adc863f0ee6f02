/**
 * `GET /api/evidence` and the appraisal in `/api/attestation`, through the whole sidecar
 * (in-process, real mTLS on 127.0.0.1) over attestation agents the tests control: the mock CDH's
 * over HTTP, or in-memory ones that count, stall or fail.
 */
import { X509Certificate } from "node:crypto"
import * as https from "node:https"
import { inspect } from "node:util"
import { Effect, Layer } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { publicKeySha256, runtimeData } from "../../src/attestation/binding.ts"
import { AgentError, AttestationAgent } from "../../src/cdh/AttestationAgent.ts"
import { FAKE_TEE_KEYPAIR, type MockCdhOptions, startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { issue } from "../../src/dev/DevPki.ts"
import { earToken, newSigner } from "../../src/dev/earToken.ts"
import { sampleEvidence } from "../../src/dev/evidence.ts"
import { carries, readEvidence } from "../../src/verify/evidence.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { inProcess } from "../support/sidecar.ts"

let pki: Fixtures
beforeAll(async () => {
  pki = await makeFixtures()
})
const sidecars = inProcess()
const cleanup: Array<() => Promise<unknown>> = []
afterAll(async () => {
  await sidecars.closeAll()
  for (const f of cleanup.splice(0)) await f()
})

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })
const json = async (url: string) => {
  const reply = await get(url, client())
  return { ...reply, json: JSON.parse(reply.body) as Record<string, unknown> }
}
const nonce = (bytes = 32) => Buffer.alloc(bytes, 7).toString("base64url")

/** A sidecar whose CDH is the mock over HTTP, with these options. */
const withMock = async (options: MockCdhOptions, env: Record<string, string> = {}) => {
  const cdh = await startMockCdh({ resources: resourcesFor(pki), features: "all", ...options })
  cleanup.push(() => cdh.close())
  const { url, logs } = await sidecars.start(pki, { ...env, CDH_URL: cdh.url }, { cdh: "http" })
  return { url, logs, cdh }
}

/** An in-memory agent: evidence as the sample attester, after `delayMs`; calls counted. */
const counting = (delayMs = 0) => {
  const calls: Array<string> = []
  const layer = Layer.succeed(
    AttestationAgent,
    AttestationAgent.of({
      evidence: (data) =>
        Effect.sleep(delayMs).pipe(
          Effect.andThen(
            Effect.sync(() => {
              calls.push(data)
              return new TextEncoder().encode(JSON.stringify(sampleEvidence(new TextEncoder().encode(data))))
            }),
          ),
        ),
      token: Effect.fail(new AgentError({ kind: "feature-off", detail: "Attestation Feature Not Enabled" })),
    }),
  )
  return { calls, layer }
}

const serverKeySha256 = () => publicKeySha256(new X509Certificate(pki.server.certPem))

describe("GET /api/evidence", () => {
  it.each([
    ["", "nonce is required"],
    ["?nonce=", "nonce is required"],
    [`?nonce=${nonce(15)}`, "16 to 64 bytes, not 15"],
    [`?nonce=${nonce(65)}`, "16 to 64 bytes, not 65"],
    [`?nonce=${Buffer.alloc(32, 7).toString("base64")}`, "base64url without padding"],
    [`?nonce=${nonce()}&nonce=${nonce()}`, "more than once"],
    ["?nonce=a%20b", "base64url without padding"],
  ])("answers 400 naming the problem for %j", async (query, problem) => {
    const agent = counting()
    const { url } = await sidecars.start(pki, {}, { agent: agent.layer })
    const reply = await json(`${url}/api/evidence${query}`)
    expect(reply.status).toBe(400)
    expect(String(reply.json.detail)).toContain(problem)
    expect(agent.calls).toEqual([])
  })

  it("is bound to the nonce and the served key, fresh each time, never cached", async () => {
    const agent = counting()
    const { url } = await sidecars.start(pki, {}, { agent: agent.layer })
    const keyHash = serverKeySha256()
    const first = await json(`${url}/api/evidence?nonce=${nonce()}`)
    expect(first.status).toBe(200)
    expect(first.json.nonce).toBe(nonce())
    expect(first.json.serverPublicKeySha256).toBe(keyHash.toString("hex"))
    const expected = runtimeData(Buffer.alloc(32, 7), keyHash)
    expect(first.json.runtimeData).toBe(expected)
    expect(first.json.verified).toBe(false)
    expect(String(first.json.note)).toContain("unappraised")
    const reading = readEvidence(null, first.json.evidence)
    expect(carries(reading, Buffer.from(expected, "ascii"))).toBe(true)
    // The same nonce again is asked again (no cache); another nonce gives other runtime data.
    await new Promise((r) => setTimeout(r, 300))
    const again = await json(`${url}/api/evidence?nonce=${nonce()}`)
    const other = await json(`${url}/api/evidence?nonce=${nonce(16)}`)
    expect(again.status).toBe(200)
    expect(other.json.runtimeData).not.toBe(expected)
    expect(agent.calls).toEqual([expected, expected, other.json.runtimeData])
  })

  it("binds to the certificate each connection was served with, across a rotation", async () => {
    const agent = counting()
    const { url, cdh } = await sidecars.start(pki, { TLS_REFRESH_INTERVAL: "150ms" }, { agent: agent.layer })
    const ask = (via: https.Agent, bytes: number) =>
      new Promise<Record<string, unknown>>((resolve, reject) =>
        https
          .get(`${url}/api/evidence?nonce=${nonce(bytes)}`, { agent: via }, (response) => {
            let body = ""
            response.on("data", (chunk: Buffer) => {
              body += chunk.toString()
            })
            response.on("end", () => resolve(JSON.parse(body) as Record<string, unknown>))
          })
          .on("error", reject),
      )
    const old = serverKeySha256().toString("hex")
    const kept = new https.Agent({ keepAlive: true, maxSockets: 1, ...client() })
    expect((await ask(kept, 16)).serverPublicKeySha256).toBe(old)
    const next = await issue(pki.ca, {
      cn: "localhost",
      kind: "server",
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1"],
    })
    cdh.set("shop/sidecar-tls-web/server-cert", next.certPem)
    cdh.set("shop/sidecar-tls-web/server-key", next.keyPem)
    const rotated = publicKeySha256(new X509Certificate(next.certPem)).toString("hex")
    let fresh = ""
    for (let i = 0; i < 30 && fresh !== rotated; i++) {
      await new Promise((r) => setTimeout(r, 300))
      const once = new https.Agent({ keepAlive: false, ...client() })
      fresh = String((await ask(once, 17)).serverPublicKeySha256)
    }
    expect(fresh).toBe(rotated)
    // The connection opened before the rotation still carries the old certificate: so does its evidence.
    await new Promise((r) => setTimeout(r, 300))
    expect((await ask(kept, 18)).serverPublicKeySha256).toBe(old)
    kept.destroy()
  })

  it("serves one at a time: a second request while one is in flight gets 429 with Retry-After", async () => {
    const agent = counting(400)
    const { url } = await sidecars.start(pki, {}, { agent: agent.layer })
    const [a, b] = await Promise.all([
      json(`${url}/api/evidence?nonce=${nonce()}`),
      new Promise((r) => setTimeout(r, 100)).then(() => json(`${url}/api/evidence?nonce=${nonce(20)}`)),
    ])
    expect(a.status).toBe(200)
    expect(b.status).toBe(429)
    expect(b.headers["retry-after"]).toBe("1")
    expect(agent.calls).toHaveLength(1)
  })

  it("starts at most a few a second", async () => {
    const agent = counting()
    const { url } = await sidecars.start(pki, {}, { agent: agent.layer })
    const statuses: Array<number> = []
    for (let i = 0; i < 8; i++)
      statuses.push((await json(`${url}/api/evidence?nonce=${nonce(16 + i)}`)).status)
    expect(statuses.filter((s) => s === 200).length).toBeLessThanOrEqual(4)
    expect(statuses).toContain(429)
  })

  it("answers 503 saying how to enable it when the CDH's attestation feature is off", async () => {
    const { url } = await withMock({ features: "resource" })
    const reply = await json(`${url}/api/evidence?nonce=${nonce()}`)
    expect(reply.status).toBe(503)
    expect(String(reply.json.detail)).toContain("Attestation Feature Not Enabled")
    expect(String(reply.json.detail)).toContain("agent.guest_components_rest_api=all")
  })

  it("answers 503 when the CDH is too old for /aa/evidence", async () => {
    const { url } = await withMock({ legacy: true, features: "resource" })
    const reply = await json(`${url}/api/evidence?nonce=${nonce()}`)
    expect(reply.status).toBe(503)
    expect(String(reply.json.detail)).toContain("too old")
  })

  it.each(["sample", "tdx", "snp"])(
    "relays %s evidence from the CDH that carries the runtime data",
    async (tee) => {
      const { url } = await withMock({ tee })
      // The attestation reporter learns the TEE from /info shortly after start.
      let reply = await json(`${url}/api/evidence?nonce=${nonce()}`)
      for (let i = 0; i < 20 && reply.json.tee !== tee; i++) {
        await new Promise((r) => setTimeout(r, 300))
        reply = await json(`${url}/api/evidence?nonce=${nonce()}`)
      }
      expect(reply.status).toBe(200)
      expect(reply.json.tee).toBe(tee)
      const reading = readEvidence(tee, reply.json.evidence)
      expect(reading.tee).toBe(tee)
      expect(carries(reading, Buffer.from(String(reply.json.runtimeData), "ascii"))).toBe(true)
    },
  )
})

describe("the appraisal in /api/attestation", () => {
  const appraisalOf = async (url: string) => {
    for (let i = 0; i < 50; i++) {
      const reply = await json(`${url}/api/attestation`)
      const unavailable = String(reply.json.appraisalUnavailable ?? "")
      if (!unavailable.includes("not been fetched yet")) return reply.json
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error("no token fetched")
  }

  it("says why there is none when the attestation feature is off", async () => {
    const { url } = await withMock({ features: "resource" })
    const body = await appraisalOf(url)
    expect(body.appraisal).toBeNull()
    expect(String(body.appraisalUnavailable)).toContain("Attestation Feature Not Enabled")
  })

  it("shows the verdict of a valid token, its signature unpinned, and never the tee_keypair", async () => {
    const signer = newSigner()
    const { url, logs } = await withMock({
      token: () => earToken(signer, { submods: { cpu0: "affirming" } }),
    })
    const body = await appraisalOf(url)
    const appraisal = body.appraisal as Record<string, unknown>
    expect(appraisal.status).toBe("affirming")
    expect(appraisal.signature).toBe("valid-unpinned")
    expect((appraisal.submods as Array<{ name: string }>).map((m) => m.name)).toEqual(["cpu0"])
    const everything = [
      JSON.stringify(body),
      (await get(`${url}/api/status`, client())).body,
      (await get(`${url}/api/metrics`, client())).body,
      (await get(`${url}/dashboard`, client())).body,
      inspect(logs, { depth: 8 }),
    ].join("\n")
    expect(everything).not.toContain("MOCK ONLY: not a real key")
    expect(everything).not.toContain(FAKE_TEE_KEYPAIR.split("\n")[1])
  })

  it("checks a pinned key: valid-pinned with it, invalid (and never affirming) with another", async () => {
    const signer = newSigner()
    const pem = signer.publicKey.export({ type: "spki", format: "pem" }).toString()
    const pinned = await withMock({ token: () => earToken(signer) }, { ATTESTATION_TOKEN_KEY: pem })
    const good = (await appraisalOf(pinned.url)).appraisal as Record<string, unknown>
    expect([good.status, good.signature]).toEqual(["affirming", "valid-pinned"])

    const other = newSigner().publicKey.export({ type: "spki", format: "pem" }).toString()
    const wrong = await withMock({ token: () => earToken(signer) }, { ATTESTATION_TOKEN_KEY: other })
    const bad = (await appraisalOf(wrong.url)).appraisal as Record<string, unknown>
    expect(bad.signature).toBe("invalid")
    expect(bad.status).not.toBe("affirming")
  })

  it("never shows a token with a bad signature as affirming", async () => {
    const signer = newSigner()
    const forged = () => {
      const [header, claims, signature] = earToken(signer).split(".")
      const flipped = Buffer.from(signature ?? "", "base64url")
      flipped[0] = (flipped[0] ?? 0) ^ 1
      return `${header}.${claims}.${flipped.toString("base64url")}`
    }
    const { url } = await withMock({ token: forged })
    const appraisal = (await appraisalOf(url)).appraisal as Record<string, unknown>
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.status).toBe("none")
    expect(appraisal.claimedStatus).toBe("affirming")
  })

  it("never shows an expired token as affirming", async () => {
    const signer = newSigner()
    const old = Math.floor(Date.now() / 1000) - 3600
    const { url } = await withMock({ token: () => earToken(signer, { iat: old, lifetime: 300 }) })
    const appraisal = (await appraisalOf(url)).appraisal as Record<string, unknown>
    expect(appraisal.status).toBe("none")
    expect(String(appraisal.problems)).toContain("expired")
  })

  it("shows the worst status over the submods", async () => {
    const signer = newSigner()
    const { url } = await withMock({
      token: () => earToken(signer, { submods: { cpu0: "affirming", gpu0: "warning" } }),
    })
    const appraisal = (await appraisalOf(url)).appraisal as Record<string, unknown>
    expect(appraisal.status).toBe("warning")
  })
})
