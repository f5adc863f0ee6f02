/**
 * The image's runtime stage without a container engine: a fresh folder holding exactly what the
 * Dockerfile copies (RUNTIME_FILES at the same relative path, no node_modules), owned by root and
 * read-only, and the Dockerfile's own ENTRYPOINT+CMD run in it as the Dockerfile's USER (65532) with
 * only kubectl-coco's environment, against the mock CDH. It must serve mTLS, write nothing, and exit 0
 * on SIGTERM: what readOnlyRootFilesystem and runAsNonRoot demand of the image.
 */
import { spawn, spawnSync } from "node:child_process"
import {
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
} from "node:fs"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type MockCdhServer, startMockCdh } from "../../src/dev/cdh/MockCdhServer.ts"
import { type Fixtures, makeFixtures, resourcesFor, URIS } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { follow, freePort, type Running } from "../support/process.ts"
import { ROOT, RUNTIME_FILES, readDockerfile, runtimeStage } from "./runtime.ts"

const runtime = runtimeStage(readDockerfile())
const user = runtime.user ?? { uid: 65532, gid: 65532 }
const workdir = runtime.workdir ?? "/"

/** Whether `uid`/`gid` (no supplementary groups) may search every directory down to `file` and execute it. */
const executableBy = (file: string, uid: number, gid: number): boolean => {
  const bit = (p: string, mask: number) => {
    const s = statSync(p)
    const shift = s.uid === uid ? 6 : s.gid === gid ? 3 : 0
    return ((s.mode >> shift) & mask) !== 0
  }
  const dirs: Array<string> = []
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    dirs.push(dir)
    if (dir === path.dirname(dir)) break
  }
  return dirs.every((d) => bit(d, 1)) && bit(file, 1)
}

/** Why this test cannot run here, if it cannot. */
const skipReason = (): string | undefined => {
  if (process.getuid?.() !== 0) return "needs root to start the bundle as another uid"
  if (!existsProc()) return "needs /proc to read the process's uid"
  return undefined
}
const existsProc = () => {
  try {
    return statSync("/proc/self/status").isFile()
  } catch {
    return false
  }
}
const reason = skipReason()

/** Every entry under `dir` with its size and mtime, to prove nothing was written. */
const snapshot = (dir: string): Array<string> =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .map((e) => {
      const full = path.join(e.parentPath, e.name)
      const s = statSync(full)
      return `${path.relative(dir, full)} ${s.size} ${s.mtimeMs} ${s.uid}:${s.gid} ${(s.mode & 0o7777).toString(8)}`
    })
    .sort()

/**
 * Dates a fresh copy's access time ahead of its change time, so that reading it does not update
 * it. With relatime, the first read of a file whose atime is not newer than its mtime/ctime dirties
 * its inode, and the kernel charges that 4 KiB block to the reader's `write_bytes`: the bundle would
 * seem to write when the block had already been written back (seen under other disk traffic).
 */
const withoutAtimeUpdate = (file: string): void => {
  const stat = statSync(file)
  utimesSync(file, new Date(Date.now() + 3_600_000), stat.mtime)
}

/** Entries in the usual world-writable places that belong to `uid`. */
const ownedIn = (uid: number): Array<string> =>
  ["/tmp", "/var/tmp", "/dev/shm"].flatMap((dir) => {
    try {
      return readdirSync(dir)
        .map((name) => path.join(dir, name))
        .filter((full) => {
          try {
            return statSync(full).uid === uid
          } catch {
            return false
          }
        })
    } catch {
      return []
    }
  })

/** Regular files the process holds open for writing (from /proc/<pid>/fd and fdinfo). */
const filesOpenForWriting = (pid: number): Array<string> =>
  readdirSync(`/proc/${pid}/fd`).flatMap((fd) => {
    try {
      const target = statSync(`/proc/${pid}/fd/${fd}`)
      if (!target.isFile()) return []
      const flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1] ?? "0"
      const mode = Number.parseInt(flags, 8) & 3
      return mode === constants.O_WRONLY || mode === constants.O_RDWR ? [`fd ${fd}`] : []
    } catch {
      return [] // closed meanwhile
    }
  })

