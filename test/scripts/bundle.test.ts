/**
 * The production bundle holds no development code: nothing under src/dev/
 * (dev PKI, mock and in-memory CDH, demo app, local run) and no package that
 * only development needs. A stray import from production code would ship it,
 * with its memory cost at every start and code no one reviewed as production.
 */
import { readFileSync } from "node:fs"
import { build, type Metafile } from "esbuild"
import { beforeAll, describe, expect, it } from "vitest"
import { bundleOptions } from "../../scripts/bundle-options.ts"

const packageJson = JSON.parse(readFileSync("package.json", "utf8")) as {
  readonly devDependencies: Readonly<Record<string, string>>
}
const lock = JSON.parse(readFileSync("package-lock.json", "utf8")) as {
  readonly packages: Readonly<Record<string, { readonly dev?: boolean }>>
}

/** Installed packages only development needs: the lockfile's `dev` ones, and every devDependency. */
const devPackages = new Set([
  ...Object.entries(lock.packages).flatMap(([dir, entry]) => (entry.dev === true ? [dir] : [])),
  ...Object.keys(packageJson.devDependencies).map((name) => `node_modules/${name}`),
])

/** The installed package an input belongs to: `node_modules/a/node_modules/@s/b/x.js` -> `node_modules/a/node_modules/@s/b`. */
const packageOf = (input: string): string | undefined =>
  /^(?:node_modules\/(?:@[^/]+\/)?[^/]+\/)*/.exec(input)?.[0]?.replace(/\/$/, "") || undefined

/** Everything development-only the build reached, whether or not tree-shaking kept any of it. */
const devInputs = (metafile: Metafile): Array<string> =>
  Object.keys(metafile.inputs).filter((input) => {
    if (input.startsWith("src/dev/")) return true
    const pkg = packageOf(input)
    return pkg !== undefined && devPackages.has(pkg)
  })

const bundle = async (options: Parameters<typeof build>[0]): Promise<Metafile> =>
  (
    await build({
      ...bundleOptions,
      outfile: "dist/main.js",
      ...options,
      write: false,
      metafile: true,
      logLevel: "silent",
    })
  ).metafile

let production: Metafile
beforeAll(async () => {
  production = await bundle({ entryPoints: ["src/main.ts"] })
}, 60_000)

describe("the production bundle", () => {
  it("reaches no file under src/dev/", () => {
    expect(Object.keys(production.inputs).filter((input) => input.startsWith("src/dev/"))).toEqual([])
  })

  it("reaches no package that only development needs", () => {
    expect([...new Set(devInputs(production).map((input) => packageOf(input) ?? input))]).toEqual([])
  })

  it.each(["@peculiar/x509", "reflect-metadata", "ws", "tsyringe"])("reaches nothing of %s", (name) => {
    expect(devPackages.has(`node_modules/${name}`), `${name} is a development package`).toBe(true)
    expect(
      Object.keys(production.inputs).filter((input) => packageOf(input)?.endsWith(`node_modules/${name}`)),
    ).toEqual([])
  })

  it("is built from src/main.ts (the check sees the real graph)", () => {
    const inputs = Object.keys(production.inputs)
    expect(inputs).toContain("src/main.ts")
    expect(inputs).toContain("src/config/SidecarConfig.ts")
    expect(inputs.some((input) => input.startsWith("node_modules/effect/"))).toBe(true)
  })
})

describe("the check", () => {
  it("catches production code that imports development code", async () => {
    // src/main.ts plus what a stray import of the dev PKI would bring in.
    const metafile = await bundle({
      stdin: {
        contents: `import "./src/main.ts"\nexport { createDevPki } from "./src/dev/DevPki.ts"`,
        resolveDir: process.cwd(),
        sourcefile: "stray-import.ts",
        loader: "ts",
      },
    })
    const found = devInputs(metafile)
    expect(found).toContain("src/dev/DevPki.ts")
    expect(found.some((input) => input.startsWith("node_modules/@peculiar/x509/"))).toBe(true)
    expect(found.some((input) => input.startsWith("node_modules/reflect-metadata/"))).toBe(true)
  }, 60_000)

  it.each([
    ["node_modules/@peculiar/x509/build/x509.es.js", "node_modules/@peculiar/x509"],
    ["node_modules/tsyringe/node_modules/tslib/tslib.es6.js", "node_modules/tsyringe/node_modules/tslib"],
    ["node_modules/effect/dist/Effect.js", "node_modules/effect"],
    ["src/main.ts", undefined],
  ])("places %s in %s", (input, pkg) => {
    expect(packageOf(input)).toBe(pkg)
  })
})

/** The import cycles among the sidecar's own modules, as esbuild resolved them (type imports are erased). */
const cycles = (metafile: Metafile): Array<string> => {
  const own = (file: string) => file.startsWith("src/")
  const edges = new Map(
    Object.entries(metafile.inputs)
      .filter(([file]) => own(file))
      .map(([file, input]) => [file, input.imports.map((i) => i.path).filter(own)] as const),
  )
  const found: Array<string> = []
  const state = new Map<string, "open" | "done">()
  const visit = (file: string, path: Array<string>) => {
    if (state.get(file) === "done") return
    if (state.get(file) === "open") {
      found.push([...path.slice(path.indexOf(file)), file].join(" -> "))
      return
    }
    state.set(file, "open")
    for (const next of edges.get(file) ?? []) visit(next, [...path, file])
    state.set(file, "done")
  }
  for (const file of edges.keys()) visit(file, [])
  return found
}

describe("the sidecar's modules", () => {
  it("import one another without a cycle (metrics, proxy and gateway included)", () => {
    expect(cycles(production)).toEqual([])
  })

  it("the cycle check finds a cycle", () => {
    const fake: Metafile = {
      inputs: {
        "src/a.ts": {
          bytes: 1,
          imports: [{ path: "src/b.ts", kind: "import-statement", original: "./b.ts" }],
        },
        "src/b.ts": {
          bytes: 1,
          imports: [{ path: "src/a.ts", kind: "import-statement", original: "./a.ts" }],
        },
      },
      outputs: {},
    }
    expect(cycles(fake)).toEqual(["src/a.ts -> src/b.ts -> src/a.ts"])
  })
})
