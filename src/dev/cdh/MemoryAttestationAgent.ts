/**
 * The in-memory attestation agent of the local run: evidence as the sample attester (no TEE) makes
 * it, and EAR tokens signed by a key made at start. Nothing of it is an attestation.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { AttestationAgent } from "../../cdh/AttestationAgent.ts"
import { earToken, newSigner } from "../earToken.ts"
import { sampleEvidence } from "../evidence.ts"

export const layer = (): Layer.Layer<AttestationAgent> =>
  Layer.sync(AttestationAgent, () => {
    const signer = newSigner()
    const keypair = "-----BEGIN PRIVATE KEY-----\nLOCAL RUN ONLY: not a real key\n-----END PRIVATE KEY-----\n"
    return AttestationAgent.of({
      evidence: (runtimeData) =>
        Effect.sync(() =>
          new TextEncoder().encode(JSON.stringify(sampleEvidence(new TextEncoder().encode(runtimeData)))),
        ),
      token: Effect.sync(() =>
        new TextEncoder().encode(
          JSON.stringify({ token: earToken(signer, { tee: "sample" }), tee_keypair: keypair }),
        ),
      ),
    })
  })
