// Spike 6: memory cost of loading node:http2 next to node:https (CommonJS, as the bundle loads them). Run 5x each.
const which = process.argv[2]
require("node:https")
if (which === "http2") require("node:http2")
if (which === "http2-server") { const h = require("node:http2"); h.createServer(); }
global.gc(); global.gc()
setTimeout(() => { const m = process.memoryUsage(); console.log(which, (m.rss / 1048576).toFixed(1), (m.heapUsed / 1048576).toFixed(2)) }, 300)
