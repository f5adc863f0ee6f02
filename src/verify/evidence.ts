/**
 * Reads the raw hardware evidence that the in-guest CDH REST API returns for
 * `GET /aa/evidence?runtime_data=<...>` (the attestation agent's `get_evidence`), and tells whether its report
 * data carries a given runtime data.
 *
 * This module only READS the evidence: it does not check the TDX quote's ECDSA signature / QE report / PCK
 * chain, nor the SNP report's VCEK signature, nor any collateral. A reading is only as trustworthy as the
 * channel the evidence came over until a real verifier (Intel DCAP, AMD VCEK chain, or a trustee attestation
 * service) has checked the signature.
 *
 * Formats (confidential-containers/guest-components @ 8246e5e0977f6322f0a1b0f77e0739cf1c3e1f74,
 * attestation-agent/attester/src/):
 *
 * - `sample/mod.rs`: `SampleQuote { svn: String, report_data: String }`, `svn` = `"1"`, `report_data` =
 *   base64 STANDARD (padded) of the runtime data exactly as given (any length, no padding, no hashing).
 * - `tdx/mod.rs`: `TdxEvidence { cc_eventlog: Option<String>, quote: String }`, `quote` = base64 STANDARD of
 *   the TD quote read from configfs-tsm (`tsm_report/mod.rs`, `outblob`); `cc_eventlog` is base64 or `null`.
 * - `snp/mod.rs`: `SnpEvidence { attestation_report: sev::firmware::guest::AttestationReport, cert_chain:
 *   Option<Vec<CertTableEntry>> }` serialized with serde_json. The sev crate is 6.3.1 in guest-components'
 *   Cargo.lock; its serde (virtee/sev v6.3.0 = 08fc82a076fdf5ef56801280837b02239208dc53,
 *   src/firmware/guest/types/snp.rs, src/util/array.rs; 6.3.1 only adds bincode 2 derives) writes every
 *   byte array (`report_data` [64], `measurement` [48], `host_data` [32], `chip_id` [64], ...) as a JSON
 *   ARRAY OF NUMBERS 0-255 (serde_big_array / plain `[u8; N]`), never hex or base64; `policy`, `plat_info`,
 *   `key_info` as plain numbers (bitfield newtypes), `current_tcb` etc. as
 *   `{fmc, bootloader, tee, snp, microcode}`, `current`/`committed` as `{major, minor, build}`, `signature` as
 *   `{r: [72], s: [72]}`. sev 7.1 (virtee/sev 9cf2adbffa209cc5becf7ff89ffdf624e7278ced) keeps the same JSON.
 *   A real instance: trustee attestation-service/tests/e2e/evidence.json (see test/verify/fixtures/).
 *
 * TD quote layout (Intel DCAP sgx_quote_4.h / sgx_quote_5.h, as parsed by confidential-containers/trustee @
 * 78962cd416dcc8a32f9377e0066a28fe21420f69, deps/verifier/src/intel_dcap/quote.rs), all integers little
 * endian:
 *
 *   header (48 bytes): 0 version u16 | 2 att_key_type u16 | 4 tee_type u32 (0x81 = TDX) | 8 reserved u32 |
 *                      12 QE vendor id [16] | 28 user data [20]
 *   v4: body at 48 (TDX 1.0, 584 bytes), then signature data length u32 at 632, signature data
 *   v5: 48 body type u16 (2 = TDX 1.0 body, 3 = TDX 1.5 body) | 50 body size u32 (584 / 648) | body at 54,
 *       then signature data length u32, signature data
 *   body: 0 TEE_TCB_SVN [16] | 16 MRSEAM [48] | 64 MRSIGNERSEAM [48] | 112 SEAM_ATTRIBUTES [8] |
 *         120 TD_ATTRIBUTES [8] | 128 XFAM [8] | 136 MRTD [48] | 184 MRCONFIGID [48] | 232 MROWNER [48] |
 *         280 MROWNERCONFIG [48] | 328 RTMR0..3 [4 x 48] | 520 REPORTDATA [64] | (584 end of TDX 1.0) |
 *         584 TEE_TCB_SVN2 [16] | 600 MRSERVICETD [48] | (648 end of TDX 1.5)
 *   so REPORTDATA is at 568..632 in a v4 quote and at 574..638 in a v5 quote.
 *
 * Plain TypeScript, node:* only: bundled into the standalone verifier CLI.
 */
