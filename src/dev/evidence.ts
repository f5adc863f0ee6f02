/**
 * Development / test only: builds `/aa/evidence` output in the attesters' real JSON formats for a given
 * runtime data, without a TEE. Nothing here is signed: the evidence only has the right SHAPE.
 *
 * Sources (the same as src/verify/evidence.ts): confidential-containers/guest-components @
 * 8246e5e0977f6322f0a1b0f77e0739cf1c3e1f74 attestation-agent/attester/src/{sample,tdx,snp}/mod.rs; the TD
 * quote layout of Intel DCAP sgx_quote_4.h / sgx_quote_5.h as trustee @ 78962cd416dcc8a32f9377e0066a28fe21420f69
 * deps/verifier/src/intel_dcap/quote.rs parses it; the SNP report as the sev crate 6.3.x serde writes it
 * (virtee/sev v6.3.0 src/firmware/guest/types/snp.rs), field order included (serde_json's preserve_order is
 * on in guest-components' build, so the AA writes fields in struct order).
 *
 * Like the attesters, tdx/snp zero-pad the runtime data to 64 bytes and throw above 64 bytes; sample takes
 * any length as is. This module deliberately does not reuse src/verify/evidence.ts: the builder writes the
 * structures field after field, the reader uses offsets, so a round trip checks one against the other.
 */
import { Buffer } from "node:buffer"

const REPORT_DATA_SIZE = 64

const base64 = (bytes: Uint8Array): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64")

const filled = (length: number, byte: number): Uint8Array => new Uint8Array(length).fill(byte)

const fromHex = (value: string): Uint8Array => new Uint8Array(Buffer.from(value, "hex"))

const exactly = (bytes: Uint8Array, length: number, what: string): Uint8Array => {
  if (bytes.length !== length) throw new Error(`${what} must be ${length} bytes, got ${bytes.length}`)
  return bytes
}

/** `report_data.resize(64, 0)` after the `len() > 64` check, as in attester/src/{tdx,snp}/mod.rs. */
const padReportData = (data: Uint8Array, attester: "TDX" | "SNP"): Uint8Array => {
  if (data.length > REPORT_DATA_SIZE) {
    // The attesters' own messages (tdx/mod.rs, snp/mod.rs).
    throw new Error(`${attester} Attester: Report data must be no more than ${REPORT_DATA_SIZE} bytes`)
  }
  const padded = new Uint8Array(REPORT_DATA_SIZE)
  padded.set(data)
  return padded
}

// ---------------------------------------------------------------------------------------------------------
// sample

/** attester/src/sample/mod.rs `SampleQuote`. */
export interface SampleEvidence {
  readonly svn: string
  readonly report_data: string
}

export const sampleEvidence = (data: Uint8Array): SampleEvidence => ({ svn: "1", report_data: base64(data) })

// ---------------------------------------------------------------------------------------------------------
// tdx

/** Fixed, recognisable register values of the synthetic TD quotes (48 bytes each). */
export const DEV_TDX_MRTD = filled(48, 0x4d)
export const DEV_TDX_RTMRS: ReadonlyArray<Uint8Array> = [0xa0, 0xa1, 0xa2, 0xa3].map((b) => filled(48, b))
export const DEV_TDX_TEE_TCB_SVN = fromHex("05010200000000000000000000000000")
/** Intel's QE vendor id, as in real quotes. */
const INTEL_QE_VENDOR_ID = fromHex("939a7233f79c4ca9940a0db3957f0607")

export interface TdxQuoteOptions {
  /** Quote version: 4 (default) or 5. */
  readonly version?: 4 | 5
  /** v5 only: body type 2 (TDX 1.0 body, 584 bytes) or 3 (TDX 1.5 body, 648 bytes, the default). */
  readonly bodyType?: 2 | 3
  readonly mrtd?: Uint8Array
  /** Four 48-byte registers. */
  readonly rtmrs?: ReadonlyArray<Uint8Array>
  /** Default all zeros (no init data). */
  readonly mrConfigId?: Uint8Array
  readonly teeTcbSvn?: Uint8Array
  /** 8 bytes, little endian; default SEPT_VE_DISABLE (bit 28), not DEBUG. */
  readonly tdAttributes?: Uint8Array
}

export interface TdxEvidenceOptions extends TdxQuoteOptions {
  /** Base64 CC event log; default null (as when the attester finds none). */
  readonly ccEventlog?: string | null
}

/** attester/src/tdx/mod.rs `TdxEvidence`. */
export interface TdxEvidence {
  readonly cc_eventlog: string | null
  readonly quote: string
}

