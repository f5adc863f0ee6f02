/**
 * A memory cgroup with a hard limit, as the kubelet makes one for a container with
 * `resources.limits.memory`: the kernel reclaims what it can (clean file pages first) and
 * OOM-kills when it cannot. The benchmark runs the sidecar with the container flags in one,
 * to show whether kubectl-coco's 128 MiB limit holds under its load. cgroup v2 and v1 are both
 * handled; where neither can be written (not root, a read-only cgroupfs), `create` says why.
 * `createCpu` makes a CPU cgroup the same way, for kubectl-coco's 100m CPU limit (a CFS quota).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs"
import * as path from "node:path"

export interface CgroupReading {
  /** Working set now, MiB, as the kubelet computes it: the charge minus inactive page cache. */
  readonly workingSetMiB: number
  /**
   * Highest charge of the cgroup, MiB: anonymous memory, the page cache it brought in (at the
   * limit, the kernel reclaims that before it OOM-kills), kernel memory.
   */
  readonly peakMiB: number
  /** Processes the kernel OOM-killed in the cgroup. */
  readonly oomKills: number
}

export interface MemoryCgroup {
  readonly path: string
  readonly version: 1 | 2
  readonly limitMiB: number
  readonly add: (pid: number) => void
  readonly read: () => CgroupReading
  readonly remove: () => void
}

const read = (file: string): string => readFileSync(file, "utf8")
const keyed = (text: string, key: string): number => {
  const line = text.split("\n").find((l) => l.startsWith(`${key} `))
  return line === undefined ? 0 : Number(line.slice(key.length + 1))
}
const MiB = 1024 * 1024

/**
 * Removes the empty cgroups an interrupted run left next to `dir` (same name up to its last "-"):
 * a cgroup outlives its processes until someone removes it.
 */
const removeStale = (dir: string): void => {
  const prefix = path.basename(dir).replace(/-[^-]*$/, "-")
  for (const entry of readdirSync(path.dirname(dir))) {
    const stale = path.join(path.dirname(dir), entry)
    try {
      if (entry.startsWith(prefix) && read(path.join(stale, "cgroup.procs")).trim() === "") rmdirSync(stale)
    } catch {
      // not ours to remove, or already gone
    }
  }
}

const undoOnError = (dir: string, configure: () => void): void => {
  try {
    configure()
  } catch (error) {
    rmdirSync(dir)
    throw error
  }
}

/** The cgroup this process is in, for one hierarchy: v2 (`0::`) or a v1 controller. */
const ownCgroup = (controller: string | undefined): string | undefined =>
  read("/proc/self/cgroup")
    .split("\n")
    .map((l) => l.split(":"))
    .find(([id, controllers]) =>
      controller === undefined
        ? id === "0" && controllers === ""
        : controllers?.split(",").includes(controller),
    )?.[2]

