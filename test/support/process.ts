/** Runs the production bundle as a child process and follows its JSON log lines. */
import { type ChildProcess, spawn } from "node:child_process"
import * as net from "node:net"
import * as path from "node:path"

export const MAIN = path.resolve(import.meta.dirname, "../../dist/main.js")

export interface LogLine {
  readonly level: string
  readonly msg: string
  readonly [key: string]: unknown
}

export interface Running {
  readonly child: ChildProcess
  readonly lines: Array<LogLine>
  readonly raw: Array<string>
  /** Resolves with the first log line matching `msg`, rejects when the process exits first. */
  readonly waitFor: (msg: string, timeoutMs?: number) => Promise<LogLine>
  readonly exit: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>
}

export const startMain = (env: Record<string, string>): Running =>
  follow(
    spawn(process.execPath, [MAIN], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: "pipe",
    }),
  )

/** Follows the JSON log lines of a child started with piped stdout/stderr. */
export const follow = (child: ChildProcess): Running => {
  const lines: Array<LogLine> = []
  const raw: Array<string> = []
  const waiters: Array<() => void> = []
  let buffer = ""
  const onData = (chunk: Buffer) => {
    buffer += chunk.toString("utf8")
    let newline = buffer.indexOf("\n")
    while (newline !== -1) {
      const line = buffer.slice(0, newline)
      buffer = buffer.slice(newline + 1)
      raw.push(line)
      try {
        lines.push(JSON.parse(line) as LogLine)
      } catch {
        // not a log line
      }
      for (const wake of waiters.splice(0)) wake()
      newline = buffer.indexOf("\n")
    }
  }
  child.stdout?.on("data", onData)
  child.stderr?.on("data", onData)
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      resolve({ code, signal })
      for (const wake of waiters.splice(0)) wake()
    }),
  )
  let exited = false
  void exit.then(() => {
    exited = true
  })
  const waitFor = (msg: string, timeoutMs = 10_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no "${msg}" log line within ${timeoutMs} ms:\n${raw.join("\n")}`)),
        timeoutMs,
      )
      const check = () => {
        const found = lines.find((l) => l.msg === msg)
        if (found) {
          clearTimeout(timer)
          return resolve(found)
        }
        if (exited) {
          clearTimeout(timer)
          return reject(new Error(`process exited before "${msg}":\n${raw.join("\n")}`))
        }
        waiters.push(check)
      }
      check()
    })
  return { child, lines, raw, waitFor, exit }
}

/** A port that was free a moment ago (the bundle's config refuses port 0). */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      )
    })
  })
