#!/usr/bin/env bash
# Make a base image for the Dockerfile from Debian's packages, for buildah.
#
# Usage: tests/support/build_image_base.sh
# Prints, on the last two lines of stdout, the buildah storage directory and
# the base image's name.
#
# The Dockerfile's default base, python:3.12-slim, lives in a container
# registry this machine cannot reach. Debian's packages are reachable, so the
# same kind of base (Debian with Python and venv, nothing else) is made with
# debootstrap and committed into a buildah storage in the cache; the image
# build then passes it as BASE_IMAGE. The image is keyed by the suite and the
# package list; buildah and debootstrap come from Debian (installed as root).
set -euo pipefail

suite="bookworm"
packages="python3,python3-venv,python-is-python3"
cache_root="${MESHGATE_CACHE:-$HOME/.cache/meshgate}"
storage_dir="$cache_root/buildah"
tag="$suite-$(printf '%s' "$packages" | sha256sum | cut -c1-12)"
image="localhost/meshgate-base:$tag"

if ! command -v buildah >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
    if [[ "$(id -u)" != 0 ]]; then
        echo "buildah and debootstrap are missing and installing them needs root" >&2
        exit 3
    fi
    apt-get install -y -q buildah debootstrap >&2 || {
        apt-get update -qq >&2
        apt-get install -y -q buildah debootstrap >&2
    } || { echo "cannot install buildah and debootstrap from Debian" >&2; exit 3; }
fi

storage=(--root "$storage_dir/storage" --runroot "$storage_dir/run" --storage-driver vfs)
if buildah "${storage[@]}" inspect --type image "$image" >/dev/null 2>&1; then
    echo "$storage_dir"
    echo "$image"
    exit 0
fi

mkdir -p "$storage_dir"
work="$(mktemp -d "$storage_dir/.base.XXXXXX")"
container=""
cleanup() {
    [[ -n "$container" ]] && buildah "${storage[@]}" rm "$container" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

started=$(date +%s)
debootstrap --variant=minbase --include="$packages" "$suite" "$work/rootfs" >&2
container="$(buildah "${storage[@]}" from scratch)"
mount_point="$(buildah "${storage[@]}" mount "$container")"
cp -a "$work/rootfs/." "$mount_point/"
buildah "${storage[@]}" umount "$container" >/dev/null
buildah "${storage[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash "$container"
buildah "${storage[@]}" commit -q "$container" "$image" >&2
echo "made $image in $(( $(date +%s) - started ))s" >&2
echo "$storage_dir"
echo "$image"
