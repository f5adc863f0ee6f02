import { createHmac, generateKeyPairSync, KeyObject, sign } from "node:crypto"
import { inspect } from "node:util"
import { describe, expect, it } from "vitest"
import {
  type Appraisal,
  appraise,
  CLOCK_SKEW_SECONDS,
  EarTokenError,
  loadPinnedKey,
  MAX_SUBMODS,
  MAX_TEXT,
  parseTokenResponse,
} from "../../src/attestation/ear.ts"
import { startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { createCa } from "../../src/dev/DevPki.ts"
import { TRUSTWORTHINESS_VECTOR } from "../../src/dev/earToken.ts"

// ---------------------------------------------------------------------------------------------
// Fixtures: real ES256 tokens, shaped like Trustee's (and like MockCdhServer's fakeToken)
// ---------------------------------------------------------------------------------------------

const NOW = new Date("2026-03-01T12:00:00.000Z")
const NOW_S = Math.floor(NOW.getTime() / 1000)

const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" })
const signer = p256()
const other = p256()

const b64u = (value: string | Uint8Array): string => Buffer.from(value).toString("base64url")

const VECTOR = TRUSTWORTHINESS_VECTOR

const submod = (status: unknown, extra: Record<string, unknown> = {}) => ({
  "ear.status": status,
  "ear.trustworthiness-vector": VECTOR,
  "ear.appraisal-policy-id": "default",
  "ear.veraison.annotated-evidence": { sample: { svn: "1" }, runtime_data_claims: { nonce: "n" } },
  ...extra,
})

const claimsWith = (overrides: Record<string, unknown> = {}): Record<string, unknown> => ({
  eat_profile: "tag:github.com,2024:confidential-containers/Trustee",
  iat: NOW_S - 10,
  exp: NOW_S + 290,
  iss: "CoCo-Attestation-Service",
  jti: "b3f1a1e4-0000-4000-8000-000000000000",
  "ear.verifier-id": { developer: "https://confidentialcontainers.org", build: "attestation-service 0.1.0" },
  submods: { cpu0: submod("affirming") },
  ...overrides,
})

interface TokenOptions {
  readonly claims?: Record<string, unknown>
  readonly header?: Record<string, unknown>
  /** Signs with this key (default: `signer`); the header's jwk is `jwkOf` (default: the signer's). */
  readonly key?: KeyObject
  readonly jwkOf?: KeyObject
}

const makeToken = (options: TokenOptions = {}): string => {
  const key = options.key ?? signer.privateKey
  const jwkOf = options.jwkOf ?? signer.publicKey
  const header = {
    alg: "ES256",
    typ: "JWT",
    jwk: { ...jwkOf.export({ format: "jwk" }), alg: "ES256" },
    ...options.header,
  }
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(options.claims ?? claimsWith()))}`
  const signature = sign("sha256", Buffer.from(input), { key, dsaEncoding: "ieee-p1363" })
  return `${input}.${b64u(signature)}`
}

const unpinned = (token: string, now: Date = NOW): Appraisal => appraise(token, { now })
const pinned = (token: string, key: KeyObject = signer.publicKey): Appraisal =>
  appraise(token, { pinnedKey: key, now: NOW })

/** Calls `f`, expects an EarTokenError, returns it. */
const thrown = (f: () => unknown): Error => {
  try {
    f()
  } catch (error) {
    expect(error).toBeInstanceOf(EarTokenError)
    return error as Error
  }
  throw new Error("expected a throw")
}

const everywhere = (value: unknown): string => `${JSON.stringify(value)}\n${inspect(value, { depth: null })}`

// ---------------------------------------------------------------------------------------------
// parseTokenResponse
// ---------------------------------------------------------------------------------------------

const DECOY_KEY =
  "-----BEGIN PRIVATE KEY-----\nDECOY-TEE-KEYPAIR-c0ffee-SHOULD-NEVER-LEAK\n-----END PRIVATE KEY-----\n"
const DECOY_MARK = "DECOY-TEE-KEYPAIR-c0ffee"

const leaks = (text: string | undefined): boolean =>
  text !== undefined && (text.includes(DECOY_MARK) || text.includes("PRIVATE KEY"))

describe("parseTokenResponse", () => {
  const token = makeToken()
  const body = JSON.stringify({ token, tee_keypair: DECOY_KEY })

  it("returns the token and only the token, from a string or bytes", () => {
    for (const input of [body, new TextEncoder().encode(body)]) {
      const result = parseTokenResponse(input)
      expect(result).toEqual({ token })
      expect(Object.keys(result)).toEqual(["token"])
      expect(leaks(everywhere(result))).toBe(false)
      expect(Object.isFrozen(result)).toBe(true)
    }
  })

  it("keeps the key out of the result whatever the field order or nesting", () => {
    const reordered = JSON.stringify({ tee_keypair: DECOY_KEY, extra: { tee_keypair: DECOY_KEY }, token })
    expect(leaks(everywhere(parseTokenResponse(reordered)))).toBe(false)
  })

  it("never quotes the body in an error", () => {
    const bad = [
      `{"token": 42, "tee_keypair": ${JSON.stringify(DECOY_KEY)}}`,
      `{"tee_keypair": ${JSON.stringify(DECOY_KEY)}}`,
      `{"token": ${JSON.stringify(token)}, "tee_keypair": ${JSON.stringify(DECOY_KEY)}`, // truncated JSON
      `{"tee_keypair": "${DECOY_KEY.replaceAll("\n", "\\n")}", "token": }`,
      `${DECOY_KEY}`,
      `[${JSON.stringify(DECOY_KEY)}]`,
      `{"token": ${JSON.stringify(DECOY_KEY)}}`, // the key where the token should be
      `{"token": "not a jws ${DECOY_MARK}", "tee_keypair": "x"}`,
    ]
    for (const input of bad) {
      for (const form of [input, new TextEncoder().encode(input)]) {
        const error = thrown(() => parseTokenResponse(form))
        expect(leaks(error.message)).toBe(false)
        expect(leaks(error.stack)).toBe(false)
        expect(leaks(everywhere(error))).toBe(false)
        expect(error.cause).toBeUndefined()
      }
    }
  })

  it("refuses bytes that are not UTF-8 without quoting them", () => {
    const bytes = new Uint8Array([...new TextEncoder().encode(`{"tee_keypair":"${DECOY_MARK}`), 0xff, 0xfe])
    const error = thrown(() => parseTokenResponse(bytes))
    expect(error.message).toMatch(/not UTF-8/)
    expect(leaks(error.stack)).toBe(false)
  })

  it("names what is wrong", () => {
    expect(thrown(() => parseTokenResponse("")).message).toMatch(/not JSON \(0 bytes\)/)
    expect(thrown(() => parseTokenResponse("null")).message).toMatch(/not a JSON object/)
    expect(thrown(() => parseTokenResponse('{"token":null}')).message).toMatch(/no "token" string/)
    expect(thrown(() => parseTokenResponse('{"token":"a.b"}')).message).toMatch(/not a compact JWS/)
    expect(thrown(() => parseTokenResponse(`{"token":"${"a".repeat(3 * 1024 * 1024)}"}`)).message).toMatch(
      /too large/,
    )
  })
})

