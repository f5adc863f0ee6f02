/**
 * The Dockerfile, checked without a container engine: its two stages, what the runtime stage holds
 * and runs, its labels, the .dockerignore, and a hadolint-like rule set (scripts/lint-dockerfile.ts;
 * hadolint itself is not installable here). runtime-stage.test.ts runs what this file declares.
 */
import { existsSync, readFileSync } from "node:fs"
import * as path from "node:path"
import { build } from "esbuild"
import { describe, expect, it } from "vitest"
import { bundleOptions } from "../../scripts/bundle-options.ts"
import {
  copyArgs,
  imageRef,
  isIgnored,
  labels,
  lintDockerfile,
  parseDockerfile,
  parseDockerignore,
  type Stage,
  workdirAt,
} from "../../scripts/lint-dockerfile.ts"
import { DEFAULTS } from "../../src/config/SidecarConfig.ts"
import { ROOT, RUNTIME_FILES, readDockerfile, runtimeStage } from "./runtime.ts"

const dockerfile = readDockerfile()
const runtime = runtimeStage(dockerfile)
const read = (file: string) => readFileSync(path.join(ROOT, file), "utf8")
const pkg = JSON.parse(read("package.json")) as { name: string; version: string; license: string }

const buildStage = (): Stage => {
  if (runtime.build === undefined) throw new Error("no build stage")
  return runtime.build
}
const runs = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "RUN")
const copies = (stage: Stage) => stage.instructions.filter((i) => i.keyword === "COPY")
/** Build-context paths the build stage copies (`src/` → `src`). */
const buildSources = () =>
  copies(buildStage()).flatMap((i) => copyArgs(i).sources.map((s) => s.replace(/\/+$/, "")))
const covers = (sources: ReadonlyArray<string>, file: string) =>
  sources.some((s) => file === s || file.startsWith(`${s}/`))

/** The commands of a Makefile target's recipe. */
const recipe = (target: string): Array<string> => {
  const match = new RegExp(`^${target}:.*\\n((?:\\t.*\\n)+)`, "m").exec(read("Makefile"))
  return (match?.[1] ?? "")
    .split("\n")
    .flatMap((line) => (line.startsWith("\t") ? [line.slice(1).trim()] : []))
}

/** A script and the local modules it imports, transitively (paths relative to the repository). */
const localImports = (file: string, seen = new Set<string>()): Set<string> => {
  if (seen.has(file)) return seen
  seen.add(file)
  for (const [, spec] of read(file).matchAll(/from\s+"(\.{1,2}\/[^"]+)"/g)) {
    if (spec) localImports(path.posix.join(path.posix.dirname(file), spec), seen)
  }
  return seen
}

const DEBIAN_RELEASES: Readonly<Record<string, string>> = { bookworm: "12", trixie: "13" }

