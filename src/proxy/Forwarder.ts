/**
 * Forwarder: the reverse proxy to the application on 127.0.0.1:FORWARD_PORT, for HTTP (streamed
 * both ways, with backpressure) and WebSocket upgrades.
 *
 * Its layer builds the proxy once; what runs per request is plain Node: one `http.request` over a
 * keep-alive agent, its events handled by functions shared by every exchange (the exchange is
 * found on the request object, not captured in closures), no fiber. Node's own HTTP client and
 * server parse and frame everything; nothing here parses HTTP. This replaced http-proxy-3, whose
 * per-request passes cost more CPU than the rest of the sidecar's path (docs/PERFORMANCE.md).
 *
 * Raw path and query go through byte for byte; Host is kept; forwarding and client-identity
 * headers are the sidecar's (see headers.ts). A refused or failed connection to the app answers
 * 502, a response that does not start within the response timeout 504; once the response has
 * started, a failure ends the client's connection.
 */
import { createHash, randomBytes } from "node:crypto"
import type * as Http from "node:http"
import type { ClientRequest, IncomingMessage, ServerResponse } from "node:http"
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2"
import { createRequire } from "node:module"
import type { Socket } from "node:net"
import * as net from "node:net"
import type { Duplex } from "node:stream"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Schedule from "effect/Schedule"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import type { Exchange } from "../gateway/exchange.ts"
import type { Peer } from "../gateway/Peer.ts"
import { LineLog } from "../log/LineLog.ts"
import { errorBody, SECURITY_HEADERS } from "../server/responses.ts"
import { pathOf } from "../server/SidecarPaths.ts"
import { connectWithSmallReads, countRead } from "./buffering.ts"
import { clientResponseHeaders, forwardedHeaders, hasBody } from "./headers.ts"

// As CommonJS: importing node:http as an ES module loads undici for nothing.
const http: typeof Http = createRequire(import.meta.url)("node:http")

export interface Reachability {
  /** null before the first probe. */
  readonly answering: boolean | null
  readonly checkedAt: string | null
  readonly error: string | null
}

export interface AppProxy {
  /** The application port; undefined when nothing is forwarded (FORWARD_PORT unset). */
  readonly port: number | undefined
  /** Whether the app accepted a TCP connection at the last background probe. */
  readonly reachability: Effect.Effect<Reachability>
  /** Forwards the request of `exchange`; never throws past itself for what the app does. */
  readonly web: (request: IncomingMessage, response: ServerResponse, exchange: Exchange) => void
  /** Tunnels a WebSocket handshake (and only a WebSocket: see the gateway's upgrade callback). */
  readonly ws: (request: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer) => void
  /** Tunnels a WebSocket over an HTTP/2 stream (RFC 8441) to the app's HTTP/1.1 WebSocket. */
  readonly wsHttp2: (request: Http2ServerRequest, response: Http2ServerResponse, peer: Peer) => void
  /** Shutdown: close every proxied WebSocket with 1001 (going away), both ways. */
  readonly goAway: () => void
  /** Proxied WebSockets currently open. */
  readonly openWebSockets: () => number
}

const NOT_FORWARDING: Reachability = { answering: null, checkedAt: null, error: null }

/** Forwarding is off: no proxy, no probe; the gateway serves every path itself. */
export const off: AppProxy = {
  port: undefined,
  reachability: Effect.succeed(NOT_FORWARDING),
  web: () => {
    throw new Error("nothing is forwarded")
  },
  ws: (_request, socket) => void socket.destroy(),
  wsHttp2: (_request, response) => void response.stream.close(),
  goAway: () => {},
  openWebSockets: () => 0,
}

export class Forwarder extends Context.Service<Forwarder, AppProxy>()("coco-secure-access/Forwarder") {
  /** The proxy to FORWARD_PORT, or `off` when it is unset: chosen here, once. */
  static readonly layer: Layer.Layer<Forwarder, never, SidecarConfig> = Layer.effect(
    Forwarder,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      if (Option.isNone(config.forwardPort)) return off
      return yield* make(
        config.forwardPort.value,
        config.forward.connectTimeout,
        config.forward.responseTimeout,
        {
          probeInterval: config.dashboardRefresh,
        },
      )
    }),
  )
}