// ---------------------------------------------------------------------------------------------
// appraise: signatures
// ---------------------------------------------------------------------------------------------

describe("appraise: signature", () => {
  it("valid, unpinned: the header's jwk verifies it", () => {
    const appraisal = unpinned(makeToken())
    expect(appraisal).toEqual({
      status: "affirming",
      claimedStatus: "affirming",
      submods: [
        {
          name: "cpu0",
          status: "affirming",
          claimedStatus: "affirming",
          trustworthinessVector: VECTOR,
          appraisalPolicyId: "default",
        },
      ],
      issuer: "CoCo-Attestation-Service",
      issuedAt: "2026-03-01T11:59:50.000Z",
      expiresAt: "2026-03-01T12:04:50.000Z",
      signature: "valid-unpinned",
      checkedAt: NOW.toISOString(),
      problems: [],
    } satisfies Appraisal)
  })

  it("valid, pinned", () => {
    const appraisal = pinned(makeToken())
    expect(appraisal.signature).toBe("valid-pinned")
    expect(appraisal.status).toBe("affirming")
    expect(appraisal.problems).toEqual([])
  })

  it("pinned: the header's jwk is ignored, only the pinned key counts", () => {
    // Signed by `other`, which the header names: fine unpinned, invalid pinned to `signer`.
    const token = makeToken({ key: other.privateKey, jwkOf: other.publicKey })
    expect(unpinned(token).signature).toBe("valid-unpinned")
    const appraisal = pinned(token)
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.status).toBe("none")
    expect(appraisal.claimedStatus).toBe("affirming")
    expect(appraisal.problems).toEqual(["signature invalid: does not verify against the pinned key"])
    // Signed by the pinned key, while the header names another one: valid.
    expect(pinned(makeToken({ jwkOf: other.publicKey })).signature).toBe("valid-pinned")
    // No jwk at all: valid when pinned, invalid unpinned.
    const noJwk = makeToken({ header: { jwk: undefined } })
    expect(pinned(noJwk).signature).toBe("valid-pinned")
    expect(unpinned(noJwk).signature).toBe("invalid")
  })

  it("a header jwk that does not match the signing key is invalid", () => {
    const appraisal = unpinned(makeToken({ jwkOf: other.publicKey }))
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.problems).toEqual(["signature invalid: does not verify against the header's jwk"])
  })

  it("a flipped bit anywhere breaks it", () => {
    const token = makeToken()
    const [h = "", p = "", s = ""] = token.split(".")
    const sig = Buffer.from(s, "base64url")
    sig[10] = (sig[10] ?? 0) ^ 0x01
    const badSig = `${h}.${p}.${b64u(sig)}`
    expect(unpinned(badSig).signature).toBe("invalid")
    expect(pinned(badSig).signature).toBe("invalid")
    expect(unpinned(badSig).status).toBe("none")

    const claims = Buffer.from(p, "base64url").toString().replace('"affirming"', '"affirminG"')
    expect(unpinned(`${h}.${b64u(claims)}.${s}`).signature).toBe("invalid")
  })

  it("a forged verdict (claims swapped under a valid signature) is not affirming", () => {
    const [h, , s] = makeToken({
      claims: claimsWith({ submods: { cpu0: submod("contraindicated") } }),
    }).split(".")
    const [, forged] = makeToken().split(".")
    const appraisal = unpinned(`${h}.${forged}.${s}`)
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.status).toBe("none")
    expect(appraisal.submods.map((m) => m.status)).toEqual(["none"])
    expect(appraisal.submods.map((m) => m.claimedStatus)).toEqual(["affirming"])
  })

  it("alg other than ES256 is invalid, even with a signature that would verify", () => {
    for (const alg of ["none", "HS256", "RS256", "ES384", "es256", "EdDSA"]) {
      const token = makeToken({ header: { alg } })
      for (const appraisal of [unpinned(token), pinned(token)]) {
        expect(appraisal.signature).toBe("invalid")
        expect(appraisal.status).toBe("none")
        expect(appraisal.problems).toEqual([`signature invalid: alg ${JSON.stringify(alg)} is not ES256`])
      }
    }
    expect(unpinned(makeToken({ header: { alg: undefined } })).problems).toEqual([
      "signature invalid: no alg, expected ES256",
    ])
  })

  it("alg none with an empty signature is invalid, not malformed", () => {
    const header = b64u(JSON.stringify({ alg: "none", typ: "JWT" }))
    const appraisal = unpinned(`${header}.${b64u(JSON.stringify(claimsWith()))}.`)
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.status).toBe("none")
    expect(appraisal.claimedStatus).toBe("affirming")
  })

  it("an ES256 header with an empty or DER-sized signature is invalid", () => {
    const token = makeToken()
    const [h = "", p = ""] = token.split(".")
    expect(unpinned(`${h}.${p}.`).problems).toEqual(["signature invalid: signature is 0 bytes, ES256 has 64"])
    const der = sign("sha256", Buffer.from(`${h}.${p}`), signer.privateKey) // DER, ~70 bytes
    expect(unpinned(`${h}.${p}.${b64u(der)}`).signature).toBe("invalid")
  })

  it("HS256 with the public key as the HMAC secret (key confusion) is invalid", () => {
    const header = b64u(JSON.stringify({ alg: "HS256", typ: "JWT" }))
    const payload = b64u(JSON.stringify(claimsWith()))
    const pem = signer.publicKey.export({ type: "spki", format: "pem" })
    const mac = createHmac("sha256", pem).update(`${header}.${payload}`).digest()
    expect(pinned(`${header}.${payload}.${b64u(mac)}`).signature).toBe("invalid")
  })

  it("a jwk that is not EC P-256 public, or a crit header, is invalid", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 })
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" })
    const jwk = signer.publicKey.export({ format: "jwk" })
    const headers: Array<Record<string, unknown>> = [
      { jwk: rsa.publicKey.export({ format: "jwk" }) },
      { jwk: p384.publicKey.export({ format: "jwk" }) },
      { jwk: { ...jwk, crv: "P-384" } },
      { jwk: { ...jwk, x: 42 } },
      { jwk: { ...jwk, x: b64u(Buffer.alloc(32, 1)) } }, // not on the curve
      { jwk: "a string" },
      { jwk: [jwk] },
      { crit: ["exp"] },
    ]
    for (const header of headers) expect(unpinned(makeToken({ header })).signature).toBe("invalid")
  })

  it("a pinned key that is not P-256 makes every token invalid", () => {
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" })
    const appraisal = pinned(makeToken(), p384.publicKey)
    expect(appraisal.signature).toBe("invalid")
    expect(appraisal.problems).toEqual(["signature invalid: the pinned key is not an EC P-256 key"])
  })
})

