#!/usr/bin/env bash
# Regenerates echopb/ from tests/protos/meshgate/test/v1/echo.proto: messages,
# the gRPC service, and grpc-gateway's reverse-proxy handlers for the HTTP
# rules of http_rules.yaml (cmd/grpcgateway).
# protoc is grpcio-tools' (python -m grpc_tools.protoc); the Go plugins come from
# the Go module proxy at the versions pinned below and are cached under
# ${MESHGATE_CACHE:-$HOME/.cache/meshgate}/gobin.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
gobin="${MESHGATE_CACHE:-$HOME/.cache/meshgate}/gobin"
protoc_gen_go_version="v1.36.11"        # matches google.golang.org/protobuf in go.mod
protoc_gen_go_grpc_version="v1.5.1"
grpc_gateway_version="v2.33.0"          # matches github.com/grpc-ecosystem/grpc-gateway/v2
proto="meshgate/test/v1/echo.proto"
go_package="meshgate.bench/gobackend/echopb"

mkdir -p "$gobin/go-$protoc_gen_go_version" "$gobin/go-grpc-$protoc_gen_go_grpc_version"
GOBIN="$gobin/go-$protoc_gen_go_version" \
  go install "google.golang.org/protobuf/cmd/protoc-gen-go@$protoc_gen_go_version"
GOBIN="$gobin/go-grpc-$protoc_gen_go_grpc_version" \
  go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$protoc_gen_go_grpc_version"
mkdir -p "$gobin/grpc-gateway-$grpc_gateway_version"
GOBIN="$gobin/grpc-gateway-$grpc_gateway_version" \
  go install "github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$grpc_gateway_version"
well_known="$("$python" -c 'import grpc_tools, pathlib; print(pathlib.Path(grpc_tools.__file__).parent / "_proto")')"

"$python" -m grpc_tools.protoc \
  --plugin=protoc-gen-go="$gobin/go-$protoc_gen_go_version/protoc-gen-go" \
  --plugin=protoc-gen-go-grpc="$gobin/go-grpc-$protoc_gen_go_grpc_version/protoc-gen-go-grpc" \
  --plugin=protoc-gen-grpc-gateway="$gobin/grpc-gateway-$grpc_gateway_version/protoc-gen-grpc-gateway" \
  -I "$repo/tests/protos" -I "$well_known" \
  --go_out="$here/echopb" --go_opt=paths=source_relative --go_opt="M$proto=$go_package" \
  --go-grpc_out="$here/echopb" --go-grpc_opt=paths=source_relative \
  --go-grpc_opt="M$proto=$go_package" \
  --grpc-gateway_out="$here/echopb" --grpc-gateway_opt=paths=source_relative \
  --grpc-gateway_opt="M$proto=$go_package" \
  --grpc-gateway_opt="grpc_api_configuration=$here/http_rules.yaml" \
  "$proto"
# paths=source_relative keeps the proto's directories; the package is flat.
mv "$here/echopb/meshgate/test/v1/"*.go "$here/echopb/"
rm -rf "$here/echopb/meshgate"
