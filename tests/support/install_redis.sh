#!/usr/bin/env bash
# Install redis-server from Debian's packages into the cache, for the tests.
#
# Usage: tests/support/install_redis.sh
# Prints the path of a runnable redis-server on the last line of stdout.
#
# The packages are downloaded and unpacked with dpkg -x into
# ~/.cache/meshgate/redis/<version>/ rather than installed: no root needed, no
# system service started on 6379 behind the tests' back, and the cache key is
# the Debian version. Debian ships the server binary in redis-tools under the
# name redis-check-rdb (redis-server is a link to it that picks its mode from
# argv[0]); the wrapper below runs it as redis-server with the two libraries
# it needs beside it.
set -euo pipefail

packages=(redis-tools libjemalloc2 liblzf1)
cache_root="${MESHGATE_CACHE:-$HOME/.cache/meshgate}"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "apt-get is not available; cannot fetch Debian's redis-server" >&2
    exit 3
fi

candidate() {
    apt-cache policy "$1" 2>/dev/null | sed -n 's/^[[:space:]]*Candidate: \(.*\)$/\1/p'
}

version="$(candidate redis-tools)"
if [[ -z "$version" || "$version" == "(none)" ]]; then
    if [[ "$(id -u)" == 0 ]]; then
        apt-get update -qq >&2
        version="$(candidate redis-tools)"
    fi
fi
if [[ -z "$version" || "$version" == "(none)" ]]; then
    echo "no redis-tools package in apt's lists (run apt-get update as root)" >&2
    exit 4
fi

dest_dir="$cache_root/redis/${version//[:~]/_}"
wrapper="$dest_dir/bin/redis-server"
if [[ -x "$wrapper" ]]; then
    echo "$wrapper"
    exit 0
fi

mkdir -p "$cache_root/redis"
staging="$(mktemp -d "$cache_root/redis/.build.XXXXXX")"
# apt-get download drops to the _apt user, which must be able to write here.
chmod 755 "$staging"
trap 'rm -rf "$staging"' EXIT
(cd "$staging" && apt-get download "${packages[@]}") >&2
for deb in "$staging"/*.deb; do
    dpkg -x "$deb" "$staging/root"
done
mkdir -p "$staging/root/bin"
cat > "$staging/root/bin/redis-server" <<'WRAPPER'
#!/usr/bin/env bash
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec -a redis-server "$root/usr/bin/redis-check-rdb" "$@"
WRAPPER
chmod +x "$staging/root/bin/redis-server"
"$staging/root/bin/redis-server" --version >&2
rm -rf "$dest_dir"
mv "$staging/root" "$dest_dir"
echo "$wrapper"
