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
import type { ServerResponse } from "node:http"

export const MAX_WAITING = 32

interface Line {
  active: boolean
  readonly waiting: Array<() => void>
}

// On the socket, like the peer record: no map to clean up.
const LINE: unique symbol = Symbol("coco-secure-access/pipeline")
type WithLine = { [LINE]?: Line }

/**
 * Runs `exchange` now if the connection has no exchange in progress, else after the ones before it.
 * Returns false, having closed the connection, when too many are already waiting.
 */
export const serialize = (
  socket: object & { destroy(): void },
  response: ServerResponse,
  exchange: () => void,
) => {
  const holder = socket as WithLine
  let line = holder[LINE]
  if (line === undefined) {
    line = { active: false, waiting: [] }
    holder[LINE] = line
  }
  const current = line
  const start = () => {
    // The client went away while this one waited: on to the next (which finds the same).
    if (response.destroyed) return void current.waiting.shift()?.()
    current.active = true
    response.once("close", () => {
      current.active = false
      current.waiting.shift()?.()
    })
    exchange()
  }
  if (!current.active) {
    start()
    return true
  }
  if (current.waiting.length >= MAX_WAITING) {
    current.waiting.length = 0
    socket.destroy()
    return false
  }
  current.waiting.push(start)
  return true
}
