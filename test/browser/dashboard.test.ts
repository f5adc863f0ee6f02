/**
 * The dashboard in a real browser (Chromium from /usr/bin, driven by
 * playwright-core) over real mTLS: what a developer sees, that it refreshes
 * itself, that the page runs clean under its CSP, and that without a client
 * certificate there is no page at all. Screenshots go to test-results/.
 */
import { mkdir, rm } from "node:fs/promises"
import type { Browser, BrowserContext, Page, Response } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import {
  CHROMIUM,
  chromiumAvailable,
  clientContext,
  launchBrowser,
  pngSize,
  type Sidecar,
  startSidecar,
  trustCa,
  watch,
} from "./harness.ts"

const RESULTS = "test-results"
const PHONE = { width: 390, height: 844 } as const
const STATUS_RESOURCE = "default/attestation-status/status"

/** The trimmed text of `#id`, or null while the page has no such element (no auto-wait). */
const textOf = async (page: Page, id: string): Promise<string | null> => {
  const element = page.locator(`#${id}`)
  return (await element.count()) === 0 ? null : ((await element.first().textContent()) ?? "").trim()
}

describe.skipIf(!chromiumAvailable)(`the dashboard in Chromium (needs ${CHROMIUM})`, () => {
  let sidecar: Sidecar
  let untrustCa: () => void = () => {}
  let browser: Browser
  let context: BrowserContext
  let page: Page
  /** The first navigation: its response, or why there was none. */
  let visit: { readonly response: Response | null } | { readonly error: string }
  let problems: Array<string>
  let dashboard: string

  beforeAll(async () => {
    sidecar = await startSidecar({ ATTESTATION_CHECK_INTERVAL: "300ms", DASHBOARD_REFRESH_INTERVAL: "300ms" })
    dashboard = new URL("/dashboard", sidecar.url).href
    // The server's certificate is verified against the dev CA (see trustCa): this
    // test exercises the client-certificate path without weakening the server side.
    untrustCa = trustCa(sidecar.pki.ca.certPem)
    browser = await launchBrowser()
    context = await clientContext(browser, sidecar)
    page = await context.newPage()
    problems = watch(page)
    visit = await page.goto(dashboard).then(
      (response) => ({ response }),
      (error: unknown) => ({ error: error instanceof Error ? error.message : String(error) }),
    )
  })

  afterAll(async () => {
    await browser?.close()
    untrustCa()
    await sidecar?.close()
  })

  it("loads over mTLS with the client certificate and shows who is connected", async () => {
    expect("response" in visit ? visit.response?.status() : visit.error).toBe(200)
    await expect.poll(() => textOf(page, "client-cn"), { timeout: 2_000 }).toBe("developer")
    await expect.poll(() => textOf(page, "attestation-status"), { timeout: 5_000 }).toBe("verified")
  })

  it("names the pod and its namespace (#pod-name, #namespace)", async () => {
    await expect.poll(() => textOf(page, "pod-name"), { timeout: 2_000 }).toBe("web-0")
    await expect.poll(() => textOf(page, "namespace"), { timeout: 2_000 }).toBe("shop")
  })

  it("saves full-page screenshots, desktop and phone", async () => {
    await mkdir(RESULTS, { recursive: true })
    for (const name of ["dashboard.png", "dashboard-mobile.png"])
      await rm(`${RESULTS}/${name}`, { force: true })
    await page.screenshot({ path: `${RESULTS}/dashboard.png`, fullPage: true })

    const phone = await clientContext(browser, sidecar, {
      viewport: PHONE,
      deviceScaleFactor: 2,
      isMobile: true,
      hasTouch: true,
    })
    try {
      const mobile = await phone.newPage()
      const mobileProblems = watch(mobile)
      expect((await mobile.goto(dashboard))?.status()).toBe(200)
      await mobile.screenshot({ path: `${RESULTS}/dashboard-mobile.png`, fullPage: true })
      // Nothing may stick out sideways on a phone (long DNs, timestamps, URIs).
      const scrollWidth = await mobile.evaluate<number>("document.documentElement.scrollWidth")
      expect(scrollWidth, "the page scrolls sideways at phone width").toBeLessThanOrEqual(PHONE.width)
      expect(mobileProblems).toEqual([])
    } finally {
      await phone.close()
    }

    const desktop = await pngSize(`${RESULTS}/dashboard.png`)
    expect(desktop.width).toBeGreaterThan(0)
    expect(desktop.height).toBeGreaterThan(0)
    // deviceScaleFactor 2: twice the CSS pixels.
    expect(await pngSize(`${RESULTS}/dashboard-mobile.png`)).toMatchObject({ width: PHONE.width * 2 })
  })

  it("shows a failed attestation without reloading the page", async () => {
    await expect.poll(() => textOf(page, "attestation-status"), { timeout: 5_000 }).toBe("verified")
    // A reload or navigation would start a new document, with a new time origin.
    const document = await page.evaluate(() => performance.timeOrigin)
    sidecar.cdh.set(STATUS_RESOURCE, "failure")
    await expect
      .poll(() => textOf(page, "attestation-status"), { timeout: 10_000, interval: 100 })
      .toBe("failed")
    expect(await page.evaluate(() => performance.timeOrigin)).toBe(document)
  })

  // Runs last: it judges everything the visit above did.
  it("ran the whole visit without console errors, CSP violations or failed requests", () => {
    expect(problems).toEqual([])
  })

  it("has no page for a browser without a client certificate", async () => {
    // No client certificate, and Chromium told to accept the dev server
    // certificate: the only thing missing is the client certificate.
    const stranger = await browser.newContext({ ignoreHTTPSErrors: true })
    try {
      const outcome = await stranger
        .newPage()
        .then((p) => p.goto(dashboard))
        .then(
          (r) => `HTTP ${r?.status() ?? "no response"}`,
          (error: unknown) => (error instanceof Error ? error.message : String(error)),
        )
      // The server ends the TLS handshake; with TLS 1.3 Chromium may only notice
      // on its first read, so the error name varies. Never a page, never a 4xx.
      expect(outcome).toMatch(
        /^page\.goto: net::ERR_(BAD_SSL_CLIENT_AUTH_CERT|SSL_PROTOCOL_ERROR|SOCKET_NOT_CONNECTED|CONNECTION_RESET|CONNECTION_CLOSED|EMPTY_RESPONSE) /,
      )
    } finally {
      await stranger.close()
    }
  })
})
