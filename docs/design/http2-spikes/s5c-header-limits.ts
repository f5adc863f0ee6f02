/**
 * Spike 5c: header limits that matter. settings.maxHeaderListSize (Node's default advertises
 * 4294967295), before and after the client acknowledges the server's SETTINGS; an HPACK bomb within
 * maxHeaderListPairs; how many CONTINUATION frames a header block may have.
 */
import { sleep } from "./common.ts"
import { connect, F, frame, hpack, requestBlock, summary, T } from "./h2raw.ts"
import { startVictim } from "./victimctl.ts"

const run = async (label: string, h2: object, frames: Buffer[], waitAck: boolean) => {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  if (waitAck) { while (seen.settingsAcks === 0) await sleep(5); await sleep(20) }
  for (const f of frames) socket.write(f)
  await Promise.race([closed, sleep(800)])
  const s = await v.stats()
  console.log(`${label}${waitAck ? " [after SETTINGS exchange]" : " [sent at once]"}: ${summary(seen)}; server requests=${s.requests} rssMiB=${s.rssMiB}`)
  v.child.kill()
}
const block = (extra: Buffer[]) => Buffer.concat([requestBlock("/"), ...extra])
const split = (blk: Buffer, size = 16384) => {
  const parts: Buffer[] = []
  for (let off = 0, first = true; off < blk.length; off += size, first = false) {
    const last = off + size >= blk.length
    parts.push(frame(first ? T.HEADERS : T.CONTINUATION, (first ? F.END_STREAM : 0) | (last ? F.END_HEADERS : 0), 1, blk.subarray(off, off + size)))
  }
  return parts
}
const hundredKB = split(block(Array.from({ length: 100 }, (_, i) => hpack.literal(`x-big${i}`, "c".repeat(1000)))))
const limited = { settings: { maxHeaderListSize: 16384 } }
for (const ack of [false, true]) {
  await run("100 KB header list, defaults", {}, hundredKB, ack)
  await run("100 KB header list, settings.maxHeaderListSize 16384", limited, hundredKB, ack)
}
// HPACK bomb within 128 pairs: 120 references to a 4000-byte entry = ~470 KB decoded from ~1.2 KB.
const put = hpack.literalIncremental("x-bomb", "b".repeat(4000))
const bomb = [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, block([put, ...Array.from({ length: 120 }, () => hpack.indexed(62))]))]
for (const ack of [false, true]) {
  await run("HPACK bomb 120 x 4 KB, defaults", {}, bomb, ack)
  await run("HPACK bomb 120 x 4 KB, settings.maxHeaderListSize 16384", limited, bomb, ack)
}
// How many CONTINUATION frames may follow a HEADERS? k small frames, then END_HEADERS.
for (const k of [7, 8, 9, 16]) {
  const frames = [frame(T.HEADERS, F.END_STREAM, 1, requestBlock("/"))]
  for (let i = 0; i < k; i++) frames.push(frame(T.CONTINUATION, i === k - 1 ? F.END_HEADERS : 0, 1, hpack.literal(`x-c${i}`, "v")))
  await run(`${k} CONTINUATION frames then END_HEADERS`, {}, [Buffer.concat(frames)], true)
}
process.exit(0)
