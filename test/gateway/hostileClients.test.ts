/**
 * The data plane against clients that hold a certificate of the client CA and mean harm (or are
 * merely odd): names no header may carry raw, several CNs, resumed sessions past expiry, forged
 * identity headers, upgrades that are not WebSockets, two Hosts. Each test is named for the
 * finding of issue 10 it proves; the sidecar runs in-process over real mTLS on 127.0.0.1 with the
 * test backend behind it, and must keep serving a well-behaved client throughout.
 */
import { X509Certificate } from "node:crypto"
import * as net from "node:net"
import * as tls from "node:tls"
import type * as X509 from "@peculiar/x509"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Issued, issue, issueCa } from "../../src/dev/DevPki.ts"
import { type Backend, startBackend } from "../support/backend.ts"
import { type Fixtures, makeFixtures } from "../support/fixtures.ts"
import { get } from "../support/https.ts"
import type { CapturedLog } from "../support/logs.ts"
import { inProcess } from "../support/sidecar.ts"
import { dechunk, openWebSocket, rawGet, rawRequest, sessionRequest, type Who } from "../support/tlsClient.ts"

let pki: Fixtures
let backend: Backend
const sidecars = inProcess()
let url: string
let logs: Array<CapturedLog>

beforeAll(async () => {
  pki = await makeFixtures()
  backend = await startBackend()
  ;({ url, logs } = await sidecars.start(pki, { FORWARD_PORT: String(backend.port) }))
})
afterAll(async () => {
  await sidecars.closeAll()
  await backend.close()
})

const PRINTABLE_ASCII = /^[\u0020-\u007e]*$/
const asClient = (who: Who) => ({ cert: who.certPem, key: who.keyPem, ca: pki.ca.certPem })
const leaf = (subject: X509.JsonName, sans: { dnsNames?: string[]; uris?: string[] } = {}) =>
  issue(pki.ca, { cn: "unused", kind: "client", subject, ...sans })

/** The backend's record of the last request to `path`, as JSON through the proxy. */
const forwarded = async (who: Who, path: string, headers: ReadonlyArray<string> = []) => {
  const reply = await rawGet(url, pki, path, headers, who)
  expect(reply.status).toBe(200)
  const seen = backend.seen.findLast((s) => s.url === path)
  if (seen === undefined) throw new Error(`the app never saw ${path}`)
  return seen
}

const stillServing = async () => {
  expect((await get(`${url}/api/status`, asClient(pki.client))).status).toBe(200)
}

describe("finding 1: certificates whose names no header may carry raw", () => {
  it.each<[string, X509.JsonName]>([
    ["CN=Łukasz Nowak, O=Škoda", [{ C: ["PL"] }, { O: ["Škoda"] }, { CN: ["Łukasz Nowak"] }]],
    ["a Cyrillic CN", [{ CN: ["Иван Петров"] }]],
    ["a CJK CN", [{ CN: ["山田太郎"] }]],
    ["an ESC in the CN", [{ CN: ["evil\u001b[2J"] }]],
  ])("proxies a plain request from %s, identity headers in printable ASCII", async (label, subject) => {
    const who = await leaf(subject)
    const seen = await forwarded(who, `/finding-1/${encodeURIComponent(label)}`)
    const xfcc = String(seen.headers["x-forwarded-client-cert"])
    expect(xfcc).toMatch(PRINTABLE_ASCII)
    expect(xfcc).toContain(
      `Hash=${new X509Certificate(who.certPem).fingerprint256.replaceAll(":", "").toLowerCase()}`,
    )
    expect(String(seen.headers["client-cert"])).toBe(
      `:${new X509Certificate(who.certPem).raw.toString("base64")}:`,
    )
    await stillServing()
  })

  it("proxies a request from a certificate with CR, LF and DEL in its URI and DNS SANs", async () => {
    const who = await leaf([{ CN: ["svc"] }], {
      dnsNames: ["a\r\nb.example"],
      uris: ["spiffe://td/x\r\nX-Admin: 1\u007f"],
    })
    const seen = await forwarded(who, "/finding-1/sans")
    const xfcc = String(seen.headers["x-forwarded-client-cert"])
    expect(xfcc).toMatch(PRINTABLE_ASCII)
    expect(xfcc).toContain('URI="spiffe://td/x%0D%0AX-Admin: 1%7F"')
    expect(xfcc).toContain('DNS="a%0D%0Ab.example"')
    expect(seen.headers["x-admin"]).toBeUndefined()
    await stillServing()
  })

  it("tunnels a WebSocket from a UTF-8 certificate, identity headers in printable ASCII", async () => {
    const who = await leaf([{ O: ["Škoda"] }, { CN: ["Łukasz"] }], { uris: ["spiffe://td/\r\n"] })
    const socket = await openWebSocket(url, pki, "/ws?finding=1", who)
    const upgrade = backend.seenUpgrades.findLast((u) => u.url === "/ws?finding=1")
    expect(String(upgrade?.headers["x-forwarded-client-cert"])).toMatch(PRINTABLE_ASCII)
    expect(String(upgrade?.headers["x-forwarded-client-cert"])).toContain("CN=\\\\C5\\\\81ukasz")
    socket.close()
    await stillServing()
  })

  it("shows the UTF-8 name as it is in the access log and on the dashboard", async () => {
    const who = await leaf([{ CN: ["Łukasz Nowak"] }])
    await forwarded(who, "/finding-1/log")
    const line = logs.findLast((l) => l.message === "proxied" && l.annotations.path === "/finding-1/log")
    expect(line?.annotations.client).toBe("Łukasz Nowak")
    const page = await get(`${url}/dashboard`, asClient(who))
    expect(page.body).toContain("Łukasz Nowak")
  })
})

