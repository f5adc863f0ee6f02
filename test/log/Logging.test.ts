import { Effect, Logger } from "effect"
import { describe, expect, it } from "vitest"
import { formatJson, formatLogfmt, safeJson } from "../../src/log/Logging.ts"

/** The lines a formatter writes for `effect`. */
const linesOf = (formatter: Logger.Logger<unknown, string>, effect: Effect.Effect<void>): Array<string> => {
  const lines: Array<string> = []
  const logger = Logger.map(formatter, (line) => {
    lines.push(line)
  })
  Effect.runSync(effect.pipe(Effect.provide(Logger.layer([logger]))))
  return lines
}

const hostile = "evil\u001b[2J\u001b]0;owned\u0007\r\nfake=line\u009b31m\u007f\u202etxt.exe\u2028"
const logged = Effect.logWarning(`client ${hostile}`).pipe(
  Effect.annotateLogs({ client: hostile, path: "/p\u0085ath", status: 403, aborted: true }),
)

/** Every character a terminal or a viewer could act on: C0, DEL, C1, line separators, bidi overrides. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding raw control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/

describe("finding 8: client-controlled values are escaped in both log formats", () => {
  it("JSON: one line, no raw control character, the same values when parsed", () => {
    const [line, ...rest] = linesOf(formatJson, logged)
    expect(rest).toEqual([])
    expect(line).not.toMatch(UNSAFE)
    const parsed = JSON.parse(line ?? "")
    expect(parsed).toMatchObject({ level: "warn", msg: `client ${hostile}`, client: hostile, status: 403 })
  })

  it("logfmt: one line, no raw control character, values quoted and escaped", () => {
    const [line, ...rest] = linesOf(formatLogfmt, logged)
    expect(rest).toEqual([])
    expect(line).not.toMatch(UNSAFE)
    expect(line).toMatch(/^time=\S+ level=warn msg="client evil\\u001b\[2J/)
    expect(line).toContain(" status=403 aborted=true")
    // The injected "fake=line" stays inside the quoted value of client.
    const client = /client=("(?:[^"\\]|\\.)*")/.exec(line ?? "")?.[1]
    expect(JSON.parse(client ?? '""')).toBe(hostile)
  })

  it("logfmt: plain values stay bare, others are quoted", () => {
    const [line] = linesOf(
      formatLogfmt,
      Effect.logInfo("proxied").pipe(
        Effect.annotateLogs({ method: "GET", path: "/a b", empty: "", eq: "a=b" }),
      ),
    )
    expect(line).toContain('msg=proxied method=GET path="/a b" empty="" eq="a=b"')
  })

  it("safeJson is JSON.stringify with the unsafe characters as \\u escapes", () => {
    expect(safeJson({ a: "x\u009by\u2028" })).toBe('{"a":"x\\u009by\\u2028"}')
    expect(JSON.parse(safeJson({ a: hostile }))).toEqual({ a: hostile })
    expect(safeJson("plain")).toBe('"plain"')
  })
})
