/**
 * Responses the sidecar itself produces (never the application's): JSON,
 * HTML and errors, all with the same security headers.
 */
import { HttpServerResponse } from "effect/http"
import type { HttpServerRequest } from "effect/http/HttpServerRequest"
import { STYLE_HASH } from "./dashboard.ts"
import { html } from "./html.ts"

export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": [
    "default-src 'none'",
    `style-src ${STYLE_HASH}`,
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
  "strict-transport-security": "max-age=31536000",
}

/** Pretty-printed like upstream's, so `curl` output stays readable. */
export const json = (body: unknown, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(`${JSON.stringify(body, null, 2)}\n`, {
    status,
    contentType: "application/json; charset=utf-8",
    headers: SECURITY_HEADERS,
  })

export const page = (body: string, status = 200): HttpServerResponse.HttpServerResponse =>
  HttpServerResponse.text(body, {
    status,
    contentType: "text/html; charset=utf-8",
    headers: SECURITY_HEADERS,
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