import { Buffer } from "node:buffer"

export type EvidenceTee = "sample" | "tdx" | "snp"

export interface Measurement {
  readonly name: string
  /** Lowercase hex. */
  readonly value: string
}

export interface EvidenceReading {
  readonly tee: EvidenceTee
  /** The report data exactly as the TEE reports it: 64 bytes for tdx/snp, the raw runtime data for sample. */
  readonly reportData: Uint8Array
  /** TDX: MRTD, RTMR0..3, MRCONFIGID. SNP: MEASUREMENT, HOST_DATA. Sample: none. */
  readonly measurements: ReadonlyArray<Measurement>
  /** Short human-readable lines (quote version, TCB SVNs, SNP policy, ...). */
  readonly details: ReadonlyArray<string>
}

/** Size of the report data field of a TD quote and of an SNP attestation report. */
export const REPORT_DATA_LENGTH = 64

const TDX_HEADER_LENGTH = 48
const TDX_TEE_TYPE = 0x81
const TDX10_BODY_LENGTH = 584
const TDX15_BODY_LENGTH = 648
const TDX_V5_PREFIX_LENGTH = 6 // body type u16 + body size u32

/** Offsets inside the TD report body (TDX 1.0 and 1.5 share the first 584 bytes). */
const Body = {
  teeTcbSvn: 0,
  mrSeam: 16,
  tdAttributes: 120,
  mrTd: 136,
  mrConfigId: 184,
  rtmr0: 328,
  reportData: 520,
  teeTcbSvn2: 584,
  mrServiceTd: 600,
} as const

// ---------------------------------------------------------------------------------------------------------
// small helpers

const hex = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")

const describe = (value: unknown): string => {
  if (value === null) return "null"
  if (value === undefined) return "nothing"
  if (Array.isArray(value)) return `an array of ${value.length}`
  if (typeof value === "string") return `a string of ${value.length} characters`
  return `a ${typeof value}`
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)

