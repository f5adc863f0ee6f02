// Writes a dev PKI (CA, server for localhost/127.0.0.1, client "developer") to ./pki for the spikes.
import { writeFileSync } from "node:fs"
import { createDevPki } from "/work/main/src/dev/DevPki.ts"
const pki = await createDevPki()
writeFileSync("pki/ca.pem", pki.ca.certPem)
writeFileSync("pki/server.pem", pki.server.certPem)
writeFileSync("pki/server.key", pki.server.keyPem)
writeFileSync("pki/client.pem", pki.client.certPem)
writeFileSync("pki/client.key", pki.client.keyPem)
console.log("ok")
