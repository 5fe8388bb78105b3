"""Run one fuzz target under atheris (coverage-guided, libFuzzer).

    python -m tests.fuzz.run TARGET CORPUS_DIR [libFuzzer flags...]

``make fuzz`` runs every target for FUZZ_SECONDS each with its corpus kept
under ~/.cache/meshgate/fuzz/TARGET; a finding is written as crash-* in the
working directory and the run exits non-zero.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["gateway", "mesh", "filters"]):
    from tests.fuzz.targets import SEEDS, TARGETS


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: run.py TARGET CORPUS_DIR [flags]; targets: {', '.join(TARGETS)}")
    name, corpus = sys.argv[1], Path(sys.argv[2])
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(SEEDS.get(name, [])):
        (corpus / f"seed-{i}").write_bytes(seed)
    target = TARGETS[name]
    atheris.Setup([sys.argv[0], str(corpus), *sys.argv[3:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
