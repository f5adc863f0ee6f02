/**
 * Spike 5e: a client that never reads (flow-control windows and the TCP socket), and idle or
 * half-sent connections with and without a session timeout (h2.setTimeout).
 */
import { sleep } from "./common.ts"
import { connect, F, frame, hpack, ping, requestBlock, settings, summary, T, windowUpdate } from "./h2raw.ts"
import { startVictim } from "./victimctl.ts"

const MiB = (n: number) => (n / 1048576).toFixed(1)
const nonReader = async (label: string, h2: object, n: number, mode: "no-window-updates" | "huge-window-no-tcp-read", hwm?: number) => {
  const v = await startVictim({ h2, bigBytes: 512 * 1024 * 1024, limitBuffers: hwm === 16 })
  const before = await v.stats()
  const { socket, seen } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  if (mode === "huge-window-no-tcp-read") {
    socket.write(Buffer.concat([settings([[4, 2147483647]]), windowUpdate(0, 2147483647 - 65535)]))
    await sleep(50)
    socket.pause()
  }
  const block = requestBlock("/big")
  const all: Buffer[] = []
  for (let i = 0, id = 1; i < n; i++, id += 2) all.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, block))
  socket.write(Buffer.concat(all))
  await sleep(3000)
  const s = await v.stats()
  console.log(`${label}, ${n} streams of 512 MiB, ${mode}: handler produced ${MiB(s.bigProduced)} MiB in 3 s (client got ${MiB(seen.dataBytes)} MiB of DATA); server rss ${before.rssMiB} -> ${s.rssMiB} MiB`)
  socket.destroy(); v.child.kill()
}
await nonReader("defaults", {}, 1, "no-window-updates")
await nonReader("defaults", {}, 100, "no-window-updates")
await nonReader("defaults", {}, 1, "huge-window-no-tcp-read")
await nonReader("defaults", {}, 100, "huge-window-no-tcp-read")
await nonReader("16 KiB stream buffers (limitStreamBuffers)", {}, 100, "no-window-updates", 16)
await nonReader("16 KiB stream buffers (limitStreamBuffers)", {}, 100, "huge-window-no-tcp-read", 16)

// Upload side: the client sends DATA beyond the server's window (65535 per stream, 65535 connection).
{
  const v = await startVictim({ h2: {} })
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  socket.write(frame(T.HEADERS, F.END_HEADERS, 1, requestBlock("/hang", [], { method: 3 })))
  const chunk = Buffer.alloc(16384)
  for (let i = 0; i < 10; i++) socket.write(frame(T.DATA, 0, 1, chunk))
  await Promise.race([closed, sleep(800)])
  console.log(`upload past the window (10 x 16 KiB DATA, server never reads the body): ${summary(seen)}`)
  v.child.kill()
}

const idle = async (label: string, opts: object, act: (s: any) => void, waitMs = 7000) => {
  const v = await startVictim(opts)
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  act(socket)
  await Promise.race([closed, sleep(waitMs)])
  const s = await v.stats()
  console.log(`${label}: ${seen.closedMs === undefined ? `still open after ${waitMs} ms` : `closed after ${seen.closedMs} ms`} ${seen.goaway ? JSON.stringify(seen.goaway) : ""} timeouts=${s.timeouts}`)
  socket.destroy(); v.child.kill()
}
await idle("idle session, no timeout", {}, () => {})
await idle("idle session, h2.setTimeout(3000)", { timeout: 3000 }, () => {})
await idle("PING every 1 s, h2.setTimeout(3000)", { timeout: 3000 }, (s) => { const t = setInterval(() => s.destroyed ? clearInterval(t) : s.write(ping(1)), 1000) })
await idle("one /hang stream open (no answer), h2.setTimeout(3000)", { timeout: 3000 }, (s) => s.write(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock("/hang"))))
await idle("HEADERS without END_HEADERS, then silence, no timeout", {}, (s) => s.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/"))))
await idle("HEADERS without END_HEADERS, then silence, h2.setTimeout(3000)", { timeout: 3000 }, (s) => s.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/"))))
await idle("HEADERS without END_HEADERS, one CONTINUATION per 2 s, h2.setTimeout(3000)", { timeout: 3000 }, (s) => {
  s.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/")))
  let i = 0; const t = setInterval(() => (s.destroyed ? clearInterval(t) : s.write(frame(T.CONTINUATION, 0, 1, hpack.literal(`x-${i++}`, "v")))), 2000)
}, 12000)
await idle("HEADERS without END_HEADERS, then a PING", {}, (s) => { s.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/"))); setTimeout(() => s.write(ping(1)), 100) }, 2000)
process.exit(0)
