#!/usr/bin/env bash
# Installs Debian's chromium for the headless browser test of the OpenAPI page
# (tests/integration/test_openapi_browser.py drives it with playwright, pointed at
# this chromium: playwright's own browser download is not used). Run by `make peers`;
# idempotent: does nothing when chromium is already installed.
set -euo pipefail
if command -v chromium >/dev/null; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing chromium (Debian) for the OpenAPI page's browser test"
# Like the peers' builds, a failure here is reported, not fatal: the browser
# test then skips with the reason (and fails under CI=true).
if ! { $sudo apt-get update -qq &&
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium >/dev/null; }; then
  echo "install_browser: could not install chromium; the OpenAPI browser test will skip" >&2
fi
