import { createHash } from "node:crypto"
import { describe, expect, it } from "vitest"
import { initialState } from "../../src/attestation/AttestationReporter.ts"
import { render, STYLE_HASH } from "../../src/server/dashboard.ts"
import { escapeHtml, html } from "../../src/server/html.ts"
import { SECURITY_HEADERS } from "../../src/server/responses.ts"

const hostile = `<script>alert("x")</script>&'"`

const view = {
  client: {
    commonName: hostile,
    subject: `CN=${hostile}`,
    issuer: "CN=CA",
    serialNumber: "01",
    fingerprint256: "AA",
    validTo: "2027-01-01T00:00:00.000Z",
  },
  podName: hostile,
  namespace: hostile,
  attestation: { ...initialState("kbs:///default/attestation-status/status"), details: hostile },
  server: {
    subject: "CN=web",
    issuer: "CN=CA",
    serialNumber: "02",
    fingerprint256: "BB",
    subjectAltName: `DNS:${hostile}`,
    validFrom: new Date("2026-01-01T00:00:00Z"),
    validTo: new Date("2027-01-01T00:00:00Z"),
  },
  serverDaysLeft: 12,
  forwardPort: null,
  paths: { status: "/api/status", attestation: "/api/attestation" },
  version: "0.1.0",
  startedAt: new Date("2026-11-28T00:00:00Z"),
}

describe("dashboard", () => {
  it("escapes every interpolated value", () => {
    const page = render(view)
    expect(page).not.toContain("<script>")
    expect(page).toContain("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;&quot;")
    // The only tags are the page's own: no injected element survived.
    expect(page.match(/<script/gi)).toBeNull()
  })

  it("marks a certificate close to expiry", () => {
    expect(render(view)).toContain('<dd class="warn">2027-01-01T00:00:00.000Z (12 days)</dd>')
    expect(render({ ...view, serverDaysLeft: 3 })).toContain('class="bad"')
    expect(render({ ...view, serverDaysLeft: 200 })).toContain('<dd class="">')
  })

  it("has exactly one inline style, allowed by its hash in the CSP, and nothing external", () => {
    const page = render(view)
    const styles = [...page.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => m[1] ?? "")
    expect(styles).toHaveLength(1)
    const hash = `'sha256-${createHash("sha256")
      .update(styles[0] ?? "")
      .digest("base64")}'`
    expect(hash).toBe(STYLE_HASH)
    expect(SECURITY_HEADERS["content-security-policy"]).toContain(`style-src ${hash}`)
    expect(SECURITY_HEADERS["content-security-policy"]).toContain("default-src 'none'")
    expect(page).not.toMatch(/(?:src|href)\s*=\s*["']?(?:https?:)?\/\//i)
    expect(page).not.toMatch(/<(?:script|link|img|iframe)\b/i)
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
