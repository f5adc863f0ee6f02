/**
 * The sidecar's own HTTP app (API, dashboard, metrics: routes.ts) as a Node request handler, for
 * the gateway's dispatch to call. Effect's router runs it, in fibers: these requests are rare
 * next to the proxied ones, and that is where Effect earns its keep.
 *
 * No HttpServer is involved: the gateway owns the listener, so the app is turned into a handler
 * directly (NodeHttpServer.makeHandler), over a scope of its own for the requests.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodeHttpPlatform from "@effect/platform-node/NodeHttpPlatform"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodePath from "@effect/platform-node/NodePath"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Etag from "effect/http/Etag"
import * as HttpRouter from "effect/http/HttpRouter"
import * as Layer from "effect/Layer"
import * as Scope from "effect/Scope"
import type { Handler } from "../gateway/dispatch.ts"
import * as Routes from "./routes.ts"

/**
 * The Effect HTTP platform services (ETag, file responses) the router expects.
 * Not `NodeHttpServer.layerHttpServices`: its `NodeServices` adds a child-process spawner and a
 * terminal (node:child_process, node:readline) that a sidecar never uses.
 */
const layerServices = Layer.mergeAll(
  NodeHttpPlatform.layer,
  Etag.layerWeak,
  NodeFileSystem.layer,
  NodePath.layer,
)

export class SidecarApp extends Context.Service<SidecarApp, { readonly handler: Handler }>()(
  "coco-secure-access/SidecarApp",
) {
  static readonly layer = Layer.effect(
    SidecarApp,
    Effect.gen(function* () {
      const app = yield* HttpRouter.toHttpEffect(Routes.layer)
      // Requests run in a child scope, closed (their fibers interrupted) with the app.
      const requests = Scope.forkUnsafe(yield* Effect.scope, "parallel")
      const handler = yield* NodeHttpServer.makeHandler(app, { scope: requests })
      return SidecarApp.of({ handler })
    }),
  ).pipe(Layer.provide(layerServices))
}
