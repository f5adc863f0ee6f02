/**
 * The browser test's harness: Chromium from /usr/bin (installed by
 * scripts/ensure-chromium.sh, never downloaded by Playwright), the whole
 * sidecar in-process on an ephemeral port over an in-memory CDH, and a
 * recorder for everything that goes wrong on a page.
 */
import { existsSync } from "node:fs"
import { readFile } from "node:fs/promises"
import * as tls from "node:tls"
import { Effect, Exit, Scope } from "effect"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import type { Env } from "../../src/config/SidecarConfig.ts"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { type CapturedLog, capture } from "../support/logs.ts"
import { settingsFor, start } from "../support/sidecar.ts"

export const CHROMIUM = "/usr/bin/chromium"
export const chromiumAvailable = existsSync(CHROMIUM)

/**
 * Playwright adds --headless and a fresh temporary --user-data-dir itself.
 * The rest keeps Chromium from calling home (the test machine has no network
 * and would otherwise be flooded with retries) and runs it as root in a container.
 */
export const CHROMIUM_ARGS: ReadonlyArray<string> = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]

export const launchBrowser = (): Promise<Browser> =>
  chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS] })

export interface Sidecar {
  readonly url: string
  readonly pki: Fixtures
  /** Changes what the in-memory CDH answers, while the sidecar runs. */
  readonly cdh: MemoryResourceClient.MemoryCdh["Service"]
  readonly logs: ReadonlyArray<CapturedLog>
  readonly close: () => Promise<void>
}

/** The whole sidecar (POD_NAME web-0, POD_NAMESPACE shop) with the dev PKI, its logs captured. */
export const startSidecar = async (env: Env = {}): Promise<Sidecar> => {
  const pki = await makeFixtures()
  const memory = MemoryResourceClient.make(resourcesFor(pki))
  const logs = capture()
  const scope = Effect.runSync(Scope.make())
  try {
    const url = await Effect.runPromise(
      start(settingsFor(env), memory.layer).pipe(Effect.provide(logs.layer), Scope.provide(scope)),
    )
    return {
      url,
      pki,
      cdh: memory.controls,
      logs: logs.lines,
      close: () => Effect.runPromise(Scope.close(scope, Exit.void)),
    }
  } catch (error) {
    await Effect.runPromise(Scope.close(scope, Exit.void))
    throw error
  }
}

/**
 * Playwright presents client certificates through a TLS proxy of its own, in
 * this process: the proxy, not Chromium, verifies the server's certificate,
 * with Node's default CA set (its `clientCertificates` take no `ca`). Adding
 * the dev CA to that set keeps the server's certificate verified instead of
 * turning verification off with `ignoreHTTPSErrors`. Returns the undo.
 */
export const trustCa = (caPem: string): (() => void) => {
  const before = tls.getCACertificates("default")
  tls.setDefaultCACertificates([...before, caPem])
  return () => tls.setDefaultCACertificates(before)
}

/** A context that presents the dev client certificate (CN "developer") to the sidecar's origin. */
export const clientContext = (
  browser: Browser,
  sidecar: Sidecar,
  options: Parameters<Browser["newContext"]>[0] = {},
): Promise<BrowserContext> =>
  browser.newContext({
    ...options,
    clientCertificates: [
      {
        origin: new URL(sidecar.url).origin,
        cert: Buffer.from(sidecar.pki.client.certPem),
        key: Buffer.from(sidecar.pki.client.keyPem),
      },
    ],
  })

/**
 * Everything that went wrong on a page while it was watched, one line each:
 * console errors (CSP violations are reported as such), uncaught exceptions,
 * requests that failed and responses with an error status.
 */
export const watch = (page: Page): Array<string> => {
  const problems: Array<string> = []
  page.on("console", (message) => {
    if (message.type() !== "error") return
    const where = message.location().url
    problems.push(`console error: ${message.text()}${where === "" ? "" : ` (${where})`}`)
  })
  page.on("pageerror", (error) => problems.push(`uncaught: ${error.message}`))
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()}: ${request.failure()?.errorText ?? "unknown"}`),
  )
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.url()}`)
  })
  return problems
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** Width and height from a PNG's IHDR; throws when the file is not a PNG. */
export const pngSize = async (path: string): Promise<{ readonly width: number; readonly height: number }> => {
  const bytes = await readFile(path)
  if (bytes.length < 24 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) throw new Error(`${path}: not a PNG`)
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) }
}

/** Chromium with a page that presents the client certificate to `sidecar`, its problems watched. */
export interface OpenPage {
  readonly page: Page
  readonly problems: Array<string>
  readonly close: () => Promise<void>
}

export const openPage = async (sidecar: Sidecar): Promise<OpenPage> => {
  const untrustCa = trustCa(sidecar.pki.ca.certPem)
  const browser = await launchBrowser()
  const context = await clientContext(browser, sidecar)
  const page = await context.newPage()
  return {
    page,
    problems: watch(page),
    close: async () => {
      await context.close()
      await browser.close()
      untrustCa()
    },
  }
}