const tryV2 = (name: string, limitMiB: number): MemoryCgroup => {
  const root = existsSync("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified"
  const own = ownCgroup(undefined)
  if (own === undefined) throw new Error("no cgroup v2 hierarchy")
  const parent = path.join(root, own)
  if (!read(path.join(parent, "cgroup.subtree_control")).split(/\s+/).includes("memory"))
    writeFileSync(path.join(parent, "cgroup.subtree_control"), "+memory")
  const dir = path.join(parent, name)
  removeStale(dir)
  mkdirSync(dir)
  undoOnError(dir, () => {
    writeFileSync(path.join(dir, "memory.max"), String(limitMiB * MiB))
    if (existsSync(path.join(dir, "memory.swap.max"))) writeFileSync(path.join(dir, "memory.swap.max"), "0")
  })
  return {
    path: dir,
    version: 2,
    limitMiB,
    add: (pid) => writeFileSync(path.join(dir, "cgroup.procs"), String(pid)),
    read: () => {
      const events = read(path.join(dir, "memory.events"))
      return {
        workingSetMiB:
          (Number(read(path.join(dir, "memory.current"))) -
            keyed(read(path.join(dir, "memory.stat")), "inactive_file")) /
          MiB,
        peakMiB: Number(read(path.join(dir, "memory.peak"))) / MiB,
        oomKills: keyed(events, "oom_kill"),
      }
    },
    remove: () => rmdirSync(dir),
  }
}

const tryV1 = (name: string, limitMiB: number): MemoryCgroup => {
  const own = ownCgroup("memory")
  if (own === undefined) throw new Error("no cgroup v1 memory hierarchy")
  const dir = path.join("/sys/fs/cgroup/memory", own, name)
  removeStale(dir)
  mkdirSync(dir)
  undoOnError(dir, () => writeFileSync(path.join(dir, "memory.limit_in_bytes"), String(limitMiB * MiB)))
  try {
    writeFileSync(path.join(dir, "memory.memsw.limit_in_bytes"), String(limitMiB * MiB))
  } catch {
    // no swap accounting: nothing to limit
  }
  return {
    path: dir,
    version: 1,
    limitMiB,
    add: (pid) => writeFileSync(path.join(dir, "cgroup.procs"), String(pid)),
    read: () => ({
      workingSetMiB:
        (Number(read(path.join(dir, "memory.usage_in_bytes"))) -
          keyed(read(path.join(dir, "memory.stat")), "total_inactive_file")) /
        MiB,
      peakMiB: Number(read(path.join(dir, "memory.max_usage_in_bytes"))) / MiB,
      oomKills: keyed(read(path.join(dir, "memory.oom_control")), "oom_kill"),
    }),
    remove: () => rmdirSync(dir),
  }
}

/** A fresh memory cgroup limited to `limitMiB`, or the reason none could be made here. */
export const create = (name: string, limitMiB: number): MemoryCgroup | { readonly unavailable: string } => {
  const reasons: Array<string> = []
  for (const attempt of [tryV2, tryV1]) {
    try {
      return attempt(name, limitMiB)
    } catch (error) {
      reasons.push(error instanceof Error ? error.message : String(error))
    }
  }
  return { unavailable: reasons.join("; ") }
}

// ---------------------------------------------------------------------------------------------------------
// CPU: kubectl-coco's `resources.limits.cpu`, as the kubelet applies it (a CFS quota per period)

export interface CpuThrottling {
  /** Enforcement periods that had runnable tasks, and those of them in which the quota ran out. */
  readonly periods: number
  readonly throttled: number
  /** Time the cgroup's tasks spent throttled, ms. */
  readonly throttledMs: number
}

export interface CpuCgroup {
  readonly path: string
  readonly version: 1 | 2
  /** Whether this cgroup also carries a memory limit (cgroup v2: a process is in one cgroup only). */
  readonly memoryLimitMiB: number | undefined
  /** Sets the quota: `quotaUs` of CPU time per `periodUs`; undefined for none. */
  readonly limit: (quotaUs: number | undefined, periodUs: number) => void
  /** What cpu.max (v2) or cpu.cfs_quota_us / cpu.cfs_period_us (v1) hold now, as written. */
  readonly describe: () => string
  readonly throttling: () => CpuThrottling
  readonly remove: () => void
}

const tryCpuV2 = (name: string, memoryLimitMiB: number | undefined): CpuCgroup => {
  const root = existsSync("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified"
  const own = ownCgroup(undefined)
  if (own === undefined) throw new Error("no cgroup v2 hierarchy")
  const parent = path.join(root, own)
  const wanted = memoryLimitMiB === undefined ? ["cpu"] : ["cpu", "memory"]
  const available = read(path.join(parent, "cgroup.controllers")).split(/\s+/)
  for (const controller of wanted) {
    if (!available.includes(controller))
      throw new Error(`cgroup v2: no ${controller} controller in ${parent}`)
    if (!read(path.join(parent, "cgroup.subtree_control")).split(/\s+/).includes(controller))
      writeFileSync(path.join(parent, "cgroup.subtree_control"), `+${controller}`)
  }
  const dir = path.join(parent, name)
  removeStale(dir)
  mkdirSync(dir)
  undoOnError(dir, () => {
    writeFileSync(path.join(dir, "cpu.max"), "max 100000")
    if (memoryLimitMiB !== undefined) {
      writeFileSync(path.join(dir, "memory.max"), String(memoryLimitMiB * MiB))
      if (existsSync(path.join(dir, "memory.swap.max"))) writeFileSync(path.join(dir, "memory.swap.max"), "0")
    }
  })
  return {
    path: dir,
    version: 2,
    memoryLimitMiB,
    limit: (quotaUs, periodUs) =>
      writeFileSync(path.join(dir, "cpu.max"), `${quotaUs === undefined ? "max" : quotaUs} ${periodUs}`),
    describe: () => `cgroup v2, cpu.max = "${read(path.join(dir, "cpu.max")).trim()}"`,
    throttling: () => {
      const stat = read(path.join(dir, "cpu.stat"))
      return {
        periods: keyed(stat, "nr_periods"),
        throttled: keyed(stat, "nr_throttled"),
        throttledMs: keyed(stat, "throttled_usec") / 1000,
      }
    },
    remove: () => rmdirSync(dir),
  }
}

const tryCpuV1 = (name: string): CpuCgroup => {
  const own = ownCgroup("cpu")
  if (own === undefined) throw new Error("no cgroup v1 cpu hierarchy")
  const mount = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"].find((m) =>
    existsSync(path.join(m, "cpu.cfs_quota_us")),
  )
  if (mount === undefined) throw new Error("cgroup v1: no cpu controller with CFS quotas mounted")
  const dir = path.join(mount, own, name)
  removeStale(dir)
  mkdirSync(dir)
  const file = (f: string) => path.join(dir, f)
  undoOnError(dir, () => writeFileSync(file("cpu.cfs_quota_us"), "-1"))
  return {
    path: dir,
    version: 1,
    memoryLimitMiB: undefined,
    limit: (quotaUs, periodUs) => {
      writeFileSync(file("cpu.cfs_period_us"), String(periodUs))
      writeFileSync(file("cpu.cfs_quota_us"), String(quotaUs ?? -1))
    },
    describe: () =>
      `cgroup v1, cpu.cfs_quota_us = ${read(file("cpu.cfs_quota_us")).trim()}, ` +
      `cpu.cfs_period_us = ${read(file("cpu.cfs_period_us")).trim()}`,
    throttling: () => {
      const stat = read(file("cpu.stat"))
      return {
        periods: keyed(stat, "nr_periods"),
        throttled: keyed(stat, "nr_throttled"),
        throttledMs: keyed(stat, "throttled_time") / 1e6,
      }
    },
    remove: () => rmdirSync(dir),
  }
}

/**
 * A fresh CPU cgroup, with no quota until {@link CpuCgroup.limit}, or the reason none could be made
 * here. With cgroup v2, where a process is in one cgroup for all controllers, `memoryLimitMiB` makes
 * it carry that memory limit too (for a process that would otherwise be in a {@link MemoryCgroup}).
 */
export const createCpu = (
  name: string,
  memoryLimitMiB?: number,
): CpuCgroup | { readonly unavailable: string } => {
  const reasons: Array<string> = []
  for (const attempt of [() => tryCpuV2(name, memoryLimitMiB), () => tryCpuV1(name)]) {
    try {
      return attempt()
    } catch (error) {
      reasons.push(error instanceof Error ? error.message : String(error))
    }
  }
  return { unavailable: reasons.join("; ") }
}
