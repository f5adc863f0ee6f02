/**
 * Forwarder: the reverse proxy to the application on 127.0.0.1:FORWARD_PORT,
 * over http-proxy-3, for HTTP (streamed both ways, with backpressure) and
 * WebSocket upgrades.
 *
 * Raw path and query go through byte for byte; Host is kept; forwarding and
 * client-identity headers are the sidecar's (see headers.ts). A refused or
 * failed connection to the app answers 502, a response that does not start
 * within the response timeout 504; once the response has started, a failure
 * ends the client's connection.
 */
import { randomBytes } from "node:crypto"
import type * as Http from "node:http"
import type { IncomingMessage, ServerResponse } from "node:http"
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
import { createProxyServer } from "http-proxy-3"
import { SidecarConfig } from "../config/SidecarConfig.ts"
import type { Peer } from "../gateway/Peer.ts"
import { Metrics } from "../metrics/Metrics.ts"
import { errorBody, SECURITY_HEADERS } from "../server/responses.ts"
import { pathOf } from "../server/SidecarPaths.ts"
import { connectWithSmallReads, countRead } from "./buffering.ts"
import { clientResponseHeaders, forwardedHeaders } from "./headers.ts"

// As CommonJS: importing node:http as an ES module loads undici for nothing.
const http: typeof Http = createRequire(import.meta.url)("node:http")

export class Forwarder extends Context.Service<
  Forwarder,
  {
    /** The application port. */
    readonly port: number
    /** Whether the app accepted a TCP connection at the last background probe. */
    readonly reachability: Effect.Effect<Reachability>
    /** Forwards a request of the connection `peer` describes; never throws past itself. */
    readonly web: (request: IncomingMessage, response: ServerResponse, peer: Peer) => void
    /** Tunnels a WebSocket handshake (and only a WebSocket: see HttpsServer's upgrade callback). */
    readonly ws: (request: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer) => void
    /** Shutdown: close every proxied WebSocket with 1001 (going away), both ways. */
    readonly goAway: Effect.Effect<void>
    /** Proxied WebSockets currently open. */
    readonly openWebSockets: Effect.Effect<number>
  }
>()("coco-secure-access/Forwarder") {
  /** Present only when FORWARD_PORT is set. */
  static readonly layer: Layer.Layer<Forwarder, never, SidecarConfig | Metrics> = Layer.effect(
    Forwarder,
    Effect.gen(function* () {
      const config = yield* SidecarConfig
      const port = Option.getOrThrowWith(
        config.forwardPort,
        () => new Error("Forwarder.layer needs FORWARD_PORT"),
      )
      return yield* make(port, config.forward.connectTimeout, config.forward.responseTimeout, {
        accessLog: config.logLevel === "trace" || config.logLevel === "debug" || config.logLevel === "info",
        probeInterval: config.dashboardRefresh,
      })
    }),
  )
}

export interface Reachability {
  /** null before the first probe. */
  readonly answering: boolean | null
  readonly checkedAt: string | null
  readonly error: string | null
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

class ResponseTimeout extends Error {
  readonly code = "ERESPONSE_TIMEOUT"
}

/** The app's answer cannot be relayed: it switched protocols unasked, or is not valid HTTP for Node. */
class BadAppResponse extends Error {
  readonly code = "EBAD_APP_RESPONSE"
}

export const make = Effect.fnUntraced(function* (
  port: number,
  connectTimeout: Duration.Duration,
  responseTimeout: Duration.Duration,
  options: { readonly accessLog: boolean; readonly probeInterval: Duration.Duration } = {
    accessLog: true,
    probeInterval: Duration.seconds(5),
  },
) {
  const context = yield* Effect.context<never>()
  const runFork = Effect.runForkWith(context)
  const metrics = yield* Effect.serviceOption(Metrics)
  const countBytes = (bytesIn: number, bytesOut: number) => {
    if (Option.isNone(metrics)) return
    metrics.value.bytes.inc({ direction: "in" }, bytesIn)
    metrics.value.bytes.inc({ direction: "out" }, bytesOut)
  }
  const log = (message: string, fields: Record<string, unknown>, level: "info" | "warn" = "info") => {
    // Decided once: a line below the log level would still cost a fiber per request.
    if (level === "info" && !options.accessLog) return
    runFork(
      (level === "info" ? Effect.logInfo(message) : Effect.logWarning(message)).pipe(
        Effect.annotateLogs(fields),
      ),
    )
  }

  // Keep-alive to the app: no TCP handshake per request on loopback.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 })
  // Small reads that stop as soon as the client's side pushes back (buffering.ts).
  agent.createConnection = (options) => connectWithSmallReads(options as net.NetConnectOpts)
  yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))