describe("certificates and clients at the extremes", () => {
  it("serves a certificate with 300 DNS and 100 URI SANs; the app's own header limit decides", async () => {
    const who = await leaf([{ CN: ["many"] }], {
      dnsNames: Array.from({ length: 300 }, (_, i) => `host-${i}.names.example`),
      uris: Array.from({ length: 100 }, (_, i) => `spiffe://td/ns/x/sa/${i}`),
    })
    // Node's 16 KiB header limit in the test app refuses the identity headers: the sidecar relays it.
    const reply = await rawGet(url, pki, "/many-names", [], who)
    expect([200, 431]).toContain(reply.status)
    expect((await get(`${url}/dashboard`, asClient(who))).status).toBe(200)
    await stillServing()
  })

  /** An mTLS connection over a TCP socket the test can reset (a TLS socket cannot send an RST itself). */
  const resettable = () => {
    const { hostname, port } = new URL(url)
    const tcp = net.connect({ host: hostname, port: Number(port) })
    tcp.on("error", () => {})
    const socket = tls.connect({ socket: tcp, ...asClient(pki.client), servername: "localhost" })
    socket.on("error", () => {})
    return { tcp, socket }
  }

  it("survives a client that resets in the middle of an upload", async () => {
    await new Promise<void>((resolve) => {
      const { tcp, socket } = resettable()
      socket.once("secureConnect", () => {
        socket.write("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        socket.write(Buffer.alloc(256 * 1024))
        setTimeout(() => {
          tcp.resetAndDestroy()
          resolve()
        }, 50)
      })
    })
    await stillServing()
    expect((await rawGet(url, pki, "/after-reset")).status).toBe(200)
  })

  it("survives a client that resets right after a refused upgrade", async () => {
    for (let i = 0; i < 20; i++) {
      await new Promise<void>((resolve) => {
        const { tcp, socket } = resettable()
        tcp.on("close", () => resolve())
        socket.once("secureConnect", () => {
          socket.write(
            "GET /api/status HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
          )
          // An RST, not a FIN, once the refusal has arrived: the sidecar's socket, ended and waiting
          // for the FIN, reads ECONNRESET.
          socket.once("data", () => tcp.resetAndDestroy())
        })
      })
    }
    await stillServing()
  })
})

describe("pipelining: one exchange at a time per connection", () => {
  it("answers pipelined requests in order, one at a time to the app", async () => {
    let peak = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, backend.sockets)
    }, 2)
    const paths = [1, 2, 3, 4, 5].map((i) => `/slow?ms=40&n=${i}`)
    const reply = await rawRequest(
      url,
      pki,
      `${paths.map((p, i) => `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === paths.length - 1 ? "Connection: close\r\n" : ""}\r\n`).join("")}`,
    ).finally(() => clearInterval(sampler))
    expect(reply.head.split("\r\n")[0]).toBe("HTTP/1.1 200 OK")
    expect((`${reply.head}\r\n\r\n${reply.body}`.match(/HTTP\/1\.1 200 OK/g) ?? []).length).toBe(5)
    expect(backend.seen.filter((s) => s.url.startsWith("/slow?ms=40&n=")).map((s) => s.url)).toEqual(paths)
    // The sidecar's kept-alive connection to the app (plus the probe's, at most): never five.
    expect(peak).toBeLessThanOrEqual(2)
  })

  it("closes a connection that pipelines far more than it reads, without flooding the app", async () => {
    const before = backend.seen.length
    const flood = "GET /download?bytes=1048576 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(500)
    // Closed as soon as the 34th request is parsed, before or after the first answer.
    const reply = await rawRequest(url, pki, flood)
    expect((reply.head.match(/HTTP\/1\.1/g) ?? []).length).toBeLessThanOrEqual(1)
    expect(backend.seen.length - before).toBeLessThanOrEqual(1)
    expect(logs.some((l) => l.message === "connection closed: too many pipelined requests")).toBe(true)
    await stillServing()
  })
})

