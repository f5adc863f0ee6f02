import { Buffer } from "node:buffer"
import * as fs from "node:fs"
import * as path from "node:path"
import { describe, expect, it } from "vitest"
import {
  DEV_SNP_MEASUREMENT,
  DEV_TDX_MRTD,
  DEV_TDX_RTMRS,
  sampleEvidence,
  snpEvidence,
  tdxEvidence,
  tdxQuote,
} from "../../src/dev/evidence.ts"
import { carries, type EvidenceReading, readEvidence } from "../../src/verify/evidence.ts"

const fixture = (name: string): Buffer => fs.readFileSync(path.join(import.meta.dirname, "fixtures", name))

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex")
const ascii = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "utf8"))
const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString("base64")

/** What the sidecar sends: 64 lowercase hex characters, passed to the AA as their 64 ASCII bytes. */
const RUNTIME_DATA = ascii("3f".repeat(8) + "0123456789abcdef".repeat(2) + "a5".repeat(8))

const measurement = (reading: EvidenceReading, name: string): string | undefined =>
  reading.measurements.find((m) => m.name === name)?.value

const flipped = (bytes: Uint8Array, index: number): Uint8Array => {
  const copy = new Uint8Array(bytes)
  copy[index] = (copy[index] ?? 0) ^ 0x01
  return copy
}

/** Walks the ECDSA signature data of a TD quote starting at its u32 length field (the layout real quotes have). */
const walkSignatureData = (quote: Uint8Array, at: number) => {
  const b = Buffer.from(quote)
  const length = b.readUInt32LE(at)
  let o = at + 4 + 64 + 64 // quote signature, attestation key
  const certDataType = b.readUInt16LE(o)
  const certDataSize = b.readUInt32LE(o + 2)
  o += 6 + 384 + 64 // QE report + its signature
  const authSize = b.readUInt16LE(o)
  o += 2 + authSize
  const chainType = b.readUInt16LE(o)
  const chainSize = b.readUInt32LE(o + 2)
  o += 6
  return {
    length,
    certDataType,
    certDataSize,
    authSize,
    chainType,
    chainSize,
    chain: b.subarray(o, o + chainSize),
  }
}

