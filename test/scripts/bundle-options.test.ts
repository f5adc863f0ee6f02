/**
 * What the production bundle leaves out, and that it stays out: each module costs
 * memory at every start (docs/PERFORMANCE.md), and a dependency update can bring
 * one back silently.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { builtinModules } from "node:module"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { pathToFileURL } from "node:url"
import { build, type Metafile } from "esbuild"
import { beforeAll, describe, expect, it } from "vitest"
import { bundleOptions, unusedModules } from "../../scripts/bundle-options.ts"

let metafile: Metafile
let output: string
beforeAll(async () => {
  const result = await build({
    ...bundleOptions,
    entryPoints: ["src/main.ts"],
    outfile: "dist/main.js",
    write: false,
    metafile: true,
    logLevel: "silent",
  })
  metafile = result.metafile
  output = result.outputFiles[0]?.text ?? ""
}, 60_000)

const bundled = () => Object.keys(Object.values(metafile.outputs)[0]?.inputs ?? {})
const externals = () =>
  new Set(
    Object.values(metafile.outputs).flatMap((o) => o.imports.filter((i) => i.external).map((i) => i.path)),
  )

describe("the production bundle", () => {
  it.each(unusedModules.map((m) => [m.path, m.importer.source] as const))(
    "replaces %s (imported by %s) with its stand-in: the entry still matches the installed dependency",
    (path) => {
      const resolved = Object.keys(metafile.inputs)
      expect(resolved.filter((input) => input.startsWith(`unused:${path} (`))).toHaveLength(1)
    },
  )

  it("imports Node built-ins only: the image ships dist/main.js without node_modules", () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]))
    expect([...externals()].filter((e) => !builtins.has(e))).toEqual([])
  })

  it.each(["node:child_process", "node:readline", "cluster", "node:http2", "tty", "v8", "perf_hooks"])(
    "does not import the built-in %s when the bundle loads",
    (builtin) => {
      const bare = builtin.replace(/^node:/, "")
      expect([...externals()].filter((e) => e === bare || e === `node:${bare}`)).toEqual([])
    },
  )

  it.each([
    "node_modules/ws/",
    "node_modules/undici/",
    "node_modules/follow-redirects/",
    "node_modules/debug/",
    "node_modules/@opentelemetry/",
    "node_modules/prom-client/",
    "node_modules/http-proxy-3/",
    "node_modules/@effect/platform-node-shared/dist/NodeChildProcessSpawner.js",
  ])("does not contain %s", (prefix) => {
    expect(bundled().filter((input) => input.startsWith(prefix))).toEqual([])
  })

  it("initialises no module lazily: a dynamic import would wrap its whole module graph and defeat tree-shaking", () => {
    const dynamic = Object.entries(metafile.inputs).flatMap(([file, input]) =>
      input.imports
        .filter((i) => i.kind === "dynamic-import" && !i.external)
        .map((i) => `${file} -> ${i.path}`),
    )
    expect(dynamic.filter((d) => !d.includes(" -> unused:"))).toEqual([])
    expect(output).not.toContain("__esm(")
  })

  it("tree-shakes Effect: its modules are imported one by one, not through the barrels", () => {
    // `import { Effect } from "effect"` keeps every export of every module it names.
    expect(output).not.toMatch(/\bEffect_exports\b|\bSchema_exports\b|\bStream_exports\b/)
  })

  it("stand-ins load without error and name themselves when used", async () => {
    // NodeHttpServer loads NodeServices at start; only layerHttpServices (never used here) needs it.
    const result = await build({
      ...bundleOptions,
      stdin: {
        contents: `import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
export const makeHandler = NodeHttpServer.makeHandler`,
        resolveDir: process.cwd(),
        loader: "js",
      },
      write: false,
      logLevel: "silent",
    })
    const dir = mkdtempSync(path.join(tmpdir(), "stand-in-"))
    try {
      const file = path.join(dir, "bundle.mjs")
      writeFileSync(file, result.outputFiles[0]?.text ?? "")
      const bundle = (await import(pathToFileURL(file).href)) as { makeHandler: unknown }
      expect(typeof bundle.makeHandler).toBe("function")
      expect(result.outputFiles[0]?.text).toContain("not in the sidecar bundle: ./NodeServices.js (")
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