/** One TCP connect to the app: cheap on loopback, and it never touches the app's HTTP handling. */
const probe = (port: number, timeout: Duration.Duration) =>
  Effect.callback<void, string>((resume) => {
    const socket = net.connect({ port, host: "127.0.0.1" })
    const done = (result: Effect.Effect<void, string>) => {
      socket.destroy()
      resume(result)
    }
    socket.setTimeout(Duration.toMillis(timeout), () => done(Effect.fail("ETIMEDOUT")))
    socket.once("connect", () => done(Effect.void))
    socket.once("error", (error: NodeJS.ErrnoException) => done(Effect.fail(error.code ?? error.message)))
    return Effect.sync(() => socket.destroy())
  })

const ignore = () => {}

/** RFC 6455 §4.2.2: the Sec-WebSocket-Accept for a key. */
const websocketAccept = (key: string): string =>
  createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64")

/** A WebSocket close frame (RFC 6455 §5.5.1); frames a client sends must be masked. */
export const closeFrame = (code: number, reason: string, masked: boolean): Buffer => {
  const payload = Buffer.concat([
    Buffer.from([code >> 8, code & 0xff]),
    Buffer.from(reason, "utf8"),
  ]).subarray(0, 125)
  const header = Buffer.from([0x88, (masked ? 0x80 : 0) | payload.length])
  if (!masked) return Buffer.concat([header, payload])
  const mask = randomBytes(4)
  const body = Buffer.from(payload.map((byte, i) => byte ^ (mask[i % 4] ?? 0)))
  return Buffer.concat([header, mask, body])
}

class ConnectTimeout extends Error {
  readonly code = "ETIMEDOUT"
}

class ResponseTimeout extends Error {
  readonly code = "ERESPONSE_TIMEOUT"
}

/** The app's answer cannot be relayed: it switched protocols unasked, or is not valid HTTP for Node. */
class BadAppResponse extends Error {
  readonly code = "EBAD_APP_RESPONSE"
}

/** A WebSocket handshake on its way to the app. */
interface Handshake {
  readonly request: IncomingMessage
  readonly socket: Duplex
  readonly head: Buffer
  readonly peer: Peer
  readonly started: number
  timer: ReturnType<typeof setTimeout> | undefined
}

// The exchange on Node's objects of the upstream side: the shared handlers below find it there.
const EXCHANGE: unique symbol = Symbol("coco-secure-access/exchange")
const HANDSHAKE: unique symbol = Symbol("coco-secure-access/handshake")
type Upstream = ClientRequest & { [EXCHANGE]?: Exchange; [HANDSHAKE]?: Handshake }
type Carrier = IncomingMessage & { [EXCHANGE]?: Exchange }

/** An HTTP/1.1 head written by hand only from values Node's parser has already checked. */
const head = (
  status: number,
  message: string,
  rawHeaders: ReadonlyArray<string>,
  skip?: ReadonlySet<string>,
) => {
  let text = `HTTP/1.1 ${status} ${message}\r\n`
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (skip?.has(name.toLowerCase())) continue
    text += `${name}: ${rawHeaders[i + 1]}\r\n`
  }
  return text
}

/** The framing of a refused upgrade's answer is the app's connection's, not the client's. */
const REFUSAL_SKIP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "transfer-encoding",
  "content-length",
])

