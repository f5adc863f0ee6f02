import * as http from "node:http"
import * as net from "node:net"
import { assert, describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Ref, Scope } from "effect"
import {
  HealthListenError,
  HealthServer,
  layer,
  make,
  type Readiness,
  sanitizeReason,
} from "../../src/server/HealthServer.ts"

const HOST = "127.0.0.1"

interface Answer {
  readonly status: number
  /** Lower-cased header names as sent, minus those Node adds itself. */
  readonly headerNames: ReadonlyArray<string>
  readonly headers: http.IncomingHttpHeaders
  readonly body: string
  /** The client side of the connection: equal on two answers when the connection was reused. */
  readonly localPort: number | undefined
  readonly socket: net.Socket
}

const NODE_ADDED = new Set(["date", "connection", "keep-alive", "content-length"])

const request = (
  port: number,
  method: string,
  path: string,
  options: { readonly agent?: http.Agent; readonly body?: string } = {},
) =>
  Effect.callback<Answer, Error>((resume) => {
    const req = http.request({ host: HOST, port, method, path, agent: options.agent ?? false }, (res) => {
      // Read now: a keep-alive agent takes the socket back once the response ends.
      const socket = res.socket
      const localPort = socket.localPort
      const chunks: Array<Buffer> = []
      res.on("data", (chunk: Buffer) => chunks.push(chunk))
      res.on("end", () => {
        const names: Array<string> = []
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          const name = (res.rawHeaders[i] ?? "").toLowerCase()
          if (!NODE_ADDED.has(name)) names.push(name)
        }
        resume(
          Effect.succeed({
            status: res.statusCode ?? 0,
            headerNames: names.sort(),
            headers: res.headers,
            body: Buffer.concat(chunks).toString("utf8"),
            localPort,
            socket,
          }),
        )
      })
    })
    req.on("error", (err) => resume(Effect.fail(err)))
    req.end(options.body)
  })

/** Resolves with the error code of a fresh connection attempt ("connected" if it succeeds). */
const connectOutcome = (port: number) =>
  Effect.callback<string>((resume) => {
    const socket = net.connect({ host: HOST, port })
    socket.once("connect", () => {
      socket.destroy()
      resume(Effect.succeed("connected"))
    })
    socket.once("error", (err: Error & { code?: string }) => resume(Effect.succeed(err.code ?? err.message)))
  })

const MINIMAL = ["cache-control", "content-type", "x-content-type-options"]

const ready: Readiness = { ready: true, reason: "ok" }

const serve = (readiness: Effect.Effect<Readiness>) =>
  Effect.map(make({ port: 0, host: HOST }, readiness), (service) => service.port)

