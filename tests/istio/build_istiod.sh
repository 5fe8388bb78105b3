#!/usr/bin/env bash
# Build istiod (pilot-discovery) from the Go module proxy and cache the binary.
#
# Usage: tests/istio/build_istiod.sh [MODULE_VERSION]
# Prints the path of the cached binary on the last line of stdout; a second run
# with the same version and patches only prints that path.
#
# Why not `go install istio.io/istio/pilot/cmd/pilot-discovery@VERSION`:
#  - istio.io/istio publishes no semver tags to the module proxy (its release
#    tags are "1.x.y", not Go module versions), so VERSION is a pseudo-version
#    naming one commit; the proxy reachable here serves only its latest one.
#  - that commit panics at start-up without Kubernetes (nil multicluster
#    controller in the ServiceEntry registry), so the module is copied to a
#    writable directory and the small patches in tests/istio/patches/ are
#    applied before building. docs/istiod.md describes each patch.
set -euo pipefail

DEFAULT_ISTIO_VERSION="v0.0.0-20260827124520-eed52ebb66ad"
version="${1:-${ISTIOD_MODULE_VERSION:-$DEFAULT_ISTIO_VERSION}}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
patch_dir="$here/patches"
cache_root="${MESHGATE_CACHE:-$HOME/.cache/meshgate}"
dest_dir="$cache_root/istiod/$version"
binary="$dest_dir/pilot-discovery"
stamp="$dest_dir/patches.sha256"

patches_digest() {
    if compgen -G "$patch_dir/*.patch" >/dev/null; then
        cat "$patch_dir"/*.patch | sha256sum | cut -d' ' -f1
    else
        echo none
    fi
}
want_digest="$(patches_digest)"

if [[ -x "$binary" && -f "$stamp" && "$(cat "$stamp")" == "$want_digest" ]]; then
    echo "$binary"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "go is not on PATH; cannot build istiod" >&2
    exit 3
fi

mkdir -p "$dest_dir"
# Build in a private directory and rename at the end, so an interrupted or
# concurrent build never leaves a half-written binary at the cached path.
staging="$(mktemp -d "$dest_dir/.build.XXXXXX")"
trap 'chmod -R u+w "$staging" 2>/dev/null; rm -rf "$staging"' EXIT

started=$(date +%s)
module_dir="$(go mod download -json "istio.io/istio@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [[ -z "$module_dir" || ! -d "$module_dir" ]]; then
    echo "go mod download gave no directory for istio.io/istio@$version" >&2
    exit 4
fi

# The module cache is read-only; patch a copy.
cp -r "$module_dir" "$staging/src"
chmod -R u+w "$staging/src"
for patch_file in "$patch_dir"/*.patch; do
    [[ -e "$patch_file" ]] || continue
    echo "applying $(basename "$patch_file")" >&2
    patch --quiet --forward -p1 -d "$staging/src" < "$patch_file"
done

# The machine is shared: low priority (nice) and bounded package parallelism.
# CGO is not needed. -mod=mod lets go fill in go.sum entries the module's own
# go.sum may lack for this build's package set.
(
    cd "$staging/src"
    CGO_ENABLED=0 GOFLAGS="-buildvcs=false -mod=mod" \
        nice -n 10 go build -p "${ISTIOD_BUILD_JOBS:-2}" -trimpath \
        -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$version+meshgate.$want_digest" \
        -o "$staging/pilot-discovery" ./pilot/cmd/pilot-discovery
) >&2
mv "$staging/pilot-discovery" "$binary"
echo "$want_digest" > "$stamp"
echo "built istiod $version in $(( $(date +%s) - started ))s" >&2
echo "$binary"
