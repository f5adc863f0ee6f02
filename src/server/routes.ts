/**
 * The sidecar's own routes, under SIDECAR_PATH_PREFIX: the JSON API
 * (`/api/status`, `/api/attestation`, `/api/openapi.json`) from the HttpApi,
 * and the dashboard (at `/` too when nothing is forwarded). Everything else
 * that reaches the router is a 404.
 */

import type { TLSSocket } from "node:tls"
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpRouter from "effect/http/HttpRouter"
import { HttpServerRequest } from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Binding from "../attestation/binding.ts"
import { Evidence } from "../attestation/Evidence.ts"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import * as Peer from "../gateway/Peer.ts"
import * as Scrape from "../metrics/scrape.ts"
import * as Handlers from "./api/handlers.ts"
import * as SidecarApi from "./api/SidecarApi.ts"
import * as Dashboard from "./dashboard.ts"
import { error, page } from "./responses.ts"
import * as SidecarPaths from "./SidecarPaths.ts"
import * as Status from "./status.ts"

const dashboard = Effect.gen(function* () {
  const request = yield* HttpServerRequest
  const config = yield* SidecarConfig
  const paths = SidecarPaths.make(config.pathPrefix)
  return page(
    Dashboard.render({
      client: Peer.of(NodeHttpServerRequest.toIncomingMessage(request).socket)?.certificate,
      status: yield* Status.status,
      attestation: yield* Status.attestation,
      paths,
      refreshMs: Math.round(config.dashboardRefresh.pipe(Duration.toMillis)),
    }),
    Dashboard.CSP,
  )
})

const metrics = Effect.map(Scrape.scrape, (text) =>
  HttpServerResponse.text(text, { contentType: Scrape.CONTENT_TYPE }),
)

/** `GET /api/evidence?nonce=N`: see attestation/Evidence.ts. */
const evidence = Effect.gen(function* () {
  const request = yield* HttpServerRequest
  const incoming = NodeHttpServerRequest.toIncomingMessage(request)
  const query = (incoming.url ?? "").split("?")[1] ?? ""
  const nonces = new URLSearchParams(query).getAll("nonce")
  const nonce = nonces.length > 1 ? { problem: "nonce given more than once" } : Binding.decodeNonce(nonces[0])
  if ("problem" in nonce) return error(request, 400, "Bad Request", `${nonce.problem}.`)
  // The certificate this very connection was served with: after a rotation, not the current one.
  const served = (incoming.socket as TLSSocket).getX509Certificate()
  if (served === undefined)
    return error(request, 500, "Internal Server Error", "No server certificate on this connection.")
  return yield* (yield* Evidence).collect({ text: nonces[0] as string, bytes: nonce.bytes }, served).pipe(
    Effect.map((answer) =>
      HttpServerResponse.text(`${JSON.stringify(answer, null, 2)}\n`, {
        contentType: "application/json; charset=utf-8",
      }),
    ),
    Effect.catchTag("EvidenceRefused", (refused) =>
      Effect.succeed(
        HttpServerResponse.setHeaders(
          error(request, refused.status, refused.title, refused.detail),
          refused.retryAfter === undefined ? {} : { "retry-after": String(refused.retryAfter) },
        ),
      ),
    ),
  )
})

const notFound = Effect.gen(function* () {
  const request = yield* HttpServerRequest
  return error(request, 404, "Not Found", "This path is not served by the sidecar.")
})

export const layer = Layer.unwrap(
  Effect.gen(function* () {
    const config = yield* SidecarConfig
    const paths = SidecarPaths.make(config.pathPrefix)
    const api = SidecarApi.make(config.pathPrefix)
    const apiRoutes = HttpApiBuilder.layer(api, { openapiPath: paths.openapi }).pipe(
      Layer.provide(Handlers.layer(api)),
    )
    const pages = HttpRouter.addAll([
      HttpRouter.route("GET", paths.dashboard, dashboard),
      HttpRouter.route("GET", paths.metrics, metrics),
      HttpRouter.route("GET", paths.evidence, evidence),
      ...(Option.isNone(config.forwardPort) ? [HttpRouter.route("GET", "/", dashboard)] : []),
      HttpRouter.route("*", "*", notFound),
    ])
    return Layer.mergeAll(apiRoutes, pages)
  }),
)