export const make = Effect.fnUntraced(function* (
  port: number,
  connectTimeout: Duration.Duration,
  responseTimeout: Duration.Duration,
  options: { readonly probeInterval: Duration.Duration } = { probeInterval: Duration.seconds(5) },
) {
  const log = yield* LineLog
  const connectTimeoutMs = Duration.toMillis(connectTimeout)
  const responseTimeoutMs = Duration.toMillis(responseTimeout)

  /** Small reads that stop as soon as the client's side pushes back (buffering.ts); a deadline to connect. */
  function onConnectTimeout(this: Socket) {
    this.destroy(new ConnectTimeout(`no connection within ${Duration.format(connectTimeout)}`))
  }
  function onConnected(this: Socket) {
    this.setTimeout(0)
    this.off("timeout", onConnectTimeout)
  }
  const connect = (options: net.NetConnectOpts): Socket => {
    const socket = connectWithSmallReads(options)
    socket.setTimeout(connectTimeoutMs)
    socket.on("timeout", onConnectTimeout)
    socket.once("connect", onConnected)
    return socket
  }
  // Keep-alive to the app: no TCP handshake per request on loopback.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 })
  agent.createConnection = (options) => connect(options as net.NetConnectOpts)
  // WebSockets hold their connection for good: not from the pool.
  const tunnelAgent = new http.Agent({ keepAlive: false })
  tunnelAgent.createConnection = (options) => connect(options as net.NetConnectOpts)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      agent.destroy()
      tunnelAgent.destroy()
    }),
  )

  const unreachable = (error: NodeJS.ErrnoException) =>
    error.code === "ERESPONSE_TIMEOUT"
      ? ([
          504,
          "Gateway Timeout",
          `The application on port ${port} did not answer within ${Duration.format(responseTimeout)}.`,
        ] as const)
      : error.code === "EBAD_APP_RESPONSE"
        ? ([
            502,
            "Bad Gateway",
            `The application on port ${port} gave an answer that cannot be relayed.`,
          ] as const)
        : ([502, "Bad Gateway", `The application is not reachable on port ${port}.`] as const)

  const warnUnreachable = (error: NodeJS.ErrnoException, request: IncomingMessage) =>
    log.write("warn", "application unreachable", {
      port,
      path: pathOf(request.url ?? ""),
      cause: error.code ?? error.message,
      ...(error instanceof BadAppResponse ? { detail: error.message } : {}),
    })

  /**
   * Ends an answer that has started, so the client sees it truncated: on HTTP/2 only a reset with
   * an error code says so (a plain destroy resets with NO_ERROR, which reads as a complete answer).
   */
  const cut = (exchange: Exchange) =>
    exchange.http2 ? exchange.response.destroy(new Error("truncated")) : exchange.response.destroy()

  /** Answers the client for a failed exchange: 502/504 if nothing was sent yet, else its connection ends. */
  const fail = (error: NodeJS.ErrnoException, exchange: Exchange) => {
    const { request, response } = exchange
    warnUnreachable(error, request)
    if (response.headersSent || response.destroyed || response.writableEnded) return cut(exchange)
    const [status, title, detail] = unreachable(error)
    const { contentType, body } = errorBody(request.headers.accept, status, title, detail)
    response.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": contentType,
      "content-length": Buffer.byteLength(body),
    })
    response.end(body)
  }

  // The functions below are shared by every exchange: `this` is Node's object, the exchange is on it.

  function onResponseTimeout(upstream: Upstream) {
    upstream.destroy(new ResponseTimeout(`no response within ${Duration.format(responseTimeout)}`))
  }

  function countIn(this: Carrier, chunk: Buffer) {
    const exchange = this[EXCHANGE]
    if (exchange !== undefined) exchange.bytesIn += chunk.length
    countRead(chunk.length)
  }

  function countOut(this: Carrier, chunk: Buffer) {
    const exchange = this[EXCHANGE]
    if (exchange !== undefined) exchange.bytesOut += chunk.length
  }

  /** The app reset mid-response: end the client's side too, so it sees a truncated reply. */
  function onAnswerClose(this: Carrier) {
    const exchange = this[EXCHANGE]
    if (!this.complete && exchange !== undefined) cut(exchange)
  }

  function onAnswer(this: Upstream, answer: Carrier) {
    const exchange = this[EXCHANGE]
    if (exchange === undefined) return void answer.destroy()
    clearTimeout(exchange.timer)
    const { response } = exchange
    try {
      const status = answer.statusCode ?? 0
      const { http2 } = exchange
      // Node's client takes any three digits, and hands a 101 without Upgrade over as an answer; a
      // final answer is 200-999 (1xx are interim: Node's client consumes 100 and 102-199 itself);
      // HTTP/2 carries 200-599 only.
      if (status < 200 || status > (http2 ? 599 : 999)) throw new BadAppResponse(`status ${status}`)
      const { headers } = answer
      if (http2) {
        // No reason phrase and no `Connection` in HTTP/2 (Node warns on both).
        clientResponseHeaders(headers, false, true)
        response.writeHead(status, headers)
      } else {
        // A drain has already asked for `connection: close`.
        clientResponseHeaders(
          headers,
          response.getHeader("connection") === "close" || !response.shouldKeepAlive,
        )
        response.writeHead(status, answer.statusMessage, headers)
      }
      exchange.answer = answer
      answer[EXCHANGE] = exchange
      answer.on("data", countOut)
      answer.on("close", onAnswerClose)
      answer.pipe(response)
    } catch (error) {
      answer.destroy()
      fail(error instanceof BadAppResponse ? error : new BadAppResponse(String(error)), exchange)
    }
  }

  function onUpstreamError(this: Upstream, error: NodeJS.ErrnoException) {
    const exchange = this[EXCHANGE]
    if (exchange === undefined) return
    clearTimeout(exchange.timer)
    // The client went away first (the gateway then destroys this request): nothing to answer.
    if (exchange.response.destroyed) return
    fail(error, exchange)
  }

  // Closed without an answer and without an error, the client must not hang: so it is with a 101 to
  // a request that asked for no upgrade (Node's client destroys the socket the app switched).
  function onUpstreamClose(this: Upstream) {
    const exchange = this[EXCHANGE]
    if (exchange === undefined) return
    clearTimeout(exchange.timer)
    const { response } = exchange
    if (!response.headersSent && !response.destroyed && !response.writableEnded) {
      fail(new BadAppResponse("the application closed or switched protocols without an answer"), exchange)
    }
  }

  /** A reverse proxy receives origin-form targets only; anything else is not for the app. */
  const badTarget = (request: IncomingMessage) => !(request.url ?? "").startsWith("/")

  const upstreamHeaders = (request: IncomingMessage, peer: Peer, upgrade: boolean, http2 = false) =>
    forwardedHeaders(request.rawHeaders, {
      clientAddress: peer.address,
      port: request.socket.localPort ?? 0,
      identity: peer.identityHeaders,
      upgrade,
      http2,
    })

  const web = (request: IncomingMessage, response: ServerResponse, exchange: Exchange) => {
    if (badTarget(request)) {
      const { contentType, body } = errorBody(
        request.headers.accept,
        400,
        "Bad Request",
        "Expected an origin-form request target.",
      )
      response.writeHead(400, {
        ...SECURITY_HEADERS,
        "content-type": contentType,
        ...(exchange.http2 ? {} : { connection: "close" }),
      })
      return void response.end(body)
    }
    const { http2 } = exchange
    const upstream: Upstream = http.request({
      host: "127.0.0.1",
      port,
      method: request.method ?? "GET",
      path: request.url ?? "/",
      headers: upstreamHeaders(request, exchange.peer, false, http2),
      agent,
    })
    upstream[EXCHANGE] = exchange
    exchange.upstream = upstream
    exchange.timer = setTimeout(onResponseTimeout, responseTimeoutMs, upstream)
    upstream.on("response", onAnswer)
    upstream.on("error", onUpstreamError)
    upstream.on("close", onUpstreamClose)
    // Node's server listens for no 'error' on a response; a write after its end would emit one unheard.
    response.on("error", ignore)
    // HTTP/2 may send a body without Content-Length: its stream says whether one follows.
    if (
      http2 ? (request as unknown as Http2ServerRequest).stream.endAfterHeaders : !hasBody(request.rawHeaders)
    ) {
      upstream.end()
    } else {
      ;(request as Carrier)[EXCHANGE] = exchange
      request.on("data", countIn)
      request.pipe(upstream)
    }
  }

  /** Open WebSocket tunnels: client socket (or HTTP/2 stream) -> app socket. */
  const tunnels = new Map<Duplex, Socket>()

  /** Joins an upgraded client side and the app's socket until either closes; logs the close. */
  const tunnel = (
    client: Duplex,
    app: Socket,
    info: {
      readonly path: string
      readonly protocol: "http/1.1" | "h2"
      readonly started: number
      readonly peer: Peer
    },
    endClient: () => void,
  ) => {
    tunnels.set(client, app)
    // What the app sends is counted by its socket's reads; this is the client's side.
    client.on("data", (chunk: Buffer) => countRead(chunk.length))
    client.once("close", () => {
      tunnels.delete(client)
      app.destroy()
      log.write("info", "proxied websocket closed", {
        path: info.path,
        protocol: info.protocol,
        durationMs: Math.round(performance.now() - info.started),
        client: info.peer.certificate.commonName ?? "",
      })
    })
    app.once("close", endClient)
    app.pipe(client)
    client.pipe(app)
  }

  const failHandshake = (handshake: Handshake, error: NodeJS.ErrnoException) => {
    clearTimeout(handshake.timer)
    warnUnreachable(error, handshake.request)
    const { socket } = handshake
    const [status, title] = unreachable(error)
    if (socket.writable)
      socket.end(`HTTP/1.1 ${status} ${title}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    else socket.destroy()
  }

  function onHandshakeTimeout(upstream: Upstream) {
    upstream.destroy(new ResponseTimeout(`no response within ${Duration.format(responseTimeout)}`))
  }

  function onHandshakeError(this: Upstream, error: NodeJS.ErrnoException) {
    const handshake = this[HANDSHAKE]
    if (handshake !== undefined && !handshake.socket.destroyed) failHandshake(handshake, error)
  }

  /** The app did not switch protocols: its answer goes to the client, which then closes. */
  function onHandshakeRefused(this: Upstream, answer: IncomingMessage) {
    const handshake = this[HANDSHAKE]
    if (handshake === undefined) return void answer.destroy()
    clearTimeout(handshake.timer)
    const { socket } = handshake
    socket.write(
      `${head(answer.statusCode ?? 502, answer.statusMessage ?? "", answer.rawHeaders, REFUSAL_SKIP)}connection: close\r\n\r\n`,
    )
    answer.pipe(socket)
  }

  function onUpgraded(this: Upstream, answer: IncomingMessage, app: Socket, appHead: Buffer) {
    const handshake = this[HANDSHAKE]
    if (handshake === undefined) return void app.destroy()
    clearTimeout(handshake.timer)
    const { socket, peer, request, started } = handshake
    if (socket.destroyed) return void app.destroy()
    app.on("error", ignore)
    // The app's 101 as it sent it: Upgrade, Connection and Sec-WebSocket-Accept included.
    socket.write(`${head(101, answer.statusMessage ?? "Switching Protocols", answer.rawHeaders)}\r\n`)
    if (appHead.length > 0) socket.write(appHead)
    if (handshake.head.length > 0) app.write(handshake.head)
    for (const side of [socket, app] as const) {
      if ("setNoDelay" in side) (side as Socket).setNoDelay(true)
    }
    const path = pathOf(request.url ?? "")
    tunnel(socket, app, { path, protocol: "http/1.1", started, peer }, () => socket.destroy())
  }

  const ws = (request: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer) => {
    if (badTarget(request)) return void socket.destroy()
    const upstream: Upstream = http.request({
      host: "127.0.0.1",
      port,
      method: "GET",
      path: request.url ?? "/",
      headers: upstreamHeaders(request, peer, true),
      agent: tunnelAgent,
    })
    const handshake: Handshake = { request, socket, head, peer, started: performance.now(), timer: undefined }
    upstream[HANDSHAKE] = handshake
    handshake.timer = setTimeout(onHandshakeTimeout, responseTimeoutMs, upstream)
    upstream.on("upgrade", onUpgraded)
    upstream.on("response", onHandshakeRefused)
    upstream.on("error", onHandshakeError)
    // The client gave up before the app answered.
    socket.once("close", () => {
      clearTimeout(handshake.timer)
      if (!tunnels.has(socket)) upstream.destroy()
    })
    upstream.end()
  }

  /**
   * RFC 8441: the client's extended CONNECT becomes an HTTP/1.1 WebSocket handshake to the app, with
   * a Sec-WebSocket-Key of the sidecar's own (an HTTP/2 client sends none), checked against the
   * app's Accept; the app's 101 becomes the stream's 200 (RFC 8441 §5: no Upgrade, Connection or
   * Accept); then bytes go both ways unchanged, so frames, masking and extensions stay end to end.
   */
  const wsHttp2 = (request: Http2ServerRequest, response: Http2ServerResponse, peer: Peer) => {
    const key = randomBytes(16).toString("base64")
    const headers = upstreamHeaders(request as unknown as IncomingMessage, peer, true, true)
    headers.push("sec-websocket-key", key)
    const started = performance.now()
    const path = pathOf(request.url ?? "")
    const stream = response.stream
    const upstream = http.request({
      host: "127.0.0.1",
      port,
      method: "GET",
      path: request.url ?? "/",
      headers,
      agent: tunnelAgent,
    })
    const timer = setTimeout(() => upstream.destroy(new ResponseTimeout("no response")), responseTimeoutMs)
    const refuse = (status: number, error?: NodeJS.ErrnoException) => {
      clearTimeout(timer)
      if (error !== undefined) warnUnreachable(error, request as unknown as IncomingMessage)
      if (stream.destroyed) return
      if (response.headersSent) return void stream.close(2)
      response.writeHead(status)
      response.end()
    }
    upstream.on("error", (error: NodeJS.ErrnoException) => refuse(unreachable(error)[0], error))
    upstream.on("response", (answer) => {
      // The app did not switch: its answer, status and body, goes to the client.
      clearTimeout(timer)
      if (stream.destroyed) return void answer.destroy()
      const status = answer.statusCode ?? 502
      response.writeHead(status >= 200 && status <= 599 ? status : 502)
      answer.pipe(response as unknown as NodeJS.WritableStream)
    })
    upstream.on("upgrade", (answer, app: Socket, appHead: Buffer) => {
      clearTimeout(timer)
      app.on("error", ignore)
      if (stream.destroyed) return void app.destroy()
      if (answer.headers["sec-websocket-accept"] !== websocketAccept(key)) {
        app.destroy()
        return refuse(502, new BadAppResponse("the application's Sec-WebSocket-Accept does not match"))
      }
      const out: Record<string, string> = {}
      for (const name of ["sec-websocket-protocol", "sec-websocket-extensions"]) {
        const value = answer.headers[name]
        if (typeof value === "string") out[name] = value
      }
      response.writeHead(200, out)
      if (appHead.length > 0) stream.write(appHead)
      app.setNoDelay(true)
      stream.on("error", ignore)
      tunnel(stream, app, { path, protocol: "h2", started, peer }, () => stream.close())
    })
    stream.once("close", () => {
      clearTimeout(timer)
      if (!tunnels.has(stream)) upstream.destroy()
    })
    upstream.end()
  }

  const goAway = () => {
    for (const [client, app] of tunnels) {
      // Stop relaying first, so the close frame is not spliced into a frame from the app.
      app.unpipe(client)
      client.unpipe(app)
      client.end(closeFrame(1001, "server shutting down", false))
      app.end(closeFrame(1001, "proxy shutting down", true))
      // Read (and drop) the peers' close replies, or their FIN is never seen and the sockets linger;
      // a peer that does not answer the close handshake is cut after a second.
      for (const socket of [client, app]) {
        socket.resume()
        setTimeout(() => socket.destroy(), 1000).unref()
      }
    }
  }

  const reachability = yield* Ref.make<Reachability>({ answering: null, checkedAt: null, error: null })
  const probeOnce = probe(port, connectTimeout).pipe(
    Effect.match({ onSuccess: () => null, onFailure: (error) => error }),
    Effect.flatMap((error) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Ref.set(reachability, { answering: error === null, checkedAt: new Date(now).toISOString(), error }),
      ),
    ),
  )
  yield* Effect.forkScoped(Effect.repeat(probeOnce, Schedule.spaced(options.probeInterval)))

  return Forwarder.of({
    port,
    reachability: Ref.get(reachability),
    web,
    ws,
    wsHttp2,
    goAway,
    openWebSockets: () => tunnels.size,
  })
})
