/**
 * A raw HTTP/2 client for the abuse spikes: TLS (client certificate, ALPN h2), the preface, frames
 * written by hand, a minimal HPACK encoder (literals, no Huffman), and a reader that records what the
 * server sends (GOAWAY code, RST_STREAM codes, responses, when the connection closed).
 */
import * as tls from "node:tls"
import { clientTls } from "./common.ts"

export const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const
export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

export const frame = (type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)) => {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([h, payload])
}
const int = (value: number, prefix: number, first: number) => {
  const max = (1 << prefix) - 1
  if (value < max) return Buffer.from([first | value])
  const out = [first | max]; value -= max
  while (value >= 128) { out.push((value % 128) + 128); value = Math.floor(value / 128) }
  out.push(value); return Buffer.from(out)
}
const str = (s: string | Buffer) => { const b = Buffer.isBuffer(s) ? s : Buffer.from(s); return Buffer.concat([int(b.length, 7, 0), b]) }
export const hpack = {
  indexed: (i: number) => int(i, 7, 0x80),
  literal: (name: string, value: string | Buffer) => Buffer.concat([Buffer.from([0x00]), str(name), str(value)]),
  literalIndexedName: (index: number, value: string) => Buffer.concat([int(index, 4, 0x00), str(value)]),
  literalIncremental: (name: string, value: string | Buffer) => Buffer.concat([Buffer.from([0x40]), str(name), str(value)]),
}
/** GET `path` with :authority; extra header blocks appended. */
export const requestBlock = (path = "/", extra: Buffer[] = [], opts: { method?: number; authority?: boolean } = {}) =>
  Buffer.concat([hpack.indexed(opts.method ?? 2), hpack.indexed(7), path === "/" ? hpack.indexed(4) : hpack.literalIndexedName(4, path), ...(opts.authority === false ? [] : [hpack.literalIndexedName(1, "localhost")]), ...extra])
export const settings = (entries: Array<[number, number]> = []) => {
  const p = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, v], i) => { p.writeUInt16BE(id, i * 6); p.writeUInt32BE(v, i * 6 + 2) })
  return frame(T.SETTINGS, 0, 0, p)
}
export const rst = (stream: number, code = 8) => { const p = Buffer.alloc(4); p.writeUInt32BE(code); return frame(T.RST_STREAM, 0, stream, p) }
export const windowUpdate = (stream: number, inc: number) => { const p = Buffer.alloc(4); p.writeUInt32BE(inc); return frame(T.WINDOW_UPDATE, 0, stream, p) }
export const ping = (n: number) => { const p = Buffer.alloc(8); p.writeUInt32BE(n >>> 0, 4); return frame(T.PING, 0, 0, p) }

export interface Seen {
  goaway?: { code: number; lastStream: number; ms: number }
  rst: Record<number, number>
  responses: number
  dataBytes: number
  pingAcks: number
  settingsAcks: number
  closedMs?: number
  bytesIn: number
}
export const connect = (port: number, opts: { ackSettings?: boolean; windowUpdates?: boolean } = {}) =>
  new Promise<{ socket: tls.TLSSocket; seen: Seen; started: number; closed: Promise<void> }>((resolve, reject) => {
    const started = Date.now()
    const seen: Seen = { rst: {}, responses: 0, dataBytes: 0, pingAcks: 0, settingsAcks: 0, bytesIn: 0 }
    const socket = tls.connect({ port, host: "127.0.0.1", ...clientTls, ALPNProtocols: ["h2"] })
    let buf = Buffer.alloc(0)
    let closedResolve!: () => void
    const closed = new Promise<void>((r) => (closedResolve = r))
    socket.on("error", () => {})
    socket.on("close", () => { seen.closedMs = Date.now() - started; closedResolve() })
    socket.on("data", (d: Buffer) => {
      seen.bytesIn += d.length
      buf = buf.length ? Buffer.concat([buf, d]) : d
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3); if (buf.length < 9 + len) break
        const type = buf[3]!, flags = buf[4]!, id = buf.readUInt32BE(5) & 0x7fffffff, p = buf.subarray(9, 9 + len)
        buf = buf.subarray(9 + len)
        if (type === T.GOAWAY) seen.goaway ??= { code: p.readUInt32BE(4), lastStream: p.readUInt32BE(0) & 0x7fffffff, ms: Date.now() - started }
        else if (type === T.RST_STREAM) { const c = p.readUInt32BE(0); seen.rst[c] = (seen.rst[c] ?? 0) + 1 }
        else if (type === T.HEADERS) seen.responses++
        else if (type === T.DATA) { seen.dataBytes += len; if (opts.windowUpdates && len > 0) socket.write(Buffer.concat([windowUpdate(0, len), windowUpdate(id, len)])) }
        else if (type === T.PING && flags & F.ACK) seen.pingAcks++
        else if (type === T.SETTINGS && flags & F.ACK) seen.settingsAcks++
        else if (type === T.SETTINGS && opts.ackSettings !== false) socket.write(frame(T.SETTINGS, F.ACK, 0))
      }
    })
    socket.once("secureConnect", () => {
      if (socket.alpnProtocol !== "h2") return reject(new Error(`alpn ${socket.alpnProtocol}`))
      socket.write(Buffer.concat([PREFACE, settings()]))
      resolve({ socket, seen, started, closed })
    })
  })
export const summary = (seen: Seen) => JSON.stringify({ goaway: seen.goaway, rst: seen.rst, responses: seen.responses, closedMs: seen.closedMs })
