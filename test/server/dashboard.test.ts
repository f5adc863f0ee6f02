import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { initialState } from "../../src/attestation/AttestationReporter.ts"
import type { AttestationResponse, StatusResponse } from "../../src/server/api/SidecarApi.ts"
import { CSP, type DashboardView, render, SCRIPT_HASH, STYLE_HASH } from "../../src/server/dashboard.ts"
import { escapeHtml, html } from "../../src/server/html.ts"
import * as SidecarPaths from "../../src/server/SidecarPaths.ts"

const hostile = `<script>alert("x")</script>&'"`

const certificate = (days: number) => ({
  subject: `CN=${hostile}`,
  issuer: "CN=CA",
  serialNumber: "02",
  fingerprint256: "BB",
  subjectAltName: `DNS:${hostile}`,
  notBefore: "2026-01-01T00:00:00.000Z",
  notAfter: "2027-01-01T00:00:00.000Z",
  daysUntilExpiry: days,
  secondsUntilExpiry: days * 86_400,
})

const status = (days = 12): typeof StatusResponse.Type => ({
  podName: hostile,
  namespace: hostile,
  attested: false,
  attestationStatus: "unavailable",
  version: "0.1.0",
  nodeVersion: "v24.0.0",
  startedAt: "2026-11-28T00:00:00.000Z",
  uptimeSeconds: 5,
  forwardPort: 8888,
  forwarding: {
    enabled: true,
    target: "http://127.0.0.1:8888",
    pathPrefix: "",
    appAnswering: false,
    appCheckedAt: "2026-11-28T00:00:01.000Z",
    appError: "ECONNREFUSED",
  },
  serverCertificate: certificate(days),
  clientCas: [certificate(700)],
  certificatesFetchedAt: "2026-11-28T00:00:00.000Z",
  tlsRefresh: {
    intervalSeconds: 300,
    lastAttemptAt: null,
    lastSuccessAt: "2026-11-28T00:00:00.000Z",
    lastChangeAt: null,
    lastError: null,
    rotations: 0,
  },
  tee: {
    likely: "none-detected",
    hints: [{ name: "/dev/tdx_guest", present: false, detail: hostile }],
    note: "n",
  },
  environment: [
    { name: "POD_NAME", shown: true, value: hostile },
    { name: "DB_PASSWORD", shown: false, reason: "sensitive" },
  ],
})

const attestation: typeof AttestationResponse.Type = {
  ...initialState("kbs:///default/attestation-status/status"),
  details: hostile,
  lastError: hostile,
  history: [{ status: "unavailable", at: "2026-11-28T00:00:00.000Z", details: hostile }],
  certificatesFromKBS: true,
  certificatesFetchedAt: "2026-11-28T00:00:00.000Z",
  appraisal: {
    status: "none",
    claimedStatus: "affirming",
    submods: [
      {
        name: hostile,
        status: "none",
        claimedStatus: "affirming",
        trustworthinessVector: {},
        appraisalPolicyId: hostile,
      },
    ],
    issuer: hostile,
    issuedAt: "2026-11-28T00:00:00.000Z",
    expiresAt: "2026-11-28T00:05:00.000Z",
    signature: "invalid",
    checkedAt: "2026-11-28T00:10:00.000Z",
    problems: [hostile],
  },
  appraisalUnavailable: null,
}

const view = (days?: number): DashboardView => ({
  client: {
    commonName: hostile,
    subject: `CN=${hostile}`,
    issuer: "CN=CA",
    validTo: new Date("2099-01-01T00:00:00.000Z"),
  },
  status: status(days),
  attestation,
  paths: SidecarPaths.make(""),
  refreshMs: 5000,
})

describe("dashboard", () => {
  it("escapes every interpolated value", () => {
    const page = render(view())
    expect(page).not.toContain(hostile)
    expect(page).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;&quot;")
    // The only script element is the page's own.
    expect(page.match(/<script/gi)).toHaveLength(1)
  })

  it("never shows a hidden environment value, and says why it is hidden", () => {
    const page = render(view())
    expect(page).toContain("DB_PASSWORD")
    expect(page).toContain("looks sensitive")
  })

  it("marks a certificate close to expiry", () => {
    expect(render(view(12))).toContain('id="cert-days" class="warn">12 days')
    expect(render(view(3))).toContain('id="cert-days" class="bad">3 days')
    expect(render(view(200))).toContain('id="cert-days" class="">200 days')
  })

  it("allows exactly its one inline style and one inline script by hash, and loads nothing external", () => {
    const page = render(view())
    const sha = (s: string) => `'sha256-${createHash("sha256").update(s).digest("base64")}'`
    const styles = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? "")
    const scripts = [...page.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1] ?? "")
    expect(styles.map(sha)).toEqual([STYLE_HASH])
    expect(scripts.map(sha)).toEqual([SCRIPT_HASH])
    expect(CSP).toContain(`style-src ${STYLE_HASH}`)
    expect(CSP).toContain(`script-src ${SCRIPT_HASH}`)
    expect(CSP).toContain("default-src 'none'")
    expect(CSP).toContain("frame-ancestors 'none'")
    expect(page).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i)
    expect(page).not.toMatch(/<(?:img|iframe)\b/i)
    // The one link is the favicon, inline.
    expect([...page.matchAll(/<link\b[^>]*>/g)].map((m) => m[0])).toEqual([
      expect.stringMatching(/^<link rel="icon" href="data:image\/svg\+xml,/),
    ])
    // The script writes text, never markup.
    expect(scripts[0]).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/)
  })

  it("shows the app as not answering with the reason", () => {
    expect(render(view())).toContain('id="app-status" class="bad">not answering (ECONNREFUSED)')
  })
})

describe("html", () => {
  it.each([
    ["&", "&amp;"],
    ["<>", "&lt;&gt;"],
    [`"'`, "&quot;&#39;"],
    [undefined, ""],
    [42, "42"],
  ])("escapes %j as %j", (input, expected) => {
    expect(escapeHtml(input)).toBe(expected)
  })

  it("escapes interpolations, including arrays, but not nested html", () => {
    const inner = html`<b>${"<i>"}</b>`
    expect(html`<p>${inner}${["<a>", html`<br>`]}</p>`.value).toBe("<p><b>&lt;i&gt;</b>&lt;a&gt;<br></p>")
  })
})

describe("the appraisal card", () => {
  it("shows the verdict, the signature check in words, and never an invalid token as affirming", () => {
    const page = render({ ...view(200), attestation })
    expect(page).toContain('id="appraisal-status" class="badge none">none')
    expect(page).toContain("INVALID: the verdict is not shown as affirming")
    expect(page).not.toContain(hostile)
  })

  it("says why there is no appraisal", () => {
    const page = render({
      ...view(200),
      attestation: {
        ...attestation,
        appraisal: null,
        appraisalUnavailable: "no token: Attestation Feature Not Enabled",
      },
    })
    expect(page).toContain('id="appraisal-status" class="badge none">unavailable')
    expect(page).toContain("no token: Attestation Feature Not Enabled")
  })
})
