/**
 * The gateway (listener, dispatch, drain), composed from its layer with a Forwarder test layer that
 * throws, and a sidecar app of one route: whatever goes wrong on the request path answers that request (502) or closes that
 * connection, is logged, and never ends the process or stops the listener.
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { SidecarConfig } from "../../src/config/SidecarConfig.ts"
import * as MemoryResourceClient from "../../src/dev/cdh/MemoryResourceClient.ts"
import { Gateway } from "../../src/gateway/Gateway.ts"
import { Metrics } from "../../src/metrics/Metrics.ts"
import { Forwarder } from "../../src/proxy/Forwarder.ts"
import { ReadinessState } from "../../src/server/Readiness.ts"
import { SidecarApp } from "../../src/server/SidecarApp.ts"
import { TlsMaterial } from "../../src/tls/TlsMaterial.ts"
import { type Fixtures, makeFixtures, resourcesFor } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import { capture } from "../support/logs.ts"
import { settingsFor } from "../support/sidecar.ts"
import { openWebSocket, rawGet } from "../support/tlsClient.ts"

let pki: Fixtures
let url: string
const logs = capture()
const scope = Effect.runSync(Scope.make())

/** A Forwarder whose request path throws, as a bug in it would. */
const throwing = Layer.succeed(
  Forwarder,
  Forwarder.of({
    port: 1,
    reachability: Effect.succeed({ answering: true, checkedAt: null, error: null }),
    web: () => {
      throw new Error("boom in web")
    },
    ws: () => {
      throw new Error("boom in ws")
    },
    wsHttp2: () => {
      throw new Error("boom in ws over HTTP/2")
    },
    goAway: () => {},
    openWebSockets: () => 0,
  }),
)

/** The sidecar's app, reduced to a handler that answers "ok". */
const app = Layer.succeed(
  SidecarApp,
  SidecarApp.of({
    handler: (_request, response) => {
      response.writeHead(200, { "content-type": "text/plain" })
      response.end("ok")
    },
  }),
)

beforeAll(async () => {
  pki = await makeFixtures()
  const settings = settingsFor({ FORWARD_PORT: "1" })
  const config = SidecarConfig.layerFrom(settings)
  const material = TlsMaterial.layer.pipe(
    Layer.provide(MemoryResourceClient.make(resourcesFor(pki)).layer),
    Layer.provide(config),
  )
  const gateway = Gateway.layer.pipe(
    Layer.provide(Layer.mergeAll(material, throwing, app, Metrics.layer, ReadinessState.layer, config)),
  )
  url = await Effect.runPromise(
    Effect.gen(function* () {
      const built = yield* Layer.build(gateway)
      return Context.get(built, Gateway).url
    }).pipe(Effect.provide(logs.layer), Scope.provide(scope)),
  )
})
afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
})

const client = () => ({ cert: pki.client.certPem, key: pki.client.keyPem, ca: pki.ca.certPem })

describe("finding 1: a throw on the request path", () => {
  it("answers that request 502, logs the cause, and keeps serving", async () => {
    const reply = await rawGet(url, pki, "/app/path")
    expect(reply.status).toBe(502)
    expect(reply.head.toLowerCase()).toContain("connection: close")
    expect(reply.body).not.toContain("boom")
    const line = logs.lines.find((l) => l.message === "request failed")
    expect(line?.level).toBe("Error")
    expect(line?.annotations.path).toBe("/app/path")
    expect(String(line?.annotations.cause)).toContain("boom in web")
    expect((await get(`${url}/api/status`, client())).body).toBe("ok")
  })

  it("closes a WebSocket upgrade whose handling throws, logs it, and keeps serving", async () => {
    await expect(openWebSocket(url, pki)).rejects.toThrow()
    expect(logs.lines.some((l) => String(l.annotations.cause).includes("boom in ws"))).toBe(true)
    expect((await get(`${url}/api/status`, client())).body).toBe("ok")
  })
})
