/**
 * Parsing and checking of PEM material before anything listens, so that a
 * broken resource fails start-up with its URI instead of failing handshakes.
 */
import { createPrivateKey, type KeyObject, X509Certificate } from "node:crypto"
import * as Redacted from "effect/Redacted"
import * as Result from "effect/Result"
import {
  CertificateExpired,
  CertificateNotYetValid,
  InvalidPem,
  KeyMismatch,
  NotACaCertificate,
} from "./errors.ts"

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g

export interface CertificateInfo {
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  readonly fingerprint256: string
  readonly subjectAltName: string | undefined
  readonly validFrom: Date
  readonly validTo: Date
}

export const describe = (cert: X509Certificate): CertificateInfo => ({
  subject: oneLine(cert.subject),
  issuer: oneLine(cert.issuer),
  serialNumber: cert.serialNumber,
  fingerprint256: cert.fingerprint256,
  subjectAltName: cert.subjectAltName,
  validFrom: new Date(cert.validFromDate.getTime()),
  validTo: new Date(cert.validToDate.getTime()),
})

/** Node prints subjects one attribute per line; logs and errors want `CN=x, O=y`. */
export const oneLine = (dn: string): string => dn.split("\n").filter(Boolean).join(", ")

const text = (bytes: Uint8Array): string => new TextDecoder("utf-8").decode(bytes)

/** Every CERTIFICATE block in a PEM bundle, parsed. */
export const parseCertificates = (
  bytes: Uint8Array,
  uri: string,
  what: string,
): Result.Result<
  { readonly pem: string; readonly certs: readonly [X509Certificate, ...Array<X509Certificate>] },
  InvalidPem
> => {
  const pem = text(bytes)
  const blocks = pem.match(CERT_BLOCK) ?? []
  if (blocks.length === 0) {
    return Result.fail(
      new InvalidPem({
        uri,
        what,
        reason: `no PEM CERTIFICATE block found (${bytes.length} bytes received)`,
      }),
    )
  }
  const certs: Array<X509Certificate> = []
  for (const [index, block] of blocks.entries()) {
    try {
      certs.push(new X509Certificate(block))
    } catch (error) {
      return Result.fail(
        new InvalidPem({
          uri,
          what,
          reason: `certificate #${index + 1} does not parse (${errorText(error)})`,
        }),
      )
    }
  }
  const [leaf, ...rest] = certs
  if (leaf === undefined) return Result.fail(new InvalidPem({ uri, what, reason: "no certificate" }))
  return Result.succeed({ pem: blocks.join("\n"), certs: [leaf, ...rest] })
}

/** The key's own parse errors are kept out: they may quote key bytes. */
export const parsePrivateKey = (
  bytes: Uint8Array,
  uri: string,
): Result.Result<{ readonly pem: Redacted.Redacted<string>; readonly key: KeyObject }, InvalidPem> => {
  const pem = text(bytes)
  if (!/-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(pem)) {
    return Result.fail(
      new InvalidPem({
        uri,
        what: "private key",
        reason: `no PEM PRIVATE KEY block found (${bytes.length} bytes received; PKCS#1, PKCS#8 or SEC1 expected)`,
      }),
    )
  }
  if (pem.includes("-----BEGIN ENCRYPTED PRIVATE KEY-----") || /Proc-Type: 4,ENCRYPTED/.test(pem)) {
    return Result.fail(
      new InvalidPem({ uri, what: "private key", reason: "encrypted private keys are not supported" }),
    )
  }
  try {
    const key = createPrivateKey({ key: pem, format: "pem" })
    return Result.succeed({ pem: Redacted.make(pem, { label: "private key" }), key })
  } catch {
    return Result.fail(
      new InvalidPem({ uri, what: "private key", reason: "the PEM block does not decode as a private key" }),
    )
  }
}

export const checkKeyMatches = (
  cert: X509Certificate,
  key: KeyObject,
  certUri: string,
  keyUri: string,
): Result.Result<void, KeyMismatch> =>
  cert.checkPrivateKey(key) ? Result.void : Result.fail(new KeyMismatch({ certUri, keyUri }))

export const checkValidity = (
  cert: X509Certificate,
  uri: string,
  now: Date,
): Result.Result<void, CertificateExpired | CertificateNotYetValid> => {
  const subject = oneLine(cert.subject)
  if (now < cert.validFromDate) {
    return Result.fail(
      new CertificateNotYetValid({ uri, subject, notBefore: cert.validFromDate.toISOString() }),
    )
  }
  if (now > cert.validToDate) {
    return Result.fail(new CertificateExpired({ uri, subject, notAfter: cert.validToDate.toISOString() }))
  }
  return Result.void
}

/**
 * Every certificate of the client CA bundle must be a CA; at least one must be
 * valid now (an expired one next to a fresh one is normal during a rollover).
 */
export const checkClientCas = (
  certs: ReadonlyArray<X509Certificate>,
  uri: string,
  now: Date,
): Result.Result<void, NotACaCertificate | CertificateExpired | CertificateNotYetValid> => {
  for (const cert of certs) {
    if (!cert.ca) return Result.fail(new NotACaCertificate({ uri, subject: oneLine(cert.subject) }))
  }
  let firstProblem: Result.Result<void, CertificateExpired | CertificateNotYetValid> = Result.void
  for (const cert of certs) {
    const validity = checkValidity(cert, uri, now)
    if (Result.isSuccess(validity)) return Result.void
    if (Result.isSuccess(firstProblem)) firstProblem = validity
  }
  return firstProblem
}

const errorText = (error: unknown): string => (error instanceof Error ? error.message : String(error))