/** Base64 STANDARD with padding, as the Rust `base64::engine::general_purpose::STANDARD` engine writes it. */
const decodeBase64 = (value: string, what: string): Uint8Array => {
  const bytes = Buffer.from(value, "base64")
  if (bytes.toString("base64") !== value) {
    throw new Error(`${what} is not canonical standard base64 (alphabet A-Z a-z 0-9 + /, "=" padding)`)
  }
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

const u16 = (bytes: Uint8Array, offset: number): number =>
  (bytes[offset] ?? 0) | ((bytes[offset + 1] ?? 0) << 8)

const u32 = (bytes: Uint8Array, offset: number): number =>
  ((bytes[offset] ?? 0) | ((bytes[offset + 1] ?? 0) << 8) | ((bytes[offset + 2] ?? 0) << 16)) +
  (bytes[offset + 3] ?? 0) * 0x1000000

const toEvidenceObject = (evidence: unknown): Record<string, unknown> => {
  let value = evidence
  if (value instanceof Uint8Array) {
    try {
      value = new TextDecoder("utf-8", { fatal: true }).decode(value)
    } catch {
      throw new Error("evidence is not UTF-8 text")
    }
  }
  if (typeof value === "string") {
    try {
      value = JSON.parse(value)
    } catch (error) {
      throw new Error(`evidence is not valid JSON: ${error instanceof Error ? error.message : String(error)}`)
    }
  }
  if (!isRecord(value)) throw new Error(`evidence must be a JSON object, got ${describe(value)}`)
  return value
}

// ---------------------------------------------------------------------------------------------------------
// sample

const readSample = (evidence: Record<string, unknown>): EvidenceReading => {
  const { svn, report_data: reportData } = evidence
  if (typeof reportData !== "string") {
    throw new Error(`sample evidence: "report_data" must be a base64 string, got ${describe(reportData)}`)
  }
  if (svn !== undefined && typeof svn !== "string") {
    throw new Error(`sample evidence: "svn" must be a string, got ${describe(svn)}`)
  }
  const data = decodeBase64(reportData, 'sample evidence: "report_data"')
  return {
    tee: "sample",
    reportData: data,
    measurements: [],
    details: [
      "sample attester: no TEE, nothing is signed or measured (development only)",
      ...(svn === undefined ? [] : [`svn ${svn}`]),
      `report data: ${data.length} bytes`,
    ],
  }
}

// ---------------------------------------------------------------------------------------------------------
// tdx

const readTdxQuote = (quote: Uint8Array): Omit<EvidenceReading, "tee"> => {
  if (quote.length < TDX_HEADER_LENGTH) {
    throw new Error(
      `TDX quote too short: ${quote.length} bytes, need at least ${TDX_HEADER_LENGTH} for the header`,
    )
  }
  const version = u16(quote, 0)
  const attKeyType = u16(quote, 2)
  const teeType = u32(quote, 4)
  if (version !== 4 && version !== 5) {
    throw new Error(
      `unsupported TD quote version ${version} (tee_type 0x${teeType.toString(16).padStart(8, "0")}): ` +
        `expected 4 or 5${version === 3 ? " (version 3 is an SGX enclave quote)" : ""}`,
    )
  }
  if (teeType !== TDX_TEE_TYPE) {
    throw new Error(
      `not a TDX quote: tee_type 0x${teeType.toString(16).padStart(8, "0")}, expected 0x00000081`,
    )
  }

  let bodyOffset = TDX_HEADER_LENGTH
  let bodyLength = TDX10_BODY_LENGTH
  let layout = "TD quote v4 (TDX 1.0 report body)"
  if (version === 5) {
    const prefixEnd = TDX_HEADER_LENGTH + TDX_V5_PREFIX_LENGTH
    if (quote.length < prefixEnd) {
      throw new Error(
        `TDX quote too short: ${quote.length} bytes, need at least ${prefixEnd} for a v5 header and body type/size`,
      )
    }
    const bodyType = u16(quote, TDX_HEADER_LENGTH)
    const bodySize = u32(quote, TDX_HEADER_LENGTH + 2)
    if (bodyType === 2) bodyLength = TDX10_BODY_LENGTH
    else if (bodyType === 3) bodyLength = TDX15_BODY_LENGTH
    else throw new Error(`unsupported TD quote v5 body type ${bodyType}: expected 2 (TDX 1.0) or 3 (TDX 1.5)`)
    if (bodySize !== bodyLength) {
      throw new Error(
        `TD quote v5 body size ${bodySize} does not match body type ${bodyType}: expected ${bodyLength}`,
      )
    }
    bodyOffset = prefixEnd
    layout = `TD quote v5, body type ${bodyType} (${bodyType === 2 ? "TDX 1.0" : "TDX 1.5"} report body)`
  }
  const bodyEnd = bodyOffset + bodyLength
  if (quote.length < bodyEnd) {
    throw new Error(`TDX quote too short: ${quote.length} bytes, need at least ${bodyEnd}`)
  }

  const field = (offset: number, length: number): Uint8Array =>
    quote.slice(bodyOffset + offset, bodyOffset + offset + length)

  // Signature data: not verified here, but its declared length must fit (a truncated quote is malformed).
  const details = [layout]
  if (attKeyType !== 2) details.push(`attestation key type ${attKeyType} (expected 2, ECDSA-256-with-P-256)`)
  if (quote.length >= bodyEnd + 4) {
    const signatureLength = u32(quote, bodyEnd)
    const available = quote.length - bodyEnd - 4
    if (signatureLength > available) {
      throw new Error(
        `TDX quote signature data truncated: declares ${signatureLength} bytes, only ${available} present`,
      )
    }
    const trailing = available - signatureLength
    details.push(
      `signature data: ${signatureLength} bytes (not verified by this reader)` +
        (trailing > 0 ? `, ${trailing} trailing bytes after it` : ""),
    )
  } else {
    details.push("no signature data (the quote ends after the report body)")
  }

  const tdAttributes = field(Body.tdAttributes, 8)
  const debug = ((tdAttributes[0] ?? 0) & 1) === 1
  details.push(
    `TEE_TCB_SVN ${hex(field(Body.teeTcbSvn, 16))}`,
    `MRSEAM ${hex(field(Body.mrSeam, 48))}`,
    `TD_ATTRIBUTES ${hex(tdAttributes)}${debug ? " (DEBUG set: the TD is debuggable, its memory is not confidential)" : ""}`,
  )
  if (bodyLength === TDX15_BODY_LENGTH) {
    details.push(
      `TEE_TCB_SVN2 ${hex(field(Body.teeTcbSvn2, 16))}`,
      `MRSERVICETD ${hex(field(Body.mrServiceTd, 48))}`,
    )
  }

  return {
    reportData: field(Body.reportData, REPORT_DATA_LENGTH),
    measurements: [
      { name: "MRTD", value: hex(field(Body.mrTd, 48)) },
      ...[0, 1, 2, 3].map((i) => ({ name: `RTMR${i}`, value: hex(field(Body.rtmr0 + 48 * i, 48)) })),
      { name: "MRCONFIGID", value: hex(field(Body.mrConfigId, 48)) },
    ],
    details,
  }
}

const readTdx = (evidence: Record<string, unknown>): EvidenceReading => {
  const { quote, cc_eventlog: eventlog } = evidence
  if (typeof quote !== "string") {
    throw new Error(`TDX evidence: "quote" must be a base64 string, got ${describe(quote)}`)
  }
  if (eventlog !== undefined && eventlog !== null && typeof eventlog !== "string") {
    throw new Error(`TDX evidence: "cc_eventlog" must be a base64 string or null, got ${describe(eventlog)}`)
  }
  const reading = readTdxQuote(decodeBase64(quote, 'TDX evidence: "quote"'))
  const eventlogLine =
    typeof eventlog === "string"
      ? `CC event log: ${decodeBase64(eventlog, 'TDX evidence: "cc_eventlog"').length} bytes (not replayed)`
      : "no CC event log"
  return { tee: "tdx", ...reading, details: [...reading.details, eventlogLine] }
}

// ---------------------------------------------------------------------------------------------------------
// snp

const snpBytes = (report: Record<string, unknown>, name: string, length: number): Uint8Array => {
  const value = report[name]
  const where = `SNP attestation_report.${name}`
  if (!Array.isArray(value)) {
    throw new Error(`${where}: expected an array of ${length} byte values (0-255), got ${describe(value)}`)
  }
  if (value.length !== length) {
    throw new Error(`${where}: expected ${length} byte values, got ${value.length}`)
  }
  const bytes = new Uint8Array(length)
  value.forEach((byte: unknown, index) => {
    if (typeof byte !== "number" || !Number.isInteger(byte) || byte < 0 || byte > 255) {
      throw new Error(`${where}[${index}]: expected a byte value 0-255, got ${JSON.stringify(byte)}`)
    }
    bytes[index] = byte
  })
  return bytes
}

const snpInteger = (report: Record<string, unknown>, name: string): number | undefined => {
  const value = report[name]
  if (value === undefined || value === null) return undefined
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(
      `SNP attestation_report.${name}: expected a non-negative integer, got ${JSON.stringify(value)}`,
    )
  }
  return value
}

