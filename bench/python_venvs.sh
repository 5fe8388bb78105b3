#!/usr/bin/env bash
# The interpreters of the python-versions section (bench/python_versions.py),
# beside the dev venv's: the newest pyenv build of each minor version below,
# one venv each with meshgate installed from this tree (`pip install .`,
# runtime dependencies only), cached under
# ${MESHGATE_CACHE:-~/.cache/meshgate}/bench/py<version>-<hash of pyproject.toml>.
# Prints the venvs' interpreters, space-separated, on stdout; a version that
# cannot be had is skipped with its reason on stderr. Idempotent: a venv
# without its stamp is a build that stopped half-way, and is made again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
cache="${MESHGATE_CACHE:-$HOME/.cache/meshgate}/bench"
pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
project_hash="$(sha256sum "$repo/pyproject.toml" | cut -c1-16)"

pythons=()
for minor in 3.12 3.13; do
  base="$(find "$pyenv_root/versions" -maxdepth 1 -name "$minor.*" 2>/dev/null \
    | grep -E "/$minor\.[0-9]+$" | sort -V | tail -n1 || true)"
  if [ -z "$base" ] || [ ! -x "$base/bin/python$minor" ]; then
    echo "bench: skipping Python $minor: no pyenv build in $pyenv_root/versions" >&2
    continue
  fi
  venv="$cache/py${base##*/}-$project_hash"
  if [ ! -e "$venv/.installed" ]; then
    echo "bench: making $venv (meshgate and its runtime dependencies)" >&2
    rm -rf "$venv"
    mkdir -p "$cache"
    if ! { "$base/bin/python$minor" -m venv "$venv" \
      && "$venv/bin/python" -m pip install -q --upgrade pip \
      && "$venv/bin/python" -m pip install -q "$repo"; } >&2; then
      echo "bench: skipping Python $minor: installing meshgate into $venv failed" >&2
      continue
    fi
    touch "$venv/.installed"
  fi
  pythons+=("$venv/bin/python")
done
echo "${pythons[*]:-}"
