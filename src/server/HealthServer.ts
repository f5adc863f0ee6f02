/**
 * HealthServer: the plain-HTTP probe listener for kubelet.
 *
 * In a Confidential Containers pod the control plane, kubelet included, is
 * untrusted, yet kubelet must probe the sidecar. So this listener is separate
 * from the mTLS one and says nothing beyond `ok` or a short, fixed reason: no
 * pod data, no versions, no headers beyond the minimum.
 *
 * - `GET /healthz`: liveness, 200 `ok` while the process runs. No dependency
 *   checks, so a slow CDH never gets the pod killed.
 * - `GET /readyz`: readiness, evaluated per request; 200 `ok`, or 503 with
 *   the reason.
 * - `HEAD` on both; any other path 404; other methods 405.
 *
 * Closing the scope closes the listener and cuts every connection, kubelet's
 * keep-alive ones included, so shutdown is never held up by a probe.
 */
import type * as Http from "node:http"
import type { IncomingMessage, ServerResponse } from "node:http"
import { createRequire } from "node:module"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import type * as Scope from "effect/Scope"
import { listen } from "../gateway/listen.ts"
import { pathOf } from "./SidecarPaths.ts"

// As CommonJS: importing node:http as an ES module evaluates its lazy WebSocket
// exports, which loads undici and costs ~15 MiB of memory for nothing.
const http: typeof Http = createRequire(import.meta.url)("node:http")

/** Whether the sidecar can serve; `reason` is a short fixed phrase such as "draining". */
export interface Readiness {
  readonly ready: boolean
  readonly reason: string
}

export interface HealthOptions {
  readonly port: number
  /** `undefined` listens on all interfaces: kubelet probes the pod IP. */
  readonly host: string | undefined
}

/** The health listener could not listen (port in use, address not available, no permission). */
export class HealthListenError extends Data.TaggedError("HealthListenError")<{
  readonly port: number
  readonly host: string | undefined
  /** The system error code (EADDRINUSE, EACCES, ...), or the error's message. */
  readonly reason: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `the health listener cannot listen on ${this.host ?? "*"}:${this.port} (${this.reason})`
  }
}

export class HealthServer extends Context.Service<
  HealthServer,
  {
    /** The bound port (the actual one when the options asked for port 0). */
    readonly port: number
  }
>()("coco-secure-access/HealthServer") {}

export const LIVENESS_PATH = "/healthz"
export const READINESS_PATH = "/readyz"

/** Past this, a readiness check answers 503: kubelet gives up after its own timeout anyway. */
export const READINESS_TIMEOUT: Duration.Duration = Duration.seconds(5)

const MAX_REASON_LENGTH = 80

/** Every response carries these and nothing else (Node adds date, connection, content-length). */
const BASE_HEADERS: Readonly<Record<string, string>> = {
  "content-type": "text/plain; charset=utf-8",
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
}

const ALLOW = "GET, HEAD"

/** One line of printable ASCII, capped: a reason can never carry more than a phrase. */
export const sanitizeReason = (reason: string): string => {
  const line = reason.replace(/[^\x20-\x7e]+/g, " ").trim()
  const capped = line.length > MAX_REASON_LENGTH ? line.slice(0, MAX_REASON_LENGTH).trimEnd() : line
  return capped === "" ? "not ready" : capped
}

const send = (
  request: IncomingMessage,
  response: ServerResponse,
  status: number,
  text: string,
  extra: Readonly<Record<string, string>> = {},
): void => {
  if (response.headersSent || response.destroyed) return
  const body = `${text}\n`
  response.writeHead(status, {
    ...BASE_HEADERS,
    ...extra,
    "content-length": String(Buffer.byteLength(body)),
  })
  if (request.method === "HEAD") response.end()
  else response.end(body)
}

const close = (server: Http.Server) =>
  Effect.callback<void>((resume) => {
    if (!server.listening) {
      server.closeAllConnections()
      return resume(Effect.void)
    }
    server.close(() => resume(Effect.void))
    // close() alone waits for keep-alive connections; a probe's must not hold up shutdown.
    server.closeAllConnections()
  })

/** Listens until the scope closes; `readiness` is run for every `/readyz` probe. */
export const make = (
  options: HealthOptions,
  readiness: Effect.Effect<Readiness>,
): Effect.Effect<HealthServer["Service"], HealthListenError, Scope.Scope> =>
  Effect.gen(function* () {
    const context = yield* Effect.context<never>()
    const run = Effect.runCallbackWith(context)
    const check = readiness.pipe(
      Effect.map(({ ready, reason }) =>
        ready ? { status: 200, text: "ok" } : { status: 503, text: sanitizeReason(reason) },
      ),
      Effect.timeoutOrElse({
        duration: READINESS_TIMEOUT,
        orElse: () => Effect.succeed({ status: 503, text: "readiness check timed out" }),
      }),
    )

    const server = http.createServer({
      maxHeaderSize: 8 * 1024,
      headersTimeout: 5_000,
      requestTimeout: 10_000,
      keepAliveTimeout: 5_000,
    })

    const onRequest = (request: IncomingMessage, response: ServerResponse) => {
      // Bodies are ignored, but read, so that the connection can be reused.
      request.resume()
      const method = request.method ?? ""
      const path = pathOf(request.url ?? "")
      if (path !== LIVENESS_PATH && path !== READINESS_PATH) return send(request, response, 404, "not found")
      if (method !== "GET" && method !== "HEAD") {
        return send(request, response, 405, "method not allowed", { allow: ALLOW })
      }
      if (path === LIVENESS_PATH) return send(request, response, 200, "ok")
      // The prober gave up: nobody is waiting for the answer any more.
      let interrupt: ((interruptor?: number) => void) | undefined
      const onClose = () => interrupt?.()
      response.once("close", onClose)
      interrupt = run(check, {
        // May run synchronously, before `run` returns.
        onExit: (exit) => {
          response.off("close", onClose)
          if (Exit.isSuccess(exit)) return send(request, response, exit.value.status, exit.value.text)
          if (Exit.hasInterrupts(exit)) return
          run(Effect.logWarning("readiness check failed", exit.cause))
          send(request, response, 503, "readiness check failed")
        },
      })
    }
    server.on("request", onRequest)

    const bind = listen(
      server,
      options,
      (cause) =>
        new HealthListenError({
          port: options.port,
          host: options.host,
          reason: cause.code ?? cause.message,
          cause,
        }),
    )
    yield* Effect.acquireRelease(bind, () => close(server))
    // After listening, an error must not crash the process; there is no one else to tell.
    server.on("error", (cause) => {
      run(Effect.logWarning("health listener error", cause))
    })

    const bound = server.address()
    const port = bound !== null && typeof bound === "object" ? bound.port : options.port
    return HealthServer.of({ port })
  })

export const layer = (
  options: HealthOptions,
  readiness: Effect.Effect<Readiness>,
): Layer.Layer<HealthServer, HealthListenError> => Layer.effect(HealthServer, make(options, readiness))
