/** The verified client certificate of the connection a request came in on. */
import type { TLSSocket } from "node:tls"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"

export interface ClientIdentity {
  readonly commonName: string | undefined
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  readonly fingerprint256: string
  readonly validTo: string
}

const first = (value: string | ReadonlyArray<string> | undefined): string | undefined =>
  typeof value === "string" ? value : value?.[0]

const dn = (name: Readonly<Record<string, string | ReadonlyArray<string> | undefined>> | undefined): string =>
  Object.entries(name ?? {})
    .map(([key, value]) => `${key}=${typeof value === "string" ? value : (value ?? []).join("+")}`)
    .join(", ")

/** Undefined only when the socket is not an authorized TLS socket, which mTLS does not let through. */
export const fromRequest = (request: HttpServerRequest): ClientIdentity | undefined => {
  const socket = NodeHttpServerRequest.toIncomingMessage(request).socket as TLSSocket
  if (typeof socket.getPeerCertificate !== "function" || !socket.authorized) return undefined
  const cert = socket.getPeerCertificate()
  if (!cert || Object.keys(cert).length === 0) return undefined
  return {
    commonName: first(cert.subject?.CN),
    subject: dn(cert.subject),
    issuer: dn(cert.issuer),
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    validTo: new Date(cert.valid_to).toISOString(),
  }
}
