/** Spike 5g: maxSessionMemory (MB, default 10) and maxSessionRejectedStreams (default 100): 5000 open /hang
 * streams with the concurrency setting unlimited, then with maxSessionMemory 1. */
import { sleep } from "./common.ts"
import { connect, F, frame, hpack, requestBlock, summary, T } from "./h2raw.ts"
import { startVictim } from "./victimctl.ts"
for (const h2 of [{}, { maxSessionMemory: 1 }, { maxSessionMemory: 1, maxSessionRejectedStreams: 10000 }]) {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  while (seen.settingsAcks === 0) await sleep(5)
  const block = requestBlock("/hang", [hpack.literal("x-pad", "p".repeat(2000))])
  const all: Buffer[] = []
  for (let i = 0, id = 1; i < 5000; i++, id += 2) all.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, id, block))
  socket.write(Buffer.concat(all))
  await Promise.race([closed, sleep(2000)])
  const s = await v.stats()
  console.log(`${JSON.stringify(h2)}: 5000 open streams with 2 KB headers: ${summary(seen)}; server requests=${s.requests} rssMiB=${s.rssMiB} sessionErrors=${JSON.stringify(s.sessionErrors)}`)
  v.child.kill()
}
process.exit(0)
