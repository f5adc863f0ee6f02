#!/usr/bin/env bash
# Makes /usr/bin/chromium available for the browser test (test/browser).
# Idempotent: does nothing when it is already there. Installs it from apt when
# running as root on a Debian-like machine; otherwise says so and exits 0 (the
# browser test then skips itself with a visible reason).
set -euo pipefail

chromium=/usr/bin/chromium

version() { "$chromium" --version 2>/dev/null || echo "chromium (version unknown)"; }

if [ -x "$chromium" ]; then
  version
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing chromium from apt" >&2
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  # Quiet on success; the end of apt's output when it fails (e.g. no network),
  # which, like a machine where nothing can be installed, skips the browser test.
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "chromium not installed and apt-get could not install it: the browser test will be skipped"
    exit 0
  fi
  version
  exit 0
fi

echo "chromium not installed and cannot install it here: the browser test will be skipped"
exit 0