class Writer {
  private readonly parts: Array<Uint8Array> = []
  bytes(bytes: Uint8Array): this {
    this.parts.push(bytes)
    return this
  }
  zeros(length: number): this {
    return this.bytes(new Uint8Array(length))
  }
  u16(value: number): this {
    const b = Buffer.alloc(2)
    b.writeUInt16LE(value)
    return this.bytes(b)
  }
  u32(value: number): this {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(value)
    return this.bytes(b)
  }
  done(): Uint8Array {
    return new Uint8Array(Buffer.concat(this.parts))
  }
}

/**
 * The ECDSA quote signature data as in real v4/v5 quotes, all signatures/keys zero: quote signature [64],
 * attestation public key [64], certification data type 6 (QE report certification data) + size, QE report
 * [384], QE report signature [64], QE authentication data (u16 size + 32 bytes 00..1f as real QEs send),
 * certification data type 5 (PCK cert chain) + size 0: the PEM chain (about 3.7 kB in real quotes) is left
 * empty. Nothing in it verifies; src/verify/evidence.ts only checks its declared length.
 */
const signatureData = (): Uint8Array => {
  const qeAuth = Uint8Array.from({ length: 32 }, (_, i) => i)
  const qeCertificationData = new Writer()
    .zeros(384) // QE report
    .zeros(64) // QE report signature
    .u16(qeAuth.length)
    .bytes(qeAuth)
    .u16(5) // PCK cert chain
    .u32(0)
    .done()
  return new Writer()
    .zeros(64)
    .zeros(64)
    .u16(6)
    .u32(qeCertificationData.length)
    .bytes(qeCertificationData)
    .done()
}

/** A synthetic but layout-correct TD quote (raw bytes) whose REPORTDATA is `data` zero-padded to 64. */
export const tdxQuote = (data: Uint8Array, options: TdxQuoteOptions = {}): Uint8Array => {
  const reportData = padReportData(data, "TDX")
  const version = options.version ?? 4
  const bodyType = version === 5 ? (options.bodyType ?? 3) : 2
  const rtmrs = options.rtmrs ?? DEV_TDX_RTMRS
  if (rtmrs.length !== 4) throw new Error(`rtmrs must be 4 registers, got ${rtmrs.length}`)

  const body = new Writer()
    .bytes(exactly(options.teeTcbSvn ?? DEV_TDX_TEE_TCB_SVN, 16, "teeTcbSvn"))
    .bytes(filled(48, 0x5e)) // MRSEAM
    .zeros(48) // MRSIGNERSEAM: zero for Intel's SEAM module
    .zeros(8) // SEAM_ATTRIBUTES
    .bytes(exactly(options.tdAttributes ?? fromHex("0000001000000000"), 8, "tdAttributes"))
    .bytes(fromHex("e742060000000000")) // XFAM
    .bytes(exactly(options.mrtd ?? DEV_TDX_MRTD, 48, "mrtd"))
    .bytes(exactly(options.mrConfigId ?? new Uint8Array(48), 48, "mrConfigId"))
    .zeros(48) // MROWNER
    .zeros(48) // MROWNERCONFIG
  for (const [i, rtmr] of rtmrs.entries()) body.bytes(exactly(rtmr, 48, `rtmrs[${i}]`))
  body.bytes(reportData)
  if (bodyType === 3) body.zeros(16).zeros(48) // TEE_TCB_SVN2, MRSERVICETD
  const bodyBytes = body.done()

  const quote = new Writer()
    .u16(version)
    .u16(2) // att_key_type: ECDSA-256-with-P-256
    .u32(0x81) // tee_type: TDX
    .zeros(4) // reserved
    .bytes(INTEL_QE_VENDOR_ID)
    .zeros(20) // user data
  if (version === 5) quote.u16(bodyType).u32(bodyBytes.length)
  const signature = signatureData()
  return quote.bytes(bodyBytes).u32(signature.length).bytes(signature).done()
}

export const tdxEvidence = (data: Uint8Array, options: TdxEvidenceOptions = {}): TdxEvidence => ({
  cc_eventlog: options.ccEventlog ?? null,
  quote: base64(tdxQuote(data, options)),
})

// ---------------------------------------------------------------------------------------------------------
// snp

/** Fixed, recognisable launch measurement of the synthetic SNP reports (48 bytes). */
export const DEV_SNP_MEASUREMENT = filled(48, 0x5a)

