/**
 * The binding of evidence to the TLS key: what the sidecar asks the attestation agent to put in
 * the evidence's report data, recomputed by the verifier a client runs (src/verify/). Shared by
 * both, so that they cannot disagree.
 *
 *   runtimeData = hex(SHA-256("coco-secure-access/evidence/v1" || 0x00 || nonce || SHA-256(SPKI DER)))
 *
 * 64 lowercase hex characters: ASCII, so the CDH passes them unchanged without `encoding=base64`
 * (which CDHs before v0.21 do not know), and exactly 64 bytes, the most TDX and SNP take. The
 * client's fresh nonce rules out replay; the hash of the served certificate's public key ties the
 * evidence to the key that terminated the client's TLS session.
 */
import { createHash, type KeyObject, X509Certificate } from "node:crypto"

export const DOMAIN = "coco-secure-access/evidence/v1"
export const NONCE_MIN_BYTES = 16
export const NONCE_MAX_BYTES = 64

/** SHA-256 of the DER SubjectPublicKeyInfo of a certificate's (or a key's) public key. */
export const publicKeySha256 = (from: X509Certificate | KeyObject): Buffer => {
  const key = from instanceof X509Certificate ? from.publicKey : from
  return createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest()
}

export const runtimeData = (nonce: Uint8Array, serverPublicKeySha256: Uint8Array): string =>
  createHash("sha256")
    .update(DOMAIN)
    .update(Buffer.from([0]))
    .update(nonce)
    .update(serverPublicKeySha256)
    .digest("hex")

/** The nonce of `?nonce=`: base64url without padding of 16 to 64 bytes; or why it is refused. */
export const decodeNonce = (
  text: string | undefined,
): { readonly bytes: Buffer } | { readonly problem: string } => {
  if (text === undefined || text === "")
    return { problem: "nonce is required: base64url (no padding) of 16 to 64 random bytes" }
  if (text.length > 200) return { problem: `nonce is too long (${text.length} characters)` }
  if (!/^[A-Za-z0-9_-]+$/.test(text))
    return { problem: "nonce must be base64url without padding (A-Z a-z 0-9 - _)" }
  if (text.length % 4 === 1) return { problem: "nonce is not valid base64url (its length cannot be 1 mod 4)" }
  const bytes = Buffer.from(text, "base64url")
  // Only the canonical spelling: the same nonce must always be the same text.
  if (bytes.toString("base64url") !== text) return { problem: "nonce is not canonical base64url" }
  if (bytes.length < NONCE_MIN_BYTES || bytes.length > NONCE_MAX_BYTES) {
    return {
      problem: `nonce must decode to ${NONCE_MIN_BYTES} to ${NONCE_MAX_BYTES} bytes, not ${bytes.length}`,
    }
  }
  return { bytes }
}