describe("Dockerfile", () => {
  it("has two stages: a Node 24 Debian build stage and a distroless Node 24 runtime on the same Debian release", () => {
    expect(dockerfile.stages).toHaveLength(2)
    const stage = buildStage()
    expect(stage.name).toBe("build")
    const base = imageRef(stage.image)
    expect(base.name).toBe("node")
    const release = /^24-(bookworm|trixie)(-slim)?$/.exec(base.tag ?? "")?.[1] ?? ""
    expect(release, `build base pinned to Node 24 on a known Debian release: ${stage.image}`).not.toBe("")

    const run = imageRef(runtime.stage.image)
    expect(run.name).toBe(`gcr.io/distroless/nodejs24-debian${DEBIAN_RELEASES[release]}`)
    expect(run.tag).toBe("nonroot")
  })

  it("build stage: npm ci from package-lock.json, then exactly what `make build` runs", () => {
    const stage = buildStage()
    const body = stage.instructions
    const npmCi = body.findIndex((i) => i.keyword === "RUN" && /\bnpm ci\b/.test(i.args))
    expect(npmCi).toBeGreaterThan(-1)
    const lockCopied = body.findIndex(
      (i) => i.keyword === "COPY" && copyArgs(i).sources.includes("package-lock.json"),
    )
    expect(lockCopied).toBeGreaterThan(-1)
    expect(lockCopied).toBeLessThan(npmCi)
    expect(runs(stage).some((i) => /\bnpm (install|i)\b/.test(i.args))).toBe(false)
    // The last RUN is the Makefile's build recipe, to the letter.
    expect(recipe("build")).toContain(runs(stage).at(-1)?.args)
  })

  it("build stage copies every local file the bundle is built from, named, and none the .dockerignore drops", async () => {
    const sources = buildSources()
    expect(sources).not.toContain(".")
    const result = await build({
      ...bundleOptions,
      absWorkingDir: ROOT,
      entryPoints: ["src/main.ts"],
      outfile: "dist/main.js",
      write: false,
      metafile: true,
      logLevel: "silent",
    })
    // Files only: the stand-ins of scripts/bundle-options.ts are virtual ("unused:…").
    const inputs = Object.keys(result.metafile.inputs).filter(
      (f) => !f.startsWith("node_modules/") && !f.startsWith("unused:"),
    )
    const needed = [
      ...inputs,
      ...localImports("scripts/build.ts"),
      "package.json",
      "package-lock.json",
      "tsconfig.json",
    ]
    expect(needed.filter((f) => !covers(sources, f))).toEqual([])
    // build.ts builds what the Dockerfile says it does.
    expect(read("scripts/build.ts")).toContain('entryPoints: ["src/main.ts"]')

    const ignore = parseDockerignore(read(".dockerignore"))
    for (const source of sources) {
      expect(existsSync(path.join(ROOT, source)), `${source} exists`).toBe(true)
      expect(isIgnored(ignore, source), `${source} is in the build context`).toBe(false)
    }
  })

  it("runtime stage copies exactly RUNTIME_FILES from the build stage's output, at the same path under WORKDIR, root-owned", () => {
    const buildWorkdir = workdirAt(buildStage()) ?? ""
    expect(buildWorkdir).toMatch(/^\//)
    expect(runtime.workdir).toBeDefined()
    const copied = runtime.copies.flatMap((c) => {
      expect(c.from).toBe("build")
      // No --chown/--chmod: files stay root's, readable and not writable by the process.
      expect([...c.instruction.flags.keys()]).toEqual(["from"])
      return c.sources.map((source) => ({ file: path.posix.relative(buildWorkdir, source), dest: c.dest }))
    })
    expect(copied.map((c) => c.file).sort()).toEqual([...RUNTIME_FILES].sort())
    for (const { file, dest } of copied) expect(dest).toBe(path.posix.join(runtime.workdir ?? "", file))
    // That is where `make build` writes the bundle.
    expect(read("scripts/build.ts")).toMatch(/outfile: "dist\/main\.js"/)
    expect(RUNTIME_FILES).toContain("dist/main.js")
  })

  it("runtime WORKDIR is created by COPY (root-owned), not by WORKDIR (which would give it to uid 65532)", () => {
    const body = runtime.stage.instructions
    const workdir = body.findIndex((i) => i.keyword === "WORKDIR")
    const firstCopy = body.findIndex((i) => i.keyword === "COPY")
    expect(firstCopy).toBeGreaterThan(-1)
    expect(firstCopy).toBeLessThan(workdir)
    expect(runtime.copies[0]?.dest.startsWith(`${runtime.workdir}/`)).toBe(true)
  })

  it("runs as the numeric non-root user 65532:65532 (distroless nonroot), set last", () => {
    expect(runtime.user).toEqual({ uid: 65532, gid: 65532 })
    const users = runtime.stage.instructions.filter((i) => i.keyword === "USER")
    expect(users).toHaveLength(1)
    const body = runtime.stage.instructions
    const userAt = body.findIndex((i) => i.keyword === "USER")
    // Nothing that writes to the image follows it.
    expect(body.slice(userAt).filter((i) => ["COPY", "ADD", "RUN", "WORKDIR"].includes(i.keyword))).toEqual(
      [],
    )
  })

  it(`exposes ${DEFAULTS.HTTPS_PORT}, the default HTTPS_PORT`, () => {
    const expose = runtime.stage.instructions.filter((i) => i.keyword === "EXPOSE").map((i) => i.args)
    expect(expose).toEqual([DEFAULTS.HTTPS_PORT])
    expect(DEFAULTS.HTTPS_PORT).toBe("8443")
  })

  it("ENTRYPOINT runs the production bundle with distroless's node and the V8 memory flags; CMD adds nothing", () => {
    const entrypoint = runtime.stage.instructions.filter((i) => i.keyword === "ENTRYPOINT")
    const cmd = runtime.stage.instructions.filter((i) => i.keyword === "CMD")
    expect(entrypoint).toHaveLength(1)
    expect(cmd).toHaveLength(1)
    expect(cmd[0]?.json).toEqual([])
    const [node, ...args] = runtime.argv
    expect(node).toBe("/nodejs/bin/node")
    expect(args.filter((a) => a.startsWith("--"))).toEqual([
      "--max-semi-space-size=2",
      "--max-old-space-size=64",
    ])
    expect(args.filter((a) => !a.startsWith("--"))).toEqual([
      path.posix.join(runtime.workdir ?? "", "dist/main.js"),
    ])
    expect(args.at(-1)).toBe(path.posix.join(runtime.workdir ?? "", "dist/main.js"))
  })

  it("has the OCI labels, matching package.json", () => {
    const found = labels(dockerfile, runtime.stage)
    expect(Object.fromEntries(found)).toMatchObject({
      "org.opencontainers.image.title": pkg.name,
      "org.opencontainers.image.version": pkg.version,
      "org.opencontainers.image.licenses": pkg.license,
      "org.opencontainers.image.source": expect.stringMatching(/^https:\/\/github\.com\/[\w.-]+\/[\w.-]+$/),
      "org.opencontainers.image.description": expect.stringMatching(/\S/),
    })
    // The version label comes from ARG VERSION (docker build --build-arg VERSION=…).
    const raw = runtime.stage.instructions.find((i) => i.keyword === "LABEL")?.args ?? ""
    // biome-ignore lint/suspicious/noTemplateCurlyInString: the Dockerfile's own syntax
    expect(raw).toContain('org.opencontainers.image.version="${VERSION}"')
  })

  it("runtime stage runs nothing at build time (distroless has no shell) and adds no volume", () => {
    const forbidden = runtime.stage.instructions.filter((i) =>
      ["RUN", "ADD", "SHELL", "ONBUILD", "VOLUME", "HEALTHCHECK"].includes(i.keyword),
    )
    expect(forbidden).toEqual([])
  })

  it("passes the hadolint-like rules (scripts/lint-dockerfile.ts)", () => {
    expect(lintDockerfile(dockerfile)).toEqual([])
  })
})

describe(".dockerignore", () => {
  const rules = parseDockerignore(read(".dockerignore"))

  it.each([
    "node_modules",
    "node_modules/effect/package.json",
    ".git",
    ".git/HEAD",
    ".tools",
    ".dev/ca-key.pem",
    "dist/main.js",
    "test-results",
    "coverage",
    "npm-debug.log",
    "src/some/trace.log",
  ])("excludes %s", (file) => {
    expect(isIgnored(rules, file)).toBe(true)
  })

  it.each(["src/main.ts", "package.json", "package-lock.json", "scripts/build.ts", "tsconfig.json"])(
    "keeps %s",
    (file) => {
      expect(isIgnored(rules, file)).toBe(false)
    },
  )
})

describe("the Dockerfile linter", () => {
  const rulesOf = (text: string) => lintDockerfile(parseDockerfile(text)).map((p) => p.rule)
  const ok = "USER 65532:65532\n"

  it.each([
    ["DL3006", "FROM debian\n"],
    ["DL3007", "FROM debian:latest\n"],
    ["DL3020", "FROM debian:12\nADD app.tar /app/\n"],
    ["DL3025", 'FROM debian:12\nENTRYPOINT node "/app/main.js"\n'],
    ["DL3000", "FROM debian:12\nWORKDIR app\n"],
    [
      "DL3015",
      "FROM debian:12\nRUN apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*\n",
    ],
    [
      "DL3014",
      "FROM debian:12\nRUN apt-get install --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n",
    ],
    ["DL3009", "FROM debian:12\nRUN apt-get install -y --no-install-recommends curl\n"],
    ["DL3002", "FROM debian:12\nUSER 0\n"],
    ["final-user", "FROM debian:12\nUSER nonroot\n"],
    ["final-user", "FROM debian:12\n"],
    ["DL3022", "FROM debian:12\nCOPY --from=bulid /a /a\n"],
    ["DL3024", "FROM debian:12 AS x\nFROM debian:12 AS x\n"],
    ["DL3029", "FROM --platform=linux/amd64 debian:12\n"],
    ["DL3045", "FROM debian:12\nCOPY a.js dist/\n"],
    ["DL3021", "FROM debian:12\nCOPY a b /dest\n"],
    ["DL3003", "FROM debian:12\nRUN cd /tmp && make\n"],
    ["DL4006", "FROM debian:12\nRUN curl -s x | sh\n"],
    ["DL4003", 'FROM debian:12\nCMD ["a"]\nCMD ["b"]\n'],
    ["npm-ci", "FROM node:24\nRUN npm install\n"],
    ["DL3048", "FROM debian:12\nLABEL Bad_Key=1\n"],
  ])("reports %s", (rule, text) => {
    expect(rulesOf(text.includes("USER") || rule === "final-user" ? text : text + ok)).toContain(rule)
  })

  it("finds nothing in a clean file", () => {
    expect(
      rulesOf('FROM debian:12-slim AS b\nWORKDIR /b\nCOPY a.js ./\nFROM b\nENTRYPOINT ["x"]\nUSER 1:1\n'),
    ).toEqual([])
  })

  it("joins continuation lines and skips comments inside them", () => {
    const parsed = parseDockerfile('FROM debian:12\nLABEL a=1 \\\n# note\n      b="two words"\nUSER 1:1\n')
    expect(Object.fromEntries(labels(parsed, parsed.stages[0] as Stage))).toEqual({ a: "1", b: "two words" })
    expect(parsed.stages[0]?.instructions.map((i) => i.line)).toEqual([2, 5])
  })

  it("refuses what it cannot parse rather than passing it", () => {
    expect(() => parseDockerfile("FROM debian:12\nRUN <<EOF\necho\nEOF\n")).toThrow(/heredoc/)
    expect(() => parseDockerfile("FROM debian:12\nFROBNICATE x\n")).toThrow(/unknown instruction/)
  })
})
