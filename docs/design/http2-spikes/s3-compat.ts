/**
 * Spike 3: the compat API as dispatch.ts and the Forwarder would meet it. An h2 client against the
 * handoff listener; the real forwardedHeaders/clientResponseHeaders/hasBody from src/proxy/headers.ts.
 */
import * as http from "node:http"
import * as http2 from "node:http2"
import type { AddressInfo } from "node:net"
import { clientResponseHeaders, forwardedHeaders, hasBody } from "/work/main/src/proxy/headers.ts"
import { clientTls, sleep } from "./common.ts"
import { make } from "./handoff.ts"

const warnings: string[] = []
process.on("warning", (w) => warnings.push(`${w.name}: ${w.message}`))
const PEER = Symbol("peer")
const { server, h2, route } = make()
server.on("secureConnection", (s: any) => { s[PEER] = "peer-record"; route(s) })
await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
const port = (server.address() as AddressInfo).port
const out = (k: string, v: unknown) => console.log(`${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)

// A stand-in app on loopback: echoes what it received.
const app = http.createServer((req, res) => {
  let n = 0
  req.on("data", (d) => (n += d.length))
  req.on("end", () => {
    res.setHeader("x-app", "1")
    res.end(JSON.stringify({ rawHeaders: req.rawHeaders, bodyBytes: n, httpVersion: req.httpVersion }))
  })
})
await new Promise<void>((r) => app.listen(0, "127.0.0.1", r))
const appPort = (app.address() as AddressInfo).port

const handlers: Record<string, (req: any, res: any) => void> = {
  "/inspect": (req, res) => {
    out("rawHeaders", req.rawHeaders)
    out("headers", { ...req.headers })
    out("headers prototype is null", Object.getPrototypeOf(req.headers) === null)
    out("url/method/httpVersion/authority/headers.host", [req.url, req.method, req.httpVersion, req.authority, req.headers.host])
    out("stream.endAfterHeaders / hasBody(rawHeaders)", [req.stream.endAfterHeaders, hasBody(req.rawHeaders)])
    out("req.socket[PEER] (symbol set on the TLS socket)", req.socket[PEER])
    out("req.socket.localPort/remoteAddress/encrypted/alpnProtocol", [req.socket.localPort, req.socket.remoteAddress, req.socket.encrypted, req.socket.alpnProtocol])
    out("response.shouldKeepAlive / response.req === req", [res.shouldKeepAlive, res.req === req])
    let fwd: string[] = []
    try {
      fwd = forwardedHeaders(req.rawHeaders, { clientAddress: "127.0.0.1", port, identity: {}, upgrade: false })
      out("forwardedHeaders(h2 rawHeaders) names", fwd.filter((_, i) => i % 2 === 0))
      http.request({ host: "127.0.0.1", port: appPort, path: req.url, method: req.method, headers: fwd }).end()
      out("http.request with those headers", "accepted")
    } catch (e: any) { out("http.request with those headers", `throws ${e.code}`) }
    res.end("ok")
  },
  "/post": (req, res) => {
    out("POST without content-length: endAfterHeaders/hasBody", [req.stream.endAfterHeaders, hasBody(req.rawHeaders)])
    let n = 0; req.on("data", (d: Buffer) => (n += d.length)); req.on("end", () => { out("POST body bytes actually received", n); res.end() })
  },
  "/hop": (req, res) => {
    const appHeaders: Record<string, string> = { "content-type": "text/plain", connection: "keep-alive", "keep-alive": "timeout=5", "transfer-encoding": "chunked", "set-cookie": "a=1" }
    clientResponseHeaders(appHeaders, !res.shouldKeepAlive)
    out("clientResponseHeaders result (h2: shouldKeepAlive undefined)", appHeaders)
    try { res.writeHead(200, "OK", appHeaders); res.end("x"); out("writeHead(200,'OK',{connection:...})", "no throw") } catch (e: any) { out("writeHead with connection", `throws ${e.code}`) }
  },
  "/te": (_req, res) => {
    try { res.writeHead(200, { "transfer-encoding": "chunked" }); res.end("x"); out("writeHead transfer-encoding", "no throw") } catch (e: any) { out("writeHead transfer-encoding", `throws ${e.code}`); try { res.statusCode = 500; res.end() } catch (e2: any) { out("second writeHead after the throw (header stays in the map)", `throws ${e2.code}`); res.destroy() } }
  },
  "/up": (_req, res) => {
    try { res.writeHead(200, { upgrade: "websocket", "keep-alive": "x" }); res.end("x"); out("writeHead upgrade/keep-alive", "no throw") } catch (e: any) { out("writeHead upgrade/keep-alive", `throws ${e.code}`); try { res.statusCode = 500; res.end() } catch { res.destroy() } }
  },
  "/head": (req, res) => {
    req.method = "GET"
    res.setHeader("content-length", 4); res.end("body")
  },
  "/abort": (req, res) => {
    res.writeHead(200); res.write("partial")
    req.on("aborted", () => out("request 'aborted' on client RST", true))
    res.on("close", () => {
      out("response 'close' after client RST: writableFinished/headersSent/statusCode", [res.writableFinished, res.headersSent, res.statusCode])
      try { out("req.socket[PEER] inside response 'close'", req.socket[PEER]) } catch (e: any) { out("req.socket[PEER] inside response 'close'", `throws ${e.code ?? e.message}`) }
    })
  },
  "/killsession": (req, res) => {
    res.writeHead(200); res.write("partial")
    res.on("close", () => {
      try { out("req.socket[PEER] in 'close' after the session died", String(req.socket[PEER])) } catch (e: any) { out("req.socket[PEER] in 'close' after the session died", `throws ${e.constructor.name} ${e.code ?? e.message}`) }
      try { out("req.socket.remoteAddress after the session died", String(req.socket.remoteAddress)) } catch (e: any) { out("req.socket.remoteAddress after the session died", `throws ${e.constructor.name} ${e.code ?? e.message}`) }
    })
  },
  "/destroy": (_req, res) => { res.destroy() },
  "/sockdestroy": (req, _res) => { req.socket.destroy() },
  "/trailers": (_req, res) => { res.addTrailers({ "x-checksum": "abc" }); res.end("body") },
}
const dispatch = (req: any, res: any) => (handlers[req.url.split("?")[0]] ?? ((_q: any, r: any) => r.end("?")))(req, res)
h2.on("request", dispatch)
h2.on("checkContinue", (req: any, res: any) => { out("h2 'checkContinue' event", true); res.writeContinue(); dispatch(req, res) })

const client = http2.connect(`https://localhost:${port}`, clientTls)
client.on("error", () => {})
const call = (headers: http2.OutgoingHttpHeaders, body?: string, opts: { rstAfterData?: boolean } = {}) => new Promise<any>((resolve) => {
  const req = client.request(headers, { endStream: body === undefined })
  let status: unknown; let data = ""; let resp: any; let trailers: any
  req.on("response", (h) => { status = h[":status"]; resp = h })
  req.on("trailers", (t) => (trailers = t))
  req.on("data", (d) => { data += d; if (opts.rstAfterData) req.close(http2.constants.NGHTTP2_CANCEL) })
  req.on("close", () => resolve({ status, data, rst: req.rstCode, headers: resp, trailers }))
  req.on("error", () => {})
  if (body !== undefined) req.end(body)
})
await call({ ":path": "/inspect?q=1", cookie: ["a=1", "b=2"], "x-dup": ["1", "2"], accept: "text/html" })
await sleep(100)
await call({ ":method": "POST", ":path": "/post" }, "hello body")
await call({ ":method": "POST", ":path": "/post", expect: "100-continue" }, "hi")
let r = await call({ ":path": "/hop" })
out("client got headers", r.headers)
r = await call({ ":path": "/te" }); out("/te client status, rst", [r.status, r.rst])
r = await call({ ":path": "/up" }); out("/up client status, rst", [r.status, r.rst])
r = await call({ ":method": "HEAD", ":path": "/head" }); out("HEAD rewritten to GET: client status, body length", [r.status, r.data.length])
r = await call({ ":path": "/abort" }, undefined, { rstAfterData: true }); await sleep(100)
r = await call({ ":path": "/destroy" }); out("response.destroy(): client status, RST code", [r.status, r.rst])
r = await call({ ":path": "/sockdestroy" }); out("request.socket.destroy(): client status, RST code, session destroyed", [r.status, r.rst, client.destroyed])
r = await call({ ":path": "/trailers" }); out("trailers from res.addTrailers", r.trailers)
r = await call({ ":path": "/inspect", host: "only-host.example" }); await sleep(50)
// HTTP/2 with both :authority and host, differing
r = await call({ ":path": "/inspect", ":authority": "a.example", host: "b.example" }); await sleep(50)
const c2 = http2.connect(`https://localhost:${port}`, clientTls)
await new Promise((r) => c2.on("connect", r))
const q = c2.request({ ":path": "/killsession" })
q.on("error", () => {}); q.on("data", () => c2.destroy())
await sleep(300)
out("process warnings", warnings)
process.exit(0)
