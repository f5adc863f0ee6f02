/**
 * The live ResourceClient: `kbs:///r/t/t` -> `GET {CDH_URL}/cdh/resource/r/t/t`
 * on the in-guest api-server-rest, over Effect's node:http client (fetch
 * would load undici: more memory in a 128 MiB VM for no gain on loopback).
 */

import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Layer from "effect/Layer"
import * as ResourceUri from "../kbs/ResourceUri.ts"
import {
  CdhHttpError,
  type CdhInfo,
  CdhUnreachable,
  type FetchError,
  parseInfo,
  ResourceClient,
} from "./ResourceClient.ts"

export interface Options {
  readonly url: string
  readonly requestTimeout: Duration.Duration
}

const BODY_EXCERPT = 300

/** Printable one-line excerpt: error bodies go to logs, never bytes of a resource. */
const excerpt = (bytes: Uint8Array): string =>
  new TextDecoder("utf-8", { fatal: false })
    .decode(bytes.subarray(0, BODY_EXCERPT))
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
    .replace(/[\u0000-\u001f\u007f]+/g, " ")
    .trim()

/** Node's fetch hides the socket error in `cause.cause`; users need ECONNREFUSED, not "fetch failed". */
const describeTransport = (error: unknown): string => {
  let current: unknown = error
  const parts: Array<string> = []
  for (let depth = 0; depth < 4 && current instanceof Object; depth++) {
    const e = current as { code?: unknown; message?: unknown; cause?: unknown }
    if (typeof e.code === "string") return e.code
    if (typeof e.message === "string" && e.message) parts.push(e.message)
    current = e.cause
  }
  return parts.at(-1) ?? "transport error"
}

export const make = Effect.fnUntraced(function* (options: Options) {
  const http = yield* HttpClient.HttpClient
  /** One GET: the status and body, with transport failures and timeouts as CdhUnreachable. */
  const fetch = (uri: string, url: string) =>
    http.execute(HttpClientRequest.get(url)).pipe(
      Effect.flatMap((response) =>
        response.arrayBuffer.pipe(
          Effect.map((buffer) => ({ status: response.status, body: new Uint8Array(buffer) })),
        ),
      ),
      Effect.catchTag("HttpClientError", (error) =>
        Effect.fail(new CdhUnreachable({ uri, url, reason: describeTransport(error.reason) })),
      ),
      Effect.timeoutOrElse({
        duration: options.requestTimeout,
        orElse: () =>
          Effect.fail(
            new CdhUnreachable({
              uri,
              url,
              reason: `no answer within ${Duration.format(options.requestTimeout)}`,
            }),
          ),
      }),
    )
  const failed = (uri: string, url: string, status: number, body: Uint8Array) =>
    Effect.fail(new CdhHttpError({ uri, url, status, body: excerpt(body) }))

  const get = (resource: ResourceUri.ResourceUri): Effect.Effect<Uint8Array, FetchError> => {
    const url = ResourceUri.cdhUrl(options.url, resource)
    return Effect.flatMap(fetch(resource.uri, url), ({ status, body }) =>
      status === 200 ? Effect.succeed(body) : failed(resource.uri, url, status, body),
    )
  }

  const infoUrl = `${options.url}/info`
  const info: Effect.Effect<CdhInfo | undefined, FetchError> = Effect.flatMap(
    fetch("/info", infoUrl),
    ({ status, body }) => {
      if (status === 404) return Effect.succeed(undefined)
      if (status !== 200) return failed("/info", infoUrl, status, body)
      try {
        return Effect.succeed(parseInfo(JSON.parse(new TextDecoder().decode(body))))
      } catch {
        return Effect.succeed(undefined)
      }
    },
  )
  return ResourceClient.of({ get, info, source: options.url })
})

export const layer = (options: Options): Layer.Layer<ResourceClient> =>
  Layer.effect(ResourceClient, make(options)).pipe(Layer.provide(NodeHttpClient.layerNodeHttp))
