/**
 * The data plane's log: plain function calls that append a formatted line to a buffer, written to
 * stdout in one write at most every FLUSH_MS (or once FLUSH_BYTES are pending), when the scope
 * closes and at process exit. The access log's line per request thus costs a string append, not a
 * fiber and a console.log, as nginx buffers its access log (`buffer=`, `flush=`).
 *
 * The lines are the control plane's lines (format.ts): same formats, same escaping, same fields.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { LogLevelName } from "../config/parse.ts"
import { lineFields, logfmt, safeJson } from "./format.ts"

export type Level = "debug" | "info" | "warn" | "error"

export interface LineLog {
  /** Whether lines of `level` are kept: callers skip building their fields otherwise. */
  readonly enabled: (level: Level) => boolean
  readonly write: (level: Level, message: string, fields: Readonly<Record<string, unknown>>) => void
  /** Writes what is pending now. */
  readonly flush: () => void
}

export const FLUSH_MS = 200
export const FLUSH_BYTES = 32 * 1024

/** The time of a line, its text made once per millisecond: lines come in bursts. */
let lastMs = -1
let lastTime = ""
const now = (): string => {
  const ms = Date.now()
  if (ms !== lastMs) {
    lastMs = ms
    lastTime = new Date(ms).toISOString()
  }
  return lastTime
}

const RANK: Record<LogLevelName, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 }

/** A buffered line log in `format`, keeping lines at `minimum` and above, written by `out`. */
export const buffered = (
  format: "json" | "logfmt",
  minimum: LogLevelName,
  out: (chunk: string) => void,
): LineLog => {
  const floor = RANK[minimum]
  let pending = ""
  let timer: ReturnType<typeof setTimeout> | undefined
  const flush = () => {
    if (timer !== undefined) clearTimeout(timer)
    timer = undefined
    if (pending === "") return
    const chunk = pending
    pending = ""
    out(chunk)
  }
  return {
    enabled: (level) => RANK[level] >= floor,
    write: (level, message, fields) => {
      if (RANK[level] < floor) return
      const line = lineFields(now(), level, message, fields)
      pending += `${format === "json" ? safeJson(line) : logfmt(line)}\n`
      if (pending.length >= FLUSH_BYTES) flush()
      // Unref'd: a pending line never keeps the process alive; the exit hook writes it.
      else if (timer === undefined) timer = setTimeout(flush, FLUSH_MS).unref()
    },
    flush,
  }
}

/** stdout is synchronous on Linux for files, pipes and terminals: a flush at exit is not lost. */
const stdout = (chunk: string) => void process.stdout.write(chunk)

/**
 * The line log in context. Its default, for code run without the logging layer (tests of single
 * parts), writes JSON at info.
 */
export const LineLog = Context.Reference<LineLog>("coco-secure-access/LineLog", {
  defaultValue: () => withExitFlush(buffered("json", "info", stdout)),
})

const withExitFlush = (log: LineLog): LineLog => {
  process.once("exit", log.flush)
  return log
}

/** The production line log: to stdout, flushed when the layer's scope closes and at exit. */
export const layerStdout = (format: "json" | "logfmt", minimum: LogLevelName): Layer.Layer<never> =>
  Layer.effect(
    LineLog,
    Effect.acquireRelease(
      Effect.sync(() => withExitFlush(buffered(format, minimum, stdout))),
      (log) =>
        Effect.sync(() => {
          process.off("exit", log.flush)
          log.flush()
        }),
    ),
  )
