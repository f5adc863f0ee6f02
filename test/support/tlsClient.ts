/** Low-level mTLS clients: raw HTTP/1.1 over a TLS socket (no client-side normalization) and WebSockets. */
import * as tls from "node:tls"
import WebSocket from "ws"
import type { Issued } from "../../src/dev/DevPki.ts"
import type { Fixtures } from "./fixtures.ts"

/** A client certificate and its key: the fixtures' client unless a test brings its own. */
export type Who = Pick<Issued, "certPem" | "keyPem">

export interface RawReply {
  readonly status: number
  readonly head: string
  readonly body: string
}

/** Sends `request` verbatim and reads until the server closes (send `Connection: close`). */
export const rawRequest = (
  url: string,
  pki: Fixtures,
  request: string,
  who: Who = pki.client,
): Promise<RawReply> =>
  new Promise((resolve, reject) => {
    const { hostname, port } = new URL(url)
    const socket = tls.connect({
      host: hostname,
      port: Number(port),
      cert: who.certPem,
      key: who.keyPem,
      ca: pki.ca.certPem,
      servername: "localhost",
    })
    const chunks: Array<Buffer> = []
    socket.on("secureConnect", () => socket.write(request))
    socket.on("data", (chunk: Buffer) => chunks.push(chunk))
    socket.on("error", reject)
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8")
      const split = text.indexOf("\r\n\r\n")
      const head = split === -1 ? text : text.slice(0, split)
      resolve({
        status: Number(head.split(" ")[1] ?? 0),
        head,
        body: split === -1 ? "" : text.slice(split + 4),
      })
    })
  })

/** A raw GET with `Connection: close`, whose body the test backend answers as JSON. */
export const rawGet = (
  url: string,
  pki: Fixtures,
  target: string,
  headers: ReadonlyArray<string> = [],
  who: Who = pki.client,
) =>
  rawRequest(
    url,
    pki,
    [`GET ${target} HTTP/1.1`, "Host: app.example", ...headers, "Connection: close", "", ""].join("\r\n"),
    who,
  )

/** Decodes a chunked body (the app answers JSON in chunks through the proxy). */
export const dechunk = (body: string): string => {
  let out = ""
  let rest = body
  for (;;) {
    const line = rest.indexOf("\r\n")
    if (line === -1) return out + rest
    const size = Number.parseInt(rest.slice(0, line), 16)
    if (Number.isNaN(size)) return body
    if (size === 0) return out
    out += rest.slice(line + 2, line + 2 + size)
    rest = rest.slice(line + 2 + size + 2)
  }
}

export const openWebSocket = (
  url: string,
  pki: Fixtures,
  path = "/ws",
  who: Who = pki.client,
): Promise<WebSocket> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^https:/, "wss:")}${path}`, [], {
      cert: who.certPem,
      key: who.keyPem,
      ca: pki.ca.certPem,
    })
    socket.once("open", () => resolve(socket))
    socket.once("error", reject)
    socket.once("unexpected-response", (_request, response) =>
      reject(new Error(`unexpected response ${response.statusCode}`)),
    )
  })

/** The next message, with its type. */
export const nextMessage = (
  socket: WebSocket,
): Promise<{ readonly data: Buffer; readonly isBinary: boolean }> =>
  new Promise((resolve, reject) => {
    socket.once("message", (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }))
    socket.once("error", reject)
  })

/**
 * One mTLS connection that sends `GET <path>` and reads until the server closes: the TLS session it
 * received (to resume with), whether it resumed `session`, and the status (0: closed unanswered).
 */
export const sessionRequest = (
  url: string,
  pki: Fixtures,
  path: string,
  who: Who = pki.client,
  session?: Buffer,
): Promise<{ readonly session: Buffer | undefined; readonly resumed: boolean; readonly status: number }> =>
  new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: "127.0.0.1",
      port: Number(new URL(url).port),
      cert: who.certPem,
      key: who.keyPem,
      ca: pki.ca.certPem,
      servername: "localhost",
      ...(session === undefined ? {} : { session }),
    })
    let ticket: Buffer | undefined
    let text = ""
    socket.on("session", (s: Buffer) => {
      ticket = s
    })
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1")
    })
    socket.once("secureConnect", () => {
      const resumed = socket.isSessionReused()
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
      socket.once("close", () =>
        resolve({ session: ticket, resumed, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0) }),
      )
    })
    socket.on("error", (error: NodeJS.ErrnoException) =>
      error.code === "ECONNRESET" ? undefined : reject(error),
    )
  })
