#!/usr/bin/env bash
# Makes /usr/bin/jupyter-notebook (with a Python 3 kernel) available for the browser test that
# drives a real Jupyter through the sidecar (test/browser/jupyter.test.ts). Idempotent; installs
# from apt when running as root on a Debian-like machine; otherwise says so and exits 0 (that test
# then skips itself with a visible reason).
set -euo pipefail

notebook=/usr/bin/jupyter-notebook

if [ -x "$notebook" ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-jupyter: installing jupyter-notebook from apt" >&2
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! { { apt-get install -y -qq --no-install-recommends jupyter-notebook python3-ipykernel ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends jupyter-notebook python3-ipykernel; }; }; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "jupyter-notebook not installed and apt-get could not install it: the Jupyter test will be skipped"
  fi
  exit 0
fi

echo "jupyter-notebook not installed and cannot install it here: the Jupyter test will be skipped"
exit 0
