/**
 * The in-memory CDH: a ResourceClient over a map, for the local run and unit
 * tests. It fails the way the real CDH does (HTTP 500 for a missing resource)
 * and its store can be changed while running, through MemoryCdh.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  CdhHttpError,
  type CdhInfo,
  CdhUnreachable,
  type FetchError,
  ResourceClient,
} from "../../cdh/ResourceClient.ts"
import type { ResourceUri } from "../../kbs/ResourceUri.ts"

export const SOURCE = "memory://cdh"
export const MISSING_BODY =
  'rpc status: Status { code: INTERNAL, message: "[CDH] [ERROR]: Get Resource failed" }'

/** As a Kata guest answers by default: resource feature only, so no TEE is named. */
export const DEFAULT_INFO: CdhInfo = {
  version: "memory",
  features: "resource",
  tee: undefined,
  additionalTees: [],
}

export type Fault = { readonly _tag: "Unreachable" } | { readonly _tag: "Status"; readonly status: number }

export class MemoryCdh extends Context.Service<
  MemoryCdh,
  {
    readonly set: (path: string, value: string | Uint8Array) => void
    readonly remove: (path: string) => void
    /** The next `count` gets fail with this fault, then the store answers again. */
    readonly failNext: (count: number, fault: Fault) => void
    /** Paths requested so far, in order. */
    readonly requests: ReadonlyArray<string>
  }
>()("coco-secure-access/MemoryCdh") {}

const toBytes = (value: string | Uint8Array): Uint8Array =>
  typeof value === "string" ? new TextEncoder().encode(value) : value.slice()

/** The store and its controls, for callers (tests, the local run) that change it from outside Effect. */
export const make = (
  initial: Readonly<Record<string, string | Uint8Array>>,
  options: { readonly info?: CdhInfo } = {},
): { readonly controls: MemoryCdh["Service"]; readonly layer: Layer.Layer<ResourceClient | MemoryCdh> } => {
  const store = new Map(Object.entries(initial).map(([k, v]) => [k, toBytes(v)]))
  const faults: Array<Fault> = []
  const requests: Array<string> = []
  const get = (resource: ResourceUri): Effect.Effect<Uint8Array, FetchError> =>
    Effect.suspend((): Effect.Effect<Uint8Array, FetchError> => {
      requests.push(resource.path)
      const url = `${SOURCE}/cdh/resource/${resource.path}`
      const fault = faults.shift()
      if (fault?._tag === "Unreachable") {
        return Effect.fail(new CdhUnreachable({ uri: resource.uri, url, reason: "ECONNREFUSED" }))
      }
      if (fault?._tag === "Status") {
        return Effect.fail(
          new CdhHttpError({ uri: resource.uri, url, status: fault.status, body: MISSING_BODY }),
        )
      }
      const value = store.get(resource.path)
      return value === undefined
        ? Effect.fail(new CdhHttpError({ uri: resource.uri, url, status: 500, body: MISSING_BODY }))
        : Effect.succeed(value.slice())
    })
  const controls = MemoryCdh.of({
    set: (path, value) => void store.set(path, toBytes(value)),
    remove: (path) => void store.delete(path),
    failNext: (count, fault) => {
      for (let i = 0; i < count; i++) faults.push(fault)
    },
    requests,
  })
  return {
    controls,
    layer: Layer.mergeAll(
      Layer.succeed(
        ResourceClient,
        ResourceClient.of({ get, info: Effect.succeed(options.info ?? DEFAULT_INFO), source: SOURCE }),
      ),
      Layer.succeed(MemoryCdh, controls),
    ),
  }
}

export const layer = (
  initial: Readonly<Record<string, string | Uint8Array>>,
): Layer.Layer<ResourceClient | MemoryCdh> => make(initial).layer
