/**
 * A small Dockerfile parser and a hadolint-like linter for the instructions this project uses.
 *
 * hadolint is not installable here (not in Debian 12, no binary downloads allowed), and the npm
 * "dockerfilelint" is unmaintained, so the rules that matter are checked statically. Rule ids are
 * hadolint's where one exists (https://github.com/hadolint/hadolint#rules); `final-user` and `npm-ci`
 * are this project's. test/image/dockerfile.test.ts runs it on the Dockerfile; from the shell:
 *
 *   node scripts/lint-dockerfile.ts [path/to/Dockerfile]   # one line per problem, exit 1 if any
 *
 * Supported: line continuations, comments, parser directives (ignored), `--flag=value` flags,
 * JSON (exec) form, `FROM [--platform=…] image [AS name]`, `LABEL k=v …`, `ARG NAME[=default]`,
 * `$NAME` / `${NAME}` / `${NAME:-default}`. Not supported (an error, not a silent pass): heredocs,
 * `# escape=` other than `\`, the legacy `LABEL key value` form.
 */
import { readFileSync } from "node:fs"

export interface Instruction {
  /** Upper case, e.g. `COPY`. */
  readonly keyword: string
  /** Leading `--name=value` flags (`--link` alone gives `"true"`). */
  readonly flags: ReadonlyMap<string, string>
  /** Everything after the flags, continuation lines joined. */
  readonly args: string
  /** The arguments when written in JSON (exec) form. */
  readonly json: ReadonlyArray<string> | undefined
  /** 1-based line of the instruction's first line. */
  readonly line: number
}

export interface Stage {
  readonly index: number
  readonly from: Instruction
  /** The base image as written (variables not expanded). */
  readonly image: string
  readonly name: string | undefined
  readonly platform: string | undefined
  /** The stage's instructions after its FROM. */
  readonly instructions: ReadonlyArray<Instruction>
}

export interface Dockerfile {
  readonly instructions: ReadonlyArray<Instruction>
  /** ARGs before the first FROM. */
  readonly globalArgs: ReadonlyArray<Instruction>
  readonly stages: ReadonlyArray<Stage>
}

export interface Problem {
  readonly line: number
  readonly rule: string
  readonly message: string
}

const KEYWORDS = new Set([
  "ADD",
  "ARG",
  "CMD",
  "COPY",
  "ENTRYPOINT",
  "ENV",
  "EXPOSE",
  "FROM",
  "HEALTHCHECK",
  "LABEL",
  "MAINTAINER",
  "ONBUILD",
  "RUN",
  "SHELL",
  "STOPSIGNAL",
  "USER",
  "VOLUME",
  "WORKDIR",
])

const CONTINUATION = /\\[ \t]*$/

const parseJsonForm = (args: string): ReadonlyArray<string> | undefined => {
  if (!args.startsWith("[")) return undefined
  try {
    const value: unknown = JSON.parse(args)
    return Array.isArray(value) && value.every((v) => typeof v === "string") ? value : undefined
  } catch {
    return undefined // Docker runs an invalid JSON array in shell form
  }
}

const parseInstruction = (text: string, line: number): Instruction => {
  const match = /^(\S+)\s*([\s\S]*)$/.exec(text.trim())
  const keyword = (match?.[1] ?? "").toUpperCase()
  let rest = match?.[2] ?? ""
  const flags = new Map<string, string>()
  for (;;) {
    const flag = /^--([A-Za-z][\w-]*)(?:=(\S*))?(?:\s+|$)/.exec(rest)
    if (!flag?.[1]) break
    flags.set(flag[1], flag[2] ?? "true")
    rest = rest.slice(flag[0].length)
  }
  const args = rest.trim()
  if (/<<-?["']?[A-Za-z_]\w*/.test(args) && (keyword === "RUN" || keyword === "COPY")) {
    throw new Error(`Dockerfile:${line}: heredocs are not supported by this parser`)
  }
  return { keyword, flags, args, json: parseJsonForm(args), line }
}

/** Splits on whitespace outside double or single quotes, removing the quotes (`a="b c"` → `a=b c`). */
export const words = (text: string): Array<string> => {
  const out: Array<string> = []
  let current = ""
  let started = false
  let quote: string | undefined
  for (let i = 0; i < text.length; i++) {
    const c = text.charAt(i)
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === "\\" && quote === '"' && i + 1 < text.length) current += text.charAt(++i)
      else current += c
    } else if (c === '"' || c === "'") {
      quote = c
      started = true
    } else if (/\s/.test(c)) {
      if (started) out.push(current)
      current = ""
      started = false
    } else if (c === "\\" && i + 1 < text.length) {
      current += text.charAt(++i)
      started = true
    } else {
      current += c
      started = true
    }
  }
  if (quote !== undefined) throw new Error(`unterminated quote in: ${text}`)
  if (started) out.push(current)
  return out
}

