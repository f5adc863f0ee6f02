// Production bundle: one ESM file, dist/main.js, with every dependency inlined
// (faster start and less memory than resolving node_modules at run time).
import { build } from "esbuild"

const result = await build({
  entryPoints: ["src/main.ts"],
  outfile: "dist/main.js",
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  minifySyntax: true,
  minifyWhitespace: true,
  sourcemap: "linked",
  legalComments: "none",
  metafile: true,
  // CommonJS dependencies (ws) call require() for Node built-ins.
  banner: {
    js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
  },
  logLevel: "warning",
})

const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0)
console.log(`dist/main.js built (${(bytes / 1024).toFixed(0)} KiB with source map)`)
