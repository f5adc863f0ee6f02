/**
 * The headers that tell the application who the client is, computed once per TLS connection from
 * its verified certificate. Every value is printable ASCII whatever the certificate holds (UTF-8
 * names, control characters), so that Node can always send it:
 *
 * - `X-Forwarded-Client-Cert`, Envoy's format: `Hash=<SHA-256 of the DER, hex>;Subject="…"`, then
 *   `URI="…"` and `DNS="…"` per SAN. The Subject is RFC 4514 text with every byte outside printable
 *   ASCII written as a `\XX` hex pair of its UTF-8 encoding, as Envoy's OpenSSL printing does
 *   (`CN=\C5\81ukasz`); SAN values have such bytes percent-encoded (`%0D%0A`). Inside the quotes,
 *   `"` and `\` are escaped with a backslash.
 * - `Client-Cert` (RFC 9440): the DER as a structured-field byte sequence, `:<base64>:`;
 *   `Client-Cert-Chain` the intermediates the client sent, when it sent any.
 */
import { createHash } from "node:crypto"
import type { ClientCertificate } from "./clientCertificate.ts"

export const XFCC = "x-forwarded-client-cert"
export const CLIENT_CERT = "client-cert"
export const CLIENT_CERT_CHAIN = "client-cert-chain"

export type IdentityHeaders = Readonly<Record<string, string>>

const hex = (byte: number) => byte.toString(16).toUpperCase().padStart(2, "0")

/** Printable ASCII stays; anything else becomes `<prefix>XX` per UTF-8 byte. */
const asciiOnly = (value: string, prefix: string): string =>
  /^[\u0020-\u007e]*$/.test(value)
    ? value
    : value.replace(/[^\u0020-\u007e]+/gu, (run) =>
        Array.from(Buffer.from(run, "utf8"), (byte) => `${prefix}${hex(byte)}`).join(""),
      )

/** A quoted XFCC value: `"` and `\` escaped, as Envoy writes it. */
const quoted = (value: string) => `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`

const byteSequence = (der: Buffer) => `:${der.toString("base64")}:`

export const xfcc = (cert: ClientCertificate): string => {
  const parts = [
    `Hash=${createHash("sha256").update(cert.der).digest("hex")}`,
    `Subject=${quoted(asciiOnly(cert.subject, "\\"))}`,
  ]
  for (const uri of cert.uris) parts.push(`URI=${quoted(asciiOnly(uri, "%"))}`)
  for (const name of cert.dnsNames) parts.push(`DNS=${quoted(asciiOnly(name, "%"))}`)
  return parts.join(";")
}

export const identityHeaders = (cert: ClientCertificate): IdentityHeaders => ({
  [XFCC]: xfcc(cert),
  [CLIENT_CERT]: byteSequence(cert.der),
  ...(cert.chain.length === 0 ? {} : { [CLIENT_CERT_CHAIN]: cert.chain.map(byteSequence).join(", ") }),
})
