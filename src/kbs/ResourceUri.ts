/**
 * KBS resource URIs (`kbs:///repo/type/tag`) and their mapping to the
 * in-guest CDH REST path. The grammar is Trustee's resource plugin's: the
 * real stack rejects anything else late and slowly (a 500 after several
 * attestations), so the sidecar rejects it at start-up instead.
 */
import * as Data from "effect/Data"
import * as Result from "effect/Result"

export interface ResourceUri {
  readonly uri: string
  readonly repository: string
  readonly type: string
  readonly tag: string
  /** `repo/type/tag`, the path under `/cdh/resource/`. */
  readonly path: string
}

export class InvalidResourceUri extends Data.TaggedError("InvalidResourceUri")<{
  readonly input: string
  readonly reason: string
}> {
  override get message(): string {
    return `invalid KBS resource URI ${JSON.stringify(this.input)}: ${this.reason}`
  }
}

const SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9_.-]*$/
const PREFIX = "kbs://"

const invalid = (input: string, reason: string) => Result.fail(new InvalidResourceUri({ input, reason }))

/** Parses `kbs:///repo/type/tag`; a non-empty authority is refused (CDH ignores it anyway). */
export const parse = (input: string): Result.Result<ResourceUri, InvalidResourceUri> => {
  if (!input.startsWith(PREFIX)) {
    return invalid(input, "expected the form kbs:///<repository>/<type>/<tag>")
  }
  const rest = input.slice(PREFIX.length)
  if (!rest.startsWith("/")) {
    return invalid(input, "a host is not allowed: the CDH always asks its configured KBS; use kbs:///…")
  }
  if (rest.includes("?") || rest.includes("#")) {
    return invalid(input, "query strings and fragments are not passed to the KBS")
  }
  const segments = rest.slice(1).split("/")
  if (segments.length !== 3) {
    return invalid(input, `expected exactly 3 path segments (repository/type/tag), got ${segments.length}`)
  }
  for (const segment of segments) {
    if (!SEGMENT.test(segment)) {
      return invalid(
        input,
        `segment ${JSON.stringify(segment)} must match ${SEGMENT.source} (letters, digits, _ - .; not starting with .)`,
      )
    }
  }
  const [repository, type, tag] = segments as [string, string, string]
  return Result.succeed({ uri: input, repository, type, tag, path: `${repository}/${type}/${tag}` })
}

/** `GET {cdhUrl}/cdh/resource/repo/type/tag`; segments are already URL-safe by the grammar. */
export const cdhUrl = (cdhBase: string, resource: ResourceUri): string =>
  `${cdhBase.replace(/\/+$/, "")}/cdh/resource/${resource.path}`

/** The kubectl-coco attestation-status convention resource. */
export const ATTESTATION_STATUS = "kbs:///default/attestation-status/status"
