/**
 * Responses the sidecar itself produces (never the application's): pages
 * and errors, with the security headers that the dispatcher also puts on the
 * API's responses.
 */

import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { html } from "./html.ts"

/** On every response the sidecar itself produces (never on the application's). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy":
    "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "strict-transport-security": "max-age=31536000",
}

/** An HTML page with its own Content-Security-Policy (the page's hashes). */
export const page = (body: string, csp: string, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(body, {
    status,
    contentType: "text/html; charset=utf-8",
    headers: { ...SECURITY_HEADERS, "content-security-policy": csp },
  })

const wantsHtml = (accept: string | undefined): boolean => {
  const value = accept ?? ""
  return value.includes("text/html") && !value.startsWith("application/json")
}

/** An error as JSON or HTML by Accept; the text is ours, never an internal error's. */
export const errorBody = (
  accept: string | undefined,
  status: number,
  title: string,
  detail: string,
): { readonly contentType: string; readonly body: string } =>
  wantsHtml(accept)
    ? {
        contentType: "text/html; charset=utf-8",
        body: `<!doctype html>${html`<html lang="en"><head><meta charset="utf-8"><title>${status} ${title}</title></head><body><h1>${status} ${title}</h1><p>${detail}</p></body></html>`}`,
      }
    : {
        contentType: "application/json; charset=utf-8",
        body: `${JSON.stringify({ error: title, status, detail }, null, 2)}\n`,
      }

export const error = (
  request: HttpServerRequest,
  status: number,
  title: string,
  detail: string,
): HttpServerResponse.HttpServerResponse => {
  const { contentType, body } = errorBody(request.headers.accept, status, title, detail)
  return HttpServerResponse.text(body, { status, contentType, headers: SECURITY_HEADERS })
}