// ---------------------------------------------------------------------------------------------
// appraise: time
// ---------------------------------------------------------------------------------------------

describe("appraise: validity period", () => {
  it("expired (exp <= now) is not affirming", () => {
    for (const exp of [NOW_S, NOW_S - 1, NOW_S - 3600]) {
      const appraisal = pinned(makeToken({ claims: claimsWith({ iat: exp - 300, exp }) }))
      expect(appraisal.signature).toBe("valid-pinned")
      expect(appraisal.status).toBe("none")
      expect(appraisal.claimedStatus).toBe("affirming")
      expect(appraisal.submods[0]?.status).toBe("none")
      expect(appraisal.problems).toEqual([`expired at ${new Date(exp * 1000).toISOString()}`])
    }
    expect(pinned(makeToken({ claims: claimsWith({ exp: NOW_S + 1 }) })).status).toBe("affirming")
  })

  it("the same token goes from affirming to expired as now moves", () => {
    const token = makeToken()
    expect(unpinned(token, new Date((NOW_S + 289) * 1000)).status).toBe("affirming")
    expect(unpinned(token, new Date((NOW_S + 290) * 1000)).status).toBe("none")
  })

  it("not yet valid: iat or nbf beyond the skew", () => {
    const ahead = NOW_S + CLOCK_SKEW_SECONDS + 1
    const early = pinned(makeToken({ claims: claimsWith({ iat: ahead, exp: ahead + 300 }) }))
    expect(early.status).toBe("none")
    expect(early.problems).toEqual([`not yet valid: issued at ${new Date(ahead * 1000).toISOString()}`])
    const nbf = pinned(makeToken({ claims: claimsWith({ nbf: ahead }) }))
    expect(nbf.status).toBe("none")
    expect(nbf.problems).toEqual([`not yet valid: not before ${new Date(ahead * 1000).toISOString()}`])
  })

  it("iat within the skew is fine", () => {
    const within = NOW_S + CLOCK_SKEW_SECONDS
    const appraisal = pinned(
      makeToken({ claims: claimsWith({ iat: within, nbf: within, exp: within + 300 }) }),
    )
    expect(appraisal.status).toBe("affirming")
    expect(appraisal.issuedAt).toBe(new Date(within * 1000).toISOString())
  })

  it("no exp, or an exp that is not a number, is a problem", () => {
    for (const exp of [undefined, "9999999999", null, Number.NaN]) {
      const appraisal = pinned(makeToken({ claims: claimsWith({ exp }) }))
      expect(appraisal.status).toBe("none")
      expect(appraisal.expiresAt).toBeNull()
      expect(appraisal.problems).toEqual(["no expiry time (exp)"])
    }
  })

  it("several problems are all listed", () => {
    const claims = claimsWith({ iat: NOW_S + 3600, exp: NOW_S - 1 })
    const appraisal = unpinned(makeToken({ claims, header: { alg: "HS256" } }))
    expect(appraisal.problems).toEqual([
      'signature invalid: alg "HS256" is not ES256',
      `expired at ${new Date((NOW_S - 1) * 1000).toISOString()}`,
      `not yet valid: issued at ${new Date((NOW_S + 3600) * 1000).toISOString()}`,
    ])
  })

  it("dates out of range are null, not a throw", () => {
    const appraisal = pinned(makeToken({ claims: claimsWith({ iat: -1e300, exp: 1e300 }) }))
    expect(appraisal.issuedAt).toBeNull()
    expect(appraisal.expiresAt).toBeNull()
    expect(appraisal.status).toBe("affirming")
  })
})

