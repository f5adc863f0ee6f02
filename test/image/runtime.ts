/**
 * The image's runtime stage as the Dockerfile declares it, shared by the static Dockerfile checks
 * (dockerfile.test.ts) and the reproduction of that stage as a process (runtime-stage.test.ts).
 */
import { readFileSync } from "node:fs"
import * as path from "node:path"
import {
  copyArgs,
  type Dockerfile,
  type Instruction,
  numericUser,
  parseDockerfile,
  resolveDest,
  type Stage,
  workdirAt,
} from "../../scripts/lint-dockerfile.ts"

export const ROOT = path.resolve(import.meta.dirname, "../..")

/**
 * Every file the runtime stage holds besides the base image, relative to the build stage's WORKDIR
 * (where `make build` writes it) and to the runtime stage's WORKDIR (the same relative path).
 * The runtime-stage test copies exactly these; the Dockerfile test checks the Dockerfile copies exactly these.
 */
export const RUNTIME_FILES: ReadonlyArray<string> = ["dist/main.js"]

export const readDockerfile = (): Dockerfile =>
  parseDockerfile(readFileSync(path.join(ROOT, "Dockerfile"), "utf8"))

export interface RuntimeStage {
  readonly stage: Stage
  readonly build: Stage | undefined
  /** The final WORKDIR (absolute), or undefined when the stage sets none. */
  readonly workdir: string | undefined
  /** The last USER when numeric. */
  readonly user: { readonly uid: number; readonly gid: number } | undefined
  /** The COPY instructions with their sources and absolute destinations. */
  readonly copies: ReadonlyArray<{
    readonly instruction: Instruction
    readonly from: string | undefined
    readonly sources: ReadonlyArray<string>
    readonly dest: string
  }>
  /** ENTRYPOINT followed by CMD (both JSON form), as the container runtime execs it. */
  readonly argv: ReadonlyArray<string>
}

const last = (stage: Stage, keyword: string): Instruction | undefined =>
  stage.instructions.filter((i) => i.keyword === keyword).at(-1)

export const runtimeStage = (dockerfile: Dockerfile): RuntimeStage => {
  const stage = dockerfile.stages.at(-1)
  if (stage === undefined) throw new Error("the Dockerfile has no stage")
  const user = last(stage, "USER")
  const entrypoint = last(stage, "ENTRYPOINT")
  const cmd = last(stage, "CMD")
  for (const instruction of [entrypoint, cmd]) {
    if (instruction !== undefined && instruction.json === undefined) {
      throw new Error(`Dockerfile:${instruction.line}: ${instruction.keyword} is not in JSON form`)
    }
  }
  return {
    stage,
    build: dockerfile.stages.length > 1 ? dockerfile.stages[0] : undefined,
    workdir: workdirAt(stage),
    user: user === undefined ? undefined : numericUser(user.args),
    copies: stage.instructions
      .filter((i) => i.keyword === "COPY")
      .map((instruction) => ({
        instruction,
        from: instruction.flags.get("from"),
        sources: copyArgs(instruction).sources,
        dest: resolveDest(stage, instruction),
      })),
    argv: [...(entrypoint?.json ?? []), ...(cmd?.json ?? [])],
  }
}
