// Production bundle: one ESM file, dist/main.js, with every dependency inlined
// (faster start and less memory than resolving node_modules at run time); and the verifier a
// user runs on their own machine, dist/verify.js (not in the image).
import { build } from "esbuild"
import { bundleOptions } from "./bundle-options.ts"

const result = await build({
  ...bundleOptions,
  entryPoints: ["src/main.ts"],
  outfile: "dist/main.js",
  sourcemap: "linked",
  metafile: true,
})

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
console.log(`dist/main.js built (${(bytes / 1024).toFixed(0)} KiB with source map)`)

await build({ ...bundleOptions, entryPoints: ["src/verify/main.ts"], outfile: "dist/verify.js" })
console.log("dist/verify.js built")
