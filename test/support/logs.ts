/**
 * Captures log lines (message + annotations) so tests can assert on them: the control plane's
 * (Effect's logger) and the data plane's (the line log), in one list, as one process writes them.
 */
import { Layer, Logger, References } from "effect"
import { LineLog } from "../../src/log/LineLog.ts"

export interface CapturedLog {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

const EFFECT_LEVEL = { debug: "Debug", info: "Info", warn: "Warn", error: "Error" } as const

export const capture = (): { readonly lines: Array<CapturedLog>; readonly layer: Layer.Layer<never> } => {
  const lines: Array<CapturedLog> = []
  const logger = Logger.make(({ message, logLevel, fiber }) => {
    const parts = Array.isArray(message) ? message : [message]
    lines.push({
      level: logLevel,
      message: parts.map(String).join(" "),
      annotations: { ...fiber.getRef(References.CurrentLogAnnotations) },
    })
  })
  const lineLog: LineLog = {
    enabled: () => true,
    write: (level, message, fields) =>
      lines.push({ level: EFFECT_LEVEL[level], message, annotations: { ...fields } }),
    flush: () => {},
  }
  return { lines, layer: Layer.mergeAll(Logger.layer([logger]), Layer.succeed(LineLog, lineLog)) }
}