const snpTcb = (report: Record<string, unknown>, name: string): string | undefined => {
  const value = report[name]
  if (value === undefined || value === null) return undefined
  if (!isRecord(value))
    throw new Error(`SNP attestation_report.${name}: expected an object, got ${describe(value)}`)
  const parts: Array<string> = []
  for (const [key, label] of [
    ["bootloader", "bootloader"],
    ["tee", "TEE"],
    ["snp", "SNP"],
    ["microcode", "microcode"],
    ["fmc", "FMC"],
  ] as const) {
    const part = value[key]
    if (part === undefined || part === null) continue
    if (typeof part !== "number" || !Number.isInteger(part)) {
      throw new Error(
        `SNP attestation_report.${name}.${key}: expected an integer, got ${JSON.stringify(part)}`,
      )
    }
    parts.push(`${label} ${part}`)
  }
  return parts.join(", ")
}

const bit = (value: number, index: number): boolean => Math.floor(value / 2 ** index) % 2 === 1

const describePolicy = (policy: number): string => {
  const abiMinor = policy % 256
  const abiMajor = Math.floor(policy / 256) % 256
  return (
    `policy 0x${policy.toString(16).padStart(16, "0")}: ABI >= ${abiMajor}.${abiMinor}, ` +
    `SMT ${bit(policy, 16) ? "allowed" : "disallowed"}, ` +
    `migration agent ${bit(policy, 18) ? "allowed" : "disallowed"}, ` +
    `single socket ${bit(policy, 20) ? "required" : "not required"}, ` +
    (bit(policy, 19) ? "DEBUG ALLOWED (the host can read the guest's memory)" : "debug disallowed")
  )
}

