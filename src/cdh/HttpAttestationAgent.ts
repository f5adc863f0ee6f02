/** The live AttestationAgent: `GET {CDH_URL}/aa/evidence` and `/aa/token` over node:http. */
import * as NodeHttpClient from "@effect/platform-node/NodeHttpClient"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as HttpClient from "effect/http/HttpClient"
import * as HttpClientRequest from "effect/http/HttpClientRequest"
import * as Layer from "effect/Layer"
import { AgentError, AttestationAgent } from "./AttestationAgent.ts"

export interface Options {
  readonly url: string
  readonly requestTimeout: Duration.Duration
}

/** Error bodies are short plain text (api-server-rest); a printable excerpt, for the message. */
const excerpt = (bytes: Uint8Array): string =>
  new TextDecoder("utf-8", { fatal: false })
    .decode(bytes.subarray(0, 200))
    .replace(/[^\x20-\x7e]+/g, " ")
    .trim()

export const make = Effect.fnUntraced(function* (options: Options) {
  const http = yield* HttpClient.HttpClient
  const call = (path: string): Effect.Effect<Uint8Array, AgentError> =>
    http.execute(HttpClientRequest.get(`${options.url}${path}`)).pipe(
      Effect.flatMap((response) =>
        Effect.map(response.arrayBuffer, (buffer) => ({
          status: response.status,
          body: new Uint8Array(buffer),
        })),
      ),
      Effect.catchTag("HttpClientError", () =>
        Effect.fail(
          new AgentError({ kind: "unreachable", detail: `the CDH at ${options.url} is not reachable` }),
        ),
      ),
      Effect.timeoutOrElse({
        duration: options.requestTimeout,
        orElse: () =>
          Effect.fail(
            new AgentError({
              kind: "unreachable",
              detail: `no answer from ${path.split("?")[0]} within ${Duration.format(options.requestTimeout)}`,
            }),
          ),
      }),
      Effect.flatMap(({ status, body }) => {
        if (status === 200) return Effect.succeed(body)
        const text = excerpt(body)
        if (status === 404) {
          return Effect.fail(
            text === "Attestation Feature Not Enabled"
              ? new AgentError({ kind: "feature-off", detail: text })
              : new AgentError({
                  kind: "unsupported",
                  detail: `the CDH has no ${path.split("?")[0]} (HTTP 404${text ? `: ${text}` : ""}): too old`,
                }),
          )
        }
        return Effect.fail(
          new AgentError({
            kind: "failed",
            detail: `${path.split("?")[0]} answered HTTP ${status}${text ? `: ${text}` : ""}`,
          }),
        )
      }),
    )
  return AttestationAgent.of({
    evidence: (runtimeData) => call(`/aa/evidence?runtime_data=${encodeURIComponent(runtimeData)}`),
    token: call("/aa/token?token_type=kbs"),
  })
})

export const layer = (options: Options): Layer.Layer<AttestationAgent> =>
  Layer.effect(AttestationAgent, make(options)).pipe(Layer.provide(NodeHttpClient.layerNodeHttp))
