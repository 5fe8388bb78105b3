#!/usr/bin/env bash
# Vendors Swagger UI's browser assets (npm's swagger-ui-dist) into gateway/openapi_ui/,
# so a listener's `openapi.ui_path` serves Swagger UI with nothing fetched from
# outside at run time. Run by `make` before installing; idempotent; the package is
# cached under ~/.cache/meshgate/swagger-ui/VERSION. Without npm it says so and the
# page falls back to a plain list of the operations.
set -euo pipefail
version="5.35.0"
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="$repo/gateway/openapi_ui"
cache="${MESHGATE_CACHE:-$HOME/.cache/meshgate}/swagger-ui/$version"

if [ "$(cat "$dest/.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if [ ! -f "$cache/package/swagger-ui-bundle.js" ]; then
  if ! command -v npm >/dev/null; then
    echo "vendor_swagger_ui: npm not found; /docs pages will list operations without Swagger UI" >&2
    exit 0
  fi
  mkdir -p "$cache"
  (cd "$cache" && npm pack --silent "swagger-ui-dist@$version" >/dev/null &&
    tar xzf "swagger-ui-dist-$version.tgz")
fi
cp "$cache/package/swagger-ui-bundle.js" "$cache/package/swagger-ui.css" "$dest/"
cp "$cache/package/LICENSE" "$dest/SWAGGER-UI-LICENSE"
echo "$version" > "$dest/.version"
echo "vendored swagger-ui-dist $version into gateway/openapi_ui"
