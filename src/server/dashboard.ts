/**
 * The dashboard: one server-rendered page whose live parts a small inline
 * script refreshes from the JSON API. No framework, no build step, nothing
 * loaded from outside the pod; the inline style and script are allowed by
 * their hashes in the Content-Security-Policy. The script writes text only
 * (`textContent`), never HTML.
 */
import { createHash } from "node:crypto"
import type { ClientCertificate } from "../gateway/clientCertificate.ts"
import type { AttestationResponse, StatusResponse } from "./api/SidecarApi.ts"
import { Html, html } from "./html.ts"
import type { SidecarPaths } from "./SidecarPaths.ts"

export interface DashboardView {
  /** The connection's verified certificate (its peer record), the same the allow-lists and logs use. */
  readonly client: Pick<ClientCertificate, "commonName" | "subject" | "issuer" | "validTo"> | undefined
  readonly status: typeof StatusResponse.Type
  readonly attestation: typeof AttestationResponse.Type
  readonly paths: Pick<SidecarPaths, "status" | "attestation" | "openapi" | "metrics">
  readonly refreshMs: number
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--card:#fff;--muted:#57606a;--line:#d0d7de;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--accent:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--card:#161b22;--muted:#9198a1;--line:#30363d;
--ok:#3fb950;--bad:#f85149;--warn:#d29922;--accent:#4493f8}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:1040px;margin:0 auto;padding:20px 16px 32px}
header{display:flex;align-items:center;gap:12px;margin-bottom:16px;flex-wrap:wrap}
header svg{flex:none}
h1{font-size:1.35rem;margin:0;line-height:1.2}
.sub{color:var(--muted);margin:2px 0 0}
.grid{display:grid;gap:14px;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));align-items:start}
.banner{border:1.5px solid currentColor;border-radius:10px;padding:10px 14px;margin:0 0 14px;font-weight:600}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px;min-width:0}
section.wide{grid-column:1/-1}
h2{font-size:.78rem;text-transform:uppercase;letter-spacing:.07em;color:var(--muted);margin:0 0 10px}
dl{margin:0}
dl>div{display:grid;grid-template-columns:7.5em minmax(0,1fr);gap:12px;padding:2px 0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:break-word;min-width:0}
.badge{display:inline-block;padding:2px 12px;border-radius:999px;font-weight:650;border:1.5px solid currentColor}
.verified,.ok,.affirming{color:var(--ok)}.failed,.bad,.contraindicated{color:var(--bad)}.unavailable,.warn,.warning{color:var(--warn)}.none{color:var(--muted)}
.note{color:var(--muted);font-size:.88rem;margin:8px 0 0}
ol,ul{margin:0;padding-left:1.2em}
ul.plain{list-style:none;padding:0}
li{margin:2px 0;overflow-wrap:break-word}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;padding:4px 8px;border-top:1px solid var(--line);vertical-align:top;overflow-wrap:break-word}
#env-table td:first-child{white-space:nowrap}
th{color:var(--muted);font-weight:600;border-top:none}
.table{overflow-x:auto}
code,td.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.88em}
a{color:var(--accent)}
footer{margin-top:16px;color:var(--muted);font-size:.85rem;display:flex;gap:12px;flex-wrap:wrap}
[hidden]{display:none!important}
@media (max-width:520px){dl>div{grid-template-columns:1fr;gap:0;padding:4px 0}
#env-table thead{display:none}#env-table tr{display:block;border-top:1px solid var(--line);padding:4px 0}
#env-table td{display:block;border:none;padding:0 4px}#env-table td:first-child{white-space:normal;font-weight:600}}
`

// Static, so its hash is fixed; its inputs come from data-* attributes and the API.
/** What each signature check means, for people. */
const SIGNATURE_TEXT = {
  "valid-pinned": "valid, by the pinned attestation-service key (ATTESTATION_TOKEN_KEY)",
  "valid-unpinned":
    "valid by the key the token names itself: unaltered, but who signed it is not checked (set ATTESTATION_TOKEN_KEY)",
  invalid: "INVALID: the verdict is not shown as affirming",
} as const

const SCRIPT = `
(() => {
  const body = document.body
  const every = Number(body.dataset.refreshMs) || 5000
  const $ = (id) => document.getElementById(id)
  const text = (id, value) => { const el = $(id); if (el) el.textContent = value == null ? "" : String(value) }
  const cls = (id, name) => { const el = $(id); if (el) el.className = name }
  const dayClass = (d) => (d < 7 ? "bad" : d < 30 ? "warn" : "")
  const when = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") + " UTC" : "")
  const list = (id, items, render) => {
    const el = $(id)
    if (!el) return
    el.replaceChildren(...items.map((item) => { const li = document.createElement("li"); li.textContent = render(item); return li }))
  }
  const SIGNATURE = ${JSON.stringify(SIGNATURE_TEXT)}
  const attestation = (a) => {
    const banner = $("attestation-banner")
    if (banner) {
      banner.hidden = a.status === "verified"
      banner.className = "banner " + (a.status === "failed" ? "bad" : "warn")
      banner.textContent = "Attestation is " + a.status + ": " + a.details
    }
    text("attestation-status", a.status)
    cls("attestation-status", "badge " + a.status)
    text("attestation-details", a.details)
    text("attestation-checked", when(a.checkedAt) || "not yet")
    text("attestation-changed", when(a.changedAt) || "never")
    text("attestation-next", when(a.nextCheckAt))
    text("attestation-error", a.lastError || "")
    const err = $("attestation-error-row"); if (err) err.hidden = !a.lastError
    text("attestation-tee", a.guestComponents ? a.guestComponents.teeNote : "The CDH's /info did not answer.")
    list("attestation-history", a.history, (t) => when(t.at) + " \\u2014 " + t.status)
    const p = a.appraisal
    text("appraisal-status", p ? p.status : "unavailable")
    cls("appraisal-status", "badge " + (p ? p.status : "none"))
    text("appraisal-signature", p ? SIGNATURE[p.signature] : "")
    text("appraisal-issuer", p ? p.issuer : "")
    text("appraisal-expires", p ? when(p.expiresAt) : "")
    text("appraisal-problems", p ? p.problems.join("; ") : a.appraisalUnavailable)
    list("appraisal-submods", p ? p.submods : [], (m) => m.name + ": " + m.status + (m.appraisalPolicyId ? " (policy " + m.appraisalPolicyId + ")" : ""))
  }
  const status = (s) => {
    text("uptime", s.uptimeSeconds + " s")
    text("cert-days", s.serverCertificate.daysUntilExpiry + " days")
    cls("cert-days", dayClass(s.serverCertificate.daysUntilExpiry))
    const app = s.forwarding.appAnswering
    text("app-status", app === null ? (s.forwarding.enabled ? "not checked yet" : "forwarding off") : app ? "answering" : "not answering" + (s.forwarding.appError ? " (" + s.forwarding.appError + ")" : ""))
    cls("app-status", app === null ? "" : app ? "ok" : "bad")
  }
  const get = (path) => fetch(path, { cache: "no-store", headers: { accept: "application/json" } }).then((r) => {
    if (!r.ok) throw new Error("HTTP " + r.status)
    return r.json()
  })
  const refresh = () =>
    Promise.all([get(body.dataset.attestationPath), get(body.dataset.statusPath)])
      .then(([a, s]) => { attestation(a); status(s); text("refreshed", "updated " + new Date().toISOString().slice(11, 19) + " UTC"); cls("refreshed", "") })
      .catch((e) => { text("refreshed", "refresh failed: " + e.message); cls("refreshed", "bad") })
      .finally(() => setTimeout(refresh, every))
  setTimeout(refresh, every)
})()
`

const hash = (content: string) => `'sha256-${createHash("sha256").update(content).digest("base64")}'`

export const STYLE_HASH = hash(STYLE)
export const SCRIPT_HASH = hash(SCRIPT)

/** The page's policy: its own style and script by hash, API calls to itself, nothing else. */
export const CSP = [
  "default-src 'none'",
  `style-src ${STYLE_HASH}`,
  `script-src ${SCRIPT_HASH}`,
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ")

const LOGO = new Html(
  `<svg width="36" height="36" viewBox="0 0 24 24" aria-hidden="true"><path fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round" d="M12 2.5 4 5.5v6c0 4.7 3.3 8.6 8 10 4.7-1.4 8-5.3 8-10v-6z"/><rect x="8.5" y="11" width="7" height="5.5" rx="1" fill="currentColor"/><path fill="none" stroke="currentColor" stroke-width="1.6" d="M10 11V9.2a2 2 0 0 1 4 0V11"/></svg>`,
)

