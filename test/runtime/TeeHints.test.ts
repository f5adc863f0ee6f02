import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { detectTeeHints, nodeTeeFs, TEE_HINTS_NOTE, type TeeFs, TeeInfo } from "../../src/runtime/TeeHints.ts"

const cpuinfo = (flags: string): string =>
  [
    "processor\t: 0",
    "vendor_id\t: GenuineIntel",
    "model name\t: Some CPU",
    `flags\t\t: ${flags}`,
    "bugs\t\t: spectre_v1",
    "",
    "processor\t: 1",
    `flags\t\t: ${flags}`,
    "",
  ].join("\n")

const fakeFs = (paths: ReadonlyArray<string>, files: Readonly<Record<string, string>>): TeeFs => ({
  exists: (path) => paths.includes(path) || path in files,
  readText: (path) => files[path],
})

interface Case {
  readonly label: string
  readonly fs: TeeFs
  readonly likely: "tdx" | "sev-snp" | "sev" | "none-detected"
  readonly present: ReadonlyArray<string>
}

const CASES: ReadonlyArray<Case> = [
  {
    label: "TDX guest",
    fs: fakeFs(["/dev/tdx_guest", "/sys/kernel/config/tsm/report"], {
      "/proc/cpuinfo": cpuinfo("fpu vme de pse tsc msr hypervisor tdx_guest"),
    }),
    likely: "tdx",
    present: ["/dev/tdx_guest", "/sys/kernel/config/tsm/report", "cpu flag tdx_guest", "cpu flag hypervisor"],
  },
  {
    label: "TDX guest seen only through the CPU flag (devices not mounted)",
    fs: fakeFs([], { "/proc/cpuinfo": cpuinfo("fpu hypervisor tdx_guest") }),
    likely: "tdx",
    present: ["cpu flag tdx_guest", "cpu flag hypervisor"],
  },
  {
    label: "SEV-SNP guest",
    fs: fakeFs(["/dev/sev-guest", "/sys/kernel/config/tsm/report"], {
      "/proc/cpuinfo": cpuinfo("fpu vme hypervisor sev sev_es sev_snp"),
    }),
    likely: "sev-snp",
    present: [
      "/dev/sev-guest",
      "/sys/kernel/config/tsm/report",
      "cpu flag sev",
      "cpu flag sev_es",
      "cpu flag sev_snp",
      "cpu flag hypervisor",
    ],
  },
  {
    label: "SEV-SNP guest seen only through the device",
    fs: fakeFs(["/dev/sev-guest"], {}),
    likely: "sev-snp",
    present: ["/dev/sev-guest"],
  },
  {
    label: "SEV (not SNP) guest",
    fs: fakeFs([], { "/proc/cpuinfo": cpuinfo("fpu hypervisor sev sev_es") }),
    likely: "sev",
    present: ["cpu flag sev", "cpu flag sev_es", "cpu flag hypervisor"],
  },
  {
    label: "plain VM (hypervisor flag only)",
    fs: fakeFs([], { "/proc/cpuinfo": cpuinfo("fpu vme de pse tsc msr pae hypervisor severity_x") }),
    likely: "none-detected",
    present: ["cpu flag hypervisor"],
  },
  {
    label: "bare metal",
    fs: fakeFs([], { "/proc/cpuinfo": cpuinfo("fpu vme de pse tsc") }),
    likely: "none-detected",
    present: [],
  },
  {
    label: "nothing at all (no /proc/cpuinfo)",
    fs: fakeFs([], {}),
    likely: "none-detected",
    present: [],
  },
  {
    label: "a filesystem that throws",
    fs: {
      exists: () => {
        throw new Error("EACCES")
      },
      readText: () => {
        throw new Error("EACCES")
      },
    },
    likely: "none-detected",
    present: [],
  },
]

describe("detectTeeHints", () => {
  it.each(CASES)("$label -> $likely", ({ fs, likely, present }) => {
    const hints = detectTeeHints(fs)
    assert.strictEqual(hints.likely, likely)
    assert.strictEqual(hints.note, TEE_HINTS_NOTE)
    assert.sameMembers(
      hints.hints.filter((h) => h.present).map((h) => h.name),
      [...present],
    )
    assert.strictEqual(hints.hints.length, 9)
    for (const h of hints.hints) assert.isAbove(h.detail.length, 0)
  })

  it("says in plain words when /proc/cpuinfo could not be read", () => {
    const hints = detectTeeHints(fakeFs([], {}))
    const flag = hints.hints.find((h) => h.name === "cpu flag sev_snp")
    assert.include(flag?.detail, "unknown")
    assert.include(flag?.detail, "/proc/cpuinfo")
  })

  it("describes the devices", () => {
    const hints = detectTeeHints(fakeFs(["/dev/tdx_guest"], {}))
    const tdx = hints.hints.find((h) => h.name === "/dev/tdx_guest")
    assert.include(tdx?.detail, "Intel TDX guest driver")
    assert.include(tdx?.detail, "is present")
  })

  it("the note says hints are not proof", () => {
    assert.strictEqual(
      TEE_HINTS_NOTE,
      "Hints visible from inside the guest; they are not proof of a TEE: only remote attestation is.",
    )
  })

  it("runs on the real machine", () => {
    const hints = detectTeeHints(nodeTeeFs)
    assert.include(["tdx", "sev-snp", "sev", "none-detected"], hints.likely)
  })
})

describe("TeeInfo", () => {
  it.effect("layer computes the hints from the real filesystem", () =>
    Effect.gen(function* () {
      const info = yield* TeeInfo
      assert.include(["tdx", "sev-snp", "sev", "none-detected"], info.likely)
      assert.strictEqual(info.note, TEE_HINTS_NOTE)
    }).pipe(Effect.provide(TeeInfo.layer)),
  )

  it.effect("layerFrom provides the given hints", () => {
    const given = detectTeeHints(fakeFs(["/dev/tdx_guest"], {}))
    return Effect.gen(function* () {
      const info = yield* TeeInfo
      assert.strictEqual(info, given)
    }).pipe(Effect.provide(TeeInfo.layerFrom(given)))
  })
})
