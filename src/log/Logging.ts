/**
 * One log line per event, structured, with level: flat JSON objects
 * (`{"time","level","msg",...annotations}`) that log pipelines index without
 * unwrapping, or Effect's logfmt.
 */
import * as Cause from "effect/Cause"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import type * as LogLevel from "effect/LogLevel"
import * as References from "effect/References"
import type { LogLevelName } from "../config/parse.ts"

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

export const formatJson = Logger.make<unknown, string>(({ message, logLevel, date, fiber, cause }) => {
  const line: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.toLowerCase(),
    msg: text(message),
  }
  for (const [key, value] of Object.entries(fiber.getRef(References.CurrentLogAnnotations))) {
    if (!(key in line)) line[key] = value
  }
  if (cause.reasons.length > 0) line.cause = Cause.pretty(cause)
  return JSON.stringify(line)
})

/** Logs go to stdout, as Kubernetes and the upstream sidecar expect. */
export const layer = (format: "json" | "logfmt", level: LogLevelName) =>
  Layer.mergeAll(
    Logger.layer([format === "json" ? Logger.withConsoleLog(formatJson) : Logger.consoleLogFmt]),
    Layer.succeed(References.MinimumLogLevel, LEVELS[level]),
  )
