// esbuild options shared by the production build and the measurements, so
// that what is measured is what ships.
import type { BuildOptions } from "esbuild"

export const bundleOptions: BuildOptions = {
  bundle: true,
  platform: "node",
  target: "node24",
  format: "esm",
  minifySyntax: true,
  minifyWhitespace: true,
  legalComments: "none",
  // CommonJS dependencies (ws) call require() for Node built-ins.
  banner: {
    js: 'import { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);',
  },
  logLevel: "warning",
}
