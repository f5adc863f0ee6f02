import { readFileSync } from "node:fs"
const d = "/root/h2spike/pki/"
export const pki = {
  ca: readFileSync(d + "ca.pem", "utf8"),
  cert: readFileSync(d + "server.pem", "utf8"),
  key: readFileSync(d + "server.key", "utf8"),
  clientCert: readFileSync(d + "client.pem", "utf8"),
  clientKey: readFileSync(d + "client.key", "utf8"),
}
export const serverTls = { cert: pki.cert, key: pki.key, ca: pki.ca, minVersion: "TLSv1.3" as const, requestCert: true, rejectUnauthorized: true }
export const clientTls = { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey, servername: "localhost" }
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
export const results: Array<[string, unknown]> = []
export const report = (name: string, value: unknown) => { results.push([name, value]); console.log(`${name}: ${typeof value === "string" ? value : JSON.stringify(value)}`) }
