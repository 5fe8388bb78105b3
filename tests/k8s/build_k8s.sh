#!/usr/bin/env bash
# Build helm, kube-apiserver and etcd from the Go module proxy and cache them.
#
# Usage: tests/k8s/build_k8s.sh [helm|etcd|kube-apiserver ...]
# Builds the named tools (default: all three) and prints the cache directory
# holding bin/helm, bin/etcd and bin/kube-apiserver on the last line of
# stdout; a second run with the same versions only prints it. Versions come from the environment (K8S_VERSION, ETCD_VERSION,
# HELM_VERSION) or the defaults below.
#
# Why a generated go.mod and not `go install pkg@version`:
#  - k8s.io/kubernetes points its staging modules (k8s.io/api, k8s.io/apiserver,
#    ...) at ./staging/src with replace directives, and `go install @version`
#    refuses modules with replace directives. A small main module requiring
#    k8s.io/kubernetes and replacing each staging module with its published
#    v0.x twin (v1.36.1 -> v0.36.1) builds the same source.
#  - go.etcd.io/etcd/server/v3 likewise replaces its sibling modules with
#    relative paths, so it is built from a main module of its own.
#  - helm has no replace directives, but is built the same way for one cache.
set -euo pipefail

k8s_version="${K8S_VERSION:-v1.36.1}"
etcd_version="${ETCD_VERSION:-v3.6.8}"
helm_version="${HELM_VERSION:-v3.21.4}"
cache_root="${MESHGATE_CACHE:-$HOME/.cache/meshgate}"
dest_dir="$cache_root/k8s/kube-$k8s_version-etcd-$etcd_version-helm-$helm_version"
bin_dir="$dest_dir/bin"
if [[ $# -gt 0 ]]; then
    tools=("$@")
else
    tools=(helm etcd kube-apiserver)
fi

all_built() {
    local tool
    for tool in "${tools[@]}"; do
        [[ -x "$bin_dir/$tool" ]] || return 1
    done
}

if all_built; then
    echo "$dest_dir"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "go is not on PATH; cannot build helm, etcd and kube-apiserver" >&2
    exit 3
fi

mkdir -p "$bin_dir"
# Build in a private directory and move each binary in when done, so an
# interrupted or concurrent build never leaves a half-written binary behind.
staging="$(mktemp -d "$dest_dir/.build.XXXXXX")"
trap 'chmod -R u+w "$staging" 2>/dev/null; rm -rf "$staging"' EXIT

# The machine is shared: low priority and bounded package parallelism. CGO is
# not needed by any of the three.
go_build() {
    local module_dir="$1" out="$2" package="$3"
    (
        cd "$module_dir"
        CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" \
            nice -n 10 go build -p "${K8S_BUILD_JOBS:-2}" -trimpath -ldflags "-s -w" \
            -o "$out" "$package"
    ) >&2
}

new_module() {
    local dir="$1"
    mkdir -p "$dir"
    printf 'module meshgate.local/%s\n\ngo 1.26\n' "$(basename "$dir")" > "$dir/go.mod"
    # A blank import keeps the required module in the build list while go
    # resolves it; the real package is named on the go build command line.
    printf 'package tools\n' > "$dir/tools.go"
}

build_helm() {
    local dir="$staging/helm"
    new_module "$dir"
    (cd "$dir" && go get "helm.sh/helm/v3@$helm_version") >&2
    go_build "$dir" "$staging/helm.bin" helm.sh/helm/v3/cmd/helm
    mv "$staging/helm.bin" "$bin_dir/helm"
}

build_etcd() {
    local dir="$staging/etcd"
    new_module "$dir"
    local module
    (
        cd "$dir"
        for module in api/v3 client/pkg/v3 client/v3 pkg/v3 server/v3; do
            go mod edit -require="go.etcd.io/etcd/$module@$etcd_version"
        done
        go mod download go.etcd.io/etcd/server/v3
    ) >&2
    go_build "$dir" "$staging/etcd.bin" go.etcd.io/etcd/server/v3
    mv "$staging/etcd.bin" "$bin_dir/etcd"
}

build_kube_apiserver() {
    local dir="$staging/kube"
    new_module "$dir"
    local staging_version="v0.${k8s_version#v1.}"
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$k8s_version" \
        | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
    (
        cd "$dir"
        go mod edit -require="k8s.io/kubernetes@$k8s_version"
        local name
        for name in $(sed -n 's/^[[:space:]]*\(k8s\.io\/[a-z0-9-]*\) => \.\/staging\/.*/\1/p' "$gomod"); do
            go mod edit -replace="$name=$name@$staging_version"
        done
    ) >&2
    go_build "$dir" "$staging/kube-apiserver.bin" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$staging/kube-apiserver.bin" "$bin_dir/kube-apiserver"
}

started=$(date +%s)
for tool in "${tools[@]}"; do
    [[ -x "$bin_dir/$tool" ]] && continue
    case "$tool" in
        helm) build_helm ;;
        etcd) build_etcd ;;
        kube-apiserver) build_kube_apiserver ;;
        *) echo "unknown tool $tool (helm, etcd, kube-apiserver)" >&2; exit 2 ;;
    esac
    echo "built $tool in $(( $(date +%s) - started ))s" >&2
done
echo "$dest_dir"
