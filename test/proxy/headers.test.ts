import { describe, expect, it } from "vitest"
import { CLIENT_CERT, XFCC } from "../../src/gateway/identityHeaders.ts"
import { clientResponseHeaders, type Forwarding, forwardedHeaders, hasBody } from "../../src/proxy/headers.ts"

const CLIENT = "203.0.113.7"
const PORT = 8443

const raw = (rawHeaders: ReadonlyArray<string>, overrides: Partial<Forwarding> = {}) =>
  forwardedHeaders(rawHeaders, {
    clientAddress: CLIENT,
    port: PORT,
    identity: {},
    upgrade: false,
    ...overrides,
  })

/** The raw list as Node's client would see it as an object: lower-case names, repeats as arrays. */
const forward = (rawHeaders: ReadonlyArray<string>, overrides: Partial<Forwarding> = {}) => {
  const list = raw(rawHeaders, overrides)
  const headers: Record<string, string | Array<string>> = Object.create(null)
  for (let i = 0; i < list.length; i += 2) {
    const name = (list[i] as string).toLowerCase()
    const value = list[i + 1] as string
    const existing = headers[name]
    headers[name] =
      existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value]
  }
  return headers
}

/** Every value the application receives, flattened, to check a client-sent value went nowhere. */
const allValues = (headers: Record<string, string | ReadonlyArray<string> | undefined>): Array<string> =>
  Object.values(headers).flatMap((v) => (v === undefined ? [] : typeof v === "string" ? [v] : [...v]))

/** The sidecar's own headers for CLIENT/PORT and the given Host. */
const sidecarHeaders = (host: string | undefined) => ({
  "x-forwarded-for": CLIENT,
  "x-real-ip": CLIENT,
  "x-forwarded-proto": "https",
  "x-forwarded-port": String(PORT),
  ...(host === undefined ? {} : { "x-forwarded-host": host }),
})

