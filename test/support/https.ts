/** A real HTTPS client (node:https, no connection reuse) for mTLS tests. */
import * as https from "node:https"
import type { SecureVersion } from "node:tls"

export interface ClientTls {
  readonly cert?: string
  readonly key?: string
  readonly ca: string
  readonly minVersion?: SecureVersion
  readonly maxVersion?: SecureVersion
}

export interface Reply {
  readonly status: number
  readonly headers: Readonly<Record<string, string | ReadonlyArray<string> | undefined>>
  readonly body: string
}

export const get = (url: string, tls: ClientTls, headers: Record<string, string> = {}): Promise<Reply> =>
  new Promise((resolve, reject) => {
    const request = https.request(
      url,
      {
        method: "GET",
        headers,
        agent: false,
        ca: tls.ca,
        ...(tls.cert === undefined ? {} : { cert: tls.cert }),
        ...(tls.key === undefined ? {} : { key: tls.key }),
        ...(tls.minVersion === undefined ? {} : { minVersion: tls.minVersion }),
        ...(tls.maxVersion === undefined ? {} : { maxVersion: tls.maxVersion }),
      },
      (response) => {
        const chunks: Array<Buffer> = []
        response.on("data", (chunk: Buffer) => chunks.push(chunk))
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            headers: response.headers,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        )
        response.on("error", reject)
      },
    )
    request.on("error", reject)
    request.end()
  })

/** The error a refused request fails with: its `code` and message. */
export const refusal = (promise: Promise<Reply>): Promise<string> =>
  promise.then(
    (reply) => {
      throw new Error(`expected the connection to be refused, got HTTP ${reply.status}`)
    },
    (error: NodeJS.ErrnoException) => `${error.code ?? "no code"}: ${error.message}`,
  )