describe("round trips through the dev builders", () => {
  it("sample: report data is the runtime data as given", () => {
    const reading = readEvidence("sample", sampleEvidence(RUNTIME_DATA))
    expect(reading.tee).toBe("sample")
    expect(hex(reading.reportData)).toBe(hex(RUNTIME_DATA))
    expect(reading.measurements).toEqual([])
    expect(carries(reading, RUNTIME_DATA)).toBe(true)
  })

  it.each([
    {
      name: "v4",
      options: { version: 4 as const },
      layout: "TD quote v4 (TDX 1.0 report body)",
      length: 632 + 626,
    },
    {
      name: "v5 TDX 1.0",
      options: { version: 5 as const, bodyType: 2 as const },
      layout: "TD quote v5, body type 2 (TDX 1.0 report body)",
      length: 638 + 626,
    },
    {
      name: "v5 TDX 1.5",
      options: { version: 5 as const, bodyType: 3 as const },
      layout: "TD quote v5, body type 3 (TDX 1.5 report body)",
      length: 702 + 626,
    },
  ])("tdx $name: REPORTDATA, MRTD, RTMRs, MRCONFIGID", ({ options, layout, length }) => {
    const mrConfigId = new Uint8Array(48).fill(0xc0)
    const evidence = tdxEvidence(RUNTIME_DATA, { ...options, mrConfigId })
    expect(Object.keys(evidence)).toEqual(["cc_eventlog", "quote"])
    expect(evidence.cc_eventlog).toBeNull()
    expect(Buffer.from(evidence.quote, "base64").length).toBe(length)

    const reading = readEvidence("tdx", evidence)
    expect(reading.tee).toBe("tdx")
    expect(reading.reportData.length).toBe(64)
    expect(hex(reading.reportData)).toBe(hex(RUNTIME_DATA))
    expect(reading.measurements.map((m) => m.name)).toEqual([
      "MRTD",
      "RTMR0",
      "RTMR1",
      "RTMR2",
      "RTMR3",
      "MRCONFIGID",
    ])
    expect(measurement(reading, "MRTD")).toBe(hex(DEV_TDX_MRTD))
    expect(measurement(reading, "MRTD")).toBe("4d".repeat(48))
    DEV_TDX_RTMRS.forEach((rtmr, i) => {
      expect(measurement(reading, `RTMR${i}`)).toBe(hex(rtmr))
    })
    expect(measurement(reading, "MRCONFIGID")).toBe("c0".repeat(48))
    expect(reading.details[0]).toBe(layout)
    expect(reading.details).toContain("signature data: 622 bytes (not verified by this reader)")
    expect(reading.details).toContain("TEE_TCB_SVN 05010200000000000000000000000000")
    expect(reading.details.at(-1)).toBe("no CC event log")
    expect(carries(reading, RUNTIME_DATA)).toBe(true)
  })

  it("tdx: DEBUG in TD_ATTRIBUTES is called out, an event log is counted", () => {
    const reading = readEvidence(
      "tdx",
      tdxEvidence(RUNTIME_DATA, {
        tdAttributes: Buffer.from("0100001000000000", "hex"),
        ccEventlog: b64(ascii("log")),
      }),
    )
    expect(reading.details).toContain(
      "TD_ATTRIBUTES 0100001000000000 (DEBUG set: the TD is debuggable, its memory is not confidential)",
    )
    expect(reading.details).toContain("CC event log: 3 bytes (not replayed)")
  })

  it.each([2, 3, 5] as const)("snp report v%i: report_data, MEASUREMENT, HOST_DATA", (version) => {
    const hostData = new Uint8Array(32).fill(0x4b)
    const evidence = snpEvidence(RUNTIME_DATA, { version, hostData })
    expect(Object.keys(evidence)).toEqual(["attestation_report", "cert_chain"])
    expect(evidence.cert_chain).toBeNull()
    // As serde_json writes it: byte arrays are arrays of numbers.
    expect(evidence.attestation_report.report_data).toEqual(Array.from(RUNTIME_DATA))

    const reading = readEvidence("snp", JSON.stringify(evidence))
    expect(reading.tee).toBe("snp")
    expect(hex(reading.reportData)).toBe(hex(RUNTIME_DATA))
    expect(reading.measurements).toEqual([
      { name: "MEASUREMENT", value: hex(DEV_SNP_MEASUREMENT) },
      { name: "HOST_DATA", value: "4b".repeat(32) },
    ])
    expect(reading.details[0]).toBe(`SNP attestation report v${version}`)
    expect(reading.details).toContain(
      "policy 0x0000000000030000: ABI >= 0.0, SMT allowed, migration agent disallowed, single socket not required, debug disallowed",
    )
    expect(reading.details).toContain("no cert chain in the evidence (the VCEK comes from AMD KDS)")
    expect(carries(reading, RUNTIME_DATA)).toBe(true)
  })

  it("snp: a debug policy is called out", () => {
    const reading = readEvidence("snp", snpEvidence(RUNTIME_DATA, { policy: 0x30000 + 2 ** 19 }))
    expect(reading.details.find((d) => d.startsWith("policy"))).toContain(
      "DEBUG ALLOWED (the host can read the guest's memory)",
    )
  })

  it("accepts the evidence as JSON text or as UTF-8 bytes", () => {
    const text = JSON.stringify(tdxEvidence(RUNTIME_DATA))
    expect(hex(readEvidence("tdx", text).reportData)).toBe(hex(RUNTIME_DATA))
    expect(hex(readEvidence("tdx", ascii(text)).reportData)).toBe(hex(RUNTIME_DATA))
  })
})