describe.skipIf(reason !== undefined)(
  `runtime stage as uid ${user.uid}, read-only, bundle only${reason === undefined ? "" : ` (skipped: ${reason})`}`,
  () => {
    let base: string
    let app: string
    let node: string
    let pki: Fixtures
    let cdh: MockCdhServer
    let running: Running
    let port: number
    let before: Array<string>
    let tmpBefore: Array<string>

    beforeAll(async () => {
      base = mkdtempSync(path.join(tmpdir(), "coco-image-"))
      // The image's root: searchable by everyone, like / in the image.
      spawnSync("chmod", ["755", base])
      // The node binary must be executable by the image's user. The image has its own at
      // /nodejs/bin/node; here the running one is used when that user can reach it, else a copy.
      node = process.execPath
      if (!executableBy(node, user.uid, user.gid)) {
        node = path.join(base, "nodejs/bin/node")
        mkdirSync(path.dirname(node), { recursive: true, mode: 0o755 })
        copyFileSync(process.execPath, node)
        withoutAtimeUpdate(node)
        spawnSync("chmod", ["755", path.dirname(node), path.dirname(path.dirname(node)), node])
      }
      // WORKDIR with exactly what the Dockerfile copies, at the same relative paths.
      app = path.join(base, workdir)
      for (const file of RUNTIME_FILES) {
        mkdirSync(path.dirname(path.join(app, file)), { recursive: true })
        copyFileSync(path.join(ROOT, file), path.join(app, file))
        withoutAtimeUpdate(path.join(app, file))
      }
      expect(spawnSync("chmod", ["-R", "a-w,a+rX", app]).status).toBe(0)
      before = snapshot(app)
      tmpBefore = ownedIn(user.uid)

      pki = await makeFixtures()
      cdh = await startMockCdh({ resources: resourcesFor(pki) })
      port = await freePort()
      const argv = runtime.argv.map((arg, i) =>
        i === 0
          ? node
          : arg.startsWith(`${workdir}/`)
            ? path.join(app, path.posix.relative(workdir, arg))
            : arg,
      )
      const child = spawn(argv[0] ?? node, argv.slice(1), {
        cwd: app,
        uid: user.uid,
        gid: user.gid,
        stdio: ["ignore", "pipe", "pipe"],
        // kubectl-coco's contract and nothing else; HOME and TMPDIR point at read-only places,
        // as everything is under readOnlyRootFilesystem.
        env: {
          ...URIS,
          HTTPS_PORT: String(port),
          POD_NAME: "web-7d9f",
          POD_NAMESPACE: "shop",
          HTTPS_HOST: "127.0.0.1",
          CDH_URL: cdh.url,
          HOME: app,
          TMPDIR: app,
        },
      })
      running = follow(child)
      await running.waitFor("listening")
    })

    afterAll(async () => {
      if (running && running.child.exitCode === null && running.child.signalCode === null) {
        running.child.kill("SIGKILL")
        await running.exit
      }
      await cdh?.close()
      if (base) {
        spawnSync("chmod", ["-R", "u+w", base])
        rmSync(base, { recursive: true, force: true })
      }
    })

    it("the folder holds only the bundle, no node_modules, owned by root and read-only", () => {
      const entries = readdirSync(app, { recursive: true, withFileTypes: true })
      const files = entries
        .filter((e) => e.isFile())
        .map((e) => path.relative(app, path.join(e.parentPath, e.name)))
      expect(files.sort()).toEqual([...RUNTIME_FILES].sort())
      expect(entries.some((e) => e.name === "node_modules")).toBe(false)
      for (const entry of [app, ...entries.map((e) => path.join(e.parentPath, e.name))]) {
        const s = statSync(entry)
        expect(s.uid).toBe(0)
        expect(s.mode & 0o222).toBe(0)
      }
    })

    it("serves /api/status over mTLS with the pod name", async () => {
      const reply = await get(`https://127.0.0.1:${port}/api/status`, {
        cert: pki.client.certPem,
        key: pki.client.keyPem,
        ca: pki.ca.certPem,
      })
      expect(reply.status).toBe(200)
      expect(JSON.parse(reply.body)).toMatchObject({ podName: "web-7d9f", namespace: "shop" })
      expect(cdh.requests.some((r) => r.path.endsWith("/server-key") && r.status === 200)).toBe(true)
    })

    it(`runs as uid ${user.uid} and gid ${user.gid}, without supplementary groups`, () => {
      const status = readFileSync(`/proc/${running.child.pid}/status`, "utf8")
      const ids = (field: string) =>
        /^\S+:\s*(.*)$/m.exec(status.split("\n").find((l) => l.startsWith(field)) ?? "")
      expect(ids("Uid:")?.[1]?.split(/\s+/)).toEqual(Array(4).fill(String(user.uid)))
      expect(ids("Gid:")?.[1]?.split(/\s+/)).toEqual(Array(4).fill(String(user.gid)))
      expect(ids("Groups:")?.[1]?.trim() ?? "").toBe("")
    })

    it("holds no file open for writing and has written no byte to storage", () => {
      const pid = running.child.pid ?? 0
      expect(filesOpenForWriting(pid)).toEqual([])
      const io = readFileSync(`/proc/${pid}/io`, "utf8")
      expect(/^write_bytes:\s*(\d+)/m.exec(io)?.[1]).toBe("0")
    })

    it("the Dockerfile's V8 flags are valid and cap the heap", () => {
      const flags = runtime.argv.filter((a) => a.startsWith("--"))
      const probe = spawnSync(node, [...flags, "-p", "require('v8').getHeapStatistics().heap_size_limit"], {
        encoding: "utf8",
      })
      expect(probe.stderr).toBe("")
      expect(Number(probe.stdout)).toBeLessThan(128 * 1024 * 1024)
    })

    it("exits 0 on SIGTERM, having written nothing in its folder nor in /tmp, /var/tmp, /dev/shm", async () => {
      running.child.kill("SIGTERM")
      expect(await running.exit).toEqual({ code: 0, signal: null })
      expect(snapshot(app)).toEqual(before)
      expect(ownedIn(user.uid)).toEqual(tmpBefore)
      expect(running.lines.filter((l) => l.level === "error")).toEqual([])
    })
  },
)
