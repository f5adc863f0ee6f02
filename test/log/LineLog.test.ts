/** The data plane's line log: the same lines as the control plane's logger, buffered, nothing lost. */
import { describe, expect, it } from "vitest"
import { lineFields, logfmt, safeJson } from "../../src/log/format.ts"
import { buffered, FLUSH_BYTES, FLUSH_MS } from "../../src/log/LineLog.ts"

const sink = () => {
  const chunks: Array<string> = []
  return { chunks, out: (chunk: string) => void chunks.push(chunk) }
}

describe("lines", () => {
  it("are the control plane's lines: time, level, msg, then the fields, escaped", () => {
    const { chunks, out } = sink()
    const log = buffered("json", "info", out)
    log.write("info", "proxied", { client: "bad\u001b[31m\u2028\u202e\u0085", time: "spoof", status: 200 })
    log.flush()
    const line = (chunks[0] ?? "").trimEnd()
    const parsed = JSON.parse(line)
    expect(Object.keys(parsed)).toEqual(["time", "level", "msg", "client", "status"])
    expect(parsed.time).not.toBe("spoof")
    expect(line).toBe(
      safeJson(lineFields(parsed.time, "info", "proxied", { client: parsed.client, status: 200 })),
    )
    const unsafe = [...line].filter((c) => {
      const code = c.charCodeAt(0)
      return code < 0x20 || (code >= 0x7f && code <= 0x9f) || (code >= 0x2028 && code <= 0x202e)
    })
    expect(unsafe).toEqual([])
  })
})

describe("buffered", () => {
  it("keeps lines at the minimum level and above, in both formats", () => {
    const json = sink()
    const log = buffered("json", "warn", json.out)
    expect(log.enabled("info")).toBe(false)
    expect(log.enabled("error")).toBe(true)
    log.write("info", "dropped", {})
    log.write("warn", "kept", { path: "/x" })
    log.flush()
    expect(json.chunks).toHaveLength(1)
    const [line] = (json.chunks[0] ?? "").trimEnd().split("\n")
    expect(JSON.parse(line ?? "")).toMatchObject({ level: "warn", msg: "kept", path: "/x" })

    const text = sink()
    const lf = buffered("logfmt", "info", text.out)
    lf.write("info", "proxied", { path: "/a b" })
    lf.flush()
    expect(text.chunks[0]).toMatch(/^time=\S+ level=info msg=proxied path="\/a b"\n$/)
    expect(text.chunks[0]?.trimEnd()).toBe(
      logfmt(lineFields(text.chunks[0]?.slice(5, 29) ?? "", "info", "proxied", { path: "/a b" })),
    )
  })

  it("writes many lines in one write, once FLUSH_BYTES are pending", () => {
    const { chunks, out } = sink()
    const log = buffered("json", "info", out)
    const path = "/".padEnd(200, "x")
    let written = 0
    while (chunks.length === 0) {
      log.write("info", "proxied", { path })
      written++
    }
    expect(chunks[0]?.length).toBeGreaterThanOrEqual(FLUSH_BYTES)
    expect(chunks[0]?.split("\n").length).toBe(written + 1)
    log.flush()
  })

  it("writes what is pending within FLUSH_MS, and nothing when nothing is", async () => {
    const { chunks, out } = sink()
    const log = buffered("json", "info", out)
    log.write("info", "one", {})
    log.write("info", "two", {})
    expect(chunks).toHaveLength(0)
    await new Promise((resolve) => setTimeout(resolve, FLUSH_MS + 100))
    expect(chunks).toHaveLength(1)
    expect(
      chunks[0]
        ?.split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l).msg),
    ).toEqual(["one", "two"])
    log.flush()
    expect(chunks).toHaveLength(1)
  })
})
