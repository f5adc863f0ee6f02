/**
 * Request headers as the application receives them: the client's, minus
 * hop-by-hop headers and anything claiming forwarding or identity, plus the
 * forwarding and identity headers the sidecar sets itself.
 */
import { createHash, X509Certificate } from "node:crypto"
import type { IncomingHttpHeaders } from "node:http"

/** RFC 9110 §7.6.1 connection-specific fields, plus the legacy ones proxies still see. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authorization",
  "proxy-authenticate",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
])

/** Set only by the sidecar: a client-sent copy is dropped, in any case or spelled with underscores. */
export const CLIENT_IDENTITY_HEADER = "x-forwarded-client-cert"
const SPOOFABLE = new Set(["forwarded", "x-real-ip", CLIENT_IDENTITY_HEADER])
const isSpoofable = (name: string) => SPOOFABLE.has(name) || name.startsWith("x-forwarded-")

/** Header names compare case-insensitively; `_` is folded to `-` because some servers (CGI, WSGI) do. */
const canonical = (name: string) => name.toLowerCase().replaceAll("_", "-")

export interface Forwarding {
  /** The TCP peer: the only client address the sidecar can vouch for. */
  readonly clientAddress: string
  /** The port the client connected to. */
  readonly port: number
  /** XFCC value for the verified client certificate, if any. */
  readonly clientCert: string | undefined
  /** Keep `Upgrade`/`Connection: upgrade` (WebSocket handshakes). */
  readonly upgrade: boolean
}

/**
 * Builds the application's request headers from the client's raw headers
 * (`rawHeaders` keeps every occurrence, so duplicates cannot slip through).
 */
export const forwardedHeaders = (
  rawHeaders: ReadonlyArray<string>,
  forwarding: Forwarding,
): IncomingHttpHeaders => {
  const connectionTokens = new Set<string>()
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (canonical(rawHeaders[i] ?? "") === "connection") {
      for (const token of (rawHeaders[i + 1] ?? "").split(",")) connectionTokens.add(canonical(token.trim()))
    }
  }
  // No prototype: header names such as `constructor` or `__proto__` are plain keys here.
  const out: Record<string, string | Array<string>> = Object.create(null)
  let host: string | undefined
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const raw = rawHeaders[i] ?? ""
    const value = rawHeaders[i + 1] ?? ""
    const name = raw.toLowerCase()
    const folded = canonical(raw)
    // Host is kept before `Connection:` tokens are honoured: a client cannot make the sidecar drop it.
    if (name === "host") {
      host ??= value
      continue
    }
    if (HOP_BY_HOP.has(folded) || isSpoofable(folded) || connectionTokens.has(folded)) continue
    // The sidecar answers `Expect: 100-continue` itself; forwarding it would make the app wait again.
    if (folded === "expect") continue
    const existing = out[name]
    if (existing === undefined) out[name] = value
    else if (Array.isArray(existing)) existing.push(value)
    else out[name] = [existing, value]
  }
  const client = forwarding.clientAddress.replace(/^::ffff:/, "")
  return {
    ...(host === undefined ? {} : { host }),
    ...out,
    ...(forwarding.upgrade ? { connection: "upgrade", upgrade: "websocket" } : {}),
    "x-forwarded-for": client,
    "x-forwarded-proto": "https",
    "x-forwarded-port": String(forwarding.port),
    ...(host === undefined ? {} : { "x-forwarded-host": host }),
    "x-real-ip": client,
    ...(forwarding.clientCert === undefined ? {} : { [CLIENT_IDENTITY_HEADER]: forwarding.clientCert }),
  }
}

/** A quoted XFCC value: `"` and `\` escaped, as Envoy writes it. */
const quoted = (value: string) => `"${value.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`

/** RFC 4514 order (most specific first), the way Envoy's `Subject=` reads; Node already escapes values. */
const subjectRfc4514 = (cert: X509Certificate): string =>
  cert.subject.split("\n").filter(Boolean).reverse().join(",")

/** Node's `subjectAltName` text: `TYPE:value` entries joined by ", ", odd values as JSON strings. */
const subjectAltNames = (text: string): Array<readonly [string, string]> =>
  [...text.matchAll(/([A-Za-z][A-Za-z ]*):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g)].map(([, type, value]) => [
    type ?? "",
    value?.startsWith('"') ? (JSON.parse(value) as string) : (value ?? ""),
  ])

/**
 * Envoy's X-Forwarded-Client-Cert for the verified client certificate:
 * `Hash=<sha256 of DER, hex>;Subject="…";URI=…;DNS=…`.
 */
export const clientCertHeader = (der: Buffer): string => {
  const cert = new X509Certificate(der)
  const parts = [
    `Hash=${createHash("sha256").update(der).digest("hex")}`,
    `Subject=${quoted(subjectRfc4514(cert))}`,
  ]
  for (const [type, value] of subjectAltNames(cert.subjectAltName ?? "")) {
    if (type === "URI") parts.push(`URI=${quoted(value)}`)
    else if (type === "DNS") parts.push(`DNS=${quoted(value)}`)
  }
  return parts.join(";")
}

/**
 * The app's response headers, made fit for the client's connection: the app's
 * hop-by-hop headers (and those its `Connection:` names) describe the
 * sidecar-to-app connection, not the client's. `Transfer-Encoding` is left for
 * Node, which frames the body for the client itself.
 */
export const clientResponseHeaders = (headers: IncomingHttpHeaders, closeConnection: boolean): void => {
  const named = String(headers.connection ?? "")
    .split(",")
    .map((token) => canonical(token.trim()))
  for (const name of [...named, "connection", "keep-alive", "proxy-connection", "upgrade", "trailer"]) {
    if (name && name !== "transfer-encoding") delete headers[name]
  }
  headers.connection = closeConnection ? "close" : "keep-alive"
}