const describeCertChain = (chain: unknown): string => {
  if (chain === undefined || chain === null)
    return "no cert chain in the evidence (the VCEK comes from AMD KDS)"
  if (!Array.isArray(chain))
    throw new Error(`SNP evidence: "cert_chain" must be an array or null, got ${describe(chain)}`)
  const entries = chain.map((entry: unknown, index) => {
    if (!isRecord(entry))
      throw new Error(`SNP evidence: cert_chain[${index}] must be an object, got ${describe(entry)}`)
    const { cert_type: type, data } = entry
    // CertType is a serde enum: unit variants as strings ("ARK", "ASK", "VCEK", "VLEK", "CRL", "Empty"),
    // OTHER(uuid) as {"OTHER": "<uuid>"}.
    const name =
      typeof type === "string"
        ? type
        : isRecord(type) && typeof type.OTHER === "string"
          ? `OTHER ${type.OTHER}`
          : "?"
    return `${name} (${Array.isArray(data) ? `${data.length} bytes` : "no data"})`
  })
  return `cert chain: ${entries.length === 0 ? "empty" : entries.join(", ")}`
}

const readSnp = (evidence: Record<string, unknown>): EvidenceReading => {
  const report = evidence.attestation_report
  if (!isRecord(report)) {
    throw new Error(`SNP evidence: "attestation_report" must be an object, got ${describe(report)}`)
  }
  const version = snpInteger(report, "version")
  if (version === undefined) throw new Error("SNP attestation_report.version is missing")
  const reportData = snpBytes(report, "report_data", REPORT_DATA_LENGTH)
  const measurements: Array<Measurement> = [
    { name: "MEASUREMENT", value: hex(snpBytes(report, "measurement", 48)) },
  ]
  if (report.host_data !== undefined) {
    measurements.push({ name: "HOST_DATA", value: hex(snpBytes(report, "host_data", 32)) })
  }

  const details = [`SNP attestation report v${version}`]
  const guestSvn = snpInteger(report, "guest_svn")
  if (guestSvn !== undefined) details.push(`guest SVN ${guestSvn}`)
  const policy = snpInteger(report, "policy")
  if (policy !== undefined) details.push(describePolicy(policy))
  const vmpl = snpInteger(report, "vmpl")
  if (vmpl !== undefined) details.push(`VMPL ${vmpl}`)
  const currentTcb = snpTcb(report, "current_tcb")
  if (currentTcb !== undefined) details.push(`current TCB: ${currentTcb}`)
  const reportedTcb = snpTcb(report, "reported_tcb")
  if (reportedTcb !== undefined) details.push(`reported TCB: ${reportedTcb}`)
  const current = report.current
  if (isRecord(current)) details.push(`firmware ${current.major}.${current.minor}.${current.build}`)
  details.push(describeCertChain(evidence.cert_chain))

  return { tee: "snp", reportData, measurements, details }
}

