/**
 * A memory cgroup with a hard limit, as the kubelet makes one for a container with
 * `resources.limits.memory`: the kernel reclaims what it can (clean file pages first) and
 * OOM-kills when it cannot. The benchmark runs the sidecar with the container flags in one,
 * to show whether kubectl-coco's 128 MiB limit holds under its load. cgroup v2 and v1 are both
 * handled; where neither can be written (not root, a read-only cgroupfs), `create` says why.
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
