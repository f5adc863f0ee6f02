/** The HttpApi handlers: the views of status.ts, encoded by the API's schemas. */
import * as Effect from "effect/Effect"
import * as HttpApiBuilder from "effect/http-api/HttpApiBuilder"
import * as Status from "../status.ts"
import type { SidecarApi } from "./SidecarApi.ts"

export const layer = (api: SidecarApi) =>
  HttpApiBuilder.group(
    api,
    "sidecar",
    Effect.fn(function* (handlers) {
      return handlers.handleAll({
        status: () => Status.status,
        attestation: () => Status.attestation,
      })
    }),
  )
