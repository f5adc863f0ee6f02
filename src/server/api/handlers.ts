/** The HttpApi handlers: the views of status.ts, encoded by the API's schemas. */
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
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
