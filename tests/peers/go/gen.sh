#!/usr/bin/env bash
# Regenerates greeterpb/greeter.pb.go from ../proto/greeter.proto with protoc-gen-go (from the Go
# module proxy) run by grpcio-tools' protoc. The Triple service registration
# (greeterpb/greeter_triple.go) is hand-written: see ../README.md for why.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
gobin="${MESHGATE_CACHE:-$HOME/.cache/meshgate}/gobin"
protoc_gen_go_version="v1.34.2"   # the google.golang.org/protobuf version go.mod requires

mkdir -p "$gobin"
GOBIN="$gobin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protoc_gen_go_version"
"$python" -m grpc_tools.protoc \
  --plugin=protoc-gen-go="$gobin/protoc-gen-go" \
  -I "$here/../proto" \
  --go_out="$here/greeterpb" --go_opt=paths=source_relative \
  "$here/../proto/greeter.proto"
