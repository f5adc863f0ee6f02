// esbuild options shared by the production build and the measurements, so
// that what is measured is what ships.
import type { BuildOptions, Plugin } from "esbuild"

/**
 * Modules that dependencies load for features the sidecar never uses, replaced in the bundle by
 * a stand-in: an object that throws, naming itself, when any property is read (ES-module importers
 * see it as a module without exports). Each costs memory at every start (ws, undici), and the
 * two dynamic imports of NodeHttpClient
 * made esbuild wrap ~150 Effect modules in lazy initialisers, which keeps code tree-shaking
 * would otherwise drop (node:child_process, node:readline). See docs/PERFORMANCE.md.
 */
export const unusedModules: ReadonlyArray<{
  readonly importer: RegExp
  readonly path: string
  readonly why: string
  /** CommonJS source of the stand-in, when the throwing object does not fit. */
  readonly standIn?: string
}> = [
  {
    importer: /node_modules\/@effect\/platform-node\/dist\/NodeHttpClient\.js$/,
    path: "./Undici.js",
    why: "the CDH client uses node:http, not undici",
  },
  {
    importer: /node_modules\/@effect\/platform-node\/dist\/NodeHttpClient\.js$/,
    path: "./internal/upgrade.js",
    why: "the CDH client never upgrades a connection",
  },
  {
    importer: /node_modules\/@effect\/platform-node\/dist\/NodeHttpServer\.js$/,
    path: "./NodeServices.js",
    why: "SidecarApp provides the platform services itself; no child processes or terminal",
  },
  {
    importer: /node_modules\/@effect\/platform-node\/dist\/NodeHttpServer\.js$/,
    path: "./NodeWS.js",
    why: "WebSockets are forwarded at the Node level; Effect's own WebSocket server is never made",
  },
]

const unusedModulesPlugin: Plugin = {
  name: "unused-modules",
  setup(build) {
    build.onResolve({ filter: /./ }, (args) => {
      const match = unusedModules.find((m) => m.path === args.path && m.importer.test(args.importer))
      return match === undefined
        ? undefined
        : { path: `${args.path} (${match.why})`, namespace: "unused", pluginData: match.standIn }
    })
    // Loading the stand-in succeeds (importers load these eagerly); using any of it throws.
    build.onLoad({ filter: /./, namespace: "unused" }, (args) => ({
      contents:
        (args.pluginData as string | undefined) ??
        `const message = ${JSON.stringify(`not in the sidecar bundle: ${args.path}`)}
module.exports = new Proxy({}, {
  get(_, key) {
    // An ES module to interop helpers, so that CommonJS importers keep this very object.
    if (key === "__esModule") return true
    if (typeof key === "symbol") return undefined
    throw new Error(message + ", used: " + String(key))
  },
})`,
      loader: "js",
    }))
  },
}

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
  plugins: [unusedModulesPlugin],
  logLevel: "warning",
}
