/**
 * The example manifests under deploy/ against the code: every YAML document
 * parses cleanly, the sidecar container is what kubectl-coco injects plus
 * the recommended additions, and its environment decodes with the sidecar's
 * own decoder. Ports, paths and defaults come from the code, not from here.
 */
import { readdirSync, readFileSync } from "node:fs"
import { join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Option, Result } from "effect"
import { parseAllDocuments, parseDocument } from "yaml"
import {
  DEFAULTS,
  decode,
  type Env,
  type Settings,
  VARIABLES,
  type Variable,
} from "../../src/config/SidecarConfig.ts"
import { LIVENESS_PATH, READINESS_PATH } from "../../src/server/HealthServer.ts"
import * as SidecarPaths from "../../src/server/SidecarPaths.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const DEPLOY = join(ROOT, "deploy")

/** kubectl-coco's injection contract (cococtl pkg/sidecar/sidecar.go, pkg/config/config.go). */
const CONTRACT = {
  container: "coco-secure-access",
  image: "quay.io/confidential-devhub/coco-secure-access:latest",
  clientCaUri: "kbs:///default/sidecar-tls/client-ca",
  serverCertUri: (ns: string, app: string) => `kbs:///${ns}/sidecar-tls-${app}/server-cert`,
  serverKeyUri: (ns: string, app: string) => `kbs:///${ns}/sidecar-tls-${app}/server-key`,
  serviceName: (app: string) => `${app}-sidecar`,
  resources: { requests: { cpu: "50m", memory: "64Mi" }, limits: { cpu: "100m", memory: "128Mi" } },
} as const

// ---- typed access to parsed YAML ----

type Mapping = Readonly<Record<string, unknown>>

const isMapping = (value: unknown): value is Mapping =>
  typeof value === "object" && value !== null && !Array.isArray(value)

const fail = (where: string, expected: string, value: unknown): never => {
  throw new Error(`${where}: expected ${expected}, got ${JSON.stringify(value)}`)
}

const mapping = (value: unknown, where: string): Mapping =>
  isMapping(value) ? value : fail(where, "a mapping", value)

const list = (value: unknown, where: string): ReadonlyArray<unknown> =>
  Array.isArray(value) ? value : fail(where, "a list", value)

const text = (value: unknown, where: string): string =>
  typeof value === "string" ? value : fail(where, "a string", value)

const integer = (value: unknown, where: string): number =>
  typeof value === "number" && Number.isInteger(value) ? value : fail(where, "an integer", value)

const named = (items: ReadonlyArray<unknown>, name: string, where: string): Mapping => {
  const found = items.map((item, i) => mapping(item, `${where}[${i}]`)).filter((item) => item.name === name)
  if (found.length !== 1)
    throw new Error(`${where}: expected exactly one entry named ${name}, got ${found.length}`)
  return found[0] as Mapping
}

const isVariable = (name: string): name is Variable => (VARIABLES as ReadonlyArray<string>).includes(name)

// ---- the documents ----

interface Manifest {
  readonly file: string
  readonly index: number
  readonly value: Mapping
}

const yamlFiles = (dir: string): ReadonlyArray<string> =>
  readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) =>
      entry.isDirectory()
        ? yamlFiles(join(dir, entry.name))
        : /\.ya?ml$/.test(entry.name)
          ? [join(dir, entry.name)]
          : [],
    )
    .sort()

const FILES = yamlFiles(DEPLOY)

/** Every document, which must parse without error or warning and mean the same in YAML 1.1 (as kubectl's parser reads some scalars) and 1.2. */
const MANIFESTS: ReadonlyArray<Manifest> = FILES.flatMap((path) => {
  const file = relative(ROOT, path)
  const source = readFileSync(path, "utf8")
  const parse = (version: "1.1" | "1.2") => {
    const docs = parseAllDocuments(source, { version, uniqueKeys: true, prettyErrors: true })
    if ("empty" in docs) throw new Error(`${file}: no YAML document`)
    return docs
  }
  const docs = parse("1.2")
  const docs11 = parse("1.1")
  return docs.map((doc, index) => {
    const problems = [...doc.errors, ...doc.warnings]
    if (problems.length > 0) {
      throw new Error(`${file} document ${index}:\n${problems.map((p) => p.message).join("\n")}`)
    }
    const value: unknown = doc.toJS()
    const value11: unknown = docs11[index]?.toJS()
    if (JSON.stringify(value) !== JSON.stringify(value11)) {
      throw new Error(`${file} document ${index} reads differently as YAML 1.1 (quote ambiguous scalars)`)
    }
    return { file, index, value: mapping(value, `${file} document ${index}`) }
  })
})

