/**
 * What the guest can see about its TEE: device nodes, the configfs-tsm report interface and CPU flags.
 *
 * These are hints, not proof. A hypervisor can fake any of them, and a container may not see the
 * devices at all (they are often not mounted into unprivileged containers). Only remote attestation
 * (KBS releasing a secret to this pod) says anything trustworthy.
 */
import { existsSync, readFileSync } from "node:fs"
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type * as Api from "../server/api/SidecarApi.ts"

export type TeeHint = typeof Api.TeeHint.Type

/** What `/api/status` serves under `tee`. */
export type TeeHints = typeof Api.TeeHints.Type

/** The read-only filesystem view `detectTeeHints` needs; both functions must not throw. */
export interface TeeFs {
  readonly exists: (path: string) => boolean
  readonly readText: (path: string) => string | undefined
}

export const TEE_HINTS_NOTE =
  "Hints visible from inside the guest; they are not proof of a TEE: only remote attestation is."

const PATHS = {
  tdxGuest: "/dev/tdx_guest",
  sevGuest: "/dev/sev-guest",
  sev: "/dev/sev",
  tsmReport: "/sys/kernel/config/tsm/report",
  cpuinfo: "/proc/cpuinfo",
} as const

const DEVICES: ReadonlyArray<{ readonly path: string; readonly what: string }> = [
  { path: PATHS.tdxGuest, what: "Intel TDX guest driver device" },
  { path: PATHS.sevGuest, what: "AMD SEV-SNP guest driver device" },
  { path: PATHS.sev, what: "AMD SEV device (usually seen on hosts, sometimes in guests)" },
  { path: PATHS.tsmReport, what: "configfs-tsm attestation report interface" },
]

const FLAGS: ReadonlyArray<{ readonly flag: string; readonly what: string }> = [
  { flag: "tdx_guest", what: "running as an Intel TDX guest" },
  { flag: "sev", what: "AMD SEV memory encryption" },
  { flag: "sev_es", what: "AMD SEV-ES, encrypted register state" },
  { flag: "sev_snp", what: "AMD SEV-SNP, secure nested paging" },
  { flag: "hypervisor", what: "running under a hypervisor, i.e. in a virtual machine" },
]

/** The flags of the first `flags` line of /proc/cpuinfo (x86), or undefined when there is none. */
const cpuFlags = (cpuinfo: string | undefined): ReadonlySet<string> | undefined => {
  if (cpuinfo === undefined) return undefined
  const line = cpuinfo.split("\n").find((l) => /^flags\s*:/.test(l))
  if (line === undefined) return undefined
  return new Set(
    line
      .slice(line.indexOf(":") + 1)
      .trim()
      .split(/\s+/),
  )
}

const safe =
  <A>(f: () => A, fallback: A): (() => A) =>
  () => {
    try {
      return f()
    } catch {
      return fallback
    }
  }

export const detectTeeHints = (fs: TeeFs): TeeHints => {
  const hints: Array<TeeHint> = []
  const present = new Set<string>()

  for (const { path, what } of DEVICES) {
    const found = safe(() => fs.exists(path), false)()
    if (found) present.add(path)
    hints.push({
      name: path,
      present: found,
      detail: `${what} (${path}) ${found ? "is present" : "was not found"}`,
    })
  }

  const flags = cpuFlags(safe(() => fs.readText(PATHS.cpuinfo), undefined)())
  for (const { flag, what } of FLAGS) {
    const found = flags?.has(flag) ?? false
    if (found) present.add(flag)
    const detail =
      flags === undefined
        ? `CPU flag '${flag}' (${what}): unknown, no flags line could be read from ${PATHS.cpuinfo}`
        : `CPU flag '${flag}' (${what}) ${found ? "is set" : "is not set"} in ${PATHS.cpuinfo}`
    hints.push({ name: `cpu flag ${flag}`, present: found, detail })
  }

  const likely: TeeHints["likely"] =
    present.has(PATHS.tdxGuest) || present.has("tdx_guest")
      ? "tdx"
      : present.has(PATHS.sevGuest) || present.has("sev_snp")
        ? "sev-snp"
        : present.has("sev") || present.has("sev_es")
          ? "sev"
          : "none-detected"

  return { likely, hints, note: TEE_HINTS_NOTE }
}

/** The real filesystem; never throws. */
export const nodeTeeFs: TeeFs = {
  exists: (path) => {
    try {
      return existsSync(path)
    } catch {
      return false
    }
  },
  readText: (path) => {
    try {
      return readFileSync(path, "utf8")
    } catch {
      return undefined
    }
  },
}

export class TeeInfo extends Context.Service<TeeInfo, TeeHints>()("coco-secure-access/TeeInfo") {
  /** Looks at the real filesystem once, when the layer is built. */
  static readonly layer: Layer.Layer<TeeInfo> = Layer.sync(TeeInfo, () => detectTeeHints(nodeTeeFs))

  static readonly layerFrom = (hints: TeeHints): Layer.Layer<TeeInfo> => Layer.succeed(TeeInfo, hints)
}
