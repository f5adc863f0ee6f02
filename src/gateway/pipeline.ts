/**
 * HTTP/1.1 pipelining, one exchange at a time per connection, as nginx and Envoy forward it.
 *
 * Node's server emits every pipelined request as soon as it is parsed: 1000 GETs in one 55 KB
 * write would become 1000 concurrent requests to the app, each buffering its answer until the
 * ones before it are sent (measured: one such client took the sidecar from 74 to 371 MiB). Here a
 * request waits until the previous exchange on its connection has closed; answers go out in order
 * anyway, so a pipelining client loses nothing but the fan-out. A connection with more than
 * `MAX_WAITING` requests queued behind an unfinished one is closed: no client reads that far ahead.
 */
import type { IncomingMessage, ServerResponse } from "node:http"

export const MAX_WAITING = 32

type Exchange = (request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => void

interface Line {
  /** The response of the exchange in progress. */
  current: ServerResponse | undefined
  readonly waiting: Array<readonly [IncomingMessage, ServerResponse, boolean]>
  readonly exchange: Exchange
}

// On the socket, like the peer record: no map to clean up.
const LINE: unique symbol = Symbol("coco-secure-access/pipeline")
type WithLine = { [LINE]?: Line }

/**
 * To be called when a response closes (by the exchange's one close listener): if it was the one in
 * progress on its connection, the next waiting one starts, if any.
 */
export const finished = (response: ServerResponse): void => {
  const line = (response.req.socket as WithLine | null)?.[LINE]
  if (line === undefined || line.current !== response) return
  line.current = undefined
  for (let next = line.waiting.shift(); next !== undefined; next = line.waiting.shift()) {
    const [request, waiting, expectsContinue] = next
    // The client went away while this one waited: on to the next (which finds the same).
    if (waiting.destroyed) continue
    start(line, request, waiting, expectsContinue)
    return
  }
}

const start = (line: Line, request: IncomingMessage, response: ServerResponse, expectsContinue: boolean) => {
  line.current = response
  line.exchange(request, response, expectsContinue)
}

/**
 * Runs `exchange` now if the connection has no exchange in progress, else after the ones before it
 * (see `finished`).
 * Returns false, having closed the connection, when too many are already waiting.
 */
export const serialize = (
  request: IncomingMessage,
  response: ServerResponse,
  expectsContinue: boolean,
  exchange: Exchange,
): boolean => {
  const socket = request.socket as typeof request.socket & WithLine
  let line = socket[LINE]
  if (line === undefined) {
    line = { current: undefined, waiting: [], exchange }
    socket[LINE] = line
  }
  if (line.current === undefined) {
    start(line, request, response, expectsContinue)
    return true
  }
  if (line.waiting.length >= MAX_WAITING) {
    line.waiting.length = 0
    socket.destroy()
    return false
  }
  line.waiting.push([request, response, expectsContinue])
  return true
}
