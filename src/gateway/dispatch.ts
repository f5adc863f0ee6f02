/**
 * Dispatch, plain Node: each request of an admitted connection goes to the sidecar's own app
 * (its paths) or to the proxy (everything else), one exchange at a time per connection
 * (pipeline.ts). One close listener per exchange records it: metrics, access log, pipeline.
 *
 * Nothing a client sends may end the process: a throw answers 502, or ends the connection if the
 * answer has started, and is logged.
 */
import type { IncomingMessage, Server, ServerResponse } from "node:http"
import type { Http2Server, Http2ServerRequest, Http2ServerResponse } from "node:http2"
import type { Duplex } from "node:stream"
import type { LineLog } from "../log/LineLog.ts"
import type { Recorder, RouteClass } from "../metrics/Metrics.ts"
import type { AppProxy } from "../proxy/Forwarder.ts"
import { errorBody, SECURITY_HEADERS } from "../server/responses.ts"
import { pathOf, type SidecarPaths } from "../server/SidecarPaths.ts"
import * as Exchange from "./exchange.ts"
import * as Peer from "./Peer.ts"
import * as Pipeline from "./pipeline.ts"
import { rateLimited } from "./rateLimited.ts"

/** A Node request handler, as the sidecar's Effect app is run (see server/SidecarApp.ts). */
export type Handler = (request: IncomingMessage, response: ServerResponse) => void

export interface DispatchOptions {
  /** MAX_HEADER_SIZE, which HTTP/2 requests are checked against here. */
  readonly maxHeaderSize: number
  readonly paths: SidecarPaths
  readonly app: Handler
  readonly proxy: AppProxy
  readonly log: LineLog
  readonly metrics: Recorder
  /** True from the start of a drain: answers from then on close their connection. */
  readonly draining: () => boolean
}

const securityHeaders = Object.entries(SECURITY_HEADERS)

const ignore = () => {}

/** How many Host fields the request carries: RFC 9112 §3.2 asks for 400 on more than one. */
const hostCount = (rawHeaders: ReadonlyArray<string>): number => {
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 4 && name.toLowerCase() === "host") count++
  }
  return count
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
}

/**
 * The sidecar's own error answer; on HTTP/1.1, 400, 431 and 502 also close the connection (HTTP/2
 * has no `Connection`: the stream ends, the connection goes on).
 */
const refuse = (
  request: IncomingMessage,
  response: ServerResponse,
  status: 400 | 403 | 431 | 502,
  detail: string,
) => {
  const { contentType, body } = errorBody(request.headers.accept, status, TITLES[status] ?? "", detail)
  response.writeHead(status, {
    ...SECURITY_HEADERS,
    "content-type": contentType,
    "content-length": Buffer.byteLength(body),
    ...(status === 403 || Exchange.isHttp2(request) ? {} : { connection: "close" }),
  })
  response.end(body)
}

/**
 * What an HTTP/2 request must pass before dispatch, that Node does not check: Host and
 * `:authority` agree (RFC 9113 §8.3.1), and the header block stays within MAX_HEADER_SIZE (the
 * SETTINGS limit binds only once the client has acknowledged it).
 */
const http2Problem = (
  request: IncomingMessage,
  maxHeaderSize: number,
): readonly [400 | 431, string] | undefined => {
  const raw = request.rawHeaders
  let size = 0
  let authority: string | undefined
  let host: string | undefined
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as string
    const value = raw[i + 1] as string
    // HPACK's accounting (RFC 7541 §4.1): name, value and 32 octets per field.
    size += name.length + value.length + 32
    if (name === ":authority") authority = value
    else if (name === "host") host = value
  }
  if (size > maxHeaderSize)
    return [431, `The request's header fields are larger than ${maxHeaderSize} bytes.`]
  if (authority !== undefined && host !== undefined && authority !== host)
    return [400, "Host and :authority differ."]
  return undefined
}

