/**
 * Drain, the one owner of shutdown for the listener: stop accepting, close idle keep-alive
 * connections as they turn idle (answers from now on carry `Connection: close`, see dispatch),
 * close proxied WebSockets with 1001, and cut whatever is still open after the grace period.
 */
import type { ServerHttp2Session } from "node:http2"
import type { Server } from "node:https"

export const start = (
  server: Server,
  sessions: ReadonlySet<ServerHttp2Session>,
  graceMs: number,
  goAway: () => void,
): void => {
  server.close()
  server.closeIdleConnections()
  // HTTP/2: GOAWAY; streams in flight finish. The https.Server's connection lists do not hold
  // these sockets, but its 'close' waits for them.
  for (const session of sessions) session.close()
  // Node closes idle connections once, at close(); in-flight ones turn idle later.
  const idle = setInterval(() => server.closeIdleConnections(), 100)
  const cut = setTimeout(() => {
    server.closeAllConnections()
    for (const session of sessions) session.destroy()
  }, graceMs)
  server.once("close", () => {
    clearInterval(idle)
    clearTimeout(cut)
  })
  // Proxied WebSockets would not end by themselves.
  goAway()
}
