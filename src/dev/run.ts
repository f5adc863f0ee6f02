/**
 * Local run (`make run`): the real sidecar with the in-memory CDH. A dev PKI
 * is generated into .dev/ on first use and served the way kubectl-coco lays
 * it out in the KBS; then a curl line that works is printed.
 *
 * Environment variables override the defaults below, as in production.
 * `DEMO_APP=1` also starts a demo application and forwards to it.
 */
import { spawnSync } from "node:child_process"
import { existsSync } from "node:fs"
import * as path from "node:path"
import * as Console from "effect/Console"
import type { Env } from "../config/SidecarConfig.ts"
import { run } from "../entry.ts"
import * as MemoryAttestationAgent from "./cdh/MemoryAttestationAgent.ts"
import * as MemoryResourceClient from "./cdh/MemoryResourceClient.ts"
import { loadOrCreateDevPki } from "./DevPki.ts"
import { startDemoApp } from "./demoApp.ts"

const dir = path.resolve(process.env.DEV_PKI_DIR ?? ".dev")
const pki = await loadOrCreateDevPki(dir)

/** The client certificate as kubectl-coco ships it for browsers: PKCS#12, empty password. */
const p12 = path.join(dir, "client.p12")
if (pki.created || !existsSync(p12)) {
  const made = spawnSync(
    "openssl",
    [
      "pkcs12",
      "-export",
      "-in",
      "client-cert.pem",
      "-inkey",
      "client-key.pem",
      "-out",
      "client.p12",
      "-passout",
      "pass:",
      "-name",
      "coco mTLS client",
    ],
    { cwd: dir, stdio: "ignore" },
  )
  if (made.status !== 0) console.warn("openssl not available: no .dev/client.p12 for browsers")
}

const resources = {
  "default/sidecar-tls-dev/server-cert": pki.server.certPem,
  "default/sidecar-tls-dev/server-key": pki.server.keyPem,
  "default/sidecar-tls/client-ca": pki.ca.certPem,
  "default/attestation-status/status": "success",
}

const demoPort =
  process.env.DEMO_APP === "1" && !process.env.FORWARD_PORT
    ? await startDemoApp(Number(process.env.DEMO_APP_PORT ?? 8888))
    : undefined

const env: Env = {
  TLS_CERT_URI: "kbs:///default/sidecar-tls-dev/server-cert",
  TLS_KEY_URI: "kbs:///default/sidecar-tls-dev/server-key",
  CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
  HTTPS_HOST: "127.0.0.1",
  HTTPS_PORT: "8443",
  POD_NAME: "dev-pod",
  POD_NAMESPACE: "default",
  LOG_FORMAT: "logfmt",
  ...(demoPort === undefined ? {} : { FORWARD_PORT: String(demoPort) }),
  ...(process.env as Env),
}

const file = (name: string) => JSON.stringify(path.join(dir, name)).replaceAll('"', "'")

// As a pod with the CDH's attestation feature on, but no TEE: the sample attester.
const info = { version: "local run", features: "all", tee: "sample", additionalTees: [] }

run({
  env,
  resourceClient: () => MemoryResourceClient.make(resources, { info }).layer,
  agent: () => MemoryAttestationAgent.layer(),
  onListening: (url) =>
    Console.log(
      [
        "",
        `dev PKI ${pki.created ? "created" : "reused"} in ${dir}`,
        "try:",
        `  curl -sS --cacert ${file("ca-cert.pem")} --cert ${file("client-cert.pem")} --key ${file("client-key.pem")} ${url}/api/status`,
        "check the evidence yourself (make build first; the local run has no TEE: sample attester):",
        `  node dist/verify.js ${url} --cacert ${file("ca-cert.pem")} --cert ${file("client-cert.pem")} --key ${file("client-key.pem")}`,
        `browser: import ${p12} (empty password) as a client certificate, then open ${url}/dashboard`,
        ...(demoPort === undefined ? [] : [`demo app on 127.0.0.1:${demoPort}, forwarded at ${url}/`]),
        "",
      ].join("\n"),
    ),
})
