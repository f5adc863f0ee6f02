/**
 * EAR tokens as Trustee's attestation service issues them (ES256, the public key as `jwk` in the
 * header; claims as in ../shared/docs/coco-interfaces.md §4.3), for the mock CDH, the local run and
 * tests. Clearly fake: the issuer says so.
 */
import { generateKeyPairSync, type KeyObject, randomUUID, sign } from "node:crypto"

export interface EarSigner {
  readonly privateKey: KeyObject
  readonly publicKey: KeyObject
}

export const newSigner = (): EarSigner => generateKeyPairSync("ec", { namedCurve: "P-256" })

export interface EarOptions {
  readonly tee?: string
  /** Seconds since the epoch; default now. */
  readonly iat?: number
  /** Lifetime in seconds; default 300 (kubectl-coco's `duration_min = 5`). */
  readonly lifetime?: number
  /** `ear.status` per submod; default `{ cpu0: "affirming" }`. */
  readonly submods?: Readonly<Record<string, string>>
  readonly issuer?: string
  /** Header fields over the default `{ alg: "ES256", typ: "JWT", jwk }`. */
  readonly header?: Readonly<Record<string, unknown>>
}

/** The vector of coco-interfaces.md §4.3's example (values as Trustee's sample policy gives them). */
export const TRUSTWORTHINESS_VECTOR = {
  "instance-identity": 0,
  configuration: 2,
  executables: 3,
  "file-system": 0,
  hardware: 2,
  "runtime-opaque": 0,
  "storage-opaque": 0,
  "sourced-data": 0,
} as const

const base64url = (bytes: Uint8Array | string): string => Buffer.from(bytes).toString("base64url")

export const earToken = (signer: EarSigner, options: EarOptions = {}): string => {
  const iat = options.iat ?? Math.floor(Date.now() / 1000)
  const tee = options.tee ?? "sample"
  const jwk = { ...signer.publicKey.export({ format: "jwk" }), alg: "ES256" }
  const header = { alg: "ES256", typ: "JWT", jwk, ...options.header }
  const submods = Object.fromEntries(
    Object.entries(options.submods ?? { cpu0: "affirming" }).map(([name, status]) => [
      name,
      {
        "ear.status": status,
        "ear.trustworthiness-vector": TRUSTWORTHINESS_VECTOR,
        "ear.appraisal-policy-id": "default",
        "ear.veraison.annotated-evidence": {
          [tee]: { mock: true },
          runtime_data_claims: {
            nonce: randomUUID(),
            "tee-pubkey": { kty: "EC", crv: "P-256", alg: "ECDH-ES+A256KW", x: "MOCK-ONLY", y: "MOCK-ONLY" },
          },
        },
      },
    ]),
  )
  const claims = {
    eat_profile: "tag:github.com,2024:confidential-containers/Trustee",
    iat,
    exp: iat + (options.lifetime ?? 300),
    iss: options.issuer ?? "mock attestation service (NOT A REAL ATTESTATION)",
    jti: randomUUID(),
    "ear.verifier-id": { developer: "mock (NOT A REAL ATTESTATION)", build: "mock" },
    submods,
  }
  const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`
  const signature = sign("sha256", Buffer.from(signingInput), {
    key: signer.privateKey,
    dsaEncoding: "ieee-p1363",
  })
  return `${signingInput}.${base64url(signature)}`
}