describe("finding 9: one identity everywhere, the most specific (last) CN", () => {
  let two: Issued
  let dashboards: string
  beforeAll(async () => {
    two = await leaf([{ O: ["org"] }, { CN: ["admin"] }, { CN: ["bob"] }])
  })

  it("ALLOW_CN decides on the last CN only", async () => {
    const strict = await sidecars.start(pki, { FORWARD_PORT: String(backend.port), ALLOW_CN: "admin" })
    const denied = await get(`${strict.url}/finding-9`, asClient(two))
    expect(denied.status).toBe(403)
    expect(denied.body).toContain("CN=bob is not on the allow-list")
    const bobs = await sidecars.start(pki, { FORWARD_PORT: String(backend.port), ALLOW_CN: "bob" })
    expect((await get(`${bobs.url}/finding-9-bob`, asClient(two))).status).toBe(200)
    const line = bobs.logs.findLast((l) => l.message === "proxied" && l.annotations.path === "/finding-9-bob")
    expect(line?.annotations.client).toBe("bob")
    dashboards = (await get(`${bobs.url}/dashboard`, asClient(two))).body
    expect(dashboards).toMatch(/id="client-cn">bob</)
  })
})

describe("finding 11: client-identity headers are the sidecar's alone", () => {
  it("drops every client-sent identity header and sets Client-Cert from the verified certificate", async () => {
    const forged = [
      "X-Client-Cert: CN=admin",
      "X_Client_Cert_Chain: forged",
      "Client-Cert: :Zm9yZ2Vk:",
      "Client-Cert-Chain: :Zm9yZ2Vk:",
      "X-SSL-Client-S-DN: CN=admin",
      "SSL_CLIENT_VERIFY: SUCCESS",
      "X-Client-Verify: SUCCESS",
      "X-Client-DN: CN=admin",
      "Remote-User: admin",
      "X-Remote-User: admin",
      "X-Auth-Request-User: admin",
      "X-Forwarded-User: admin",
    ]
    const seen = await forwarded(pki.client, "/finding-11", forged)
    const values = JSON.stringify(seen.rawHeaders)
    expect(values).not.toContain("admin")
    expect(values).not.toContain("forged")
    expect(values).not.toContain("Zm9yZ2Vk")
    expect(values).not.toContain("SUCCESS")
    expect(seen.headers["client-cert"]).toBe(
      `:${new X509Certificate(pki.client.certPem).raw.toString("base64")}:`,
    )
    expect(seen.headers["client-cert-chain"]).toBeUndefined()
  })

  it("sets Client-Cert-Chain from the intermediates the client sent", async () => {
    const intermediate = await issueCa(pki.ca, { cn: "Team CA" })
    const member = await issue(intermediate, { cn: "carol", kind: "client" })
    const who = { certPem: member.certPem + intermediate.certPem, keyPem: member.keyPem }
    const seen = await forwarded(who, "/finding-11-chain")
    expect(seen.headers["client-cert"]).toBe(
      `:${new X509Certificate(member.certPem).raw.toString("base64")}:`,
    )
    expect(seen.headers["client-cert-chain"]).toBe(
      `:${new X509Certificate(intermediate.certPem).raw.toString("base64")}:`,
    )
    expect(String(seen.headers["x-forwarded-client-cert"])).toContain('Subject="CN=carol,C=US"')
  })
})

