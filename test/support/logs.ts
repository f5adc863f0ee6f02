/** Captures Effect log lines (message + annotations) so tests can assert on them. */
import { type Layer, Logger, References } from "effect"

export interface CapturedLog {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

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
  return { lines, layer: Logger.layer([logger]) }
}
