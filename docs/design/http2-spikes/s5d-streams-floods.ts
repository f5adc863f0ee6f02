/**
 * Spike 5d: too many concurrent streams, PING and SETTINGS floods (client not reading), a SETTINGS
 * frame with many entries, MadeYouReset (WINDOW_UPDATE 0 on open streams), invalid frames.
 */
import { sleep } from "./common.ts"
import { connect, F, frame, ping, requestBlock, settings, summary, T, windowUpdate } from "./h2raw.ts"
import { goodClient, startVictim } from "./victimctl.ts"

const report = async (label: string, v: any, seen: any, extra = "") => {
  const s = await v.stats()
  console.log(`${label}: client saw ${summary(seen)}${extra}`)
  console.log(`   server: requests=${s.requests} sessionErrors=${JSON.stringify(s.sessionErrors)} frameErrors=${s.frameErrors} rssMiB=${s.rssMiB} cpuMs=${s.cpuMs}; good client after: ${await goodClient(v.port)}`)
}
const streams = async (label: string, h2: object, n: number, waitAck: boolean) => {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  if (waitAck) while (seen.settingsAcks === 0) await sleep(5)
  const block = requestBlock("/hang")
  const all: Buffer[] = []
  for (let i = 0, id = 1; i < n; i++, id += 2) all.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, block))
  socket.write(Buffer.concat(all))
  await Promise.race([closed, sleep(1500)])
  await report(`${label}${waitAck ? " [after SETTINGS exchange]" : " [sent at once]"}`, v, seen)
  v.child.kill()
}
await streams("5000 streams, defaults", {}, 5000, true)
await streams("500 streams, settings.maxConcurrentStreams 100", { settings: { maxConcurrentStreams: 100 } }, 500, false)
await streams("500 streams, settings.maxConcurrentStreams 100", { settings: { maxConcurrentStreams: 100 } }, 500, true)
await streams("150 streams, settings.maxConcurrentStreams 100", { settings: { maxConcurrentStreams: 100 } }, 150, true)

const flood = async (label: string, h2: object, make: (i: number) => Buffer, read: boolean) => {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  if (!read) socket.pause()
  let sent = 0
  const t0 = Date.now()
  while (sent < 200000 && seen.closedMs === undefined && !socket.destroyed && Date.now() - t0 < 8000) {
    const batch: Buffer[] = []
    for (let i = 0; i < 1000; i++, sent++) batch.push(make(sent))
    if (!socket.write(Buffer.concat(batch))) await Promise.race([new Promise((r) => socket.once("drain", r)), closed, sleep(1000)])
    else await new Promise((r) => setImmediate(r))
  }
  const s = await v.stats()
  socket.resume()
  await Promise.race([closed, sleep(1000)])
  await report(`${label} (${read ? "client reads" : "client never reads"})`, v, seen, `; frames sent=${sent} in ${Date.now() - t0} ms; server rss during=${s.rssMiB} MiB`)
  v.child.kill()
}
await flood("PING flood", {}, (i) => ping(i), false)
await flood("PING flood", {}, (i) => ping(i), true)
await flood("SETTINGS flood (empty frames)", {}, () => settings(), false)
await flood("SETTINGS flood (empty frames)", { maxOutstandingSettings: 10 }, () => settings(), true)

// One SETTINGS frame with 100 entries (maxSettings defaults to 32)
{
  const v = await startVictim({ h2: {} })
  const { socket, seen, closed } = await connect(v.port)
  socket.write(settings(Array.from({ length: 100 }, () => [4, 65535] as [number, number])))
  await Promise.race([closed, sleep(800)])
  await report("SETTINGS frame with 100 entries", v, seen)
  v.child.kill()
}
// MadeYouReset: a full GET of /proxy, then WINDOW_UPDATE 0 on it (the server must reset the stream).
{
  const v = await startVictim({ h2: {} })
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  const block = requestBlock("/proxy")
  let n = 0
  for (let id = 1; n < 20000 && seen.closedMs === undefined; ) {
    const batch: Buffer[] = []
    for (let i = 0; i < 100; i++, n++, id += 2) batch.push(frame(T.HEADERS, F.END_HEADERS, id, block), windowUpdate(id, 0))
    socket.write(Buffer.concat(batch)); await new Promise((r) => setImmediate(r))
  }
  await Promise.race([closed, sleep(2000)])
  const s = await v.stats()
  await report(`MadeYouReset (HEADERS + WINDOW_UPDATE 0), ${n} streams`, v, seen, `; appRequests=${s.appRequests}`)
  v.child.kill()
}
// Invalid frames: DATA on a stream that never opened (even id, client-initiated ids are odd)
{
  const v = await startVictim({ h2: {} })
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  const bad: Buffer[] = []
  for (let i = 0; i < 5000; i++) bad.push(frame(T.WINDOW_UPDATE, 0, 0, Buffer.alloc(3)))
  socket.write(Buffer.concat(bad))
  await Promise.race([closed, sleep(1000)])
  await report("5000 malformed WINDOW_UPDATE frames (3-byte payload)", v, seen)
  v.child.kill()
}
process.exit(0)