describe("finding 6: only WebSocket upgrades are tunnelled", () => {
  it("forwards Upgrade: h2c as a plain request, without the upgrade, and opens no tunnel", async () => {
    const upgradesBefore = backend.seenUpgrades.length
    const reply = await rawRequest(
      url,
      pki,
      [
        "GET /finding-6-h2c HTTP/1.1",
        "Host: app.example",
        "Connection: Upgrade, HTTP2-Settings, close",
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        "",
        "",
      ].join("\r\n"),
    )
    expect(reply.status).toBe(200)
    const seen = backend.seen.findLast((s) => s.url === "/finding-6-h2c")
    expect(seen?.headers.upgrade).toBeUndefined()
    expect(seen?.headers["http2-settings"]).toBeUndefined()
    expect(seen?.headers.connection).not.toBe("upgrade")
    expect(backend.seenUpgrades.length).toBe(upgradesBefore)
  })

  it("forwards a POST with Upgrade: websocket as a plain request", async () => {
    const upgradesBefore = backend.seenUpgrades.length
    const reply = await rawRequest(
      url,
      pki,
      [
        "POST /finding-6-post HTTP/1.1",
        "Host: app.example",
        "Connection: Upgrade, close",
        "Upgrade: websocket",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Content-Length: 2",
        "",
        "{}",
      ].join("\r\n"),
    )
    expect(reply.status).toBe(200)
    expect(JSON.parse(dechunk(reply.body)).headers.upgrade).toBeUndefined()
    expect(backend.seenUpgrades.length).toBe(upgradesBefore)
  })

  it("still tunnels a WebSocket whose Upgrade lists websocket among other tokens", async () => {
    const socket = await openWebSocket(url, pki, "/ws?finding=6")
    socket.close()
    expect(backend.seenUpgrades.findLast((u) => u.url === "/ws?finding=6")?.headers.upgrade).toBe("websocket")
  })
})

describe("finding 12: smaller ones", () => {
  it("answers 400 to a request with two Host headers, and forwards nothing", async () => {
    const reply = await rawGet(url, pki, "/finding-12-hosts", ["Host: evil.example"])
    expect(reply.status).toBe(400)
    expect(reply.body).toContain("More than one Host header")
    expect(backend.seen.some((s) => s.url === "/finding-12-hosts")).toBe(false)
    // The same on a sidecar path and for an upgrade.
    expect((await rawGet(url, pki, "/api/status", ["Host: evil.example"])).status).toBe(400)
    const upgrade = await rawRequest(
      url,
      pki,
      "GET /ws HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    expect(upgrade.status).toBe(400)
  })

  it("answers HEAD on the sidecar's own paths like GET, without a body", async () => {
    for (const path of ["/dashboard", "/api/status", "/api/attestation"]) {
      const reply = await rawRequest(
        url,
        pki,
        `HEAD ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      )
      expect(reply.status, path).toBe(200)
      expect(reply.head, path).toMatch(/content-length: [1-9]/i)
      expect(reply.body, path).toBe("")
    }
  })
})

describe("finding 3: resumed sessions", () => {
  const connect = (who: Who, session?: Buffer) => sessionRequest(url, pki, "/finding-3", who, session)

  it("resumes while the client certificate is valid: resumption is kept", async () => {
    const first = await connect(pki.client)
    expect(first.status).toBe(200)
    expect(first.session).toBeDefined()
    const again = await connect(pki.client, first.session)
    expect(again.resumed).toBe(true)
    expect(again.status).toBe(200)
  })

  it("refuses a session resumed after the client certificate expired, and the app sees nothing", async () => {
    const soon = await issue(pki.ca, {
      cn: "short-lived",
      kind: "client",
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 2_000),
    })
    const first = await connect(soon)
    expect(first.status).toBe(200)
    const before = backend.seen.filter((s) => s.url === "/finding-3").length
    await new Promise((r) =>
      setTimeout(
        r,
        Math.max(0, new X509Certificate(soon.certPem).validToDate.getTime() - Date.now()) + 1_100,
      ),
    )
    const late = await connect(soon, first.session)
    expect(late.resumed).toBe(true)
    expect(late.status).toBe(0)
    expect(backend.seen.filter((s) => s.url === "/finding-3").length).toBe(before)
    const line = logs.findLast((l) => l.message === "TLS session resumption refused")
    expect(String(line?.annotations.reason)).toContain("client certificate expired")
    expect(line?.annotations.client).toBe("short-lived")
    // A full handshake with the expired certificate is refused by OpenSSL as before.
    expect((await connect(soon)).status).toBe(0)
    await stillServing()
  }, 10_000)
})
