/**
 * The dashboard: one server-rendered page, no script, no external asset.
 * Its only inline style is allowed by hash in the Content-Security-Policy.
 */
import { createHash } from "node:crypto"
import type { AttestationState } from "../attestation/AttestationReporter.ts"
import type { CertificateInfo } from "../tls/validate.ts"
import type { ClientIdentity } from "./ClientIdentity.ts"
import { Html, html } from "./html.ts"

export interface DashboardView {
  readonly client: ClientIdentity | undefined
  readonly podName: string
  readonly namespace: string
  readonly attestation: AttestationState
  readonly server: CertificateInfo
  readonly serverDaysLeft: number
  readonly forwardPort: number | null
  readonly paths: { readonly status: string; readonly attestation: string }
  readonly version: string
  readonly startedAt: Date
}

const STYLE = `
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--card:#fff;--muted:#5b6470;--line:#d8dde3;
--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--card:#161b22;--muted:#8d96a0;--line:#30363d;
--ok:#3fb950;--bad:#f85149;--warn:#d29922}}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:var(--bg);color:var(--fg)}
main{max-width:860px;margin:0 auto;padding:24px 16px}
h1{font-size:1.4rem;margin:0 0 4px}
.sub{color:var(--muted);margin:0 0 20px}
.grid{display:grid;gap:16px;grid-template-columns:repeat(auto-fit,minmax(250px,1fr))}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px}
h2{font-size:.8rem;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 8px}
dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:4px 12px}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-weight:600;border:1px solid currentColor}
.verified{color:var(--ok)}.failed{color:var(--bad)}.unavailable{color:var(--warn)}
.warn{color:var(--warn)}.bad{color:var(--bad)}
a{color:inherit}
footer{margin-top:20px;color:var(--muted);font-size:.85rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em}
`

/** For the CSP header: `style-src 'sha256-…'`. */
export const STYLE_HASH = `'sha256-${createHash("sha256").update(STYLE).digest("base64")}'`

export const render = (view: DashboardView): string => {
  const days = view.serverDaysLeft
  const expiryClass = days < 7 ? "bad" : days < 30 ? "warn" : ""
  const a = view.attestation
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CoCo secure access · ${view.podName}</title>
<style>${new Html(STYLE)}</style>
</head>
<body>
<main>
<h1>CoCo secure access</h1>
<p class="sub">Pod <strong>${view.podName}</strong> in namespace <strong>${view.namespace}</strong></p>
<div class="grid">
<section aria-labelledby="h-you">
<h2 id="h-you">You</h2>
<dl>
<dt>Client</dt><dd id="client-cn">${view.client?.commonName ?? "(no common name)"}</dd>
<dt>Subject</dt><dd>${view.client?.subject ?? ""}</dd>
<dt>Valid until</dt><dd>${view.client?.validTo ?? ""}</dd>
</dl>
</section>
<section aria-labelledby="h-att">
<h2 id="h-att">Attestation</h2>
<p><span id="attestation-status" class="badge ${a.status}">${a.status}</span></p>
<dl>
<dt>Details</dt><dd>${a.details}</dd>
<dt>Checked</dt><dd>${a.checkedAt ?? "not yet"}</dd>
<dt>Resource</dt><dd><code>${a.resource}</code></dd>
</dl>
</section>
<section aria-labelledby="h-tls">
<h2 id="h-tls">Server certificate</h2>
<dl>
<dt>Subject</dt><dd>${view.server.subject}</dd>
<dt>Names</dt><dd>${view.server.subjectAltName ?? "(none)"}</dd>
<dt>Expires</dt><dd class="${expiryClass}">${view.server.validTo.toISOString()} (${days} days)</dd>
</dl>
</section>
<section aria-labelledby="h-fwd">
<h2 id="h-fwd">Application</h2>
<dl>
<dt>Forwarding</dt><dd>${view.forwardPort === null ? "off" : html`<a href="/">127.0.0.1:${view.forwardPort}</a>`}</dd>
<dt>APIs</dt><dd><a href="${view.paths.status}">${view.paths.status}</a> · <a href="${view.paths.attestation}">${view.paths.attestation}</a></dd>
</dl>
</section>
</div>
<footer>coco-secure-access ${view.version} · up since ${view.startedAt.toISOString()}</footer>
</main>
</body>
</html>`}`
}
