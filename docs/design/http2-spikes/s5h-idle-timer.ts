/**
 * Spike 5h: an idle timer of the sidecar's own instead of h2.setTimeout: it runs only while a session has no
 * open stream (as keepAliveTimeout runs only between HTTP/1.1 requests) and closes the session (GOAWAY).
 * Checks: idle session; quiet long request (must survive); header block never finished; PINGs while idle.
 */
import type * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { sleep } from "./common.ts"
import { connect, F, frame, ping, requestBlock, summary, T } from "./h2raw.ts"
import { make } from "./handoff.ts"

const IDLE = 2000
const { server, h2, route } = make()
server.on("secureConnection", route)
const watch = (session: http2.ServerHttp2Session) => {
  let open = 0
  // GOAWAY first; a session that still does not close (a header block never finished) is destroyed 1 s later.
  const idle = () => { session.close(); setTimeout(() => session.destroy(), 1000).unref() }
  let timer: NodeJS.Timeout | undefined = setTimeout(idle, IDLE)
  session.on("stream", (stream) => {
    open++; clearTimeout(timer); timer = undefined
    stream.once("close", () => { if (--open === 0 && !session.closed) timer = setTimeout(idle, IDLE) })
  })
  session.once("close", () => clearTimeout(timer))
}
h2.on("session", watch)
h2.on("request", (req: any, res: any) => { if (req.url === "/quiet") setTimeout(() => res.end("late"), 5000); else res.end("ok") })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const run = async (label: string, act: (s: any) => void, wait = 7000) => {
  const { socket, seen, closed } = await connect(port)
  while (seen.settingsAcks === 0) await sleep(5)
  act(socket)
  await Promise.race([closed, sleep(wait)])
  console.log(`${label}: ${seen.closedMs === undefined ? `open after ${wait} ms` : `closed after ${seen.closedMs} ms`}; ${summary(seen)}`)
  socket.destroy()
}
await run("idle session", () => {})
await run("PING every 500 ms while idle", (s) => { const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(ping(1))), 500) })
await run("one quiet request answered after 5 s", (s) => s.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock("/quiet"))), 9000)
await run("HEADERS without END_HEADERS, then silence", (s) => s.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/"))))
process.exit(0)