/** After a throw: a 502 if nothing was sent yet, else the connection ends (a truncated answer shows). */
const abort = (request: IncomingMessage, response: ServerResponse) => {
  // On HTTP/2, only a reset with an error code shows the client that the answer is truncated.
  if (response.headersSent || response.destroyed) return void response.destroy(new Error("aborted"))
  try {
    refuse(request, response, 502, "The sidecar could not handle this request.")
  } catch {
    response.destroy()
  }
}

const refuseUpgrade = (socket: Duplex, status: number, title: string) =>
  socket.end(`HTTP/1.1 ${status} ${title}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)

const causeOf = (error: unknown) => (error instanceof Error ? (error.stack ?? error.message) : String(error))

/**
 * Installs the request, checkContinue and upgrade handlers on `server`, and the request,
 * checkContinue and connect handlers on the HTTP/2 server once it exists; returns their remover.
 */
export const install = (
  server: Server,
  whenHttp2: (attach: (h2: Http2Server) => void) => void,
  options: DispatchOptions,
): (() => void) => {
  const { paths, app, proxy, log, metrics, draining } = options
  const forwarding = proxy.port !== undefined
  const accessLog = log.enabled("info")

  const route = (peer: Peer.Peer, url: string): RouteClass =>
    peer.denied !== undefined ? "denied" : !forwarding || paths.owns(url) ? "sidecar" : "app"

  const failed = (request: IncomingMessage, error: unknown) =>
    log.write("error", "request failed", {
      method: request.method ?? "",
      path: pathOf(request.url ?? ""),
      cause: causeOf(error),
    })

  /** The exchange's one close listener (shared: `this` is the response). */
  function onClose(this: ServerResponse) {
    const exchange = Exchange.of(this)
    if (exchange !== undefined) {
      const status = this.headersSent ? this.statusCode : 0
      const elapsed = performance.now() - exchange.started
      metrics.request(exchange.route, status, elapsed / 1000)
      if (exchange.route === "app") {
        // The client went away first: stop the app's side too.
        const { upstream, answer } = exchange
        if (upstream !== undefined && !upstream.destroyed && (answer === undefined || !answer.complete)) {
          upstream.destroy()
        }
        metrics.bytes(exchange.bytesIn, exchange.bytesOut)
      }
      if (accessLog) {
        // One object, no spreads: this runs for every request.
        const line: Record<string, unknown> = {
          method: exchange.method,
          path: pathOf(exchange.url),
          status,
        }
        if (exchange.route === "app") {
          line.bytesIn = exchange.bytesIn
          line.bytesOut = exchange.bytesOut
        } else {
          line.route = exchange.route
        }
        line.protocol = exchange.http2 ? "h2" : "http/1.1"
        line.durationMs = Math.round(elapsed)
        line.client = exchange.peer.certificate.commonName ?? ""
        // After a client's reset, an HTTP/2 response is `writableFinished` but not `writableEnded`.
        if (!this.writableFinished || !this.writableEnded) line.aborted = true
        log.write("info", exchange.route === "app" ? "proxied" : "served", line)
      }
    }
    Pipeline.finished(this)
  }

  const dispatch = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
    const peer = Peer.of(request.socket)
    // A connection that was not admitted (a refused resumption whose request OpenSSL read with the
    // handshake): its requests are dropped.
    if (peer === undefined) return void response.destroy()
    const exchange = new Exchange.Exchange(request, response, peer, route(peer, request.url ?? ""))
    Exchange.attach(response, exchange)
    // HTTP/2 has no `Connection`; its drain is the session's GOAWAY (drain.ts).
    if (draining() && !exchange.http2) response.setHeader("connection", "close")
    // A denied client is answered 403 at once, not invited to send its body.
    if (peer.denied !== undefined) return refuse(request, response, 403, peer.denied)
    if (hostCount(request.rawHeaders) > 1) return refuse(request, response, 400, "More than one Host header.")
    const problem = exchange.http2 ? http2Problem(request, options.maxHeaderSize) : undefined
    if (problem !== undefined) return refuse(request, response, problem[0], problem[1])
    if (expectsContinue) response.writeContinue()
    if (exchange.route === "app") return proxy.web(request, response, exchange)
    // HEAD is GET without a body: Node's response already knows it answers a HEAD.
    if (request.method === "HEAD") request.method = "GET"
    // The sidecar's own responses, API included; a page may still set a stricter CSP of its own.
    for (const [name, value] of securityHeaders) response.setHeader(name, value)
    app(request, response)
  }

  const run = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
    try {
      dispatch(request, response, expectsContinue)
    } catch (error) {
      failed(request, error)
      abort(request, response)
    }
  }

  const tooDeep = rateLimited(60_000)
  const admit = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
    response.on("close", onClose)
    // HTTP/2 streams are concurrent by design (bounded by SETTINGS_MAX_CONCURRENT_STREAMS): the
    // pipeline, which would serialize every stream of the shared socket, is HTTP/1.1's.
    if (Exchange.isHttp2(request)) return run(request, response, expectsContinue)
    if (!Pipeline.serialize(request, response, expectsContinue, run)) {
      tooDeep("pipeline", (count) =>
        log.write("warn", "connection closed: too many pipelined requests", {
          count: String(count),
          remote: request.socket.remoteAddress ?? "",
        }),
      )
    }
  }
  const onRequest = (request: IncomingMessage, response: ServerResponse) => admit(request, response, false)
  // `Expect: 100-continue`: the sidecar says continue itself, for its paths and the app's.
  const onCheckContinue = (request: IncomingMessage, response: ServerResponse) =>
    admit(request, response, true)

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    // Node drops its own error listener before this event: without one, a reset would end the process.
    socket.on("error", ignore)
    try {
      const peer = Peer.of(socket)
      if (peer === undefined) return void socket.destroy()
      if (peer.denied !== undefined) return refuseUpgrade(socket, 403, "Forbidden")
      if (hostCount(request.rawHeaders) > 1) return refuseUpgrade(socket, 400, "Bad Request")
      if (!forwarding || paths.owns(request.url ?? "")) return refuseUpgrade(socket, 404, "Not Found")
      proxy.ws(request, socket, head, peer)
    } catch (error) {
      failed(request, error)
      socket.destroy()
    }
  }

  server.on("request", onRequest)
  server.on("checkContinue", onCheckContinue)
  server.on("upgrade", onUpgrade)
  // Node's compatibility objects for HTTP/2 streams offer what dispatch and the proxy use of
  // IncomingMessage and ServerResponse (docs/design/http2.md §3); hence the one cast, here.
  const h2Request = onRequest as unknown as (
    request: Http2ServerRequest,
    response: Http2ServerResponse,
  ) => void
  const h2Continue = onCheckContinue as unknown as (
    request: Http2ServerRequest,
    response: Http2ServerResponse,
  ) => void
  // RFC 8441: a WebSocket over an HTTP/2 stream (extended CONNECT, `:protocol: websocket`).
  const onConnect = (request: Http2ServerRequest, response: Http2ServerResponse) => {
    const refuseStream = (status: number) => {
      response.writeHead(status)
      response.end()
    }
    try {
      const peer = Peer.of(request.socket)
      if (peer === undefined) return void response.stream.close()
      if (peer.denied !== undefined) return refuseStream(403)
      if (request.headers[":protocol"] !== "websocket") return refuseStream(405)
      if (!forwarding || paths.owns(request.url ?? "")) return refuseStream(404)
      proxy.wsHttp2(request, response, peer)
    } catch (error) {
      failed(request as unknown as IncomingMessage, error)
      response.stream.close(2)
    }
  }
  let h2: Http2Server | undefined
  whenHttp2((server) => {
    h2 = server
    server.on("request", h2Request)
    server.on("checkContinue", h2Continue)
    server.on("connect", onConnect)
  })
  return () => {
    server.off("request", onRequest)
    server.off("checkContinue", onCheckContinue)
    server.off("upgrade", onUpgrade)
    h2?.off("request", h2Request)
    h2?.off("checkContinue", h2Continue)
    h2?.off("connect", onConnect)
  }
}
