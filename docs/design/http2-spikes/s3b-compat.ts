/** Spike 3b: RST codes of response.destroy() with and without an error; Effect's NodeHttpServer.makeHandler over h2. */
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Effect from "effect/Effect"
import * as Scope from "effect/Scope"
import * as HttpServerRequest from "effect/http/HttpServerRequest"
import * as HttpServerResponse from "effect/http/HttpServerResponse"
import { clientTls } from "./common.ts"
import { make } from "./handoff.ts"

const { server, h2, route } = make()
server.on("secureConnection", route)
const app = Effect.gen(function* () {
  const req = yield* HttpServerRequest.HttpServerRequest
  const body = yield* req.text
  return HttpServerResponse.jsonUnsafe({ url: req.url, method: req.method, host: req.headers.host, keys: Object.keys(req.headers), body })
})
const handler = await Effect.runPromise(Effect.gen(function* () {
  const scope = yield* Scope.make()
  return yield* NodeHttpServer.makeHandler(app, { scope })
}) as any) as any
h2.on("request", (req: any, res: any) => {
  if (req.url === "/destroy") { res.writeHead(200); res.write("part"); return void setTimeout(() => res.destroy(), 50) }
  if (req.url === "/destroyErr") { res.writeHead(200); res.write("part"); return void setTimeout(() => res.destroy(new Error("upstream reset")), 50) }
  if (req.url === "/streamClose") { res.writeHead(200); res.write("part"); return void setTimeout(() => res.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR), 50) }
  handler(req, res)
})
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const client = http2.connect(`https://localhost:${port}`, clientTls)
const call = (h: any, body?: string) => new Promise<any>((resolve) => {
  const q = client.request(h, { endStream: body === undefined })
  let status: unknown, data = "", aborted = false, err: string | undefined
  q.on("response", (x) => (status = x[":status"])); q.on("data", (d) => (data += d)); q.on("aborted", () => (aborted = true))
  q.on("error", (e: any) => (err = e.code)); q.on("close", () => resolve({ status, data, rstCode: q.rstCode, aborted, err }))
  if (body !== undefined) q.end(body)
})
console.log("res.destroy() mid-body:", JSON.stringify(await call({ ":path": "/destroy" })))
console.log("res.destroy(err) mid-body:", JSON.stringify(await call({ ":path": "/destroyErr" })))
console.log("res.stream.close(INTERNAL_ERROR) mid-body:", JSON.stringify(await call({ ":path": "/streamClose" })))
console.log("Effect makeHandler over h2:", JSON.stringify(await call({ ":method": "POST", ":path": "/api?x=1", "content-type": "text/plain" }, "hello")))
process.exit(0)