/** The logo as the favicon, inline: no request for /favicon.ico, which belongs to the app when forwarding. */
const FAVICON = `data:image/svg+xml,${encodeURIComponent(LOGO.value.replace('width="36" height="36" ', 'xmlns="http://www.w3.org/2000/svg" ').replaceAll("currentColor", "#0969da"))}`

const TEE_NAMES = {
  tdx: "Intel TDX",
  "sev-snp": "AMD SEV-SNP",
  sev: "AMD SEV",
  "none-detected": "none detected",
} as const

// Templates hold ASCII only (entities for the rest): one non-ASCII character makes V8 keep the
// whole bundle's source as UTF-16, 1.5 MiB more in memory.

/** `2027-11-28 23:28 UTC`: readable, and the same in the script below. */
const when = (iso: string | null | undefined) => (iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "")

const dayClass = (days: number) => (days < 7 ? "bad" : days < 30 ? "warn" : "")

export const render = (view: DashboardView): string => {
  const { status: s, attestation: a, client } = view
  const p = a.appraisal
  const cert = s.serverCertificate
  const clientDays = client ? Math.floor((client.validTo.getTime() - Date.now()) / 86_400_000) : undefined
  const app = s.forwarding
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<link rel="icon" href="${FAVICON}">
<title>${s.podName} &middot; CoCo secure access</title>
<style>${new Html(STYLE)}</style>
</head>
<body data-refresh-ms="${view.refreshMs}" data-status-path="${view.paths.status}" data-attestation-path="${view.paths.attestation}">
<main>
<header>${LOGO}<div><h1>CoCo secure access</h1>
<p class="sub">Pod <strong id="pod-name">${s.podName}</strong> in namespace <strong id="namespace">${s.namespace}</strong></p></div></header>
<p id="attestation-banner" class="banner ${a.status === "failed" ? "bad" : "warn"}" role="status"${a.status === "verified" ? new Html(" hidden") : ""}>Attestation is ${a.status}: ${a.details}</p>
<div class="grid">
<section aria-labelledby="h-att">
<h2 id="h-att">Attestation</h2>
<p><span id="attestation-status" class="badge ${a.status}">${a.status}</span></p>
<dl>
<div><dt>Details</dt><dd id="attestation-details">${a.details}</dd></div>
<div><dt>Last check</dt><dd id="attestation-checked">${when(a.checkedAt) || "not yet"}</dd></div>
<div><dt>Last change</dt><dd id="attestation-changed">${when(a.changedAt) || "never"}</dd></div>
<div><dt>Next check</dt><dd id="attestation-next">${when(a.nextCheckAt)}</dd></div>
<div id="attestation-error-row"${a.lastError ? "" : new Html(" hidden")}><dt>Last error</dt><dd id="attestation-error" class="bad">${a.lastError ?? ""}</dd></div>
<div><dt>TEE</dt><dd id="attestation-tee">${a.guestComponents?.teeNote ?? "The CDH's /info did not answer."}</dd></div>
<div><dt>History</dt><dd><ol id="attestation-history">${a.history.map((t) => html`<li>${when(t.at)} &mdash; ${t.status}</li>`)}</ol></dd></div>
</dl>
<p class="note">${a.meaning}</p>
</section>
<section aria-labelledby="h-appraisal">
<h2 id="h-appraisal">Appraisal</h2>
<p><span id="appraisal-status" class="badge ${p?.status ?? "none"}">${p?.status ?? "unavailable"}</span></p>
<dl>
<div><dt>Signature</dt><dd id="appraisal-signature">${p ? SIGNATURE_TEXT[p.signature] : ""}</dd></div>
<div><dt>Issuer</dt><dd id="appraisal-issuer">${p?.issuer ?? ""}</dd></div>
<div><dt>Expires</dt><dd id="appraisal-expires">${when(p?.expiresAt)}</dd></div>
<div><dt>Submodules</dt><dd><ul id="appraisal-submods">${(p?.submods ?? []).map((m) => html`<li>${m.name}: ${m.status}${m.appraisalPolicyId ? ` (policy ${m.appraisalPolicyId})` : ""}</li>`)}</ul></dd></div>
<div><dt>Notes</dt><dd id="appraisal-problems">${p ? p.problems.join("; ") : (a.appraisalUnavailable ?? "")}</dd></div>
</dl>
<p class="note">The attestation service's verdict on this pod's evidence, from the KBS's EAR token. Affirming only when every part of the evidence affirms and the token is valid and unexpired. Check the evidence yourself with <code>node dist/verify.js</code> (see the README).</p>
</section>
<section aria-labelledby="h-you">
<h2 id="h-you">You</h2>
<dl>
<div><dt>Client</dt><dd id="client-cn">${client?.commonName ?? "(no common name)"}</dd></div>
<div><dt>Subject</dt><dd>${client?.subject ?? ""}</dd></div>
<div><dt>Issuer</dt><dd>${client?.issuer ?? ""}</dd></div>
<div><dt>Valid until</dt><dd class="${clientDays === undefined ? "" : dayClass(clientDays)}">${when(client?.validTo.toISOString())}${clientDays === undefined ? "" : ` (${clientDays} days)`}</dd></div>
</dl>
</section>
<section aria-labelledby="h-tls">
<h2 id="h-tls">Server certificate</h2>
<dl>
<div><dt>Subject</dt><dd>${cert.subject}</dd></div>
<div><dt>Names</dt><dd>${cert.subjectAltName ?? "(none)"}</dd></div>
<div><dt>Serial</dt><dd><code>${cert.serialNumber}</code></dd></div>
<div><dt>Valid</dt><dd>${when(cert.notBefore)} &rarr; ${when(cert.notAfter)}</dd></div>
<div><dt>Expires in</dt><dd id="cert-days" class="${dayClass(cert.daysUntilExpiry)}">${cert.daysUntilExpiry} days</dd></div>
<div><dt>Client CA</dt><dd>${s.clientCas.map((ca) => ca.subject).join("; ")}</dd></div>
<div><dt>From the KBS</dt><dd>${when(s.certificatesFetchedAt)}</dd></div>
</dl>
</section>
<section aria-labelledby="h-app">
<h2 id="h-app">Application</h2>
<dl>
<div><dt>Forwarding</dt><dd>${app.target === null ? "off" : html`<a href="/">${app.target}</a>`}</dd></div>
<div><dt>App</dt><dd id="app-status" class="${app.appAnswering === null ? "" : app.appAnswering ? "ok" : "bad"}">${app.appAnswering === null ? (app.enabled ? "not checked yet" : "forwarding off") : app.appAnswering ? "answering" : `not answering${app.appError ? ` (${app.appError})` : ""}`}</dd></div>
<div><dt>Sidecar paths</dt><dd>${app.pathPrefix === "" ? "at the root" : html`under <code>${app.pathPrefix}</code>`}</dd></div>
<div><dt>APIs</dt><dd><a href="${view.paths.status}">status</a> &middot; <a href="${view.paths.attestation}">attestation</a> &middot; <a href="${view.paths.openapi}">OpenAPI</a> &middot; <a href="${view.paths.metrics}">metrics</a></dd></div>
</dl>
</section>
<section aria-labelledby="h-tee">
<h2 id="h-tee">TEE hints</h2>
<p>Most likely: <strong id="tee-likely">${TEE_NAMES[s.tee.likely]}</strong></p>
<ul class="plain">${s.tee.hints.map((h) => html`<li><span class="${h.present ? "ok" : ""}">${h.present ? "✓" : "✗"}</span> ${h.detail}</li>`)}</ul>
<p class="note">${s.tee.note}</p>
</section>
<section class="wide" aria-labelledby="h-env">
<h2 id="h-env">Environment of the sidecar container</h2>
<div class="table"><table id="env-table"><thead><tr><th scope="col">Name</th><th scope="col">Value</th></tr></thead><tbody>
${s.environment.map((e) => html`<tr><td class="mono">${e.name}</td><td class="mono">${e.shown ? (e.value ?? "") : html`<span class="warn">&lt;redacted&gt;</span> <span class="note">${e.reason === "sensitive" ? "looks sensitive" : "not on the allow-list"}</span>`}</td></tr>`)}
</tbody></table></div>
<p class="note">Names are always listed; values only for known-safe variables (ENV_ALLOWLIST adds more). Anything that looks like a secret is never shown.</p>
</section>
</div>
<footer><span>coco-secure-access ${s.version}</span><span>Node.js ${s.nodeVersion}</span><span>up <span id="uptime">${s.uptimeSeconds} s</span></span><span id="refreshed">live refresh every ${Math.round(view.refreshMs / 100) / 10} s</span></footer>
</main>
<script>${new Html(SCRIPT)}</script>
</body>
</html>`}`
}