const byKind = (kind: string): Mapping => {
  const found = MANIFESTS.filter((m) => m.value.kind === kind)
  if (found.length !== 1) throw new Error(`expected exactly one ${kind} under deploy/, got ${found.length}`)
  return (found[0] as Manifest).value
}

const deployment = byKind("Deployment")
const service = byKind("Service")

const app = text(mapping(deployment.metadata, "Deployment.metadata").name, "Deployment.metadata.name")
const namespace = text(
  mapping(deployment.metadata, "Deployment.metadata").namespace,
  "Deployment.metadata.namespace",
)
const template = mapping(mapping(deployment.spec, "Deployment.spec").template, "Deployment.spec.template")
const templateLabels = mapping(
  mapping(template.metadata, "template.metadata").labels,
  "template.metadata.labels",
)
const podSpec = mapping(template.spec, "template.spec")
const containers = list(podSpec.containers, "template.spec.containers").map((c, i) =>
  mapping(c, `template.spec.containers[${i}]`),
)
const sidecar = named(containers, CONTRACT.container, "template.spec.containers")
const appContainers = containers.filter((c) => c !== sidecar)
const sidecarPorts = list(sidecar.ports, "sidecar.ports")
const sidecarEnv = list(sidecar.env, "sidecar.env").map((e, i) => mapping(e, `sidecar.env[${i}]`))

/** The Downward API values kubelet would put in, as sample strings. */
const FIELD_VALUES: Readonly<Record<string, string>> = {
  "metadata.name": `${app}-5d8f7c9b6-x2x4q`,
  "metadata.namespace": namespace,
}

const resolvedEnv = (): Env => {
  const env: Env = {}
  for (const entry of sidecarEnv) {
    const name = text(entry.name, "sidecar.env[].name")
    if (!isVariable(name)) throw new Error(`sidecar env ${name} is not a variable the sidecar reads`)
    if (entry.valueFrom !== undefined) {
      expect(entry.value, `${name} has both value and valueFrom`).toBeUndefined()
      const fieldPath = text(
        mapping(mapping(entry.valueFrom, `${name}.valueFrom`).fieldRef, `${name}.valueFrom.fieldRef`)
          .fieldPath,
        `${name}.valueFrom.fieldRef.fieldPath`,
      )
      const sample = FIELD_VALUES[fieldPath]
      if (sample === undefined) throw new Error(`${name}: unexpected fieldRef ${fieldPath}`)
      env[name] = sample
    } else {
      env[name] = text(entry.value, `${name}.value`)
    }
  }
  return env
}

const settings = (): Settings => {
  const result = decode(resolvedEnv())
  if (Result.isFailure(result)) throw new Error(`the sidecar env does not decode:\n${result.failure.message}`)
  return result.success
}

const envValue = (name: Variable): unknown => named(sidecarEnv, name, "sidecar.env").value

/** The container fields of the README's "Probes for kubelet" example. */
const readmeProbeExample = (): Mapping => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8")
  const section = readme.indexOf("### Probes for kubelet")
  const start = readme.indexOf("```yaml\n", section)
  const end = readme.indexOf("```", start + 8)
  if (section === -1 || start === -1 || end === -1)
    throw new Error("README.md: no yaml example under Probes for kubelet")
  const doc = parseDocument(readme.slice(start + 8, end))
  expect([...doc.errors, ...doc.warnings].map((p) => p.message)).toEqual([])
  const value: unknown = doc.toJS()
  return mapping(value, "README probe example")
}

