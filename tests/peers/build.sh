#!/usr/bin/env bash
# Builds every interop peer into ${MESHGATE_CACHE:-~/.cache/meshgate}/peers (see README.md).
# Idempotent: artifacts are keyed by a hash of their sources, so an unchanged tree builds
# nothing and returns in about a second. Peers whose toolchain is missing are skipped here;
# the tests that need them skip locally and fail under CI=true.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
cd "$repo"
exec "$python" -m tests.support.peers