export interface SnpEvidenceOptions {
  /** Report version: 2, 3 (default, Genoa-like CPUID fields) or 5 (adds the mitigation vectors). */
  readonly version?: 2 | 3 | 5
  readonly measurement?: Uint8Array
  /** 32 bytes; default zeros (no init data). */
  readonly hostData?: Uint8Array
  /** Guest policy; default 0x30000 (SMT allowed, reserved bit 17, debug disallowed). */
  readonly policy?: number
  /** Default null (the attester got no extended certificates from the host). */
  readonly certChain?: ReadonlyArray<{
    readonly cert_type: string
    readonly data: ReadonlyArray<number>
  }> | null
}

interface SnpTcbVersion {
  readonly fmc: number | null
  readonly bootloader: number
  readonly tee: number
  readonly snp: number
  readonly microcode: number
}

/** sev 6.3.x `AttestationReport` as serde_json writes it (byte arrays as arrays of numbers). */
export interface SnpAttestationReport {
  readonly version: number
  readonly guest_svn: number
  readonly policy: number
  readonly family_id: ReadonlyArray<number>
  readonly image_id: ReadonlyArray<number>
  readonly vmpl: number
  readonly sig_algo: number
  readonly current_tcb: SnpTcbVersion
  readonly plat_info: number
  readonly key_info: number
  readonly report_data: ReadonlyArray<number>
  readonly measurement: ReadonlyArray<number>
  readonly host_data: ReadonlyArray<number>
  readonly id_key_digest: ReadonlyArray<number>
  readonly author_key_digest: ReadonlyArray<number>
  readonly report_id: ReadonlyArray<number>
  readonly report_id_ma: ReadonlyArray<number>
  readonly reported_tcb: SnpTcbVersion
  readonly cpuid_fam_id: number | null
  readonly cpuid_mod_id: number | null
  readonly cpuid_step: number | null
  readonly chip_id: ReadonlyArray<number>
  readonly committed_tcb: SnpTcbVersion
  readonly current: { readonly major: number; readonly minor: number; readonly build: number }
  readonly committed: { readonly major: number; readonly minor: number; readonly build: number }
  readonly launch_tcb: SnpTcbVersion
  readonly launch_mit_vector: number | null
  readonly current_mit_vector: number | null
  readonly signature: { readonly r: ReadonlyArray<number>; readonly s: ReadonlyArray<number> }
}

/** attester/src/snp/mod.rs `SnpEvidence`. */
export interface SnpEvidence {
  readonly attestation_report: SnpAttestationReport
  readonly cert_chain: ReadonlyArray<{
    readonly cert_type: string
    readonly data: ReadonlyArray<number>
  }> | null
}

const numbers = (bytes: Uint8Array): Array<number> => Array.from(bytes)

export const snpEvidence = (data: Uint8Array, options: SnpEvidenceOptions = {}): SnpEvidence => {
  const reportData = padReportData(data, "SNP")
  const version = options.version ?? 3
  const tcb: SnpTcbVersion = { fmc: null, bootloader: 10, tee: 0, snp: 23, microcode: 25 }
  const firmware = { major: 1, minor: 55, build: 40 }
  const report: SnpAttestationReport = {
    version,
    guest_svn: 0,
    policy: options.policy ?? 0x30000,
    family_id: numbers(new Uint8Array(16)),
    image_id: numbers(new Uint8Array(16)),
    vmpl: 0,
    sig_algo: 1, // ECDSA P-384 with SHA-384
    current_tcb: tcb,
    plat_info: 3,
    key_info: 0,
    report_data: numbers(reportData),
    measurement: numbers(exactly(options.measurement ?? DEV_SNP_MEASUREMENT, 48, "measurement")),
    host_data: numbers(exactly(options.hostData ?? new Uint8Array(32), 32, "hostData")),
    id_key_digest: numbers(new Uint8Array(48)),
    author_key_digest: numbers(new Uint8Array(48)),
    report_id: numbers(filled(32, 0x1d)),
    report_id_ma: numbers(filled(32, 0xff)),
    reported_tcb: tcb,
    // Added in report version 3 (Genoa: family 0x19, model 0x11).
    cpuid_fam_id: version >= 3 ? 0x19 : null,
    cpuid_mod_id: version >= 3 ? 0x11 : null,
    cpuid_step: version >= 3 ? 1 : null,
    chip_id: numbers(filled(64, 0xc1)),
    committed_tcb: tcb,
    current: firmware,
    committed: firmware,
    launch_tcb: tcb,
    // Added in report version 5.
    launch_mit_vector: version >= 5 ? 0 : null,
    current_mit_vector: version >= 5 ? 0 : null,
    signature: { r: numbers(new Uint8Array(72)), s: numbers(new Uint8Array(72)) },
  }
  return { attestation_report: report, cert_chain: options.certChain ?? null }
}
