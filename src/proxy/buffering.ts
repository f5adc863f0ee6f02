/**
 * Bounded buffering for proxied traffic: a client that stops reading holds a few small buffers in
 * the sidecar, whatever the size of the response, and the buffers that traffic leaves behind are
 * freed at once instead of piling up between garbage collections.
 *
 * - Streams buffer at most 16 KiB (Node's default is 64 KiB): request and response bodies, the
 *   client's TLS socket and the app's sockets. Node has no per-server option for the TLS sockets
 *   of an `https.Server`, hence the process-wide default.
 * - The app's sockets read at most 16 KiB at a time (Node reads 64 KiB; 16 KiB is one TLS record),
 *   into a buffer of their own (`net` `onread`), and stop reading as soon as they are paused: no
 *   chunk is read ahead into the socket once the client's side pushes back.
 * - Every read leaves a buffer that only a garbage collection frees. V8 counts those buffers as
 *   external memory and collects them late and expensively: with full mark-compacts, and only once
 *   they reach tens of MiB, and the memory freed so late stays with the process (malloc
 *   fragmentation). A young-generation collection every 2 MiB of read buffers frees them while they
 *   are young, in well under a millisecond, and spares V8 its full collections for them: bulk
 *   transfers get faster, not slower.
 */
import { createRequire } from "node:module"
import * as net from "node:net"
import type * as Stream from "node:stream"
import type * as V8 from "node:v8"
import type * as Vm from "node:vm"

// As CommonJS, like node:http in the Forwarder: no ES-module namespace evaluated for nothing.
const stream: typeof Stream = createRequire(import.meta.url)("node:stream")

export const STREAM_HIGH_WATER_MARK = 16 * 1024
export const READ_SIZE = 16 * 1024
export const COLLECT_EVERY = 2 * 1024 * 1024

/** Before any server or socket is created: what streams buffer at most, unless told otherwise. */
export const limitStreamBuffers = (): void => stream.setDefaultHighWaterMark(false, STREAM_HIGH_WATER_MARK)

type Collect = (options: { readonly type: "minor" }) => void

/**
 * `gc` from `--expose-gc` if the process has it, else from a context made with the flag on.
 * node:v8 and node:vm are loaded here, at the first collection, not at start-up (bundle-options test).
 */
const minorCollector = (): Collect | undefined => {
  const exposed = (globalThis as { gc?: unknown }).gc
  if (typeof exposed === "function") return exposed as Collect
  const v8 = process.getBuiltinModule("node:v8") as typeof V8
  const vm = process.getBuiltinModule("node:vm") as typeof Vm
  try {
    v8.setFlagsFromString("--expose-gc")
    const gc: unknown = vm.runInNewContext("gc")
    return typeof gc === "function" ? (gc as Collect) : undefined
  } catch {
    return undefined
  } finally {
    v8.setFlagsFromString("--no-expose-gc")
  }
}

let collect: Collect | undefined | null = null
let sinceCollection = 0

/** Counts bytes of buffers left by reads of proxied traffic; every 2 MiB, a young-generation GC. */
export const countRead = (bytes: number): void => {
  sinceCollection += bytes
  if (sinceCollection < COLLECT_EVERY) return
  sinceCollection = 0
  if (collect === null) collect = minorCollector()
  collect?.({ type: "minor" })
}

/**
 * A connection to the app that reads at most READ_SIZE at a time, for `http.Agent#createConnection`.
 * A read that fills at least half the buffer hands it over, and the next read gets a new one; a
 * shorter read is copied out, so that a small chunk does not keep a whole buffer alive, and the
 * buffer is used again. With `onread` Node emits no 'data' itself: reads are emitted here as 'data'
 * events, which is how Node's HTTP client (and a piped WebSocket tunnel) read their socket, and
 * `pause()`/`resume()` stop and start the reads themselves. The proxy, streaming and WebSocket tests
 * would fail if a Node release read these sockets another way.
 */
export const connectWithSmallReads = (options: net.NetConnectOpts): net.Socket => {
  let buffer = Buffer.allocUnsafeSlow(READ_SIZE)
  const socket: net.Socket = net.createConnection({
    ...options,
    onread: {
      buffer: () => buffer,
      callback: (length: number, read: Uint8Array): boolean => {
        let chunk: Buffer
        if (length >= READ_SIZE / 2) {
          chunk = Buffer.from(read.buffer, read.byteOffset, length)
          buffer = Buffer.allocUnsafeSlow(READ_SIZE)
          countRead(READ_SIZE)
        } else {
          chunk = Buffer.allocUnsafeSlow(length)
          chunk.set(read.subarray(0, length))
          countRead(length)
        }
        socket.emit("data", chunk)
        return true
      },
    },
  })
  return socket
}
