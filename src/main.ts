/** Production entry: the sidecar with the CDH's REST API as resource source. */
import * as HttpAttestationAgent from "./cdh/HttpAttestationAgent.ts"
import * as HttpResourceClient from "./cdh/HttpResourceClient.ts"
import { run } from "./entry.ts"

run({
  env: process.env,
  resourceClient: (settings) =>
    HttpResourceClient.layer({ url: settings.cdh.url, requestTimeout: settings.cdh.requestTimeout }),
  agent: (settings) =>
    HttpAttestationAgent.layer({ url: settings.cdh.url, requestTimeout: settings.cdh.requestTimeout }),
})
