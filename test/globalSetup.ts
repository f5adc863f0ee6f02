/** Builds dist/main.js once per run: the process-level tests exercise the production bundle. */
import { execFileSync } from "node:child_process"

export default function setup(): void {
  execFileSync(process.execPath, ["scripts/build.ts"], { stdio: "inherit" })
}
