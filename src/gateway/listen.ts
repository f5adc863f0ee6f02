/** Binds a Node server as an Effect: a failed bind (EADDRINUSE, EACCES, …) fails with `onError`'s error. */
import type { Server } from "node:net"
import * as Effect from "effect/Effect"

export const listen = <E>(
  server: Server,
  address: { readonly port: number; readonly host: string | undefined },
  onError: (cause: NodeJS.ErrnoException) => E,
): Effect.Effect<void, E> =>
  Effect.callback<void, E>((resume) => {
    const failed = (cause: NodeJS.ErrnoException) => resume(Effect.fail(onError(cause)))
    server.once("error", failed)
    server.listen(
      { port: address.port, ...(address.host === undefined ? {} : { host: address.host }) },
      () => {
        server.off("error", failed)
        resume(Effect.void)
      },
    )
  })
