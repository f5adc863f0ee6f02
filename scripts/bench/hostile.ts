/**
 * Hostile clients for `make bench` (issue 10's findings 4 and 5, and the pipelining flood), run
 * against a freshly started front so that the earlier load does not blur its memory:
 *
 * - stalled readers: N clients ask for a 1 GiB download and never read; the memory the front adds
 *   once everything is held back, and how long a well-behaved request takes meanwhile;
 * - idle TCP connections: N connections that never start TLS, then a well-behaved request;
 * - a pipelining client: 1000 GETs in one write, never read; the memory the front adds and the
 *   connections it opens to the app.
 *
 * Figures for the record; nothing is asserted here (the tests do).
 */
import { execFileSync } from "node:child_process"
import * as https from "node:https"
import * as net from "node:net"
import * as tls from "node:tls"
import { rssMiB } from "./proc.ts"

export interface ClientTls {
  readonly ca: string
  readonly cert: string
  readonly key: string
}

export interface HostileResult {
  readonly stalled: { readonly clients: number; readonly addedMiB: number; readonly requestMs: number }
  readonly idleTcp: { readonly connections: number; readonly requestMs: number }
  readonly pipelined: {
    readonly requests: number
    readonly addedMiB: number
    readonly appConnections: number
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** One well-behaved request on a new connection: its status and duration (0 when refused). */
const timedGet = (port: number, client: ClientTls, path: string) =>
  new Promise<{ readonly status: number; readonly ms: number }>((resolve) => {
    const t0 = performance.now()
    https
      .get(
        `https://127.0.0.1:${port}${path}`,
        { agent: false, servername: "localhost", ...client },
        (res) => {
          res.resume()
          res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }))
        },
      )
      .on("error", () => resolve({ status: 0, ms: performance.now() - t0 }))
  })

/** Until the front's memory stops growing (3 readings within 0.5 MiB, 200 ms apart), at most 10 s. */
const settled = async (pid: number): Promise<number> => {
  let highest = rssMiB(pid)
  for (let steady = 0, i = 0; steady < 3 && i < 50; i++) {
    await sleep(200)
    const now = rssMiB(pid)
    steady = Math.abs(now - highest) < 0.5 ? steady + 1 : 0
    highest = Math.max(highest, now)
  }
  return highest
}

const established = (port: number): number => {
  try {
    const out = execFileSync("ss", ["-Htn", "state", "established", `( dport = :${port} )`], {
      encoding: "utf8",
    })
    return out.split("\n").filter((line) => line.trim().length > 0).length
  } catch {
    return Number.NaN
  }
}

export const runHostile = async (
  front: { readonly port: number; readonly pid: number },
  client: ClientTls,
  backendPort: number,
  smallPath: string,
): Promise<HostileResult> => {
  const { port, pid } = front
  const sockets: Array<net.Socket> = []
  const closeAll = async () => {
    for (const socket of sockets.splice(0)) socket.destroy()
    await sleep(500)
  }

  // Stalled readers, opened 30 at a time (a burst larger than the handshake budget is another test).
  const clients = 60
  const before = rssMiB(pid)
  for (let i = 0; i < clients; i++) {
    if (i % 30 === 0) await sleep(200)
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...client })
    socket.on("error", () => {})
    socket.once("secureConnect", () => {
      socket.write(`GET /download?bytes=${1024 ** 3} HTTP/1.1\r\nHost: bench\r\n\r\n`)
      socket.pause()
    })
    sockets.push(socket)
  }
  await sleep(1500)
  const stalledRss = await settled(pid)
  const stalledRequest = await timedGet(port, client, smallPath)
  await closeAll()

  // Idle TCP connections that never start TLS.
  const connections = 200
  await Promise.all(
    Array.from({ length: connections }, () => {
      const socket = net.connect({ host: "127.0.0.1", port })
      socket.on("error", () => {})
      sockets.push(socket)
      return new Promise<void>((resolve) => socket.once("connect", () => resolve()))
    }),
  )
  await sleep(200)
  const idleRequest = await timedGet(port, client, smallPath)
  await closeAll()

  // One client pipelining 1000 GETs of 1 MiB in one write, never reading.
  const requests = 1000
  const beforePipeline = rssMiB(pid)
  const pipelining = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...client })
  pipelining.on("error", () => {})
  pipelining.once("secureConnect", () => {
    pipelining.write(`GET /download?bytes=${1024 ** 2} HTTP/1.1\r\nHost: bench\r\n\r\n`.repeat(requests))
    pipelining.pause()
  })
  sockets.push(pipelining)
  await sleep(1000)
  const pipelinedRss = await settled(pid)
  const appConnections = established(backendPort)
  await closeAll()

  return {
    stalled: {
      clients,
      addedMiB: stalledRss - before,
      requestMs: stalledRequest.status === 200 ? stalledRequest.ms : Number.NaN,
    },
    idleTcp: { connections, requestMs: idleRequest.status === 200 ? idleRequest.ms : Number.NaN },
    pipelined: { requests, addedMiB: pipelinedRss - beforePipeline, appConnections },
  }
}
