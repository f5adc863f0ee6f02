/** TLS material failures: each names the resource URI it came from. */
import * as Data from "effect/Data"

export class InvalidPem extends Data.TaggedError("InvalidPem")<{
  readonly uri: string
  readonly what: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.uri}: the ${this.what} is not usable: ${this.reason}`
  }
}

export class KeyMismatch extends Data.TaggedError("KeyMismatch")<{
  readonly certUri: string
  readonly keyUri: string
}> {
  override get message(): string {
    return `${this.keyUri}: the private key does not belong to the certificate from ${this.certUri}`
  }
}

export class CertificateExpired extends Data.TaggedError("CertificateExpired")<{
  readonly uri: string
  readonly subject: string
  readonly notAfter: string
}> {
  override get message(): string {
    return `${this.uri}: the certificate ${this.subject} expired at ${this.notAfter}`
  }
}

export class CertificateNotYetValid extends Data.TaggedError("CertificateNotYetValid")<{
  readonly uri: string
  readonly subject: string
  readonly notBefore: string
}> {
  override get message(): string {
    return `${this.uri}: the certificate ${this.subject} is not valid before ${this.notBefore} (check the clock)`
  }
}

export class NotACaCertificate extends Data.TaggedError("NotACaCertificate")<{
  readonly uri: string
  readonly subject: string
}> {
  override get message(): string {
    return `${this.uri}: ${this.subject} is not a CA certificate (basicConstraints CA:TRUE is required to verify clients)`
  }
}

/** Parsed fine, but OpenSSL will not use it (at Node's security level): it would fail every handshake. */
export class RefusedByOpenSsl extends Data.TaggedError("RefusedByOpenSsl")<{
  readonly uri: string
  readonly what: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.uri}: OpenSSL refuses the ${this.what}: ${this.reason}`
  }
}

export type TlsMaterialError =
  | InvalidPem
  | KeyMismatch
  | CertificateExpired
  | CertificateNotYetValid
  | NotACaCertificate
  | RefusedByOpenSsl