describe("deploy/ manifests", () => {
  it("parse cleanly, one Kubernetes object per document", () => {
    expect(FILES.map((f) => relative(ROOT, f))).toEqual(
      expect.arrayContaining(["deploy/app-with-sidecar.yaml", "deploy/service-nodeport.yaml"]),
    )
    for (const { file, index, value } of MANIFESTS) {
      const where = `${file} document ${index}`
      text(value.apiVersion, `${where} apiVersion`)
      text(value.kind, `${where} kind`)
      text(mapping(value.metadata, `${where} metadata`).name, `${where} metadata.name`)
    }
  })

  it("the sidecar is kubectl-coco's container: name, image, last regular container", () => {
    expect(sidecar.name).toBe(CONTRACT.container)
    expect(sidecar.image).toBe(CONTRACT.image)
    expect(containers.at(-1)).toBe(sidecar)
    expect(sidecar.command).toBeUndefined()
    expect(sidecar.args).toBeUndefined()
  })

  it("every env name is a sidecar variable, and the env decodes", () => {
    const names = sidecarEnv.map((e) => text(e.name, "sidecar.env[].name"))
    expect(new Set(names).size, "duplicate env names").toBe(names.length)
    for (const name of names) expect(VARIABLES).toContain(name)
    const s = settings()
    expect(s.tlsCertUri.uri).toBe(CONTRACT.serverCertUri(namespace, app))
    expect(s.tlsKeyUri.uri).toBe(CONTRACT.serverKeyUri(namespace, app))
    expect(s.clientCaUri.uri).toBe(CONTRACT.clientCaUri)
    expect(envValue("HTTPS_PORT")).toBe(DEFAULTS.HTTPS_PORT)
    expect(s.podName).toBe(FIELD_VALUES["metadata.name"])
    expect(s.podNamespace).toBe(namespace)
  })

  it("POD_NAME and POD_NAMESPACE come from the Downward API", () => {
    const fieldPath = (name: Variable) =>
      mapping(mapping(named(sidecarEnv, name, "sidecar.env").valueFrom, name).fieldRef, name).fieldPath
    expect(fieldPath("POD_NAME")).toBe("metadata.name")
    expect(fieldPath("POD_NAMESPACE")).toBe("metadata.namespace")
  })

  it("the https port is HTTPS_PORT, named https, TCP", () => {
    const https = named(sidecarPorts, "https", "sidecar.ports")
    expect(integer(https.containerPort, "https.containerPort")).toBe(settings().httpsPort)
    expect(https.protocol).toBe("TCP")
  })

  it("port names are unique in the pod (an app port named https would break the pod)", () => {
    const names = containers.flatMap((c, i) =>
      list(c.ports ?? [], `containers[${i}].ports`).map((p) => mapping(p, "port").name),
    )
    expect(new Set(names).size).toBe(names.length)
  })

  it("the probes use the health port and the HealthServer's paths, as in the README", () => {
    const health = settings().health
    if (health === undefined) throw new Error("HEALTH_PORT is not set")
    const port = named(sidecarPorts, "health", "sidecar.ports")
    expect(integer(port.containerPort, "health.containerPort")).toBe(health.port)
    const probe = (name: string) => mapping(mapping(sidecar[name], name).httpGet, `${name}.httpGet`)
    expect(probe("livenessProbe")).toEqual({ path: LIVENESS_PATH, port: port.name })
    expect(probe("readinessProbe")).toEqual({ path: READINESS_PATH, port: port.name })
    // /healthz answers from the first moment, so a startup probe would gate nothing.
    expect(sidecar.startupProbe).toBeUndefined()
    const readme = readmeProbeExample()
    for (const name of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      expect(sidecar[name], `${name} differs from README.md`).toEqual(readme[name])
    }
  })

  it("the resources are kubectl-coco's defaults", () => {
    expect(sidecar.resources).toEqual(CONTRACT.resources)
  })

  it("the sidecar runs unprivileged", () => {
    expect(sidecar.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    })
  })

  it("FORWARD_PORT is the app container's port, and the sidecar's paths leave the app's /api/status alone", () => {
    const s = settings()
    const forward = Option.getOrThrow(s.forwardPort)
    const appPorts = appContainers.flatMap((c) =>
      list(c.ports ?? [], "app.ports").map((p) =>
        integer(mapping(p, "app port").containerPort, "containerPort"),
      ),
    )
    expect(appPorts).toContain(forward)
    const paths = SidecarPaths.make(s.pathPrefix)
    // Jupyter serves /api/status itself: with the prefix it reaches the app.
    expect(paths.owns("/api/status")).toBe(false)
    expect(paths.owns(paths.status)).toBe(true)
    const readme = readFileSync(join(DEPLOY, "README.md"), "utf8")
    expect(readme).toContain(paths.status)
    expect(readme).toContain(paths.dashboard)
  })

  it("the Service is kubectl-coco's <app>-sidecar as a NodePort, targeting the https port", () => {
    const metadata = mapping(service.metadata, "Service.metadata")
    expect(metadata.name).toBe(CONTRACT.serviceName(app))
    expect(metadata.namespace).toBe(namespace)
    const spec = mapping(service.spec, "Service.spec")
    expect(spec.type).toBe("NodePort")
    expect(spec.selector).toEqual(templateLabels)
    const matchLabels = mapping(mapping(deployment.spec, "Deployment.spec").selector, "selector").matchLabels
    expect(templateLabels).toMatchObject(mapping(matchLabels, "matchLabels"))
    const ports = list(spec.ports, "Service.spec.ports")
    expect(ports).toHaveLength(1)
    const https = named(ports, "https", "Service.spec.ports")
    expect(https.targetPort).toBe("https")
    expect(https.port).toBe(settings().httpsPort)
    expect(https.protocol).toBe("TCP")
    if (https.nodePort !== undefined) {
      const nodePort = integer(https.nodePort, "nodePort")
      expect(nodePort).toBeGreaterThanOrEqual(30000)
      expect(nodePort).toBeLessThanOrEqual(32767)
    }
  })
})