// ---------------------------------------------------------------------------------------------
// appraise: the verdict
// ---------------------------------------------------------------------------------------------

const withSubmods = (submods: unknown): Appraisal => pinned(makeToken({ claims: claimsWith({ submods }) }))

describe("appraise: worst status over the submods", () => {
  it("cpu0 affirming + gpu0 warning -> warning", () => {
    const appraisal = withSubmods({ cpu0: submod("affirming"), gpu0: submod("warning") })
    expect(appraisal.status).toBe("warning")
    expect(appraisal.submods.map((m) => [m.name, m.status])).toEqual([
      ["cpu0", "affirming"],
      ["gpu0", "warning"],
    ])
  })

  it("contraindicated anywhere -> contraindicated", () => {
    for (const order of [
      ["contraindicated", "affirming", "warning"],
      ["affirming", "warning", "contraindicated"],
      ["none", "contraindicated", "affirming"],
    ]) {
      const submods = Object.fromEntries(order.map((status, i) => [`dev${i}`, submod(status)]))
      expect(withSubmods(submods).status).toBe("contraindicated")
    }
  })

  it("a submod without a verdict keeps the whole from being affirming", () => {
    expect(withSubmods({ cpu0: submod("affirming"), gpu0: submod("none") }).status).toBe("none")
    expect(withSubmods({ cpu0: submod("affirming"), gpu0: {} }).status).toBe("none")
    // A concrete finding outranks an absence of one.
    expect(withSubmods({ cpu0: submod("warning"), gpu0: submod("none") }).status).toBe("warning")
  })

  it("missing or unknown status values count as none", () => {
    for (const status of [undefined, null, "AFFIRMING", "affirmed", 2, true, { affirming: true }]) {
      const appraisal = withSubmods({ cpu0: submod(status) })
      expect(appraisal.status).toBe("none")
      expect(appraisal.claimedStatus).toBe("none")
      expect(appraisal.problems).toEqual([])
    }
  })

  it("all affirming -> affirming", () => {
    expect(withSubmods({ cpu0: submod("affirming"), gpu0: submod("affirming") }).status).toBe("affirming")
  })

  it("no submods -> none", () => {
    for (const submods of [undefined, {}, null, [], "cpu0", [submod("affirming")]]) {
      const appraisal = withSubmods(submods)
      expect(appraisal.status).toBe("none")
      expect(appraisal.submods).toEqual([])
    }
  })

  it("submods that are not objects have no verdict", () => {
    const appraisal = withSubmods({ cpu0: submod("affirming"), gpu0: "affirming", dcu0: null })
    expect(appraisal.status).toBe("none")
    expect(appraisal.submods.map((m) => [m.name, m.status, m.appraisalPolicyId])).toEqual([
      ["cpu0", "affirming", "default"],
      ["gpu0", "none", null],
      ["dcu0", "none", null],
    ])
    expect(appraisal.submods[1]?.trustworthinessVector).toEqual({})
  })
})