// ---------------------------------------------------------------------------------------------------------
// entry points

const detect = (evidence: Record<string, unknown>): EvidenceTee | undefined => {
  if ("quote" in evidence) return "tdx"
  if ("attestation_report" in evidence) return "snp"
  if ("report_data" in evidence && "svn" in evidence) return "sample"
  return undefined
}

/**
 * Reads `/aa/evidence` output. `tee` is the AA's TEE name ("sample", "tdx", "snp"); when it is null or not
 * one of those, the TEE is detected from the JSON shape. `evidence` is the parsed JSON, or its text/bytes.
 * Throws an Error naming what is wrong when the evidence is malformed.
 */
export const readEvidence = (tee: string | null, evidence: unknown): EvidenceReading => {
  const object = toEvidenceObject(evidence)
  const named = tee?.toLowerCase()
  const kind: EvidenceTee | undefined =
    named === "sample" || named === "tdx" || named === "snp" ? named : detect(object)
  switch (kind) {
    case "sample":
      return readSample(object)
    case "tdx":
      return readTdx(object)
    case "snp":
      return readSnp(object)
    case undefined: {
      const keys = Object.keys(object)
      throw new Error(
        `unrecognised evidence${tee === null ? "" : ` for tee ${JSON.stringify(tee)}`}: expected "quote" (tdx), ` +
          `"attestation_report" (snp) or "svn" and "report_data" (sample), got ` +
          (keys.length === 0 ? "an empty object" : `keys ${keys.map((k) => JSON.stringify(k)).join(", ")}`),
      )
    }
  }
}

/**
 * True when the evidence's report data is exactly what the attester makes of `runtimeData`:
 *
 * - tdx: guest-components attestation-agent/attester/src/tdx/mod.rs `get_evidence` bails when the data is
 *   longer than `TDX_REPORT_DATA_SIZE` (64), then `report_data.resize(64, 0)`: zero bytes APPENDED up to 64;
 *   those 64 bytes are written to configfs-tsm `inblob` and come back as the quote's REPORTDATA.
 * - snp: attester/src/snp/mod.rs `get_evidence` likewise bails above 64 bytes and `resize(64, 0)`s before
 *   `get_ext_report`: the report's `report_data` is the data followed by zeros up to 64 bytes.
 * - sample: attester/src/sample/mod.rs base64-encodes the data as given (any length, nothing added), so the
 *   report data must be EXACTLY the runtime data (same as trustee's sample verifier).
 *
 * Unlike trustee's `regularize_data` (which truncates expected data longer than 64 bytes), a runtime data
 * longer than the report data never matches: the attesters refuse it, so no evidence can carry it. With the
 * sidecar's 64-character runtime data the padding is a no-op for tdx/snp.
 */
export const carries = (reading: EvidenceReading, runtimeData: Uint8Array): boolean => {
  const reported = reading.reportData
  if (reading.tee === "sample") {
    return reported.length === runtimeData.length && reported.every((byte, i) => byte === runtimeData[i])
  }
  if (runtimeData.length > reported.length) return false
  return reported.every((byte, i) => byte === (i < runtimeData.length ? runtimeData[i] : 0))
}
