/**
 * A raw HTTP/2 client for the abuse tests: TLS with a client certificate and ALPN h2, the preface,
 * frames written by hand (which Node's own client refuses to send), a minimal HPACK encoder
 * (literals, no Huffman), and a reader that records what the server sends: GOAWAY, RST_STREAM codes,
 * responses, when the connection closed. From the spikes of docs/design/http2.md.
 */
import * as tls from "node:tls"

export const T = {
  DATA: 0,
  HEADERS: 1,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  WINDOW_UPDATE: 8,
  CONTINUATION: 9,
} as const
export const F = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")

export const frame = (
  type: number,
  flags: number,
  stream: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer => {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** HPACK integer (RFC 7541 §5.1). */
const int = (value: number, prefix: number, first: number): Buffer => {
  const max = (1 << prefix) - 1
  if (value < max) return Buffer.from([first | value])
  const out = [first | max]
  let rest = value - max
  while (rest >= 128) {
    out.push((rest % 128) + 128)
    rest = Math.floor(rest / 128)
  }
  out.push(rest)
  return Buffer.from(out)
}
const str = (s: string): Buffer => {
  const bytes = Buffer.from(s)
  return Buffer.concat([int(bytes.length, 7, 0), bytes])
}
/** A literal header field without indexing, new name. */
export const literal = (name: string, value: string): Buffer =>
  Buffer.concat([Buffer.from([0x00]), str(name), str(value)])

/** GET `path` (:method GET, :scheme https, :path, :authority localhost) and `extra` fields. */
export const requestBlock = (path: string, extra: ReadonlyArray<Buffer> = []): Buffer =>
  Buffer.concat([
    int(2, 7, 0x80),
    int(7, 7, 0x80),
    Buffer.concat([int(4, 4, 0x00), str(path)]),
    Buffer.concat([int(1, 4, 0x00), str("localhost")]),
    ...extra,
  ])

export const settings = (entries: ReadonlyArray<readonly [number, number]> = []): Buffer => {
  const payload = Buffer.alloc(entries.length * 6)
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6)
    payload.writeUInt32BE(value, i * 6 + 2)
  })
  return frame(T.SETTINGS, 0, 0, payload)
}
export const rst = (stream: number, code = 8): Buffer => {
  const payload = Buffer.alloc(4)
  payload.writeUInt32BE(code)
  return frame(T.RST_STREAM, 0, stream, payload)
}
export const ping = (n: number): Buffer => {
  const payload = Buffer.alloc(8)
  payload.writeUInt32BE(n >>> 0, 4)
  return frame(T.PING, 0, 0, payload)
}

export interface Seen {
  goaway: { readonly code: number; readonly lastStream: number } | undefined
  readonly rst: Record<number, number>
  responses: number
  dataBytes: number
  closed: boolean
}

export interface RawSession {
  readonly socket: tls.TLSSocket
  readonly seen: Seen
  /** Resolves when the connection has closed. */
  readonly closed: Promise<void>
}

export const connect = (
  port: number,
  credentials: { readonly cert: string; readonly key: string; readonly ca: string },
  options: { readonly ackSettings?: boolean } = {},
): Promise<RawSession> =>
  new Promise((resolve, reject) => {
    const seen: Seen = { goaway: undefined, rst: {}, responses: 0, dataBytes: 0, closed: false }
    const socket = tls.connect({
      port,
      host: "127.0.0.1",
      ...credentials,
      servername: "localhost",
      ALPNProtocols: ["h2"],
    })
    let buffer: Buffer = Buffer.alloc(0)
    const closed = new Promise<void>((done) =>
      socket.once("close", () => {
        seen.closed = true
        done()
      }),
    )
    socket.on("error", () => {})
    socket.on("data", (data: Buffer) => {
      buffer = buffer.length > 0 ? Buffer.concat([buffer, data]) : data
      while (buffer.length >= 9) {
        const length = buffer.readUIntBE(0, 3)
        if (buffer.length < 9 + length) break
        const type = buffer[3]
        const flags = buffer[4] ?? 0
        const payload = buffer.subarray(9, 9 + length)
        buffer = buffer.subarray(9 + length)
        if (type === T.GOAWAY) {
          seen.goaway ??= { code: payload.readUInt32BE(4), lastStream: payload.readUInt32BE(0) & 0x7fffffff }
        } else if (type === T.RST_STREAM) {
          const code = payload.readUInt32BE(0)
          seen.rst[code] = (seen.rst[code] ?? 0) + 1
        } else if (type === T.HEADERS) seen.responses++
        else if (type === T.DATA) seen.dataBytes += length
        else if (type === T.SETTINGS && (flags & F.ACK) === 0 && options.ackSettings !== false) {
          socket.write(frame(T.SETTINGS, F.ACK, 0))
        }
      }
    })
    socket.once("secureConnect", () => {
      if (socket.alpnProtocol !== "h2") return reject(new Error(`ALPN gave ${String(socket.alpnProtocol)}`))
      socket.write(Buffer.concat([PREFACE, settings()]))
      resolve({ socket, seen, closed })
    })
    socket.once("error", reject)
  })