export const parseDockerfile = (text: string): Dockerfile => {
  const lines = text.split(/\r?\n/)
  const instructions: Array<Instruction> = []
  let i = 0
  while (i < lines.length) {
    const first = lines[i] ?? ""
    const trimmed = first.trim()
    if (trimmed === "" || trimmed.startsWith("#")) {
      const escapeDirective = /^#\s*escape\s*=\s*(\S+)/i.exec(trimmed)
      if (escapeDirective && instructions.length === 0 && escapeDirective[1] !== "\\") {
        throw new Error(`Dockerfile:${i + 1}: only the default escape character is supported`)
      }
      i++
      continue
    }
    const start = i + 1
    let joined = ""
    let current = first
    for (;;) {
      i++
      if (!CONTINUATION.test(current)) {
        joined += current
        break
      }
      joined += current.replace(CONTINUATION, "")
      // Comment and empty lines inside a continuation are dropped, as Docker does.
      while (i < lines.length && /^\s*(#.*)?$/.test(lines[i] ?? "")) i++
      if (i >= lines.length) break
      current = lines[i] ?? ""
    }
    const instruction = parseInstruction(joined, start)
    if (!KEYWORDS.has(instruction.keyword)) {
      throw new Error(`Dockerfile:${start}: unknown instruction ${JSON.stringify(instruction.keyword)}`)
    }
    instructions.push(instruction)
  }

  const globalArgs: Array<Instruction> = []
  const stages: Array<{ from: Instruction; instructions: Array<Instruction> }> = []
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") stages.push({ from: instruction, instructions: [] })
    else if (stages.length > 0) stages.at(-1)?.instructions.push(instruction)
    else if (instruction.keyword === "ARG") globalArgs.push(instruction)
    else throw new Error(`Dockerfile:${instruction.line}: ${instruction.keyword} before the first FROM`)
  }
  return {
    instructions,
    globalArgs,
    stages: stages.map(({ from, instructions: body }, index) => {
      const [image = "", as, name] = words(from.args)
      if (as !== undefined && (as.toUpperCase() !== "AS" || name === undefined)) {
        throw new Error(`Dockerfile:${from.line}: expected FROM image [AS name]`)
      }
      return { index, from, image, name, platform: from.flags.get("platform"), instructions: body }
    }),
  }
}

/** `NAME` → default (or undefined) for each name an ARG instruction declares. */
export const argDefaults = (instruction: Instruction): Array<readonly [string, string | undefined]> =>
  words(instruction.args).map((word) => {
    const eq = word.indexOf("=")
    return eq === -1 ? [word, undefined] : [word.slice(0, eq), word.slice(eq + 1)]
  })

/** The build arguments visible in a stage, with their defaults (a stage ARG without one inherits the global). */
export const stageVariables = (dockerfile: Dockerfile, stage: Stage): Map<string, string> => {
  const global = new Map<string, string | undefined>()
  for (const arg of dockerfile.globalArgs)
    for (const [name, value] of argDefaults(arg)) global.set(name, value)
  const vars = new Map<string, string>()
  for (const instruction of stage.instructions) {
    if (instruction.keyword !== "ARG") continue
    for (const [name, value] of argDefaults(instruction)) vars.set(name, value ?? global.get(name) ?? "")
  }
  return vars
}

/** Expands `$NAME`, `${NAME}` and `${NAME:-default}`; unknown names expand to "" as in Docker. */
export const expand = (text: string, vars: ReadonlyMap<string, string>): string =>
  text.replace(
    /\$(?:\{([A-Za-z_]\w*)(?::-([^}]*))?\}|([A-Za-z_]\w*))/g,
    (_all, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
      const value = vars.get(braced ?? bare ?? "")
      return value !== undefined && value !== "" ? value : (fallback ?? "")
    },
  )

