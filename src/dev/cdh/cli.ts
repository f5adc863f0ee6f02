/**
 * Developer tool: run the mock CDH REST API (what the sidecar sees at 127.0.0.1:8006 in a pod).
 *
 *   node src/dev/cdh/cli.ts --dir <folder> | --json <file> [--port 8006] [--unavailable-ms N]
 *     [--fail-first N] [--delay-ms N] [--missing-delay-ms N] [--features resource|attestation|all]
 *     [--error-style released|main] [--legacy] [--concurrent] [--host 127.0.0.1]
 *
 * `--dir` reads `<dir>/<repo>/<type>/<tag>` files (Trustee's local filesystem backend layout);
 * `--json` reads the offline-fs format (`{"repo/type/tag": "<base64>"}`).
 * Prints the URL once listening and one line per request (method target status ms).
 * Invalid arguments: one line on stderr, exit 2. SIGINT/SIGTERM: close and exit 0.
 */
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import {
  loadResourcesFromDir,
  loadResourcesFromJson,
  type MockCdhErrorStyle,
  type MockCdhFeatures,
  type MockCdhOptions,
  startMockCdh,
} from "./MockCdhServer.ts"

const USAGE =
  "usage: node src/dev/cdh/cli.ts --dir <folder> | --json <file> [--port 8006] [--unavailable-ms N] " +
  "[--fail-first N] [--delay-ms N] [--missing-delay-ms N] [--features resource|attestation|all] " +
  "[--error-style released|main] [--legacy] [--concurrent] [--host 127.0.0.1]"

class UsageError extends Error {}

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

const integer = (flag: string, value: string | undefined, max: number): number | undefined => {
  if (value === undefined) return undefined
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN
  if (!Number.isSafeInteger(n) || n > max) {
    throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: expected an integer from 0 to ${max}`)
  }
  return n
}

const oneOf = <A extends string>(
  flag: string,
  value: string | undefined,
  allowed: ReadonlyArray<A>,
): A | undefined => {
  if (value === undefined) return undefined
  const found = allowed.find((a) => a === value)
  if (found === undefined) {
    throw new UsageError(`invalid ${flag} ${JSON.stringify(value)}: expected one of ${allowed.join(", ")}`)
  }
  return found
}

const parse = (argv: ReadonlyArray<string>) =>
  parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      dir: { type: "string" },
      json: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "unavailable-ms": { type: "string" },
      "fail-first": { type: "string" },
      "delay-ms": { type: "string" },
      "missing-delay-ms": { type: "string" },
      features: { type: "string" },
      "error-style": { type: "string" },
      legacy: { type: "boolean" },
      concurrent: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  })

/** Parses argv (without node and script) into mock options; throws UsageError. */
export const parseCliArgs = (argv: ReadonlyArray<string>): MockCdhOptions | "help" => {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    throw new UsageError(messageOf(error))
  }
  const v = parsed.values
  if (v.help === true) return "help"
  if (v.dir !== undefined && v.json !== undefined)
    throw new UsageError("--dir and --json are mutually exclusive")
  if (v.dir === undefined && v.json === undefined)
    throw new UsageError("one of --dir <folder> or --json <file> is required")
  const MAX_MS = 24 * 60 * 60 * 1000
  const port = integer("--port", v.port, 65535)
  const unavailableForMs = integer("--unavailable-ms", v["unavailable-ms"], MAX_MS)
  const failFirst = integer("--fail-first", v["fail-first"], Number.MAX_SAFE_INTEGER)
  const delayMs = integer("--delay-ms", v["delay-ms"], MAX_MS)
  const missingDelayMs = integer("--missing-delay-ms", v["missing-delay-ms"], MAX_MS)
  const features = oneOf<MockCdhFeatures>("--features", v.features, ["resource", "attestation", "all"])
  const errorStyle = oneOf<MockCdhErrorStyle>("--error-style", v["error-style"], ["released", "main"])
  if (v.host !== undefined && v.host === "") throw new UsageError('invalid --host "": expected an address')
  let resources: Record<string, Uint8Array>
  const source = v.dir !== undefined ? (["--dir", v.dir] as const) : (["--json", v.json ?? ""] as const)
  try {
    resources = source[0] === "--dir" ? loadResourcesFromDir(source[1]) : loadResourcesFromJson(source[1])
  } catch (error) {
    const reason = messageOf(error)
    throw new UsageError(`invalid ${source[0]} ${JSON.stringify(source[1])}: ${reason}`)
  }
  return {
    resources,
    ...(port !== undefined ? { port } : {}),
    ...(v.host !== undefined ? { host: v.host } : {}),
    ...(unavailableForMs !== undefined ? { unavailableForMs } : {}),
    ...(failFirst !== undefined ? { failFirst } : {}),
    ...(delayMs !== undefined ? { delayMs } : {}),
    ...(missingDelayMs !== undefined ? { missingDelayMs } : {}),
    ...(features !== undefined ? { features } : {}),
    ...(errorStyle !== undefined ? { errorStyle } : {}),
    ...(v.legacy === true ? { legacy: true } : {}),
    ...(v.concurrent === true ? { serialize: false } : {}),
  }
}

const main = async (): Promise<void> => {
  let options: MockCdhOptions | "help"
  try {
    options = parseCliArgs(process.argv.slice(2))
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`mock-cdh: ${error.message}\n`)
    process.exitCode = 2
    return
  }
  if (options === "help") {
    process.stdout.write(`${USAGE}\n`)
    return
  }
  const server = await startMockCdh({
    ...options,
    onRequest: (r) => {
      process.stdout.write(`${r.method} ${r.target} ${r.status} ${Math.round(r.durationMs)}ms\n`)
    },
  }).catch((error: unknown) => {
    process.stderr.write(`mock-cdh: cannot listen: ${messageOf(error)}\n`)
    process.exit(1)
  })
  let stopping = false
  const count = Object.keys(options.resources ?? {}).length
  const summary = `features=${options.features ?? "resource"}, ${count} resource${count === 1 ? "" : "s"}`
  if (!server.listening) {
    process.stdout.write(
      `mock-cdh: refusing connections for ${options.unavailableForMs ?? 0} ms (${summary})\n`,
    )
  }
  server.ready.then(
    () => process.stdout.write(`mock-cdh listening on ${server.url} (${summary})\n`),
    (error: unknown) => {
      if (stopping) return // closed by a signal before it ever listened
      process.stderr.write(`mock-cdh: cannot listen: ${messageOf(error)}\n`)
      process.exit(1)
    },
  )
  const shutdown = (signal: string): void => {
    if (stopping) return
    stopping = true
    process.stdout.write(`mock-cdh: ${signal}, shutting down\n`)
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.once("SIGINT", () => shutdown("SIGINT"))
  process.once("SIGTERM", () => shutdown("SIGTERM"))
}

const isMain =
  (import.meta as { main?: boolean }).main ??
  (process.argv[1] !== undefined && process.argv[1] === fileURLToPath(import.meta.url))

if (isMain) {
  main().catch((error: unknown) => {
    process.stderr.write(
      `mock-cdh: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    )
    process.exit(1)
  })
}