// ---------------------------------------------------------------------------------------------
// appraise: untrusted values
// ---------------------------------------------------------------------------------------------

describe("appraise: untrusted values", () => {
  it("cuts long strings", () => {
    const long = "x".repeat(100_000)
    const appraisal = withClaims({
      iss: long,
      submods: { [long]: submod("affirming", { "ear.appraisal-policy-id": long }) },
    })
    expect(appraisal.issuer).toHaveLength(MAX_TEXT)
    expect(appraisal.issuer?.endsWith("…")).toBe(true)
    expect(appraisal.submods[0]?.name).toHaveLength(MAX_TEXT)
    expect(appraisal.submods[0]?.appraisalPolicyId).toHaveLength(MAX_TEXT)
    expect(JSON.stringify(appraisal).length).toBeLessThan(2_000)
  })

  it("does not split a surrogate pair when cutting", () => {
    const appraisal = withClaims({ iss: `${"x".repeat(MAX_TEXT - 2)}😀😀` })
    const issuer = appraisal.issuer ?? ""
    expect(issuer.endsWith("…")).toBe(true)
    expect(issuer.isWellFormed()).toBe(true)
  })

  it("replaces control and bidi characters", () => {
    const appraisal = withClaims({ iss: "evil\n\u001b[31mred\u202eobviously\u0000" })
    expect(appraisal.issuer).toBe("evil\ufffd\ufffd[31mred\ufffdobviously\ufffd")
  })

  it("keeps only finite numbers in the trustworthiness vector", () => {
    const vector = JSON.parse(
      '{"hardware": 2, "configuration": "2", "executables": null, "file-system": 1e400, ' +
        '"sourced-data": -1, "x": [3], "__proto__": 5, "nested": {"a": 1}}',
    )
    const appraisal = withSubmods({ cpu0: submod("affirming", { "ear.trustworthiness-vector": vector }) })
    const tv = appraisal.submods[0]?.trustworthinessVector
    expect(tv).toEqual({ hardware: 2, "sourced-data": -1, ["__proto__"]: 5 })
    expect(Object.getPrototypeOf(tv)).toBe(Object.prototype)
    expect(
      withSubmods({ cpu0: submod("affirming", { "ear.trustworthiness-vector": [1, 2] }) }).submods[0],
    ).toMatchObject({ trustworthinessVector: {} })
  })

  it("caps the vector's size", () => {
    const big = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`k${i}`, i]))
    const appraisal = withSubmods({ cpu0: submod("affirming", { "ear.trustworthiness-vector": big }) })
    expect(Object.keys(appraisal.submods[0]?.trustworthinessVector ?? {}).length).toBeLessThanOrEqual(32)
  })

  it("lists at most MAX_SUBMODS submods, but all of them count", () => {
    const submods: Record<string, unknown> = {}
    for (let i = 0; i < 100; i++) submods[`gpu${i}`] = submod("affirming")
    submods.gpu99 = submod("contraindicated")
    const appraisal = withSubmods(submods)
    expect(appraisal.submods).toHaveLength(MAX_SUBMODS)
    expect(appraisal.status).toBe("contraindicated")
  })

  it("non-string issuer and policy id are null", () => {
    const appraisal = withClaims({
      iss: 42,
      submods: { cpu0: submod("affirming", { "ear.appraisal-policy-id": {} }) },
    })
    expect(appraisal.issuer).toBeNull()
    expect(appraisal.submods[0]?.appraisalPolicyId).toBeNull()
  })
})