/** LABEL key/value pairs of a stage, values expanded with the stage's variables. */
export const labels = (dockerfile: Dockerfile, stage: Stage): Map<string, string> => {
  const vars = stageVariables(dockerfile, stage)
  const out = new Map<string, string>()
  for (const instruction of stage.instructions) {
    if (instruction.keyword !== "LABEL") continue
    for (const word of words(instruction.args)) {
      const eq = word.indexOf("=")
      if (eq <= 0) throw new Error(`Dockerfile:${instruction.line}: LABEL needs key=value pairs`)
      out.set(word.slice(0, eq), expand(word.slice(eq + 1), vars))
    }
  }
  return out
}

export interface CopyArgs {
  readonly sources: ReadonlyArray<string>
  readonly dest: string
}

export const copyArgs = (instruction: Instruction): CopyArgs => {
  const all = instruction.json ?? words(instruction.args)
  return { sources: all.slice(0, -1), dest: all.at(-1) ?? "" }
}

const posixJoin = (base: string, relative: string): string => {
  const parts: Array<string> = []
  for (const part of `${base}/${relative}`.split("/")) {
    if (part === "" || part === ".") continue
    if (part === "..") parts.pop()
    else parts.push(part)
  }
  return `/${parts.join("/")}`
}

/** The absolute WORKDIR in effect before `instruction` (or at the end of the stage), undefined if none was set. */
export const workdirAt = (stage: Stage, instruction?: Instruction): string | undefined => {
  let workdir: string | undefined
  for (const current of stage.instructions) {
    if (current === instruction) break
    if (current.keyword === "WORKDIR") {
      workdir = current.args.startsWith("/")
        ? posixJoin("/", current.args)
        : posixJoin(workdir ?? "/", current.args)
    }
  }
  return workdir
}

/** An absolute COPY destination: relative ones resolve against the WORKDIR in effect. */
export const resolveDest = (stage: Stage, instruction: Instruction): string => {
  const { dest } = copyArgs(instruction)
  const resolved = dest.startsWith("/") ? dest : posixJoin(workdirAt(stage, instruction) ?? "/", dest)
  return dest.endsWith("/") ? `${resolved}/` : resolved
}

/** `uid[:gid]` when both are numeric, else undefined. */
export const numericUser = (spec: string): { readonly uid: number; readonly gid: number } | undefined => {
  const match = /^(\d+)(?::(\d+))?$/.exec(spec.trim())
  if (!match?.[1]) return undefined
  const uid = Number(match[1])
  return { uid, gid: match[2] === undefined ? uid : Number(match[2]) }
}

/** Image reference → tag and digest (either may be missing). */
export const imageRef = (
  image: string,
): { readonly name: string; readonly tag: string | undefined; readonly digest: string | undefined } => {
  const at = image.indexOf("@")
  const digest = at === -1 ? undefined : image.slice(at + 1)
  const withoutDigest = at === -1 ? image : image.slice(0, at)
  const colon = withoutDigest.lastIndexOf(":")
  const tag = colon > withoutDigest.lastIndexOf("/") ? withoutDigest.slice(colon + 1) : undefined
  return { name: tag === undefined ? withoutDigest : withoutDigest.slice(0, colon), tag, digest }
}

// --- .dockerignore -----------------------------------------------------------------------------

export interface IgnoreRule {
  readonly negate: boolean
  readonly pattern: RegExp
  readonly source: string
}

export const parseDockerignore = (text: string): Array<IgnoreRule> =>
  text
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const negate = line.startsWith("!")
      const cleaned = (negate ? line.slice(1) : line).replace(/^\/+|\/+$/g, "").replace(/^\.\//, "")
      let source = ""
      for (let i = 0; i < cleaned.length; i++) {
        const c = cleaned.charAt(i)
        if (c === "*" && cleaned.charAt(i + 1) === "*") {
          // `**/` matches any number of directories, including none.
          source += cleaned.charAt(i + 2) === "/" ? "(?:.*/)?" : ".*"
          i += cleaned.charAt(i + 2) === "/" ? 2 : 1
        } else if (c === "*") source += "[^/]*"
        else if (c === "?") source += "[^/]"
        else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&")
      }
      return { negate, pattern: new RegExp(`^${source}$`), source: line }
    })

