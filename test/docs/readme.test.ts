/**
 * README.md against the code: the configuration table against the
 * configuration's own list of variables, its defaults and its decoder, and
 * the architecture table against the folders under src/. A variable or a
 * folder added without its documentation, a default changed in one place
 * only, or a row left behind by a move fails here.
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as Result from "effect/Result"
import { describe, expect, it } from "vitest"
import { DEFAULTS, decode, type Env, VARIABLES, type Variable } from "../../src/config/SidecarConfig.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const README = readFileSync(join(ROOT, "README.md"), "utf8")

// ---- Markdown ----

/** The text of a `## ` section, up to the next heading of the same level. */
const section = (heading: string): string => {
  const lines = README.split("\n")
  const start = lines.indexOf(heading)
  if (start === -1) throw new Error(`README.md has no section ${JSON.stringify(heading)}`)
  const end = lines.findIndex((line, i) => i > start && /^## /.test(line))
  return lines.slice(start + 1, end === -1 ? undefined : end).join("\n")
}

const cells = (line: string): Array<string> =>
  line
    .trim()
    .replace(/^\|/, "")
    .replace(/\|$/, "")
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim())

/** The body rows of the first table in `text` whose first header cell is `firstHeader`. */
const table = (text: string, firstHeader: string): Array<Array<string>> => {
  const lines = text.split("\n")
  const start = lines.findIndex((line) => line.startsWith("|") && cells(line)[0] === firstHeader)
  if (start === -1) throw new Error(`no table with the first column ${JSON.stringify(firstHeader)}`)
  const rows: Array<Array<string>> = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break
    rows.push(cells(line))
  }
  return rows
}

/** The contents of the code spans in a cell: "`A`, `B`" -> ["A", "B"]. */
const codeSpans = (cell: string): Array<string> => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? "")

// ---- the configuration table ----

interface Row {
  readonly names: ReadonlyArray<string>
  readonly default: string
  readonly meaning: string
}

const CONFIGURATION = section("## Configuration")
const rows: ReadonlyArray<Row> = table(CONFIGURATION, "Variable").map(
  ([names = "", dflt = "", meaning = ""]) => ({
    names: codeSpans(names),
    default: dflt,
    meaning,
  }),
)

const isVariable = (name: string): name is Variable => (VARIABLES as ReadonlyArray<string>).includes(name)
const defaultOf = (name: Variable): string | undefined =>
  Object.hasOwn(DEFAULTS, name) ? DEFAULTS[name as keyof typeof DEFAULTS] : undefined
const rowOf = (name: string): Row | undefined => rows.find((row) => row.names.includes(name))

/** How the Default column writes a default of the code: `value`, or "empty" for the empty string. */
const written = (value: string): string => (value === "" ? "empty" : `\`${value}\``)

/** The variables the decoder reports as required when nothing is set. */
const required = (() => {
  const result = decode({})
  if (Result.isSuccess(result)) throw new Error("expected the empty environment to be rejected")
  return result.failure.problems.filter((p) => p.reason === "required").map((p) => p.variable)
})()

/**
 * An environment that decodes, with the optional parts switched on (forwarding, the probe listener),
 * so that a variable which only matters for them is not ignored.
 */
const BASE: Env = {
  TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
  TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
  CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
  FORWARD_PORT: "8888",
  HEALTH_PORT: "8081",
}

const without = (env: Env, name: Variable): Env => {
  const { [name]: _, ...rest } = env
  return rest
}

const decodeOk = (env: Env) => {
  const result = decode(env)
  if (Result.isFailure(result))
    throw new Error(`expected ${JSON.stringify(env)} to decode:\n${result.failure}`)
  return result.success
}

/** kubectl-coco's injection contract (cococtl pkg/sidecar/sidecar.go); FORWARD_PORT with --sidecar-port-forward. */
const KUBECTL_COCO = [
  "TLS_CERT_URI",
  "TLS_KEY_URI",
  "CLIENT_CA_URI",
  "HTTPS_PORT",
  "FORWARD_PORT",
  "POD_NAME",
  "POD_NAMESPACE",
] as const satisfies ReadonlyArray<Variable>

const NUMBERS: Record<string, number> = { five: 5, six: 6, seven: 7, eight: 8, nine: 9 }

