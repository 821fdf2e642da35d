#!/usr/bin/env bash
# Makes sure a headless Chromium is available for the console's browser tests (test/browser) and
# prints its path. Uses $HOOKLINE_CHROMIUM or a Chromium on PATH; otherwise installs Debian's
# chromium package with apt-get (as root, or through sudo), the way hack/controlplane builds the
# control plane for make test. With --fonts it also makes sure a Traditional Chinese font is
# installed (fonts-wqy-microhei), so that screenshots of the zh-Hant pages show characters.
# Usage: hack/chromium.sh [--fonts]
set -euo pipefail
want_fonts=0
[[ "${1:-}" == "--fonts" ]] && want_fonts=1

find_chromium() {
  if [[ -n "${HOOKLINE_CHROMIUM:-}" && -x "$HOOKLINE_CHROMIUM" ]]; then echo "$HOOKLINE_CHROMIUM"; return 0; fi
  for name in chromium chromium-browser google-chrome headless-shell; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
  done
  return 1
}
has_cjk_font() { command -v fc-list >/dev/null 2>&1 && [[ -n "$(fc-list :lang=zh-tw 2>/dev/null)" ]]; }

packages=()
find_chromium >/dev/null || packages+=(chromium)
if [[ $want_fonts == 1 ]] && ! has_cjk_font; then packages+=(fonts-wqy-microhei); fi
if [[ ${#packages[@]} -gt 0 ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "hack/chromium.sh: need ${packages[*]} and there is no apt-get: install them, or set HOOKLINE_CHROMIUM" >&2
    exit 1
  fi
  sudo=""
  if [[ $(id -u) != 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "hack/chromium.sh: installing ${packages[*]} needs root: run 'apt-get install -y ${packages[*]}' as root" >&2
      exit 1
    fi
    sudo="sudo"
  fi
  echo "hack/chromium.sh: installing Debian's ${packages[*]}" >&2
  $sudo apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >&2
fi
find_chromium
