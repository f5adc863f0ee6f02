#!/usr/bin/env bash
# Makes Node 24 available to every make target. When the machine's node is
# older, installs the official binary from the npm package node-linux-<arch>
# into .tools/ (ignored), which the Makefile puts first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

want_major=24
pin=24.22.3
tools=.tools

major() { "$1" -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "ensure-node: no node-linux package for $(uname -m); install Node $want_major yourself" >&2; exit 1 ;;
esac
bin="$tools/node_modules/node-linux-$arch/bin"

if [ -x "$bin/node" ] && [ "$(major "$bin/node")" = "$want_major" ]; then exit 0; fi
if command -v node >/dev/null && [ "$(major node)" = "$want_major" ]; then exit 0; fi
command -v npm >/dev/null || { echo "ensure-node: npm is needed to fetch Node $want_major" >&2; exit 1; }

echo "ensure-node: system node is $(node --version 2>/dev/null || echo absent); installing node-linux-$arch@$pin into $tools/" >&2
mkdir -p "$tools"
# No package.json in .tools: npm keeps nothing but node_modules there.
npm install --prefix "$tools" --no-save --no-package-lock --no-audit --no-fund "node-linux-$arch@$pin" >&2
"$bin/node" --version >&2
