/**
 * Drain, the one owner of shutdown for the listener: stop accepting, close idle keep-alive
 * connections as they turn idle (answers from now on carry `Connection: close`, see dispatch),
 * close proxied WebSockets with 1001, and cut whatever is still open after the grace period.
 */
import type { Server } from "node:https"

export const start = (server: Server, graceMs: number, goAway: () => void): void => {
  server.close()
  server.closeIdleConnections()
  // Node closes idle connections once, at close(); in-flight ones turn idle later.
  const idle = setInterval(() => server.closeIdleConnections(), 100)
  const cut = setTimeout(() => server.closeAllConnections(), graceMs)
  server.once("close", () => {
    clearInterval(idle)
    clearTimeout(cut)
  })
  // Proxied WebSockets would not end by themselves.
  goAway()
}