describe("padding rules", () => {
  const short = ascii("nonce-32-bytes-long-0123456789ab")

  it.each([
    ["tdx", () => tdxEvidence(short)],
    ["snp", () => snpEvidence(short)],
  ] as const)("%s: data shorter than 64 bytes is zero-padded on the right", (tee, build) => {
    const reading = readEvidence(tee, build())
    expect(reading.reportData.length).toBe(64)
    expect(hex(reading.reportData)).toBe(hex(short) + "00".repeat(32))
    expect(carries(reading, short)).toBe(true)
    // The padded form is the same report data.
    const padded = new Uint8Array(64)
    padded.set(short)
    expect(carries(reading, padded)).toBe(true)
    // But not with a byte where the padding is, nor with one byte less (a trailing zero is not data).
    const longer = new Uint8Array(33)
    longer.set(short)
    longer[32] = 0x01
    expect(carries(reading, longer)).toBe(false)
    expect(carries(reading, short.subarray(0, 31))).toBe(false)
  })

  it("tdx/snp: empty runtime data gives 64 zero bytes", () => {
    expect(hex(readEvidence("tdx", tdxEvidence(new Uint8Array(0))).reportData)).toBe("00".repeat(64))
    expect(hex(readEvidence("snp", snpEvidence(new Uint8Array(0))).reportData)).toBe("00".repeat(64))
  })

  it("sample: no padding, the report data must equal the runtime data exactly", () => {
    const reading = readEvidence("sample", sampleEvidence(short))
    expect(reading.reportData.length).toBe(32)
    expect(carries(reading, short)).toBe(true)
    const padded = new Uint8Array(64)
    padded.set(short)
    expect(carries(reading, padded)).toBe(false)
    expect(carries(reading, short.subarray(0, 31))).toBe(false)
  })

  it("sample takes any length, as the sample attester does", () => {
    const long = new Uint8Array(200).fill(7)
    const reading = readEvidence("sample", sampleEvidence(long))
    expect(reading.reportData.length).toBe(200)
    expect(carries(reading, long)).toBe(true)
  })
})

describe("a report data that differs by one byte", () => {
  it.each([
    ["sample", sampleEvidence(RUNTIME_DATA)],
    ["tdx", tdxEvidence(RUNTIME_DATA)],
    ["tdx", tdxEvidence(RUNTIME_DATA, { version: 5 })],
    ["snp", snpEvidence(RUNTIME_DATA)],
  ] as const)("%s: does not carry the runtime data", (tee, evidence) => {
    const reading = readEvidence(tee, evidence)
    for (const index of [0, 31, 63]) expect(carries(reading, flipped(RUNTIME_DATA, index))).toBe(false)
    expect(carries(reading, RUNTIME_DATA)).toBe(true)
  })

  it("tdx: a quote whose REPORTDATA was altered in place (v4 offset 568, v5 offset 574)", () => {
    for (const [version, offset] of [
      [4, 568],
      [5, 574],
    ] as const) {
      const quote = tdxQuote(RUNTIME_DATA, { version })
      expect(hex(quote.subarray(offset, offset + 64))).toBe(hex(RUNTIME_DATA))
      const altered = flipped(quote, offset + 10)
      const reading = readEvidence("tdx", { cc_eventlog: null, quote: b64(altered) })
      expect(carries(reading, RUNTIME_DATA)).toBe(false)
      expect(carries(reading, flipped(RUNTIME_DATA, 10))).toBe(true)
    }
  })
})

describe("wrong lengths", () => {
  const tooLong = new Uint8Array(65).fill(0x61)

  it("the tdx and snp builders refuse more than 64 bytes, as the attesters do", () => {
    expect(() => tdxEvidence(tooLong)).toThrow("TDX Attester: Report data must be no more than 64 bytes")
    expect(() => snpEvidence(tooLong)).toThrow("SNP Attester: Report data must be no more than 64 bytes")
    expect(() => sampleEvidence(tooLong)).not.toThrow()
  })

  it("runtime data longer than the 64-byte report data never matches (no truncation)", () => {
    const reading = readEvidence("tdx", tdxEvidence(tooLong.subarray(0, 64)))
    expect(carries(reading, tooLong.subarray(0, 64))).toBe(true)
    expect(carries(reading, tooLong)).toBe(false)
  })

  it("an SNP report_data of 63 or 65 bytes is malformed", () => {
    for (const length of [63, 65]) {
      const evidence = snpEvidence(RUNTIME_DATA)
      const broken = {
        ...evidence,
        attestation_report: { ...evidence.attestation_report, report_data: Array(length).fill(0) },
      }
      expect(() => readEvidence("snp", broken)).toThrow(
        `SNP attestation_report.report_data: expected 64 byte values, got ${length}`,
      )
    }
  })
})

