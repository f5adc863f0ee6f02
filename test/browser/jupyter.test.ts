/**
 * A real Jupyter (Debian's jupyter-notebook, installed by scripts/ensure-jupyter.sh) behind the
 * sidecar, driven by Chromium over HTTP/2: its tree page loads with all its assets, a kernel is
 * started through its REST API, and code runs over the kernel's WebSocket, which Chromium carries
 * on the HTTP/2 connection (RFC 8441).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync } from "node:fs"
import * as net from "node:net"
import { tmpdir } from "node:os"
import * as path from "node:path"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CHROMIUM,
  chromiumAvailable,
  type OpenPage,
  openPage,
  type Sidecar,
  startSidecar,
} from "./harness.ts"

const NOTEBOOK = "/usr/bin/jupyter-notebook"
const available = chromiumAvailable && existsSync(NOTEBOOK)

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = net.createServer()
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })

const listening = async (port: number, ms: number) => {
  for (const until = Date.now() + ms; Date.now() < until; ) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, "127.0.0.1")
      socket.once("connect", () => {
        socket.destroy()
        resolve(true)
      })
      socket.once("error", () => resolve(false))
    })
    if (up) return true
    await new Promise((r) => setTimeout(r, 200))
  }
  return false
}

describe.skipIf(!available)(
  `Jupyter through the sidecar in Chromium (needs ${CHROMIUM} and ${NOTEBOOK})`,
  () => {
    let jupyter: ChildProcess
    let dir: string
    let sidecar: Sidecar
    let browser: OpenPage | undefined
    let page: Page
    let problems: Array<string>

    beforeAll(async () => {
      dir = mkdtempSync(path.join(tmpdir(), "jupyter-"))
      const port = await freePort()
      jupyter = spawn(
        NOTEBOOK,
        [
          "--no-browser",
          "--allow-root",
          "--ip=127.0.0.1",
          `--port=${port}`,
          `--notebook-dir=${dir}`,
          "--NotebookApp.token=",
          "--NotebookApp.password=",
          "--NotebookApp.disable_check_xsrf=True",
        ],
        { stdio: "ignore", env: { ...process.env, HOME: dir, JUPYTER_RUNTIME_DIR: dir } },
      )
      if (!(await listening(port, 30_000))) throw new Error("jupyter-notebook did not start")
      sidecar = await startSidecar({ FORWARD_PORT: String(port) })
      browser = await openPage(sidecar)
      ;({ page, problems } = browser)
    }, 60_000)

    afterAll(async () => {
      await browser?.close()
      await sidecar?.close()
      jupyter?.kill()
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
    })

    it("loads Jupyter's tree page over h2, assets included", async () => {
      const response = await page.goto(new URL("/tree", sidecar.url).href, { waitUntil: "networkidle" })
      expect(response?.status()).toBe(200)
      // Notebook 6's tree page, rendered by its own JavaScript.
      expect(await page.title()).toContain("Home Page")
      const protocol = await page.evaluate(
        () =>
          (performance.getEntriesByType("navigation" as never)[0] as unknown as { nextHopProtocol: string })
            .nextHopProtocol,
      )
      expect(protocol).toBe("h2")
      expect(problems.filter((p) => !p.includes("favicon"))).toEqual([])
    }, 30_000)

    it("runs code in a kernel over its WebSocket", async () => {
      const output = await page.evaluate(async () => {
        const kernel = (await (await fetch("/api/kernels", { method: "POST", body: "{}" })).json()) as {
          id: string
        }
        // In the page; its `location` is not in this project's TypeScript lib.
        const origin = (globalThis as unknown as { location: { origin: string } }).location.origin
        const socket = new WebSocket(`${origin.replace(/^https/, "wss")}/api/kernels/${kernel.id}/channels`)
        return await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("no output within 20 s")), 20_000)
          socket.onopen = () =>
            socket.send(
              JSON.stringify({
                header: {
                  msg_id: "run-1",
                  username: "test",
                  session: "s-1",
                  msg_type: "execute_request",
                  version: "5.3",
                  date: new Date().toISOString(),
                },
                parent_header: {},
                metadata: {},
                content: {
                  code: "print(6 * 7)",
                  silent: false,
                  store_history: false,
                  user_expressions: {},
                  allow_stdin: false,
                },
                channel: "shell",
                buffers: [],
              }),
            )
          socket.onmessage = (event) => {
            const message = JSON.parse(String(event.data)) as { msg_type: string; content: { text?: string } }
            if (message.msg_type === "stream") {
              clearTimeout(timer)
              socket.close()
              resolve(message.content.text ?? "")
            }
          }
          socket.onerror = () => reject(new Error("WebSocket error"))
        })
      })
      expect(output).toBe("42\n")
      for (let i = 0; i < 50 && !sidecar.logs.some((l) => l.message === "proxied websocket closed"); i++) {
        await new Promise((r) => setTimeout(r, 100))
      }
      const closed = sidecar.logs.find((l) => l.message === "proxied websocket closed")
      expect(closed?.annotations.protocol).toBe("h2")
    }, 40_000)
  },
)