describe("forwardedHeaders", () => {
  it("is a raw list: the client's spelling and order kept, each occurrence its own line, the sidecar's last", () => {
    expect(raw(["Host", "a.example", "X-Trace", "1", "accept", "*/*", "X-Trace", "2"])).toEqual([
      "Host",
      "a.example",
      "X-Trace",
      "1",
      "accept",
      "*/*",
      "X-Trace",
      "2",
      "x-forwarded-for",
      CLIENT,
      "x-forwarded-proto",
      "https",
      "x-forwarded-port",
      String(PORT),
      "x-forwarded-host",
      "a.example",
      "x-real-ip",
      CLIENT,
    ])
  })

  it("passes the client's ordinary headers and adds exactly the sidecar's own", () => {
    const out = forward([
      "Host",
      "app.example:8443",
      "User-Agent",
      "curl/8.5.0",
      "Accept",
      "*/*",
      "Content-Type",
      "application/json",
      "Content-Length",
      "2",
      "Authorization",
      "Bearer abc",
    ])
    expect(out).toEqual({
      host: "app.example:8443",
      "user-agent": "curl/8.5.0",
      accept: "*/*",
      "content-type": "application/json",
      "content-length": "2",
      authorization: "Bearer abc",
      ...sidecarHeaders("app.example:8443"),
    })
  })

  describe("hop-by-hop headers", () => {
    const HOP_BY_HOP = [
      "Connection",
      "Keep-Alive",
      "Proxy-Connection",
      "Proxy-Authorization",
      "Proxy-Authenticate",
      "TE",
      "Trailer",
      "Transfer-Encoding",
      "Upgrade",
    ]
    const spellings = HOP_BY_HOP.flatMap((name) => [name, name.toLowerCase(), name.toUpperCase()])

    it.each(spellings)("drops %s", (name) => {
      const out = forward(["Host", "app", name, "hop-value", "X-Keep", "kept"])
      expect(out).toEqual({ host: "app", "x-keep": "kept", ...sidecarHeaders("app") })
      expect(allValues(out)).not.toContain("hop-value")
    })
  })

  describe("headers named in Connection", () => {
    it.each([
      {
        label: "one token",
        raw: ["Connection", "X-Secret", "X-Secret", "s"],
        dropped: ["x-secret"],
      },
      {
        label: "a comma list with whitespace",
        raw: ["Connection", " close ,X-A,  x-b ", "X-A", "a", "x-b", "b"],
        dropped: ["x-a", "x-b"],
      },
      {
        label: "several Connection headers",
        raw: [
          "Connection",
          "x-a",
          "X-A",
          "a",
          "connection",
          "X-B",
          "X-B",
          "b",
          "CONNECTION",
          "keep-alive, x-c",
        ],
        dropped: ["x-a", "x-b", "x-c"],
      },
      {
        label: "tokens and names in different case",
        raw: ["Connection", "X-SECRET, Cookie", "x-Secret", "s", "cookie", "c"],
        dropped: ["x-secret", "cookie"],
      },
      {
        label: "a Connection header after the header it names",
        raw: ["X-Late", "l", "Connection", "x-late"],
        dropped: ["x-late"],
      },
      {
        label: "a token naming a header that also appears twice",
        raw: ["X-Dup", "1", "Connection", "x-dup", "X-Dup", "2"],
        dropped: ["x-dup"],
      },
    ])("drops headers named by $label", ({ raw, dropped }) => {
      const out = forward(["Host", "app", ...raw, "X-Keep", "kept"])
      for (const name of dropped) expect(out).not.toHaveProperty(name)
      expect(out).toEqual({ host: "app", "x-keep": "kept", ...sidecarHeaders("app") })
    })

    it("cannot remove Host or the sidecar's own headers", () => {
      const cert = 'Hash=00;Subject="CN=x"'
      const out = forward(
        [
          "Host",
          "app.example",
          "Connection",
          "host, x-forwarded-for, x-real-ip, X-Forwarded-Proto, x-forwarded-port, x-forwarded-host",
          "Connection",
          `${XFCC}, client-cert, upgrade`,
        ],
        { identity: { [XFCC]: cert, [CLIENT_CERT]: ":AA==:" }, upgrade: true },
      )
      expect(out).toEqual({
        host: "app.example",
        connection: "upgrade",
        upgrade: "websocket",
        ...sidecarHeaders("app.example"),
        [XFCC]: cert,
        [CLIENT_CERT]: ":AA==:",
      })
    })
  })

  describe("client-sent forwarding and identity headers", () => {
    it.each([
      "Forwarded",
      "forwarded",
      "FORWARDED",
      "X-Forwarded-For",
      "x-forwarded-for",
      "X-FORWARDED-FOR",
      "X_Forwarded_For",
      "x_forwarded_for",
      "X-Forwarded_For",
      "X-Forwarded-Host",
      "X_FORWARDED_HOST",
      "X-Forwarded-Proto",
      "x_forwarded_proto",
      "X-Forwarded-Port",
      "X-Forwarded-Client-Cert",
      "x_forwarded_client_cert",
      "X-FORWARDED-CLIENT-CERT",
      "X-Forwarded-Server",
      "X-Forwarded-Anything",
      "X-Real-IP",
      "x-real-ip",
      "X-Real-Ip",
      "x_real_ip",
      "X_REAL_IP",
    ])("drops %s and keeps the sidecar's value", (name) => {
      const out = forward(["Host", "app", name, "spoofed"], { identity: { [XFCC]: "Hash=ab" } })
      expect(allValues(out)).not.toContain("spoofed")
      expect(out).toEqual({ host: "app", ...sidecarHeaders("app"), [XFCC]: "Hash=ab" })
    })

    it("drops every copy of a repeated spoofed header", () => {
      const out = forward([
        "X-Forwarded-For",
        "1.1.1.1",
        "x-forwarded-for",
        "2.2.2.2",
        "X_Forwarded_For",
        "3.3.3.3",
        "X-Real-IP",
        "4.4.4.4",
      ])
      expect(out["x-forwarded-for"]).toBe(CLIENT)
      expect(out["x-real-ip"]).toBe(CLIENT)
      expect(allValues(out).join(" ")).not.toMatch(/[1-4]\.[1-4]\.[1-4]\.[1-4]/)
    })

    it("does not add X-Forwarded-Client-Cert without a certificate, even if the client sent one", () => {
      const out = forward(["Host", "app", "X-Forwarded-Client-Cert", 'Hash=forged;Subject="CN=admin"'])
      expect(out).not.toHaveProperty(XFCC)
      expect(allValues(out).join(" ")).not.toContain("forged")
    })

    // Finding 11: the whole family of identity headers that apps trust from a TLS edge.
    it.each([
      "X-Client-Cert",
      "x-client-cert",
      "X_CLIENT_CERT",
      "X-Client-Cert-Chain",
      "X-Client-Cert-Subject",
      "Client-Cert",
      "client_cert",
      "CLIENT-CERT-CHAIN",
      "X-SSL-Client-Cert",
      "X-SSL-Client-Verify",
      "X-SSL-Client-S-DN",
      "x_ssl_client_dn",
      "SSL-Client-Cert",
      "SSL_CLIENT_S_DN",
      "X-Client-Verify",
      "X-Client-DN",
      "Remote-User",
      "REMOTE_USER",
      "X-Remote-User",
      "X-Auth-Request-User",
      "X-Auth-Request-Email",
      "x_auth_request_groups",
      "X-Client-IP",
      "True-Client-IP",
      "X-Cluster-Client-IP",
    ])("finding 11: drops a client-sent %s, whatever the case or underscores", (name) => {
      const identity = { [XFCC]: "Hash=ab", [CLIENT_CERT]: ":AA==:" }
      const out = forward(["Host", "app", name, "CN=admin"], { identity })
      expect(allValues(out)).not.toContain("CN=admin")
      expect(out).toEqual({ host: "app", ...sidecarHeaders("app"), ...identity })
    })
  })

  it.each(["Expect", "expect", "EXPECT"])("drops %s (the sidecar answers 100-continue itself)", (name) => {
    const out = forward(["Host", "app", name, "100-continue"])
    expect(out).toEqual({ host: "app", ...sidecarHeaders("app") })
  })

  describe("Host", () => {
    it("keeps the first Host when several are sent, and forwards it as X-Forwarded-Host", () => {
      const out = forward(["Host", "first.example", "host", "second.example", "HOST", "third.example"])
      expect(out.host).toBe("first.example")
      expect(out["x-forwarded-host"]).toBe("first.example")
      expect(allValues(out)).not.toContain("second.example")
    })

    it("omits host and x-forwarded-host when the client sent no Host", () => {
      const out = forward(["Accept", "*/*"])
      expect(out).not.toHaveProperty("host")
      expect(out).not.toHaveProperty("x-forwarded-host")
      expect(out).toEqual({ accept: "*/*", ...sidecarHeaders(undefined) })
    })

    it("ignores a client-sent X-Forwarded-Host in favour of the original Host", () => {
      const out = forward(["X-Forwarded-Host", "evil.example", "Host", "app.example"])
      expect(out["x-forwarded-host"]).toBe("app.example")
    })
  })

  describe("client address", () => {
    it.each([
      { address: "203.0.113.7", expected: "203.0.113.7" },
      { address: "::ffff:1.2.3.4", expected: "1.2.3.4" },
      { address: "::ffff:10.0.0.1", expected: "10.0.0.1" },
      { address: "2001:db8::1", expected: "2001:db8::1" },
      { address: "::1", expected: "::1" },
      { address: "fe80::ffff:1", expected: "fe80::ffff:1" },
    ])("$address is forwarded as $expected, one entry", ({ address, expected }) => {
      const out = forward(["Host", "app", "X-Forwarded-For", "9.9.9.9, 8.8.8.8"], { clientAddress: address })
      expect(out["x-forwarded-for"]).toBe(expected)
      expect(out["x-real-ip"]).toBe(expected)
    })

    it.each([443, 8443, 65535])("x-forwarded-port is the port (%i)", (port) => {
      expect(forward(["Host", "app"], { port })["x-forwarded-port"]).toBe(String(port))
    })

    it("x-forwarded-proto is https whatever the client claims", () => {
      expect(forward(["X-Forwarded-Proto", "http"])["x-forwarded-proto"]).toBe("https")
    })
  })

  describe("upgrade", () => {
    it("sets Connection: upgrade and Upgrade: websocket and keeps the WebSocket handshake headers", () => {
      const out = forward(
        [
          "Host",
          "app",
          "Connection",
          "keep-alive, Upgrade",
          "Upgrade",
          "WebSocket",
          "Sec-WebSocket-Key",
          "dGhlIHNhbXBsZSBub25jZQ==",
          "Sec-WebSocket-Version",
          "13",
          "Sec-WebSocket-Protocol",
          "chat",
        ],
        { upgrade: true },
      )
      expect(out).toEqual({
        host: "app",
        connection: "upgrade",
        upgrade: "websocket",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
        "sec-websocket-protocol": "chat",
        ...sidecarHeaders("app"),
      })
    })

    it("without upgrade, the client's Upgrade and Connection are not forwarded", () => {
      const out = forward(["Host", "app", "Connection", "Upgrade", "Upgrade", "websocket"])
      expect(out).not.toHaveProperty("connection")
      expect(out).not.toHaveProperty("upgrade")
    })
  })

  describe("duplicates and names", () => {
    it.each([
      {
        label: "two Cookie headers",
        raw: ["Cookie", "a=1", "Cookie", "b=2"],
        name: "cookie",
        expected: ["a=1", "b=2"],
      },
      {
        label: "X-Custom in different cases",
        raw: ["X-Custom", "one", "x-custom", "two", "X-CUSTOM", "three"],
        name: "x-custom",
        expected: ["one", "two", "three"],
      },
      {
        label: "Accept split over two headers",
        raw: ["Accept", "text/html", "Accept", "application/json"],
        name: "accept",
        expected: ["text/html", "application/json"],
      },
      { label: "empty values", raw: ["X-E", "", "X-E", ""], name: "x-e", expected: ["", ""] },
    ])("keeps every value of $label", ({ raw, name, expected }) => {
      const out = forward(["Host", "app", ...raw])
      expect(out[name]).toEqual(expected)
    })

    it("lowercases names", () => {
      const out = forward(["Host", "app", "X-Request-ID", "r1", "Accept-Language", "en"])
      expect(Object.keys(out).sort()).toEqual(
        ["host", "x-request-id", "accept-language", ...Object.keys(sidecarHeaders("app"))].sort(),
      )
    })

    it("ignores a trailing name without a value", () => {
      const out = forward(["Host", "app", "X-Orphan"])
      expect(out).toEqual({ host: "app", ...sidecarHeaders("app") })
    })

    it("forwards a header named `constructor` unchanged", () => {
      const out = forward(["Host", "app", "constructor", "v"])
      expect(Object.getOwnPropertyDescriptor(out, "constructor")?.value).toBe("v")
    })

    it("forwards a header named `__proto__` unchanged", () => {
      const out = forward(["Host", "app", "__proto__", "v"])
      expect(Object.getOwnPropertyDescriptor(out, "__proto__")?.value).toBe("v")
    })
  })
})

