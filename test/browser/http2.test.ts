/**
 * A browser over HTTP/2 (HTTP2=true): Chromium loads the app's page through the sidecar over h2,
 * and a WebSocket from that page reaches the app's echo, whether Chromium carries it on the h2
 * connection (RFC 8441, which the sidecar announces) or on an HTTP/1.1 one.
 */
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Backend, startBackend } from "../support/backend.ts"
import {
  CHROMIUM,
  chromiumAvailable,
  type OpenPage,
  openPage,
  type Sidecar,
  startSidecar,
} from "./harness.ts"

const waitForLine = async (sidecar: Sidecar, message: string) => {
  for (let i = 0; i < 50; i++) {
    const line = sidecar.logs.find((l) => l.message === message)
    if (line !== undefined) return line
    await new Promise((r) => setTimeout(r, 100))
  }
  return undefined
}

describe.skipIf(!chromiumAvailable)(`HTTP/2 in Chromium (needs ${CHROMIUM})`, () => {
  let backend: Backend
  let sidecar: Sidecar
  let browser: OpenPage | undefined
  let page: Page
  let problems: Array<string>

  beforeAll(async () => {
    backend = await startBackend()
    sidecar = await startSidecar({ HTTP2: "true", FORWARD_PORT: String(backend.port) })
    browser = await openPage(sidecar)
    ;({ page, problems } = browser)
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await sidecar?.close()
    await backend?.close()
  })

  it("loads the app's page over h2", async () => {
    const response = await page.goto(new URL("/page", sidecar.url).href)
    expect(response?.status()).toBe(200)
    // Runs in the page: its Navigation Timing entry (not in this project's TypeScript lib).
    const protocol = await page.evaluate(
      () =>
        (performance.getEntriesByType("navigation" as never)[0] as unknown as { nextHopProtocol: string })
          .nextHopProtocol,
    )
    expect(protocol).toBe("h2")
    expect(problems).toEqual([])
  })

  it("opens a WebSocket to the app from that page and gets its echo", async () => {
    const wsUrl = new URL("/ws", sidecar.url.replace(/^https:/, "wss:")).href
    const echoed = await page.evaluate(
      (target) =>
        new Promise<string>((resolve, reject) => {
          const socket = new WebSocket(target)
          socket.onopen = () => socket.send("hello over h2")
          socket.onmessage = (event) => {
            resolve(String(event.data))
            socket.close()
          }
          socket.onerror = () => reject(new Error("WebSocket error"))
          setTimeout(() => reject(new Error("no echo within 10 s")), 10_000)
        }),
      wsUrl,
    )
    expect(echoed).toBe("hello over h2")
    expect(backend.seenUpgrades.some((u) => u.url === "/ws")).toBe(true)
    // Chromium carries it on the page's h2 connection, as the sidecar announces RFC 8441.
    const closed = await waitForLine(sidecar, "proxied websocket closed")
    expect(closed?.annotations.protocol).toBe("h2")
    expect(problems).toEqual([])
  })
})
