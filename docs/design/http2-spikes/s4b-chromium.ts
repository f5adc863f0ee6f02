/**
 * Spike 4b: does Chromium (/usr/bin/chromium, via playwright-core) open a WebSocket as an RFC 8441
 * extended CONNECT stream on the page's h2 connection? Run with the setting on, then off.
 * No client certificate here (requestCert false): the question is Chromium's WebSocket transport.
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import { chromium } from "playwright-core"
import { WebSocketServer } from "ws"
import { make } from "./handoff.ts"
import { bridge } from "./ws-bridge.ts"

const appServer = http.createServer()
const wss = new WebSocketServer({ server: appServer })
wss.on("connection", (ws, req) => ws.on("message", (m) => ws.send(`echo:${m}`)))
await new Promise<void>((r) => appServer.listen(0, "127.0.0.1", r))
const appPort = (appServer.address() as AddressInfo).port
const local = new WebSocketServer({ noServer: true })
local.on("connection", (ws) => ws.on("message", (m) => ws.send(`echo:${m}`)))

const PAGE = `<!doctype html><title>wait</title><script>
const ws = new WebSocket("wss://" + location.host + "/chat");
ws.onopen = () => ws.send("hi"); ws.onmessage = (e) => { document.title = e.data }; ws.onerror = () => { document.title = "error" };
</script>`
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox", "--disable-gpu", "--ignore-certificate-errors", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update"] })
console.log("chromium", browser.version())
for (const enable of [true, false]) {
  const { server, h2, route } = make({ h2: { settings: { enableConnectProtocol: enable } }, https: { requestCert: false, rejectUnauthorized: false } as any })
  const seen: string[] = []
  server.on("secureConnection", (s: any) => { seen.push(`tls alpn=${s.alpnProtocol}`); route(s) })
  const page = (req: any, res: any) => { seen.push(`HTTP/${req.httpVersion} ${req.method} ${req.url}`); res.writeHead(200, { "content-type": "text/html" }); res.end(PAGE) }
  h2.on("request", page); server.on("request", page)
  h2.on("connect", (req: any, res: any) => { seen.push(`h2 CONNECT :protocol=${req.headers[":protocol"]} ${req.url} ext=${req.headers["sec-websocket-extensions"] ?? ""}`); bridge(appPort, req, res, () => {}) })
  server.on("upgrade", (req: any, socket: any, head: Buffer) => { seen.push(`HTTP/1.1 upgrade ${req.url}`); local.handleUpgrade(req, socket, head, (ws) => local.emit("connection", ws, req)) })
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r))
  const port = (server.address() as AddressInfo).port
  const context = await browser.newContext({ ignoreHTTPSErrors: true })
  const p = await context.newPage()
  await p.goto(`https://localhost:${port}/`)
  await p.waitForFunction(() => document.title !== "wait", null, { timeout: 5000 }).catch(() => {})
  console.log(`enableConnectProtocol=${enable}: title=${await p.title()}`)
  for (const s of seen) console.log("   ", s)
  await context.close(); server.close()
}
await browser.close()
process.exit(0)
