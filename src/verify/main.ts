/**
 * dist/verify.js: what a user runs on their own machine to check that the evidence a sidecar
 * serves is bound to the very TLS key that served it, and to a nonce only they chose.
 *
 *   node dist/verify.js https://HOST:PORT --cert FILE --key FILE [--cacert FILE | --insecure]
 *
 * It connects with mTLS, takes the server's public key from its own handshake, sends a fresh
 * nonce to `/api/evidence`, recomputes the runtime data (src/attestation/binding.ts) and checks that
 * the evidence's report data carries it (evidence.ts). Exit 0 only when the binding holds; 1 when
 * it does not; 2 for a usage or connection problem. Plain Node, no dependencies.
 */
import { randomBytes } from "node:crypto"
import { readFileSync } from "node:fs"
import type * as Https from "node:https"
import { createRequire } from "node:module"
import type { TLSSocket } from "node:tls"
import { parseArgs } from "node:util"
import { publicKeySha256, runtimeData } from "../attestation/binding.ts"
import { carries, readEvidence } from "./evidence.ts"

const https: typeof Https = createRequire(import.meta.url)("node:https")

const USAGE = `usage: node verify.js https://HOST:PORT --cert FILE --key FILE [--cacert FILE | --insecure]
                      [--prefix /PATH] [--require-tee]
  --cert, --key   your client certificate and key (kubectl-coco: ~/.kube/coco-sidecar/client-*.pem)
  --cacert        the CA the server certificate is checked against
  --insecure      do not check the server certificate (the binding is still checked against the
                  key this connection was served with)
  --prefix        the sidecar's SIDECAR_PATH_PREFIX, if it has one
  --require-tee   fail when the pod has no TEE (the "sample" attester)`

const fail = (code: 1 | 2, message: string): never => {
  process.stderr.write(`${message}\n`)
  process.exit(code)
}

interface Answer {
  readonly status: number
  readonly body: string
  readonly serverKeySha256: Buffer
}

const fetchEvidence = (url: URL, tls: Https.RequestOptions): Promise<Answer> =>
  new Promise((resolve, reject) => {
    const request = https.request(
      url,
      { ...tls, agent: false, headers: { accept: "application/json" } },
      (response) => {
        // The key of the connection that carried this very answer.
        const peer = (response.socket as TLSSocket).getPeerX509Certificate()
        if (peer === undefined) return reject(new Error("the server presented no certificate"))
        const serverKeySha256 = publicKeySha256(peer)
        let body = ""
        response.setEncoding("utf8")
        response.on("data", (chunk: string) => {
          body += chunk
          if (body.length > 8 * 1024 * 1024) request.destroy(new Error("answer larger than 8 MiB"))
        })
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body, serverKeySha256 }))
        response.on("error", reject)
      },
    )
    request.setTimeout(60_000, () => request.destroy(new Error("no answer within 60 s")))
    request.on("error", reject)
    request.end()
  })

