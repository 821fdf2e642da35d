#!/usr/bin/env bash
# Makes sure a headless Chromium is available for the console's browser tests (test/browser) and
# prints its path. Uses $HOOKLINE_CHROMIUM or a chromium on PATH; otherwise installs Debian's
# chromium package with apt-get (as root, or through sudo), the way hack/controlplane builds the
# control plane for make test.
set -euo pipefail
find_chromium() {
  if [[ -n "${HOOKLINE_CHROMIUM:-}" && -x "$HOOKLINE_CHROMIUM" ]]; then echo "$HOOKLINE_CHROMIUM"; return 0; fi
  for name in chromium chromium-browser google-chrome headless-shell; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}
if path=$(find_chromium); then
  echo "$path"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "hack/chromium.sh: no Chromium found and no apt-get to install it: install Chromium or set HOOKLINE_CHROMIUM" >&2
  exit 1
fi
sudo=""
if [[ $(id -u) != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "hack/chromium.sh: installing chromium needs root: run 'apt-get install -y chromium' as root" >&2
    exit 1
  fi
  sudo="sudo"
fi
echo "hack/chromium.sh: installing Debian's chromium package" >&2
$sudo apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >&2
find_chromium