describe("README: the configuration table", () => {
  it("is found, and every row names its variables as code", () => {
    expect(rows.length).toBeGreaterThan(0)
    expect(rows.filter((row) => row.names.length === 0)).toEqual([])
  })

  it.each(VARIABLES)("has a row for %s", (name) => {
    expect(rowOf(name), `README.md's configuration table has no row for ${name}`).toBeDefined()
  })

  it("names only variables the configuration reads, each in one row", () => {
    const named = rows.flatMap((row) => row.names)
    expect(named.filter((name) => !isVariable(name))).toEqual([])
    expect(named.filter((name, i) => named.indexOf(name) !== i)).toEqual([])
  })

  it.each(VARIABLES.filter((name) => defaultOf(name) !== undefined))(
    "shows the default of %s as the code has it",
    (name) => {
      expect(rowOf(name)?.default).toBe(written(defaultOf(name) ?? ""))
    },
  )

  it("says `required` for exactly the variables the decoder requires", () => {
    expect(required.length).toBeGreaterThan(0)
    const documented = rows.filter((row) => row.default === "required").flatMap((row) => row.names)
    expect([...documented].sort()).toEqual([...required].sort())
  })

  it("shows a default outside DEFAULTS only where setting it changes nothing", () => {
    const shown = VARIABLES.flatMap((name) => {
      const spans = codeSpans(rowOf(name)?.default ?? "")
      return defaultOf(name) === undefined && spans.length > 0 ? [[name, spans] as const] : []
    })
    for (const [name, spans] of shown) {
      expect(spans, `${name}: one default value`).toHaveLength(1)
      const base = without(BASE, name)
      expect(decodeOk({ ...base, [name]: spans[0] }), `${name}=${spans[0]}`).toEqual(decodeOk(base))
    }
  })

  it("holds to its 'must differ from' claims: the decoder refuses the same port", () => {
    const claims = rows.flatMap((row) => {
      const claim = /must differ from ((?:`[A-Z_]+`(?:,\s*|\s+and\s+|\s+or\s+)?)+)/i.exec(row.meaning)
      return claim === null
        ? []
        : row.names.flatMap((name) => codeSpans(claim[1] ?? "").map((other) => [name, other]))
    })
    expect(claims.length).toBeGreaterThan(0)
    for (const [name = "", other = ""] of claims) {
      if (!isVariable(name) || !isVariable(other)) throw new Error(`${name}, ${other}: not variables`)
      const value = BASE[other] ?? defaultOf(other)
      if (value === undefined) throw new Error(`${other} has no value to clash with`)
      const result = decode({ ...BASE, [name]: value })
      expect(Result.isFailure(result), `${name}=${other}=${value} is refused`).toBe(true)
      if (Result.isFailure(result)) {
        expect(result.failure.problems.map((p) => p.variable)).toEqual(
          expect.arrayContaining([expect.stringMatching(new RegExp(`^(${name}|${other})$`))]),
        )
      }
    }
  })

  it("holds to its 'empty means unset' claims", () => {
    const claims = rows.filter((row) => /empty means unset/i.test(row.meaning)).flatMap((row) => row.names)
    for (const name of claims) {
      if (!isVariable(name)) throw new Error(`${name}: not a variable`)
      expect(decodeOk({ ...BASE, [name]: "" }), `${name}=""`).toEqual(decodeOk(without(BASE, name)))
    }
  })

  it("starts with kubectl-coco's injection contract, as its introduction says", () => {
    const claim = /The first (\w+) are kubectl-coco's injection contract/.exec(CONFIGURATION)
    expect(claim, "the introduction says how many rows are kubectl-coco's").not.toBeNull()
    const count = NUMBERS[claim?.[1] ?? ""]
    expect(count).toBe(KUBECTL_COCO.length)
    expect(rows.slice(0, count).flatMap((row) => row.names)).toEqual(KUBECTL_COCO)
  })
})

describe("README", () => {
  it.each(VARIABLES)("mentions %s", (name) => {
    expect(README.includes(`\`${name}\``), `README.md never names \`${name}\``).toBe(true)
  })
})

// ---- the architecture table ----

const SRC = join(ROOT, "src")

/** A directory counts when it holds a file somewhere below it (git keeps no empty directories). */
const holdsFiles = (dir: string): boolean =>
  readdirSync(dir, { withFileTypes: true }).some((entry) =>
    entry.isDirectory() ? holdsFiles(join(dir, entry.name)) : true,
  )

const exists = (path: string): boolean => {
  try {
    const stat = statSync(join(ROOT, path))
    return stat.isDirectory() ? holdsFiles(join(ROOT, path)) : stat.isFile()
  } catch {
    return false
  }
}

const folders = readdirSync(SRC, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && holdsFiles(join(SRC, entry.name)))
  .map((entry) => `src/${entry.name}/`)
  .sort()

const named = table(section("## Architecture"), "Path").flatMap(([path = ""]) => codeSpans(path))

describe("README: the architecture table", () => {
  it("is found", () => {
    expect(named.length).toBeGreaterThan(0)
    expect(folders.length).toBeGreaterThan(0)
  })

  it("names every folder directly under src/ as `src/<name>/`", () => {
    expect(folders.filter((folder) => !named.includes(folder))).toEqual([])
  })

  it("names only paths that exist", () => {
    expect(named.filter((path) => !exists(path))).toEqual([])
  })
})