describe("malformed evidence", () => {
  const quoteEvidence = (quote: Uint8Array) => ({ cc_eventlog: null, quote: b64(quote) })
  const v4 = tdxQuote(RUNTIME_DATA)
  const v5 = tdxQuote(RUNTIME_DATA, { version: 5 })

  it.each([
    ["empty quote", new Uint8Array(0), "TDX quote too short: 0 bytes, need at least 48 for the header"],
    ["header only", v4.subarray(0, 47), "TDX quote too short: 47 bytes, need at least 48 for the header"],
    ["truncated v4 body", v4.subarray(0, 600), "TDX quote too short: 600 bytes, need at least 632"],
    [
      "v5 without body type",
      v5.subarray(0, 50),
      "TDX quote too short: 50 bytes, need at least 54 for a v5 header and body type/size",
    ],
    ["truncated v5 body", v5.subarray(0, 700), "TDX quote too short: 700 bytes, need at least 702"],
    [
      "truncated signature data",
      v4.subarray(0, 1000),
      "TDX quote signature data truncated: declares 622 bytes, only 364 present",
    ],
  ])("%s", (_, quote, message) => {
    expect(() => readEvidence("tdx", quoteEvidence(quote))).toThrow(message)
  })

  it("a quote that ends right after the body is read, noting the missing signature data", () => {
    const reading = readEvidence("tdx", quoteEvidence(v4.subarray(0, 632)))
    expect(hex(reading.reportData)).toBe(hex(RUNTIME_DATA))
    expect(reading.details).toContain("no signature data (the quote ends after the report body)")
  })

  it("trailing bytes after the signature data are tolerated and reported", () => {
    const padded = Buffer.concat([v4, Buffer.alloc(70)])
    const reading = readEvidence("tdx", quoteEvidence(padded))
    expect(reading.details).toContain(
      "signature data: 622 bytes (not verified by this reader), 70 trailing bytes after it",
    )
  })

  it("wrong versions, TEE type, v5 body type and size", () => {
    const patch = (quote: Uint8Array, offset: number, bytes: Array<number>) => {
      const copy = new Uint8Array(quote)
      copy.set(bytes, offset)
      return copy
    }
    expect(() => readEvidence("tdx", quoteEvidence(patch(v4, 0, [3, 0, 0, 0, 0, 0, 0, 0])))).toThrow(
      "unsupported TD quote version 3 (tee_type 0x00000000): expected 4 or 5 (version 3 is an SGX enclave quote)",
    )
    expect(() => readEvidence("tdx", quoteEvidence(patch(v4, 0, [6, 0])))).toThrow(
      "unsupported TD quote version 6 (tee_type 0x00000081): expected 4 or 5",
    )
    expect(() => readEvidence("tdx", quoteEvidence(patch(v4, 4, [0, 0, 0, 0])))).toThrow(
      "not a TDX quote: tee_type 0x00000000, expected 0x00000081",
    )
    expect(() => readEvidence("tdx", quoteEvidence(patch(v5, 48, [4, 0])))).toThrow(
      "unsupported TD quote v5 body type 4: expected 2 (TDX 1.0) or 3 (TDX 1.5)",
    )
    expect(() => readEvidence("tdx", quoteEvidence(patch(v5, 50, [0x48, 0x02, 0, 0])))).toThrow(
      "TD quote v5 body size 584 does not match body type 3: expected 648",
    )
  })

  it("TDX JSON fields of the wrong type or encoding", () => {
    expect(() => readEvidence("tdx", { cc_eventlog: null })).toThrow(
      'TDX evidence: "quote" must be a base64 string, got nothing',
    )
    expect(() => readEvidence("tdx", { cc_eventlog: null, quote: 12 })).toThrow(
      'TDX evidence: "quote" must be a base64 string, got a number',
    )
    expect(() =>
      readEvidence("tdx", { cc_eventlog: null, quote: b64(v4).replace(/\+/g, "-").replace(/\//g, "_") }),
    ).toThrow('TDX evidence: "quote" is not canonical standard base64')
    expect(() => readEvidence("tdx", { cc_eventlog: null, quote: b64(v4).replace(/=+$/, "") })).toThrow(
      'TDX evidence: "quote" is not canonical standard base64',
    )
    expect(() => readEvidence("tdx", { cc_eventlog: 1, quote: b64(v4) })).toThrow(
      'TDX evidence: "cc_eventlog" must be a base64 string or null, got a number',
    )
  })

  it("SNP reports with missing or malformed fields", () => {
    const evidence = snpEvidence(RUNTIME_DATA)
    const withReport = (patch: Record<string, unknown>) => ({
      ...evidence,
      attestation_report: { ...evidence.attestation_report, ...patch },
    })
    expect(() => readEvidence("snp", { cert_chain: null })).toThrow(
      'SNP evidence: "attestation_report" must be an object, got nothing',
    )
    expect(() => readEvidence("snp", withReport({ version: undefined }))).toThrow(
      "SNP attestation_report.version is missing",
    )
    expect(() => readEvidence("snp", withReport({ measurement: undefined }))).toThrow(
      "SNP attestation_report.measurement: expected an array of 48 byte values (0-255), got nothing",
    )
    expect(() => readEvidence("snp", withReport({ report_data: hex(RUNTIME_DATA) }))).toThrow(
      "SNP attestation_report.report_data: expected an array of 64 byte values (0-255), got a string of 128 characters",
    )
    const bad = Array.from(RUNTIME_DATA)
    bad[5] = 256
    expect(() => readEvidence("snp", withReport({ report_data: bad }))).toThrow(
      "SNP attestation_report.report_data[5]: expected a byte value 0-255, got 256",
    )
    expect(() => readEvidence("snp", withReport({ host_data: [1, 2, 3] }))).toThrow(
      "SNP attestation_report.host_data: expected 32 byte values, got 3",
    )
    expect(() => readEvidence("snp", withReport({ policy: "0x30000" }))).toThrow(
      'SNP attestation_report.policy: expected a non-negative integer, got "0x30000"',
    )
    expect(() => readEvidence("snp", { ...evidence, cert_chain: "VCEK" })).toThrow(
      'SNP evidence: "cert_chain" must be an array or null, got a string of 4 characters',
    )
  })

  it("sample evidence with a bad report_data", () => {
    expect(() => readEvidence("sample", { svn: "1", report_data: "not base64!" })).toThrow(
      'sample evidence: "report_data" is not canonical standard base64',
    )
    expect(() => readEvidence("sample", { svn: "1" })).toThrow(
      'sample evidence: "report_data" must be a base64 string, got nothing',
    )
  })

  it("evidence that is not a JSON object", () => {
    expect(() => readEvidence(null, "{not json")).toThrow("evidence is not valid JSON:")
    expect(() => readEvidence(null, [1, 2])).toThrow("evidence must be a JSON object, got an array of 2")
    expect(() => readEvidence("tdx", null)).toThrow("evidence must be a JSON object, got null")
    expect(() => readEvidence(null, new Uint8Array([0xff, 0xfe]))).toThrow("evidence is not UTF-8 text")
  })
})

describe("shape detection", () => {
  it.each([
    ["sample", sampleEvidence(RUNTIME_DATA)],
    ["tdx", tdxEvidence(RUNTIME_DATA)],
    ["snp", snpEvidence(RUNTIME_DATA)],
  ] as const)("tee null: %s evidence is recognised", (tee, evidence) => {
    const reading = readEvidence(null, evidence)
    expect(reading.tee).toBe(tee)
    expect(carries(reading, RUNTIME_DATA)).toBe(true)
  })

  it("an unknown tee name falls back to the shape; known names are case-insensitive", () => {
    expect(readEvidence("TDX", tdxEvidence(RUNTIME_DATA)).tee).toBe("tdx")
    expect(readEvidence("something-new", snpEvidence(RUNTIME_DATA)).tee).toBe("snp")
  })

  it("an unrecognised shape names the keys it found", () => {
    expect(() => readEvidence(null, { tpm_quote: {}, version: 1 })).toThrow(
      'unrecognised evidence: expected "quote" (tdx), "attestation_report" (snp) or "svn" and "report_data" (sample), got keys "tpm_quote", "version"',
    )
    expect(() => readEvidence("azsnpvtpm", {})).toThrow('unrecognised evidence for tee "azsnpvtpm"')
    expect(() => readEvidence(null, {})).toThrow("got an empty object")
  })

  it("a named tee whose evidence has another shape fails on the missing field", () => {
    expect(() => readEvidence("tdx", snpEvidence(RUNTIME_DATA))).toThrow(
      'TDX evidence: "quote" must be a base64 string',
    )
    expect(() => readEvidence("snp", tdxEvidence(RUNTIME_DATA))).toThrow(
      'SNP evidence: "attestation_report" must be an object',
    )
  })
})

describe("real evidence from confidential-containers/trustee (test/verify/fixtures/README.md)", () => {
  // trustee @ 78962cd416dcc8a32f9377e0066a28fe21420f69, deps/verifier/test_data/parse_tdx_claims_expected.json:
  // what trustee's own parser reads from tdx_quote_4.dat (test parse_tdx_claims in deps/verifier/src/tdx/claims.rs).
  const expectedV4 = {
    report_data:
      "7c71fe2c86eff65a7cf8dbc22b3275689fd0464a267baced1bf94fc1324656aeb755da3d44d098c0c87382f3a5f85b45c8a28fee1d3bdb38342bf96671501429",
    mr_td: "705ee9381b8633a9fbe532b52345e8433343d2868959f57889d84ca377c395b689cac1599ccea1b7d420483a9ce5f031",
    rtmr_0:
      "e940da7c2712d2790e2961e00484f4fa8e6f9eed71361655ae22699476b14f9e63867eb41edd4b480fef0c59f496b288",
    rtmr_1:
      "559cfcf42716ed6c40a48a73d5acb7da255435012f0a9f00fbe8c1c57612ede486a5684c4c9ff3ddf52315fcdca3a596",
    rtmr_2: "00".repeat(48),
    rtmr_3: "00".repeat(48),
    mr_config_id: "00".repeat(48),
    mr_seam:
      "2fd279c16164a93dd5bf373d834328d46008c2b693af9ebb865b08b2ced320c9a89b4869a9fab60fbe9d0c5a5363c656",
    tcb_svn: "03000500000000000000000000000000",
    td_attributes: "0100001000000000",
  }

  it("TD quote v4 (tdx_quote_4.dat): the values trustee's parser asserts", () => {
    const quote = fixture("tdx_quote_4.dat")
    const reading = readEvidence(null, { cc_eventlog: null, quote: quote.toString("base64") })
    expect(reading.tee).toBe("tdx")
    expect(hex(reading.reportData)).toBe(expectedV4.report_data)
    expect(measurement(reading, "MRTD")).toBe(expectedV4.mr_td)
    expect(measurement(reading, "RTMR0")).toBe(expectedV4.rtmr_0)
    expect(measurement(reading, "RTMR1")).toBe(expectedV4.rtmr_1)
    expect(measurement(reading, "RTMR2")).toBe(expectedV4.rtmr_2)
    expect(measurement(reading, "RTMR3")).toBe(expectedV4.rtmr_3)
    expect(measurement(reading, "MRCONFIGID")).toBe(expectedV4.mr_config_id)
    expect(reading.details).toEqual([
      "TD quote v4 (TDX 1.0 report body)",
      "signature data: 4300 bytes (not verified by this reader)",
      `TEE_TCB_SVN ${expectedV4.tcb_svn}`,
      `MRSEAM ${expectedV4.mr_seam}`,
      `TD_ATTRIBUTES ${expectedV4.td_attributes} (DEBUG set: the TD is debuggable, its memory is not confidential)`,
      "no CC event log",
    ])
    expect(carries(reading, Buffer.from(expectedV4.report_data, "hex"))).toBe(true)
    expect(carries(reading, flipped(Buffer.from(expectedV4.report_data, "hex"), 63))).toBe(false)
  })

  it("TD quote v5 body type 3 (tdx_quote_5.dat): parses, and the body ends where the real signature data starts", () => {
    const quote = fixture("tdx_quote_5.dat")
    const reading = readEvidence("tdx", { cc_eventlog: null, quote: quote.toString("base64") })
    expect(reading.details[0]).toBe("TD quote v5, body type 3 (TDX 1.5 report body)")
    // 5006 = 54 (header + type + size) + 648 (TDX 1.5 body) + 4 + 4300: nothing left over.
    expect(reading.details[1]).toBe("signature data: 4300 bytes (not verified by this reader)")
    // What follows the body offsets the reader uses is real QE certification data ending in the PCK PEM chain.
    const sig = walkSignatureData(quote, 702)
    expect(sig).toMatchObject({ length: 4300, certDataType: 6, authSize: 32, chainType: 5 })
    expect(sig.chain.subarray(0, 27).toString()).toBe("-----BEGIN CERTIFICATE-----")
    // REPORTDATA at 574..638 (54 + 520), the registers at their body offsets.
    expect(hex(reading.reportData)).toBe(hex(quote.subarray(574, 638)))
    expect(measurement(reading, "MRTD")).toBe(hex(quote.subarray(54 + 136, 54 + 184)))
    expect(measurement(reading, "RTMR3")).toBe(hex(quote.subarray(54 + 472, 54 + 520)))
    expect(reading.details).toContain("TEE_TCB_SVN 05010200000000000000000000000000")
  })

  it("the synthetic quotes have the real quotes' header and signature-data structure", () => {
    const real = fixture("tdx_quote_4.dat")
    const synthetic = tdxQuote(RUNTIME_DATA)
    // version, att_key_type, tee_type, reserved, QE vendor id
    expect(hex(synthetic.subarray(0, 28))).toBe(hex(real.subarray(0, 28)))
    const realSig = walkSignatureData(real, 632)
    const syntheticSig = walkSignatureData(synthetic, 632)
    expect(syntheticSig).toMatchObject({
      certDataType: realSig.certDataType,
      authSize: realSig.authSize,
      chainType: realSig.chainType,
      chainSize: 0, // the PCK chain is left empty
    })
    expect(syntheticSig.length).toBe(synthetic.length - 636)
  })

  const snpText = fixture("snp-evidence.json.txt").toString("utf8")

  it("SNP evidence (attestation-service/tests/e2e/evidence.json): sev's serde encoding, cert chain", () => {
    const reading = readEvidence(null, snpText)
    expect(reading.tee).toBe("snp")
    expect(hex(reading.reportData)).toBe(
      "7e7320889600c7ac133aea7b896c51f41026002982292a7369559796999c1bf929eef3ff23c46e858f0b1982f9a92b17c51b578d958cde6b0c92978f150cf9b0",
    )
    expect(reading.measurements).toEqual([
      {
        name: "MEASUREMENT",
        value:
          "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e",
      },
      { name: "HOST_DATA", value: "00".repeat(32) },
    ])
    expect(reading.details).toEqual([
      "SNP attestation report v3",
      "guest SVN 0",
      "policy 0x0000000000030000: ABI >= 0.0, SMT allowed, migration agent disallowed, single socket not required, debug disallowed",
      "VMPL 0",
      "current TCB: bootloader 10, TEE 0, SNP 23, microcode 25",
      "reported TCB: bootloader 10, TEE 0, SNP 23, microcode 25",
      "firmware 1.55.40",
      "cert chain: VCEK (1347 bytes)",
    ])
  })

  it("the synthetic SNP report has the real report's fields, in the same order", () => {
    const real = JSON.parse(snpText) as { attestation_report: Record<string, unknown> }
    const synthetic = snpEvidence(RUNTIME_DATA).attestation_report
    // The fixture predates sev 6.x's launch_mit_vector / current_mit_vector (null before report v5).
    const keys = Object.keys(synthetic).filter((k) => k !== "launch_mit_vector" && k !== "current_mit_vector")
    expect(keys).toEqual(Object.keys(real.attestation_report))
    for (const key of keys) {
      const a = (real.attestation_report as Record<string, unknown>)[key]
      const b = (synthetic as unknown as Record<string, unknown>)[key]
      expect(Array.isArray(b) ? `array of ${b.length}` : typeof b, key).toBe(
        Array.isArray(a) ? `array of ${a.length}` : typeof a,
      )
      if (typeof a === "object" && a !== null && !Array.isArray(a))
        expect(Object.keys(b as object)).toEqual(Object.keys(a))
    }
  })
})
