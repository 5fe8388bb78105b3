#!/usr/bin/env bash
# `make bench`: install the load generators if missing, build the Go backend
# (cached by a hash of its sources), then run every contestant back to back.
# Idempotent; extra arguments go to bench/run.py (e.g. --quick).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
cache="${MESHGATE_CACHE:-$HOME/.cache/meshgate}/bench"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v h2load >/dev/null || missing+=(nghttp2-client)
if ((${#missing[@]})); then
  echo "installing ${missing[*]}"
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v go >/dev/null || { echo "bench: go is needed to build the backend" >&2; exit 1; }
# One Go module: the backend (main.go) and grpc-gateway's reverse proxy, the
# second reference (cmd/grpcgateway), both cached by a hash of its sources.
src_hash="$(cd "$here/gobackend" && cat go.mod go.sum ./*.go cmd/*/*.go echopb/*.go | sha256sum | cut -c1-16)"
binary="$cache/gobackend-$src_hash"
grpcgateway="$cache/grpcgateway-$src_hash"
if [ ! -x "$binary" ] || [ ! -x "$grpcgateway" ]; then
  echo "building the Go backend and grpc-gateway into $cache"
  mkdir -p "$cache"
  (cd "$here/gobackend" && go build -trimpath -o "$binary.tmp" . && mv "$binary.tmp" "$binary" \
    && go build -trimpath -o "$grpcgateway.tmp" ./cmd/grpcgateway \
    && mv "$grpcgateway.tmp" "$grpcgateway")
fi

# The profiler and granian serve the full run only; a section run alone
# (--only-*) leaves the venv as it is.
if [[ " $* " != *" --only-"* ]]; then
  [ -x "$(dirname "$python")/py-spy" ] || "$python" -m pip install -q py-spy
  "$python" -c "import granian" 2>/dev/null || "$python" -m pip install -q granian
fi

# Newer CPythons for the python-versions section, one venv each (cached).
pythons="$("$here/python_venvs.sh")"

cd "$repo"
export MESHGATE_BENCH_GOBACKEND="$binary"
export MESHGATE_BENCH_GRPCGATEWAY="$grpcgateway"
export MESHGATE_BENCH_PYTHONS="$pythons"
exec "$python" -m bench.run "$@"
