/**
 * The text of a log line, shared by the control plane's Effect logger and the data plane's line
 * log, so that both write the same lines. Values a client controls (certificate names, paths,
 * reasons) are escaped here, where lines leave: C0 and C1 control characters (ESC included), DEL,
 * the Unicode line separators and the bidirectional overrides.
 */
import type { LogLevelName } from "../config/parse.ts"

/** What JSON.stringify leaves raw but a terminal may act on (it escapes C0 and lone surrogates). */
const UNSAFE = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g
const unicodeEscape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`

/** JSON text with the characters above escaped as `\uXXXX` (still valid JSON, same value). */
export const safeJson = (value: unknown): string => {
  const json = JSON.stringify(value) ?? "null"
  UNSAFE.lastIndex = 0
  return UNSAFE.test(json) ? json.replace(UNSAFE, unicodeEscape) : json
}

/** The fields of one line, in the order both formats write them: time, level, msg, then the rest. */
export const lineFields = (
  time: string,
  level: LogLevelName,
  message: string,
  annotations: Readonly<Record<string, unknown>>,
): Record<string, unknown> => {
  const line: Record<string, unknown> = { time, level, msg: message }
  for (const key in annotations) if (!(key in line)) line[key] = annotations[key]
  return line
}

/** A logfmt value: bare when it is plain printable ASCII, else a quoted, escaped JSON string. */
const logfmtValue = (value: unknown): string => {
  if (typeof value === "number" || typeof value === "boolean") return String(value)
  const raw = typeof value === "string" ? value : (JSON.stringify(value) ?? String(value))
  return /^[!#-<>-[\]-~]+$/.test(raw) ? raw : safeJson(raw)
}

/** Keys are the sidecar's own, but a key with a space or `=` would still break the line. */
const logfmtKey = (key: string): string => key.replace(/[^!#-<>-~]/g, "_")

/** One logfmt line of these fields. */
export const logfmt = (line: Readonly<Record<string, unknown>>): string => {
  let out = ""
  for (const key in line) out += `${out === "" ? "" : " "}${logfmtKey(key)}=${logfmtValue(line[key])}`
  return out
}