/** Whether a context path (relative, `/`-separated) is left out of the build context. */
export const isIgnored = (rules: ReadonlyArray<IgnoreRule>, contextPath: string): boolean => {
  const parts = contextPath.replace(/^\.\/|\/+$/g, "").split("/")
  let ignored = false
  for (const rule of rules) {
    // A rule matches the path itself or any of its parent directories.
    for (let n = 1; n <= parts.length; n++) {
      if (rule.pattern.test(parts.slice(0, n).join("/"))) {
        ignored = !rule.negate
        break
      }
    }
  }
  return ignored
}

// --- lint ---------------------------------------------------------------------------------------

const aptInstall = /\bapt-get\s+(?:\S+\s+)*install\b/

export const lintDockerfile = (dockerfile: Dockerfile): Array<Problem> => {
  const problems: Array<Problem> = []
  const report = (instruction: Instruction, rule: string, message: string) =>
    problems.push({ line: instruction.line, rule, message })
  const globalVars = new Map<string, string>()
  for (const arg of dockerfile.globalArgs) {
    for (const [name, value] of argDefaults(arg)) globalVars.set(name, value ?? "")
  }
  const seenNames = new Map<string, number>()

  for (const stage of dockerfile.stages) {
    const earlier = dockerfile.stages.slice(0, stage.index)
    const isStage = (ref: string) =>
      earlier.some((s) => s.name?.toLowerCase() === ref.toLowerCase() || String(s.index) === ref)

    // FROM
    if (stage.name !== undefined) {
      const key = stage.name.toLowerCase()
      if (seenNames.has(key)) report(stage.from, "DL3024", `FROM alias "${stage.name}" is used twice`)
      seenNames.set(key, stage.index)
    }
    if (stage.platform !== undefined && !stage.platform.startsWith("$")) {
      report(stage.from, "DL3029", `do not pin --platform=${stage.platform} in FROM; pass it to the build`)
    }
    const image = expand(stage.image, globalVars)
    if (image !== "scratch" && !isStage(image)) {
      const ref = imageRef(image)
      if (ref.tag === undefined && ref.digest === undefined) {
        report(stage.from, "DL3006", `always tag the version of an image explicitly: ${stage.image}`)
      }
      if (ref.tag === "latest")
        report(stage.from, "DL3007", `using "latest" is prone to errors: ${stage.image}`)
    }

    let cmds = 0
    let entrypoints = 0
    let pipefail = false
    for (const instruction of stage.instructions) {
      const { keyword, args } = instruction
      switch (keyword) {
        case "MAINTAINER":
          report(instruction, "DL4000", "MAINTAINER is deprecated; use a LABEL")
          break
        case "ADD":
          report(
            instruction,
            "DL3020",
            "use COPY instead of ADD (ADD also fetches URLs and unpacks archives)",
          )
          break
        case "WORKDIR":
          if (!args.startsWith("/") && !args.startsWith("$")) {
            report(instruction, "DL3000", `use an absolute WORKDIR: ${args}`)
          }
          break
        case "EXPOSE":
          for (const port of words(args)) {
            const n = Number(port.replace(/\/(tcp|udp)$/i, ""))
            if (!Number.isInteger(n) || n < 0 || n > 65535) {
              report(instruction, "DL3011", `valid UNIX ports are 0 to 65535: ${port}`)
            }
          }
          break
        case "CMD":
        case "ENTRYPOINT":
          if (instruction.json === undefined) {
            report(instruction, "DL3025", `use JSON notation for ${keyword} (signals reach the process)`)
          }
          if (keyword === "CMD" && ++cmds === 2) report(instruction, "DL4003", "multiple CMD instructions")
          if (keyword === "ENTRYPOINT" && ++entrypoints === 2) {
            report(instruction, "DL4004", "multiple ENTRYPOINT instructions")
          }
          break
        case "SHELL":
          pipefail = (instruction.json ?? []).includes("pipefail")
          break
        case "COPY": {
          const from = instruction.flags.get("from")
          if (from !== undefined) {
            if (from === stage.name || from === String(stage.index)) {
              report(instruction, "DL3023", "COPY --from cannot reference its own stage")
            } else if (!isStage(from)) {
              report(instruction, "DL3022", `COPY --from=${from} should reference a previous FROM alias`)
            }
          }
          const { sources, dest } = copyArgs(instruction)
          if (sources.length === 0) report(instruction, "syntax", "COPY needs a source and a destination")
          if (sources.length > 1 && !dest.endsWith("/")) {
            report(instruction, "DL3021", "COPY with more than 2 arguments requires the last to end with /")
          }
          if (!dest.startsWith("/") && !dest.startsWith("$") && workdirAt(stage, instruction) === undefined) {
            report(instruction, "DL3045", `COPY to a relative destination without WORKDIR set: ${dest}`)
          }
          break
        }
        case "RUN": {
          const command = instruction.json?.join(" ") ?? args
          if (/(^|[;&|(]\s*)cd\s/.test(command))
            report(instruction, "DL3003", "use WORKDIR to switch directory")
          if (/(^|[;&|(]\s*)sudo\s/.test(command)) report(instruction, "DL3004", "do not use sudo")
          if (/(^|[;&|(]\s*)apt\s/.test(command))
            report(instruction, "DL3027", "use apt-get or apt-cache, not apt")
          if (aptInstall.test(command)) {
            if (!/--no-install-recommends\b/.test(command)) {
              report(
                instruction,
                "DL3015",
                "avoid additional packages: apt-get install --no-install-recommends",
              )
            }
            if (!/(\s-\w*y\w*\b|--yes\b|--assume-yes\b|-qq\b)/.test(command)) {
              report(instruction, "DL3014", "use the -y switch with apt-get install")
            }
            const cached = (instruction.flags.get("mount") ?? "").includes("/var/lib/apt")
            if (!cached && !/rm\s+-\w*r\w*\s+(\S+\s+)*\/var\/lib\/apt\/lists/.test(command)) {
              report(instruction, "DL3009", "delete the apt-get lists after installing something")
            }
          }
          if (/\|(?!\|)/.test(command.replace(/\|\|/g, "")) && !pipefail && instruction.json === undefined) {
            report(
              instruction,
              "DL4006",
              'set SHELL ["/bin/bash", "-o", "pipefail", "-c"] before RUN with a pipe',
            )
          }
          if (/(^|[;&|(]\s*)npm\s+(install|i)\b(?!\s+(-g|--global)\b)/.test(command)) {
            report(instruction, "npm-ci", "install dependencies with npm ci (exactly package-lock.json)")
          }
          break
        }
        case "LABEL":
          for (const word of words(args)) {
            const key = word.slice(0, Math.max(0, word.indexOf("=")))
            if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(key) || /\.\.|--/.test(key)) {
              report(instruction, "DL3048", `invalid label key: ${JSON.stringify(key)}`)
            }
          }
          break
      }
    }
  }

  // The image's user: numeric (Kubernetes runAsNonRoot can only verify a number) and not root.
  const final = dockerfile.stages.at(-1)
  if (final !== undefined) {
    const user = final.instructions.filter((i) => i.keyword === "USER").at(-1)
    if (user === undefined) report(final.from, "final-user", "the final stage sets no USER")
    else {
      const numeric = numericUser(user.args)
      if (numeric === undefined) report(user, "final-user", `USER must be numeric uid:gid, got ${user.args}`)
      else if (numeric.uid === 0 || numeric.gid === 0)
        report(user, "DL3002", "the last USER must not be root")
    }
  }
  return problems.sort((a, b) => a.line - b.line)
}

if (import.meta.main) {
  const file = process.argv[2] ?? "Dockerfile"
  const problems = lintDockerfile(parseDockerfile(readFileSync(file, "utf8")))
  for (const p of problems) console.log(`${file}:${p.line} ${p.rule} ${p.message}`)
  if (problems.length > 0) process.exit(1)
  console.log(`${file}: no problems`)
}