const main = async (): Promise<number> => {
  const parsed = (() => {
    try {
      return parseArgs({
        allowPositionals: true,
        options: {
          cert: { type: "string" },
          key: { type: "string" },
          cacert: { type: "string" },
          insecure: { type: "boolean" },
          prefix: { type: "string" },
          "require-tee": { type: "boolean" },
          help: { type: "boolean" },
        },
      })
    } catch (error) {
      return fail(2, `${error instanceof Error ? error.message : String(error)}\n${USAGE}`)
    }
  })()
  const { values, positionals } = parsed
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`)
    return 0
  }
  const target = positionals[0]
  if (positionals.length !== 1 || target === undefined) return fail(2, USAGE)
  let base: URL
  try {
    base = new URL(target)
  } catch {
    return fail(2, `not a URL: ${target}\n${USAGE}`)
  }
  if (base.protocol !== "https:") return fail(2, `the sidecar speaks https only, not ${base.protocol}`)
  const cert = values.cert
  const key = values.key
  if (typeof cert !== "string" || typeof key !== "string")
    return fail(2, `--cert and --key are required\n${USAGE}`)
  if (values.insecure === true && values.cacert !== undefined)
    return fail(2, "--cacert and --insecure exclude each other")
  const read = (file: string) => {
    try {
      return readFileSync(file)
    } catch (error) {
      return fail(2, `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`)
    }
  }
  const tls: Https.RequestOptions = {
    cert: read(cert),
    key: read(key),
    ...(typeof values.cacert === "string" ? { ca: read(values.cacert) } : {}),
    rejectUnauthorized: values.insecure !== true,
  }

  const nonce = randomBytes(32)
  const prefix = typeof values.prefix === "string" ? values.prefix.replace(/\/+$/, "") : ""
  const url = new URL(`${prefix}/api/evidence?nonce=${nonce.toString("base64url")}`, base)
  let answer: Answer
  try {
    answer = await fetchEvidence(url, tls)
  } catch (error) {
    return fail(
      2,
      `cannot get ${url.pathname} from ${base.host}: ${error instanceof Error ? error.message : String(error)}`,
    )
  }
  if (answer.status !== 200) {
    let detail = answer.body.slice(0, 500)
    try {
      detail = String((JSON.parse(answer.body) as { detail?: unknown }).detail ?? detail)
    } catch {}
    return fail(2, `the sidecar answered HTTP ${answer.status}: ${detail}`)
  }
  let body: {
    nonce?: unknown
    serverPublicKeySha256?: unknown
    runtimeData?: unknown
    tee?: unknown
    evidence?: unknown
  }
  try {
    body = JSON.parse(answer.body) as typeof body
  } catch {
    return fail(1, "FAIL: the answer is not JSON")
  }

  const keyHash = answer.serverKeySha256
  const expected = runtimeData(nonce, keyHash)
  const lines: Array<string> = []
  const say = (line: string) => lines.push(line)
  const field = (label: string, value: string) => say(`${`${label}:`.padEnd(46)}${value}`)
  field("server key, SHA-256 of its SPKI (this TLS)", keyHash.toString("hex"))
  field(`nonce (${nonce.length} fresh bytes, base64url)`, nonce.toString("base64url"))
  field("expected runtime data", expected)

  const problems: Array<string> = []
  if (body.nonce !== nonce.toString("base64url")) problems.push("the answer is not for this nonce")
  if (body.serverPublicKeySha256 !== keyHash.toString("hex")) {
    problems.push(
      `the sidecar names another server key (${String(body.serverPublicKeySha256)}) than the one this connection was served with`,
    )
  }
  let tee = "unknown"
  try {
    const reading = readEvidence(typeof body.tee === "string" ? body.tee : null, body.evidence)
    tee = reading.tee
    say(
      `TEE: ${reading.tee}${reading.tee === "sample" ? " (NO TEE: the attestation agent's sample attester, evidence anyone can make)" : ""}`,
    )
    for (const detail of reading.details) say(`  ${detail}`)
    for (const m of reading.measurements) say(`  ${m.name}: ${m.value}`)
    field("report data (hex)", Buffer.from(reading.reportData).toString("hex"))
    if (!carries(reading, Buffer.from(expected, "ascii"))) {
      problems.push(
        "the evidence's report data does not carry the expected runtime data (replayed, or made for another key or nonce)",
      )
    }
  } catch (error) {
    problems.push(`the evidence cannot be read: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (values["require-tee"] === true && (tee === "sample" || tee === "unknown")) {
    problems.push("--require-tee: the pod has no TEE")
  }
  process.stdout.write(`${lines.join("\n")}\n\n`)
  if (problems.length > 0) {
    process.stdout.write(`FAIL\n${problems.map((p) => `  - ${p}`).join("\n")}\n`)
    return 1
  }
  process.stdout.write(
    [
      "OK: the evidence carries this nonce and the key of this TLS connection.",
      "What this proves: the attestation agent of the TEE that produced this evidence was asked, now,",
      "about the very key that terminated this connection; a replayed or borrowed report would not carry it.",
      "What it does not prove: that the hardware evidence is genuine and its measurements are the ones you",
      "trust. That needs its signature chain (Intel/AMD) and reference values checked: an attestation",
      "service's job (see the appraisal in /api/attestation), or a tool for your TEE's quotes.",
      "",
    ].join("\n"),
  )
  return 0
}

process.exitCode = await main()
