/**
 * One record per TLS connection, made when the handshake completes: who the client is, what the
 * allow-lists decided, and the identity headers the application receives. A connection's
 * certificate cannot change, so nothing of this is worked out again per request; requests find the
 * record on their socket.
 */
import type { TLSSocket } from "node:tls"
import { type AllowRules, authorize } from "../auth/ClientAuthorization.ts"
import { type ClientCertificate, fromX509 } from "./clientCertificate.ts"
import { type IdentityHeaders, identityHeaders } from "./identityHeaders.ts"

export interface Peer {
  readonly certificate: ClientCertificate
  /** Why the allow-lists refuse this client; undefined when it is allowed. */
  readonly denied: string | undefined
  readonly identityHeaders: IdentityHeaders
  /** The TCP peer, `::ffff:` dropped: the only client address the sidecar can vouch for. */
  readonly address: string
}

// A symbol on the socket, as Node keeps its own per-socket state: no map to look up or to clean.
const PEER: unique symbol = Symbol("coco-secure-access/peer")
type WithPeer = { [PEER]?: Peer }

/** The record of the connection a request came in on; undefined for a connection not admitted. */
export const of = (socket: object): Peer | undefined => (socket as WithPeer)[PEER]

/** Admits the connection: from now on its requests are served. */
export const attach = (socket: TLSSocket, peer: Peer): void => {
  ;(socket as WithPeer)[PEER] = peer
}

/**
 * The record for an authorized TLS socket. Undefined when the socket carries no verified
 * certificate, which mTLS does not let through.
 */
export const make = (
  socket: TLSSocket,
  rules: AllowRules,
  trustAnchors: ReadonlySet<string>,
): Peer | undefined => {
  const x509 = socket.authorized ? socket.getPeerX509Certificate() : undefined
  if (x509 === undefined) return undefined
  const certificate = fromX509(x509, trustAnchors)
  const decision = authorize(rules, certificate)
  return {
    certificate,
    denied: decision.allowed ? undefined : decision.reason,
    identityHeaders: identityHeaders(certificate),
    address: (socket.remoteAddress ?? "").replace(/^::ffff:/, ""),
  }
}

/**
 * Why a resumed session may not go on, or undefined. OpenSSL does not verify a certificate again
 * when a session resumes: a ticket issued while the certificate was valid would carry it past its
 * expiry (tickets live 2 hours). Go's TLS stack refuses such resumptions; so does the sidecar.
 */
export const refuseResumed = (peer: Peer, now: number): string | undefined => {
  const { validFrom, validTo } = peer.certificate
  if (now > validTo.getTime()) return `client certificate expired at ${validTo.toISOString()}`
  if (now < validFrom.getTime()) return `client certificate not valid before ${validFrom.toISOString()}`
  return undefined
}
