/**
 * One record per request/response exchange, made at dispatch and read once, when the response
 * closes: by the metrics, the access log and the proxy's clean-up. It lives on the response
 * object, as the peer record lives on the socket, so the exchange needs one shared close listener
 * and no closure.
 */
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http"
import type { RouteClass } from "../metrics/Metrics.ts"
import type { Peer } from "./Peer.ts"

export class Exchange {
  /** Body bytes from the client to the app, and from the app to the client. */
  bytesIn = 0
  bytesOut = 0
  /** The request to the app, once sent; its answer, once it started; the app's deadline to answer. */
  upstream: ClientRequest | undefined = undefined
  answer: IncomingMessage | undefined = undefined
  timer: ReturnType<typeof setTimeout> | undefined = undefined

  readonly request: IncomingMessage
  readonly response: ServerResponse
  /** On an HTTP/2 stream (Node's compatibility objects), not an HTTP/1.1 connection. */
  readonly http2: boolean
  readonly peer: Peer
  readonly route: RouteClass
  /** As received (dispatch may rewrite a HEAD for the sidecar's app). */
  readonly method: string
  readonly url: string
  readonly started: number

  constructor(request: IncomingMessage, response: ServerResponse, peer: Peer, route: RouteClass) {
    this.request = request
    this.response = response
    this.http2 = isHttp2(request)
    this.peer = peer
    this.route = route
    this.method = request.method ?? ""
    this.url = request.url ?? ""
    this.started = performance.now()
  }
}

/** A request on an HTTP/2 stream (Node's compatibility request), not on an HTTP/1.1 connection. */
export const isHttp2 = (request: IncomingMessage): boolean => request.httpVersionMajor === 2

const EXCHANGE: unique symbol = Symbol("coco-secure-access/exchange")
type WithExchange = { [EXCHANGE]?: Exchange }

export const attach = (response: ServerResponse, exchange: Exchange): void => {
  ;(response as WithExchange)[EXCHANGE] = exchange
}

/** The exchange of a response; undefined for a response that never started (a queued pipelined one). */
export const of = (response: ServerResponse): Exchange | undefined => (response as WithExchange)[EXCHANGE]
