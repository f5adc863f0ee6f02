/** Certificates and resources shared by the integration tests. */
import { createCa, createDevPki, type DevPki, type Issued, issue } from "../../src/dev/DevPki.ts"

export interface Fixtures extends DevPki {
  /** A client certificate from a CA the sidecar does not trust. */
  readonly strangerClient: Issued
  /** Signed by the right CA, but expired. */
  readonly expiredClient: Issued
}

const DAY = 86_400_000

export const makeFixtures = async (): Promise<Fixtures> => {
  const pki = await createDevPki()
  const stranger = await createCa({ cn: "Some Other CA" })
  const strangerClient = await issue(stranger, { cn: "developer", kind: "client" })
  const expiredClient = await issue(pki.ca, {
    cn: "developer",
    kind: "client",
    notBefore: new Date(Date.now() - 30 * DAY),
    notAfter: new Date(Date.now() - DAY),
  })
  return { ...pki, strangerClient, expiredClient }
}

export const URIS = {
  TLS_CERT_URI: "kbs:///shop/sidecar-tls-web/server-cert",
  TLS_KEY_URI: "kbs:///shop/sidecar-tls-web/server-key",
  CLIENT_CA_URI: "kbs:///default/sidecar-tls/client-ca",
} as const

/** The KBS layout kubectl-coco writes (coco-interfaces.md 5.5). */
export const resourcesFor = (pki: DevPki, attestation = "success"): Record<string, string> => ({
  "shop/sidecar-tls-web/server-cert": pki.server.certPem,
  "shop/sidecar-tls-web/server-key": pki.server.keyPem,
  "default/sidecar-tls/client-ca": pki.ca.certPem,
  "default/attestation-status/status": attestation,
})
