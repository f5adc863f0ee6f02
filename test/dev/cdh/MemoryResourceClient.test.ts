import { assert, describe, it } from "@effect/vitest"
import { Effect, Result } from "effect"
import { CdhHttpError, CdhUnreachable, ResourceClient } from "../../../src/cdh/ResourceClient.ts"
import { layer, MemoryCdh, MISSING_BODY, SOURCE } from "../../../src/dev/cdh/MemoryResourceClient.ts"
import { parse } from "../../../src/kbs/ResourceUri.ts"

const ABC = Result.getOrThrow(parse("kbs:///a/b/c"))
const BINARY = new Uint8Array([0x00, 0xff, 0x0a, 0x0d, 0x80, 0x7f])
const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes)

describe("MemoryResourceClient", () => {
  it.effect("a stored string comes back as its UTF-8 bytes; the source is memory://cdh", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      assert.strictEqual(client.source, SOURCE)
      const bytes = yield* client.get(ABC)
      assert.strictEqual(text(bytes), "héllo")
      assert.deepStrictEqual([...bytes], [...new TextEncoder().encode("héllo")])
    }).pipe(Effect.provide(layer({ "a/b/c": "héllo" }))),
  )

  it.effect("a stored Uint8Array comes back byte for byte", () =>
    Effect.gen(function* () {
      const bytes = yield* (yield* ResourceClient).get(ABC)
      assert.deepStrictEqual([...bytes], [...BINARY])
    }).pipe(Effect.provide(layer({ "a/b/c": BINARY }))),
  )

  it.effect("a missing resource fails like the real CDH: CdhHttpError 500, retryable, rpc-status body", () =>
    Effect.gen(function* () {
      const error = yield* Effect.flip((yield* ResourceClient).get(ABC))
      assert.instanceOf(error, CdhHttpError)
      assert.strictEqual(error._tag, "CdhHttpError")
      if (error._tag !== "CdhHttpError") return
      assert.strictEqual(error.status, 500)
      assert.isTrue(error.retryable)
      assert.strictEqual(error.uri, "kbs:///a/b/c")
      assert.strictEqual(error.url, "memory://cdh/cdh/resource/a/b/c")
      assert.strictEqual(error.body, MISSING_BODY)
      assert.include(error.body, "Get Resource failed")
      assert.include(error.message, "kbs:///a/b/c")
      assert.include(error.message, "HTTP 500")
    }).pipe(Effect.provide(layer({ "x/y/z": "other" }))),
  )

  it.effect("set adds and replaces a resource while running", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const cdh = yield* MemoryCdh
      const before = yield* Effect.flip(client.get(ABC))
      assert.strictEqual(before._tag, "CdhHttpError")
      cdh.set("a/b/c", "first")
      assert.strictEqual(text(yield* client.get(ABC)), "first")
      cdh.set("a/b/c", BINARY)
      assert.deepStrictEqual([...(yield* client.get(ABC))], [...BINARY])
    }).pipe(Effect.provide(layer({}))),
  )

  it.effect("remove makes a resource missing again (500)", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const cdh = yield* MemoryCdh
      assert.strictEqual(text(yield* client.get(ABC)), "here")
      cdh.remove("a/b/c")
      const error = yield* Effect.flip(client.get(ABC))
      assert.strictEqual(error._tag, "CdhHttpError")
      if (error._tag === "CdhHttpError") assert.strictEqual(error.status, 500)
      cdh.remove("never/was/there") // no-op, no throw
    }).pipe(Effect.provide(layer({ "a/b/c": "here" }))),
  )

  it.effect("returned bytes are a copy: mutating them changes neither the store nor later reads", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const first = yield* client.get(ABC)
      first[0] = 0x42
      first.fill(0x41, 1)
      const second = yield* client.get(ABC)
      assert.deepStrictEqual([...second], [...BINARY])
      assert.notStrictEqual(first, second)
    }).pipe(Effect.provide(layer({ "a/b/c": BINARY }))),
  )

  it.effect("bytes read from a binary seed are a copy too", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const bytes = yield* client.get(ABC)
      bytes[0] = 0x42
      assert.strictEqual((yield* client.get(ABC))[0], 0x00)
    }).pipe(Effect.provide(layer({ "a/b/c": new Uint8Array(BINARY) }))),
  )

  it.effect("failNext scripts the next n failures in order, then the store answers again", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const cdh = yield* MemoryCdh
      cdh.failNext(1, { _tag: "Unreachable" })
      cdh.failNext(2, { _tag: "Status", status: 503 })
      const e1 = yield* Effect.flip(client.get(ABC))
      assert.instanceOf(e1, CdhUnreachable)
      if (e1._tag === "CdhUnreachable") {
        assert.strictEqual(e1.reason, "ECONNREFUSED")
        assert.isTrue(e1.retryable)
      }
      for (let i = 0; i < 2; i++) {
        const e = yield* Effect.flip(client.get(ABC))
        assert.strictEqual(e._tag, "CdhHttpError")
        if (e._tag === "CdhHttpError") assert.strictEqual(e.status, 503)
      }
      assert.strictEqual(text(yield* client.get(ABC)), "ok")
      assert.deepStrictEqual(cdh.requests, ["a/b/c", "a/b/c", "a/b/c", "a/b/c"])
    }).pipe(Effect.provide(layer({ "a/b/c": "ok" }))),
  )

  it.effect("requests records every path asked for, in order, failures included", () =>
    Effect.gen(function* () {
      const client = yield* ResourceClient
      const cdh = yield* MemoryCdh
      assert.deepStrictEqual(cdh.requests, [])
      yield* client.get(ABC)
      yield* Effect.flip(client.get(Result.getOrThrow(parse("kbs:///x/y/z"))))
      assert.deepStrictEqual(cdh.requests, ["a/b/c", "x/y/z"])
    }).pipe(Effect.provide(layer({ "a/b/c": "ok" }))),
  )

  it.effect("two layers built from one seed do not share a store", () =>
    Effect.gen(function* () {
      const seed = { "a/b/c": "seed" }
      const l1 = layer(seed)
      const l2 = layer(seed)
      yield* Effect.gen(function* () {
        ;(yield* MemoryCdh).set("a/b/c", "changed")
      }).pipe(Effect.provide(l1))
      const fromL2 = yield* Effect.gen(function* () {
        return yield* (yield* ResourceClient).get(ABC)
      }).pipe(Effect.provide(l2))
      assert.strictEqual(text(fromL2), "seed")
    }),
  )
})