describe("HealthServer", () => {
  it.live("GET /healthz answers 200 ok with only the minimal headers", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const port = yield* serve(Effect.succeed({ ready: false, reason: "draining" }))
        assert.notStrictEqual(port, 0)
        const answer = yield* request(port, "GET", "/healthz")
        expect(answer.status).toBe(200)
        expect(answer.body).toBe("ok\n")
        expect(answer.headerNames).toEqual(MINIMAL)
        expect(answer.headers["content-type"]).toBe("text/plain; charset=utf-8")
        expect(answer.headers["cache-control"]).toBe("no-store")
        expect(answer.headers["x-content-type-options"]).toBe("nosniff")
        expect(answer.headers["content-length"]).toBe("3")
      }),
    ),
  )

  it.live("/readyz runs the readiness check on every request", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const state = yield* Ref.make<Readiness>({ ready: false, reason: "tls material not loaded" })
        const port = yield* serve(Ref.get(state))

        const notReady = yield* request(port, "GET", "/readyz")
        expect(notReady.status).toBe(503)
        expect(notReady.body).toBe("tls material not loaded\n")
        expect(notReady.headerNames).toEqual(MINIMAL)

        yield* Ref.set(state, ready)
        const isReady = yield* request(port, "GET", "/readyz")
        expect(isReady.status).toBe(200)
        expect(isReady.body).toBe("ok\n")
        expect(isReady.headerNames).toEqual(MINIMAL)

        yield* Ref.set(state, { ready: false, reason: "draining" })
        const draining = yield* request(port, "GET", "/readyz?verbose=1")
        expect(draining.status).toBe(503)
        expect(draining.body).toBe("draining\n")

        // Liveness does not depend on readiness.
        expect((yield* request(port, "GET", "/healthz")).status).toBe(200)
      }),
    ),
  )

  it.live("HEAD answers the same status and headers, without a body", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const state = yield* Ref.make<Readiness>({ ready: false, reason: "app not answering" })
        const port = yield* serve(Ref.get(state))
        const live = yield* request(port, "HEAD", "/healthz")
        expect(live.status).toBe(200)
        expect(live.body).toBe("")
        expect(live.headerNames).toEqual(MINIMAL)
        expect(live.headers["content-length"]).toBe("3")

        const notReady = yield* request(port, "HEAD", "/readyz")
        expect(notReady.status).toBe(503)
        expect(notReady.body).toBe("")
        expect(notReady.headerNames).toEqual(MINIMAL)

        yield* Ref.set(state, ready)
        expect((yield* request(port, "HEAD", "/readyz")).status).toBe(200)
      }),
    ),
  )

  it.live("any other path is 404, with nothing more than 'not found'", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const port = yield* serve(Effect.succeed(ready))
        for (const path of ["/", "/healthz/", "/readyz/", "/HEALTHZ", "/livez", "/metrics", "//healthz"]) {
          const answer = yield* request(port, "GET", path)
          expect(answer.status, path).toBe(404)
          expect(answer.body, path).toBe("not found\n")
          expect(answer.headerNames, path).toEqual(MINIMAL)
        }
      }),
    ),
  )

  it.live("other methods on the probe paths are 405 with Allow, and request bodies are drained", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const port = yield* serve(Effect.succeed(ready))
        for (const method of ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"]) {
          for (const path of ["/healthz", "/readyz"]) {
            const answer = yield* request(port, method, path, { body: "x".repeat(4096) })
            expect(answer.status, `${method} ${path}`).toBe(405)
            expect(answer.headers.allow).toBe("GET, HEAD")
            expect(answer.headerNames).toEqual(["allow", ...MINIMAL].sort())
            expect(answer.body).toBe("method not allowed\n")
          }
        }
        // The ignored body was read: the keep-alive connection serves the next probe.
        const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
        yield* Effect.addFinalizer(() => Effect.sync(() => agent.destroy()))
        const first = yield* request(port, "POST", "/healthz", { agent, body: "y".repeat(64 * 1024) })
        expect(first.status).toBe(405)
        const second = yield* request(port, "GET", "/healthz", { agent })
        expect(second.status).toBe(200)
        expect(second.localPort).toBe(first.localPort)
      }),
    ),
  )

  it.live("a reason is one short line; a failing check says only that it failed", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const state = yield* Ref.make<Readiness>({
          ready: false,
          reason: `first line\r\nx-injected: yes\n${"z".repeat(500)}`,
        })
        const port = yield* serve(Ref.get(state))
        const answer = yield* request(port, "GET", "/readyz")
        expect(answer.status).toBe(503)
        expect(answer.headerNames).toEqual(MINIMAL)
        expect(answer.body.endsWith("\n")).toBe(true)
        expect(answer.body.slice(0, -1)).not.toContain("\n")
        expect(answer.body.length).toBeLessThanOrEqual(81)
        expect(answer.body.startsWith("first line x-injected: yes z")).toBe(true)

        const dying = yield* serve(Effect.die(new Error("secret pod detail")))
        const died = yield* request(dying, "GET", "/readyz")
        expect(died.status).toBe(503)
        expect(died.body).toBe("readiness check failed\n")
      }),
    ),
  )

  it("sanitizeReason keeps a phrase and never returns an empty reason", () => {
    expect(sanitizeReason("draining")).toBe("draining")
    expect(sanitizeReason("  \n\t ")).toBe("not ready")
    expect(sanitizeReason("a\u0000b\u00e9c")).toBe("a b c")
    expect(sanitizeReason("w ".repeat(100)).length).toBeLessThanOrEqual(80)
  })

  it.live("a prober that gives up interrupts its readiness check", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const started = yield* Deferred.make<void>()
        const interrupted = yield* Deferred.make<void>()
        const port = yield* serve(
          Deferred.succeed(started, undefined).pipe(
            Effect.andThen(Effect.never),
            Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
          ),
        )
        const req = http.request({ host: HOST, port, path: "/readyz", agent: false })
        req.on("error", () => {})
        req.end()
        yield* Deferred.await(started)
        req.destroy()
        yield* Deferred.await(interrupted).pipe(Effect.timeout("2 seconds"))
      }),
    ),
  )

  it.live("a port in use fails with an error naming the port", () =>
    Effect.scoped(
      Effect.gen(function* () {
        const taken = yield* serve(Effect.succeed(ready))
        const error = yield* Effect.flip(make({ port: taken, host: HOST }, Effect.succeed(ready)))
        assert.instanceOf(error, HealthListenError)
        expect(error._tag).toBe("HealthListenError")
        expect(error.port).toBe(taken)
        expect(error.reason).toBe("EADDRINUSE")
        expect(error.message).toContain(`${HOST}:${taken}`)
        expect(error.message).toContain("EADDRINUSE")
      }),
    ),
  )

  it.live("the layer provides the bound port and fails with the same error", () =>
    Effect.gen(function* () {
      const port = yield* Effect.scoped(
        Effect.gen(function* () {
          const { port } = yield* HealthServer
          expect((yield* request(port, "GET", "/healthz")).status).toBe(200)
          const exit = yield* Effect.exit(
            Effect.scoped(
              Effect.provide(
                Effect.service(HealthServer),
                layer({ port, host: HOST }, Effect.succeed(ready)),
              ),
            ),
          )
          assert.isTrue(Exit.isFailure(exit))
          return port
        }).pipe(Effect.provide(layer({ port: 0, host: HOST }, Effect.succeed(ready)))),
      )
      expect(yield* connectOutcome(port)).toBe("ECONNREFUSED")
    }),
  )

  it.live("closing the scope closes the listener at once, cutting kept-alive and in-flight connections", () =>
    Effect.gen(function* () {
      const hang = yield* Ref.make(false)
      const started = yield* Deferred.make<void>()
      const interrupted = yield* Deferred.make<void>()
      const readiness = Effect.flatMap(Ref.get(hang), (hanging) =>
        hanging
          ? Deferred.succeed(started, undefined).pipe(
              Effect.andThen(Effect.never),
              Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined)),
            )
          : Effect.succeed(ready),
      )
      const scope = yield* Scope.make()
      const port = yield* serve(readiness).pipe(Scope.provide(scope))

      // A prober holding a keep-alive connection open (Node would otherwise keep it for 5 s).
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
      const first = yield* request(port, "GET", "/healthz", { agent })
      expect(first.status).toBe(200)
      const second = yield* request(port, "GET", "/readyz", { agent })
      expect(second.localPort).toBe(first.localPort)
      const { socket } = second
      expect(socket.destroyed).toBe(false)
      const socketClosed = Effect.callback<void>((resume) => {
        if (socket.destroyed) return resume(Effect.void)
        socket.once("close", () => resume(Effect.void))
      })

      // And one whose readiness check never answers.
      yield* Ref.set(hang, true)
      const inFlight = yield* Effect.forkChild(Effect.flip(request(port, "GET", "/readyz")))
      yield* Deferred.await(started)

      const startedAt = Date.now()
      yield* Scope.close(scope, Exit.void)
      expect(Date.now() - startedAt).toBeLessThan(1_000)
      yield* socketClosed.pipe(Effect.timeout("1 second"))
      const cut = yield* Fiber.join(inFlight).pipe(Effect.timeout("1 second"))
      expect(cut.message).toMatch(/socket hang up|ECONNRESET/)
      yield* Deferred.await(interrupted).pipe(Effect.timeout("1 second"))
      expect(yield* connectOutcome(port)).toBe("ECONNREFUSED")
      agent.destroy()
    }),
  )
})