  const proxy = createProxyServer({
    target: `http://127.0.0.1:${port}`,
    // Use the request-target as received: without it, the path is re-parsed as a URL and normalized.
    toProxy: true,
    changeOrigin: false,
    xfwd: false,
    ws: true,
    agent,
    connectTimeout: Duration.toMillis(connectTimeout),
    // The response is written here (proxyRes below), where a throw can be caught: http-proxy-3's own
    // copying runs in Node's parser callback, where a throw would end the process.
    selfHandleResponse: true,
  })
  const responseTimeoutMs = Duration.toMillis(responseTimeout)

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

  /** Answers the client for a failed exchange: 502/504 if nothing was sent yet, else its connection ends. */
  const fail = (error: NodeJS.ErrnoException, request: IncomingMessage, response: ServerResponse) => {
    const [status, title, detail] = unreachable(error)
    log(
      "application unreachable",
      {
        port,
        path: pathOf(request.url ?? ""),
        cause: error.code ?? error.message,
        ...(error instanceof BadAppResponse ? { detail: error.message } : {}),
      },
      "warn",
    )
    if (response.headersSent || response.destroyed || response.writableEnded) return void response.destroy()
    const { contentType, body } = errorBody(request.headers.accept, status, title, detail)
    response.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": contentType,
      "content-length": Buffer.byteLength(body),
    })
    response.end(body)
  }

  proxy.on("proxyReq", (proxyRequest, request, response) => {
    const timer = setTimeout(
      () =>
        proxyRequest.destroy(new ResponseTimeout(`no response within ${Duration.format(responseTimeout)}`)),
      responseTimeoutMs,
    )
    const clear = () => clearTimeout(timer)
    proxyRequest.once("response", clear)
    // Also when the client goes first: http-proxy-3 then destroys this request. Closed without an
    // answer and without an error, the client must not hang: so it is with a 101 to a request that
    // asked for no upgrade (Node's client destroys the socket the app switched).
    proxyRequest.once("close", () => {
      clear()
      if (!response.headersSent && !response.destroyed && !response.writableEnded) {
        fail(
          new BadAppResponse("the application closed or switched protocols without an answer"),
          request,
          response,
        )
      }
    })
  })

  /** Body bytes per proxied exchange, for the access log. */
  const transfers = new WeakMap<ServerResponse, { bytesIn: number; bytesOut: number }>()

  const relay = (answer: IncomingMessage, response: ServerResponse) => {
    const status = answer.statusCode ?? 0
    // Node's client takes any three digits, and hands a 101 without Upgrade over as an answer; a
    // final answer is 200-999 (1xx are interim: Node's client consumes 100 and 102-199 itself).
    if (status < 200 || status > 999) throw new BadAppResponse(`status ${status}`)
    // A drain has already asked for `connection: close`.
    clientResponseHeaders(
      answer.headers,
      response.getHeader("connection") === "close" || !response.shouldKeepAlive,
    )
    response.writeHead(status, answer.statusMessage, answer.headers)
    const counted = transfers.get(response)
    if (counted) {
      answer.on("data", (chunk: Buffer) => {
        counted.bytesOut += chunk.length
      })
    }
    // The app reset mid-response: end the client's connection too, so it sees a truncated reply.
    answer.once("close", () => {
      if (!answer.complete) response.destroy()
    })
    answer.pipe(response)
  }

  proxy.on("proxyRes", (answer, request, response) => {
    try {
      relay(answer, response)
    } catch (error) {
      answer.destroy()
      fail(
        error instanceof BadAppResponse ? error : new BadAppResponse(String(error)),
        request,
        response as ServerResponse,
      )
    }
  })

  proxy.on("error", (error: NodeJS.ErrnoException, request, target) => {
    if ("writeHead" in target) return fail(error, request, target as ServerResponse)
    const [status, title] = unreachable(error)
    log(
      "application unreachable",
      { port, path: pathOf(request.url ?? ""), cause: error.code ?? error.message },
      "warn",
    )
    const socket = target as Socket
    if (socket.writable)
      socket.end(`HTTP/1.1 ${status} ${title}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`)
    else socket.destroy()
  })

  // The client went away first: nothing to answer.
  proxy.on("econnreset", () => {})

  /** Open WebSocket tunnels: client socket -> app socket. */
  const tunnels = new Map<Duplex, Socket>()
  proxy.on("proxyReqWs", (proxyRequest, _request, socket) => {
    proxyRequest.once("upgrade", (_response, appSocket: Socket) => {
      tunnels.set(socket, appSocket)
      // What the app sends is counted by its socket's reads; this is the client's side.
      socket.on("data", (chunk: Buffer) => countRead(chunk.length))
      socket.once("close", () => tunnels.delete(socket))
    })
  })
  const goAway = Effect.sync(() => {
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
  })

  const prepare = (request: IncomingMessage, peer: Peer, upgrade: boolean) => {
    request.headers = forwardedHeaders(request.rawHeaders, {
      clientAddress: peer.address,
      port: request.socket.localPort ?? 0,
      identity: peer.identityHeaders,
      upgrade,
    })
  }

  /** A reverse proxy receives origin-form targets only; anything else is not for the app. */
  const badTarget = (request: IncomingMessage) => !(request.url ?? "").startsWith("/")

  const web = (request: IncomingMessage, response: ServerResponse, peer: Peer) => {
    if (badTarget(request)) {
      const { contentType, body } = errorBody(
        request.headers.accept,
        400,
        "Bad Request",
        "Expected an origin-form request target.",
      )
      response.writeHead(400, { ...SECURITY_HEADERS, "content-type": contentType, connection: "close" })
      return void response.end(body)
    }
    const started = performance.now()
    const method = request.method ?? ""
    const path = pathOf(request.url ?? "")
    prepare(request, peer, false)
    const counted = { bytesIn: 0, bytesOut: 0 }
    transfers.set(response, counted)
    // Node's server listens for no 'error' on a response; a write after its end would emit one unheard.
    response.on("error", ignore)
    // Attached in the same tick as proxy.web pipes the request, so no chunk is missed.
    request.on("data", (chunk: Buffer) => {
      counted.bytesIn += chunk.length
      countRead(chunk.length)
    })
    response.once("close", () => {
      countBytes(counted.bytesIn, counted.bytesOut)
      log("proxied", {
        method,
        path,
        status: response.headersSent ? response.statusCode : 0,
        bytesIn: counted.bytesIn,
        bytesOut: counted.bytesOut,
        durationMs: Math.round(performance.now() - started),
        client: peer.certificate.commonName ?? "",
        ...(response.writableFinished ? {} : { aborted: true }),
      })
    })
    proxy.web(request, response)
  }

  const ws = (request: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer) => {
    if (badTarget(request)) return void socket.destroy()
    const started = performance.now()
    const path = pathOf(request.url ?? "")
    prepare(request, peer, true)
    socket.once("close", () =>
      log("proxied websocket closed", {
        path,
        durationMs: Math.round(performance.now() - started),
        client: peer.certificate.commonName ?? "",
      }),
    )
    proxy.ws(request, socket, head)
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
  yield* Effect.forkScoped(Effect.forever(Effect.andThen(probeOnce, Effect.sleep(options.probeInterval))))

  return Forwarder.of({
    port,
    reachability: Ref.get(reachability),
    web,
    ws,
    goAway,
    openWebSockets: Effect.sync(() => tunnels.size),
  })
})