describe("clientResponseHeaders", () => {
  it("keeps the app's end-to-end headers", () => {
    const headers = { "content-type": "text/plain", "set-cookie": ["a=1", "b=2"], "x-odd": "v" }
    clientResponseHeaders(headers, false)
    expect(headers).toEqual({
      "content-type": "text/plain",
      "set-cookie": ["a=1", "b=2"],
      "x-odd": "v",
      connection: "keep-alive",
    })
  })

  it("drops the app's hop-by-hop headers and those its Connection names", () => {
    const headers: Record<string, string> = {
      connection: "keep-alive, X-Private , close",
      "keep-alive": "timeout=5",
      "transfer-encoding": "chunked",
      trailer: "x",
      upgrade: "h2c",
      "proxy-connection": "x",
      "x-private": "secret",
      etag: '"1"',
    }
    clientResponseHeaders(headers, true)
    expect(headers).toEqual({ etag: '"1"', connection: "close" })
  })
})

describe("hasBody", () => {
  it.each<[ReadonlyArray<string>, boolean]>([
    [["Host", "a"], false],
    [["Content-Length", "0"], true],
    [["content-length", "12"], true],
    [["Transfer-Encoding", "chunked"], true],
    [["X-Content-Length", "1", "Content-Lengthy", "2"], false],
  ])("%j: %s", (raw, expected) => {
    expect(hasBody(raw)).toBe(expected)
  })
})
