import * as Data from "effect/Data"

/** The listener could not bind, e.g. EADDRINUSE or EACCES. */
export class ListenError extends Data.TaggedError("ListenError")<{
  readonly port: number
  readonly host: string | undefined
  readonly cause: NodeJS.ErrnoException
}> {
  override get message(): string {
    return `cannot listen on ${this.host ?? "*"}:${this.port}: ${this.cause.code ?? this.cause.message}`
  }
}
