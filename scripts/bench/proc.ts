/** Linux /proc readings for a child process: memory and CPU time. */
import { execFileSync } from "node:child_process"
import { readFileSync, writeFileSync } from "node:fs"

/** Clock ticks per second, the unit of /proc/<pid>/stat's CPU times (100 nearly everywhere). */
const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100
  } catch {
    return 100
  }
})()

const statusField = (pid: number, field: string): number => {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((l) => l.startsWith(`${field}:`))
    return line === undefined ? Number.NaN : Number(line.replace(/\D+/g, "")) / 1024
  } catch {
    return Number.NaN
  }
}

/** Resident set size now, MiB. */
export const rssMiB = (pid: number): number => statusField(pid, "VmRSS")

/**
 * Anonymous resident memory now, MiB: heap, buffers, stacks. The rest of VmRSS is file-backed
 * (mostly the node executable's own pages): clean, shared, reclaimable under pressure.
 */
export const anonMiB = (pid: number): number => statusField(pid, "RssAnon")

/** Samples the anonymous memory of `pids` every `everyMs` until stopped; returns each one's maximum. */
export const anonSampler = (pids: ReadonlyArray<number>, everyMs = 50) => {
  const peaks = pids.map(anonMiB)
  const timer = setInterval(() => {
    pids.forEach((pid, i) => {
      const now = anonMiB(pid)
      if (!(now <= (peaks[i] ?? 0))) peaks[i] = now
    })
  }, everyMs)
  return (): ReadonlyArray<number> => {
    clearInterval(timer)
    return peaks
  }
}

/** Peak resident set size ("high water mark") since start or since {@link resetPeak}, MiB. */
export const peakMiB = (pid: number): number => statusField(pid, "VmHWM")

/** Resets VmHWM to the current RSS (Linux >= 4.0); false when not permitted. */
export const resetPeak = (pid: number): boolean => {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5")
    return true
  } catch {
    return false
  }
}

/** User + system CPU time used so far, seconds. */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    // Fields after the command name (which may hold spaces), from field 3 on.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) / clockTicks
  } catch {
    return Number.NaN
  }
}

/** CPU time used by the whole machine so far (all cores, everything but idle and I/O wait), seconds. */
export const machineBusySeconds = (): number => {
  try {
    const fields = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
      .trim()
      .split(/\s+/)
      .slice(1)
      .map(Number)
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0)
    return (total - (fields[3] ?? 0) - (fields[4] ?? 0)) / clockTicks
  } catch {
    return Number.NaN
  }
}

export interface CpuReading {
  /** Per process, in the order given, % of one core. */
  readonly processes: ReadonlyArray<number>
  /** The whole machine, % of one core (200 % is two busy cores). */
  readonly machine: number
}

/** CPU use of the given processes, and of the machine, between two calls. */
export const cpuMeter = (pids: ReadonlyArray<number>) => {
  const started = performance.now()
  const before = pids.map(cpuSeconds)
  const machineBefore = machineBusySeconds()
  return (): CpuReading => {
    const seconds = (performance.now() - started) / 1000
    return {
      processes: pids.map((pid, i) => ((cpuSeconds(pid) - (before[i] ?? 0)) / seconds) * 100),
      machine: ((machineBusySeconds() - machineBefore) / seconds) * 100,
    }
  }
}

export const cpuModel = (): string => {
  try {
    const line = readFileSync("/proc/cpuinfo", "utf8")
      .split("\n")
      .find((l) => l.startsWith("model name"))
    return line?.split(":")[1]?.trim() ?? "unknown"
  } catch {
    return "unknown"
  }
}
