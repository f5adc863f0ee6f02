/**
 * What the sidecar reads from a verified client certificate: once per TLS connection, from Node's
 * `X509Certificate` of the peer (the cheapest view Node offers: a quarter of `getPeerCertificate`'s
 * cost with an RSA-4096 certificate). Allow-lists, logs, the dashboard and the identity headers all
 * use this one record, so they cannot disagree about who the client is.
 */
import type { X509Certificate } from "node:crypto"

export interface ClientCertificate {
  /**
   * The subject's most specific CN: the last one in the certificate, as Go's crypto/x509 (and so
   * ghostunnel) takes `Subject.CommonName`. Undefined without a CN.
   */
  readonly commonName: string | undefined
  /** Every OU of the subject (a certificate may carry several; allow-lists match any). */
  readonly organizationalUnits: ReadonlyArray<string>
  readonly dnsNames: ReadonlyArray<string>
  readonly uris: ReadonlyArray<string>
  /** The subject as RFC 4514 text, most specific first, values as they are (UTF-8, not escaped for headers). */
  readonly subject: string
  readonly issuer: string
  readonly serialNumber: string
  /** SHA-256 of the DER, as Node prints it (`AB:CD:…`). */
  readonly fingerprint256: string
  readonly validFrom: Date
  readonly validTo: Date
  /** The certificate, DER. */
  readonly der: Buffer
  /** Intermediates the client sent, the leaf's issuer first; the sidecar's own client CAs are left out. */
  readonly chain: ReadonlyArray<Buffer>
  /** The subject's attributes in certificate order: one array per RDN (several for `CN=a+OU=b`). */
  readonly rdns: ReadonlyArray<ReadonlyArray<Attribute>>
}

export type Attribute = readonly [name: string, value: string]

// ---------------------------------------------------------------------------------------------------------
// Node's DN text

/**
 * Parses a DN as Node prints it (`X509Certificate#subject`): OpenSSL's multi-line form, one RDN a
 * line, multi-valued RDNs joined by " + ", values escaped as RFC 2253 says (`\,` `\+` `\"` `\\` …)
 * and control characters as `\XX`. Returns the attributes with their values unescaped.
 */
export const parseDn = (text: string): Array<Array<Attribute>> => {
  const rdns: Array<Array<Attribute>> = []
  let rdn: Array<Attribute> = []
  let name = ""
  let value = ""
  let inValue = false
  const endAttribute = () => {
    if (name.length > 0 || value.length > 0) rdn.push([name, value])
    name = ""
    value = ""
    inValue = false
  }
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string
    if (c === "\\" && i + 1 < text.length) {
      const hex = text.slice(i + 1, i + 3)
      if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
        value += String.fromCharCode(Number.parseInt(hex, 16))
        i += 2
      } else {
        value += text[i + 1]
        i += 1
      }
    } else if (!inValue && c === "=") {
      inValue = true
    } else if (c === "\n") {
      endAttribute()
      rdns.push(rdn)
      rdn = []
    } else if (inValue && c === " " && text.startsWith(" + ", i)) {
      // "+" inside a value is always escaped, so an unescaped " + " separates attributes.
      endAttribute()
      i += 2
    } else if (inValue) {
      value += c
    } else {
      name += c
    }
  }
  endAttribute()
  if (rdn.length > 0) rdns.push(rdn)
  return rdns
}

/** RFC 4514 escaping of one value: the specials, a leading `#` or space and a trailing space. */
const escape4514 = (value: string): string =>
  value
    .replace(/[\\"+,;<>=]/g, (c) => `\\${c}`)
    .replace(/^[ #]/, (c) => `\\${c}`)
    .replace(/ $/, "\\ ")

/** `CN=a,O=b,C=c`: most specific first, multi-valued RDNs joined by `+`. */
export const formatDn = (rdns: ReadonlyArray<ReadonlyArray<Attribute>>): string =>
  rdns
    .toReversed()
    .map((rdn) => rdn.map(([name, value]) => `${name}=${escape4514(value)}`).join("+"))
    .join(",")

// ---------------------------------------------------------------------------------------------------------
// Node's subjectAltName text

/** Node's `jsonStringPattern`: a quoted part of `subjectAltName` is exactly one JSON string literal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: mirrors the JSON grammar
const JSON_STRING = /^"(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/

/**
 * Splits Node's `subjectAltName` text (`DNS:a, URI:x, DNS:"we,ird"`) into entries: entries are
 * separated by ", " outside quotes, and quoted parts (Node quotes values with commas, quotes or
 * control characters) are JSON strings. Undefined when the text is malformed.
 */
export const splitAltNames = (text: string): ReadonlyArray<string> | undefined => {
  const out: Array<string> = []
  let current = ""
  let offset = 0
  while (offset < text.length) {
    const separator = text.indexOf(", ", offset)
    const quote = text.indexOf('"', offset)
    if (quote !== -1 && (separator === -1 || quote < separator)) {
      current += text.slice(offset, quote)
      const literal = JSON_STRING.exec(text.slice(quote))?.[0]
      if (literal === undefined) return undefined
      current += JSON.parse(literal) as string
      offset = quote + literal.length
    } else if (separator !== -1) {
      out.push(current + text.slice(offset, separator))
      current = ""
      offset = separator + 2
    } else {
      current += text.slice(offset)
      offset = text.length
    }
  }
  out.push(current)
  return out
}

// ---------------------------------------------------------------------------------------------------------
// the record

const valuesOf = (rdns: ReadonlyArray<ReadonlyArray<Attribute>>, name: string): Array<string> => {
  const out: Array<string> = []
  for (const rdn of rdns) for (const [key, value] of rdn) if (key === name) out.push(value)
  return out
}

/**
 * From the peer certificate of an authorized TLS socket (`getPeerX509Certificate()`), whose
 * `issuerCertificate` links follow the chain Node verified. `trustAnchors` holds the fingerprints
 * of the sidecar's client CAs, which end the chain the client is said to have sent. A malformed
 * `subjectAltName` yields no SANs at all (failing closed: fewer allow-list entries can match).
 */
export const fromX509 = (cert: X509Certificate, trustAnchors: ReadonlySet<string>): ClientCertificate => {
  const rdns = parseDn(cert.subject)
  const dnsNames: Array<string> = []
  const uris: Array<string> = []
  const text = cert.subjectAltName
  for (const altName of text === undefined || text.length === 0 ? [] : (splitAltNames(text) ?? [])) {
    if (altName.startsWith("DNS:")) dnsNames.push(altName.slice("DNS:".length))
    else if (altName.startsWith("URI:")) uris.push(altName.slice("URI:".length))
  }
  const chain: Array<Buffer> = []
  // Bounded: a chain longer than this was not verified by OpenSSL's default depth (100) either.
  for (
    let issuer = cert.issuerCertificate;
    issuer !== undefined && chain.length < 100;
    issuer = issuer.issuerCertificate
  ) {
    if (trustAnchors.has(issuer.fingerprint256) || issuer.subject === issuer.issuer) break
    chain.push(issuer.raw)
  }
  const commonNames = valuesOf(rdns, "CN")
  return {
    commonName: commonNames.at(-1),
    organizationalUnits: valuesOf(rdns, "OU"),
    dnsNames,
    uris,
    subject: formatDn(rdns),
    issuer: formatDn(parseDn(cert.issuer)),
    serialNumber: cert.serialNumber,
    fingerprint256: cert.fingerprint256,
    validFrom: cert.validFromDate,
    validTo: cert.validToDate,
    der: cert.raw,
    chain,
    rdns,
  }
}
