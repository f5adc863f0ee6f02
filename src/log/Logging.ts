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

/** What JSON.stringify leaves raw but a terminal may act on (it escapes C0 and lone surrogates). */
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/** JSON text with the characters above escaped as `\uXXXX` (still valid JSON, same value). */
export const safeJson = (value: unknown): string => {
  const json = JSON.stringify(value) ?? "null"
  UNSAFE.lastIndex = 0
  return UNSAFE.test(json) ? json.replace(UNSAFE, unicodeEscape) : json
}

const fields = (
  date: Date,
  logLevel: LogLevel.LogLevel,
  message: unknown,
  cause: Cause.Cause<unknown>,
  annotations: Readonly<Record<string, unknown>>,
): Record<string, unknown> => {
  const line: Record<string, unknown> = {
    time: date.toISOString(),
    level: logLevel.toLowerCase(),
    msg: text(message),
  }
  for (const [key, value] of Object.entries(annotations)) if (!(key in line)) line[key] = value
  if (cause.reasons.length > 0) line.cause = Cause.pretty(cause)
  return line
}

export const formatJson = Logger.make<unknown, string>(({ message, logLevel, date, fiber, cause }) =>
  safeJson(fields(date, logLevel, message, cause, fiber.getRef(References.CurrentLogAnnotations))),
)

/** A logfmt value: bare when it is plain printable ASCII, else a quoted, escaped JSON string. */
const logfmtValue = (value: unknown): string => {
  if (typeof value === "number" || typeof value === "boolean") return String(value)
  const raw = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value))
  return /^[!#-<>-[\]-~]+$/.test(raw) ? raw : safeJson(raw)
}

/** Keys are the sidecar's own, but a key with a space or `=` would still break the line. */
const logfmtKey = (key: string): string => key.replace(/[^!#-<>-~]/g, "_")

export const formatLogfmt = Logger.make<unknown, string>(({ message, logLevel, date, fiber, cause }) =>
  Object.entries(fields(date, logLevel, message, cause, fiber.getRef(References.CurrentLogAnnotations)))
    .map(([key, value]) => `${logfmtKey(key)}=${logfmtValue(value)}`)
    .join(" "),
)

/** Logs go to stdout, as Kubernetes and the upstream sidecar expect. */
export const layer = (format: "json" | "logfmt", level: LogLevelName) =>
  Layer.mergeAll(
    Logger.layer([Logger.withConsoleLog(format === "json" ? formatJson : formatLogfmt)]),
    Layer.succeed(References.MinimumLogLevel, LEVELS[level]),
  )
