/**
 * One log line per event, structured, with level: flat JSON objects
 * (`{"time","level","msg",...fields}`) that log pipelines index without unwrapping, or logfmt
 * (`time=… level=info msg="…" key=value`) with the same fields.
 *
 * Log lines carry values a client controls (certificate names, paths, reasons), so both formats
 * escape every character a terminal or a log viewer could act on: C0 and C1 control characters
 * (ESC included), DEL, the Unicode line separators and the bidirectional overrides. The escaping
 * happens here, where lines leave, so no caller can forget it.
 */
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import type { LogLevelName } from "../config/parse.ts"
import { lineFields, logfmt, safeJson } from "./format.ts"
import * as LineLog from "./LineLog.ts"

export { safeJson }

const LEVELS: Record<LogLevelName, LogLevel.LogLevel> = {
  trace: "Trace",
  debug: "Debug",
  info: "Info",
  warn: "Warn",
  error: "Error",
}

const text = (message: unknown): string =>
  Array.isArray(message)
    ? message.map(text).join(" ")
    : typeof message === "string"
      ? message
      : String(message)

const fields = (
  date: Date,
  logLevel: LogLevel.LogLevel,
  message: unknown,
  cause: Cause.Cause<unknown>,
  annotations: Readonly<Record<string, unknown>>,
): Record<string, unknown> => {
  const line = lineFields(
    date.toISOString(),
    logLevel.toLowerCase() as LogLevelName,
    text(message),
    annotations,
  )
  if (cause.reasons.length > 0) line.cause = Cause.pretty(cause)
  return line
}

export const formatJson = Logger.make<unknown, string>(({ message, logLevel, date, fiber, cause }) =>
  safeJson(fields(date, logLevel, message, cause, fiber.getRef(References.CurrentLogAnnotations))),
)

export const formatLogfmt = Logger.make<unknown, string>(({ message, logLevel, date, fiber, cause }) =>
  logfmt(fields(date, logLevel, message, cause, fiber.getRef(References.CurrentLogAnnotations))),
)

/**
 * Logs go to stdout, as Kubernetes and the upstream sidecar expect: the control plane's through
 * Effect's logger, the data plane's through a buffered line log in the same format (LineLog.ts).
 */
export const layer = (format: "json" | "logfmt", level: LogLevelName) =>
  Layer.mergeAll(
    Logger.layer([Logger.withConsoleLog(format === "json" ? formatJson : formatLogfmt)]),
    Layer.succeed(References.MinimumLogLevel, LEVELS[level]),
    LineLog.layerStdout(format, level),
  )
