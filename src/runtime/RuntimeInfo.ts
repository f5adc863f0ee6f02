/** Facts about this sidecar process: version, start time, runtime. */
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import pkg from "../../package.json" with { type: "json" }

export interface Info {
  readonly version: string
  readonly startedAt: Date
  readonly nodeVersion: string
}

export class RuntimeInfo extends Context.Service<RuntimeInfo, Info>()("coco-secure-access/RuntimeInfo") {
  static readonly layer: Layer.Layer<RuntimeInfo> = Layer.effect(
    RuntimeInfo,
    Clock.currentTimeMillis.pipe(
      Effect.map((now) =>
        RuntimeInfo.of({ version: pkg.version, startedAt: new Date(now), nodeVersion: process.version }),
      ),
    ),
  )
}