const withClaims = (overrides: Record<string, unknown>): Appraisal =>
  pinned(makeToken({ claims: claimsWith(overrides) }))

// ---------------------------------------------------------------------------------------------
// appraise: malformed tokens
// ---------------------------------------------------------------------------------------------

describe("appraise: malformed tokens", () => {
  const MARK = "SECRETMARK"
  const markedClaims = b64u(JSON.stringify({ ...claimsWith(), iss: MARK }))
  const header = b64u(JSON.stringify({ alg: "ES256" }))
  const sig = b64u(Buffer.alloc(64))

  const cases: ReadonlyArray<readonly [string, RegExp]> = [
    ["", /1 dot-separated parts/],
    [MARK, /1 dot-separated parts/],
    [`${header}.${markedClaims}`, /2 dot-separated parts/],
    [`${header}.${markedClaims}.${sig}.${MARK}`, /4 dot-separated parts/],
    [`.${markedClaims}.${sig}`, /header is empty/],
    [`${header}..${sig}`, /claims are empty/],
    [`${header}.${markedClaims}+/.${sig}`, /claims is not base64url/],
    [`${header}=.${markedClaims}.${sig}`, /header is not base64url/],
    [`${header}.${markedClaims}.${sig}!`, /signature is not base64url/],
    [`${header}.${markedClaims}a.${sig}`, /claims is not base64url/], // length % 4 == 1
    [`${header}.${b64u(`{"iss":"${MARK}"`)}.${sig}`, /claims is not UTF-8 JSON/],
    [`${header}.${b64u(`${MARK}`)}.${sig}`, /claims is not UTF-8 JSON/],
    [`${header}.${b64u(Buffer.from([0x22, 0xff, 0x22]))}.${sig}`, /claims is not UTF-8 JSON/],
    [`${header}.${b64u(JSON.stringify([MARK]))}.${sig}`, /claims is not a JSON object/],
    [`${header}.${b64u(JSON.stringify(MARK))}.${sig}`, /claims is not a JSON object/],
    [`${header}.${b64u("null")}.${sig}`, /claims is not a JSON object/],
    [`${b64u(`["${MARK}"]`)}.${markedClaims}.${sig}`, /header is not a JSON object/],
    [`${b64u(`{"alg": "${MARK}`)}.${markedClaims}.${sig}`, /header is not UTF-8 JSON/],
  ]

  it.each(cases)("%#: throws a clear error that quotes nothing of the token", (token, message) => {
    const error = thrown(() => unpinned(token))
    expect(error.message).toMatch(message)
    for (const text of [error.message, error.stack ?? "", everywhere(error)]) {
      expect(text).not.toContain(MARK)
      expect(text).not.toContain(markedClaims.slice(0, 12))
      expect(text).not.toContain(header)
    }
    expect(error.cause).toBeUndefined()
  })

  it("refuses a token over the size limit", () => {
    expect(thrown(() => unpinned(`${"a".repeat(2 * 1024 * 1024)}.b.c`)).message).toMatch(/too long/)
  })
})

// ---------------------------------------------------------------------------------------------
// The mock CDH's token is appraised like a real one
// ---------------------------------------------------------------------------------------------

describe("the mock CDH's token", () => {
  it("round-trips through parseTokenResponse and appraise", async () => {
    const cdh = await startMockCdh({ features: "attestation" })
    try {
      const response = await fetch(`${cdh.url}/aa/token?token_type=kbs`)
      expect(response.status).toBe(200)
      const body = new Uint8Array(await response.arrayBuffer())
      expect(new TextDecoder().decode(body)).toContain("PRIVATE KEY") // the mock's tee_keypair
      const result = parseTokenResponse(body)
      expect(everywhere(result)).not.toContain("PRIVATE KEY")
      const appraisal = appraise(result.token, { now: new Date() })
      expect(appraisal).toMatchObject({ status: "affirming", signature: "valid-unpinned", problems: [] })
      expect(appraisal.issuer).toMatch(/NOT A REAL ATTESTATION/)
      expect(appraisal.submods.map((m) => m.name)).toEqual(["cpu0"])
      expect(everywhere(appraisal)).not.toContain("PRIVATE KEY")
      // Pinned to a key the mock does not sign with: invalid, not affirming.
      expect(appraise(result.token, { pinnedKey: signer.publicKey, now: new Date() }).status).toBe("none")
    } finally {
      await cdh.close()
    }
  })
})

// ---------------------------------------------------------------------------------------------
// loadPinnedKey
// ---------------------------------------------------------------------------------------------

describe("loadPinnedKey", () => {
  it("accepts an SPKI public key", () => {
    const key = loadPinnedKey(signer.publicKey.export({ type: "spki", format: "pem" }).toString())
    expect(key.type).toBe("public")
    expect(key.equals(signer.publicKey)).toBe(true)
    expect(pinned(makeToken(), key).signature).toBe("valid-pinned")
  })

  it("accepts a certificate and takes its key", async () => {
    const ca = await createCa({ cn: "attestation-service" })
    const key = loadPinnedKey(ca.certPem)
    expect(key.equals(KeyObject.from(ca.keys.publicKey))).toBe(true)
    const rsa = await createCa({ cn: "attestation-service", algorithm: "rsa-2048" })
    expect(thrown(() => loadPinnedKey(rsa.certPem)).message).toMatch(
      /an RSA key \(2048 bits\), expected EC P-256/,
    )
  })

  it("refuses other key types, naming them", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey
    const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey
    const ed = generateKeyPairSync("ed25519").publicKey
    const pem = (k: KeyObject) => k.export({ type: "spki", format: "pem" }).toString()
    expect(thrown(() => loadPinnedKey(pem(rsa))).message).toMatch(
      /an RSA key \(2048 bits\), expected EC P-256/,
    )
    expect(thrown(() => loadPinnedKey(pem(p384))).message).toMatch(
      /an EC key on secp384r1, expected EC P-256/,
    )
    expect(thrown(() => loadPinnedKey(pem(ed))).message).toMatch(/an ed25519 key, expected EC P-256/)
  })

  it("refuses a private key without quoting it", () => {
    const pem = signer.privateKey.export({ type: "pkcs8", format: "pem" }).toString()
    const error = thrown(() => loadPinnedKey(pem))
    expect(error.message).toMatch(/PRIVATE KEY/)
    const body = pem.split("\n")[1] ?? ""
    expect(body.length).toBeGreaterThan(20)
    expect(error.message).not.toContain(body)
    expect(error.stack).not.toContain(body)
    const sec1 = signer.privateKey.export({ type: "sec1", format: "pem" }).toString()
    expect(thrown(() => loadPinnedKey(sec1)).message).toMatch(/PRIVATE KEY/)
  })

  it("refuses garbage", () => {
    expect(thrown(() => loadPinnedKey("")).message).toMatch(/not PEM/)
    expect(thrown(() => loadPinnedKey("hello")).message).toMatch(/not PEM/)
    const junk = "-----BEGIN PUBLIC KEY-----\nSECRETMARKAAAA\n-----END PUBLIC KEY-----\n"
    const error = thrown(() => loadPinnedKey(junk))
    expect(error.message).toMatch(/not a PEM public key/)
    expect(error.message).not.toContain("SECRETMARK")
    const badCert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    expect(thrown(() => loadPinnedKey(badCert)).message).toMatch(/CERTIFICATE cannot be parsed/)
  })
})
