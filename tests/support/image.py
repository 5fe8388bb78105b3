"""The Dockerfile's install steps, run on this machine when no image can be built.

No container registry is reachable here, so the base image of the Dockerfile
cannot be pulled and neither buildah nor podman can build it. Instead this
module reads the Dockerfile's build stage and performs its steps itself: the
COPY lines copy the same files from the repository into a scratch work
directory, and the RUN lines run there with ``/opt/meshgate`` (the image's
venv) moved into the cache. What the image would hold in /opt/meshgate is
then a venv the tests can start ``meshgate run`` from.

Run as ``python -m tests.support.image``: prints the venv's path. The venv is
cached under ~/.cache/meshgate/image-venv/ keyed by the Dockerfile and every
file it copies, so it is rebuilt only when one of them changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO

IMAGE_VENV = "/opt/meshgate"
DOCKERFILE = REPO / "Dockerfile"
INSTALL_TIMEOUT_SECONDS = 900


@dataclass
class Stage:
    """One FROM ... stage: its instructions in order, continuation lines joined."""

    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def values(self, keyword: str) -> list[str]:
        return [argument for name, argument in self.instructions if name == keyword]


def parse(dockerfile: Path) -> list[Stage]:
    """Stages of a Dockerfile; enough of the syntax for ours (no heredocs, no escapes)."""
    logical: list[str] = []
    pending = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[Stage] = []
    for line in logical:
        keyword, _, argument = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append(Stage(argument.strip()))
        elif stages:
            stages[-1].instructions.append((keyword, argument.strip()))
    return stages


def copied_sources(stage: Stage) -> list[str]:
    """The context paths the stage's plain COPY lines take (not --from=...)."""
    sources: list[str] = []
    for argument in stage.values("COPY"):
        words = shlex.split(argument)
        if any(word.startswith("--from") for word in words):
            continue
        sources.extend(words[:-1])
    return sources


def inputs_digest(dockerfile: Path, context: Path) -> str:
    digest = hashlib.sha256(dockerfile.read_bytes())
    digest.update(sys.version.encode())
    for source in copied_sources(parse(dockerfile)[0]):
        path = context / source
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(str(file.relative_to(context)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def run_build_stage(dockerfile: Path, context: Path, venv: Path, workdir: Path) -> None:
    """Perform the first stage's COPY and RUN steps, /opt/meshgate -> ``venv``."""
    stage = parse(dockerfile)[0]
    env = {**os.environ}
    # The base image's `python` is the system interpreter, not the tests'
    # venv. The venv made from it links back to this path: it must outlive
    # the work directory.
    interpreter_dir = venv.parent / "interpreter"
    interpreter_dir.mkdir(parents=True, exist_ok=True)
    (interpreter_dir / "python").unlink(missing_ok=True)
    (interpreter_dir / "python").symlink_to(getattr(sys, "_base_executable", sys.executable))
    env["PATH"] = f"{interpreter_dir}{os.pathsep}{env['PATH']}"
    cwd = workdir / "root"
    cwd.mkdir(parents=True)
    for keyword, argument in stage.instructions:
        if keyword == "ENV":
            for assignment in shlex.split(argument):
                name, _, value = assignment.partition("=")
                env[name] = value
        elif keyword == "WORKDIR":
            cwd = workdir / "root" / argument.lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, destination = shlex.split(argument)
            for source in sources:
                target = cwd / destination
                if (context / source).is_dir():
                    shutil.copytree(context / source, target, ignore=_ignore_caches)
                else:
                    shutil.copy2(context / source, target)
        elif keyword == "RUN":
            command = argument.replace(IMAGE_VENV, str(venv))
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=cwd,
                env=env,
                check=True,
                timeout=INSTALL_TIMEOUT_SECONDS,
                stdout=sys.stderr,
            )


def _ignore_caches(directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name in ("__pycache__", ".mypy_cache")]


def image_venv(dockerfile: Path = DOCKERFILE, context: Path = REPO) -> Path:
    """The venv the image's build stage makes, built once per input digest."""
    cache_root = Path(os.environ.get("MESHGATE_CACHE", Path.home() / ".cache" / "meshgate"))
    home = cache_root / "image-venv" / inputs_digest(dockerfile, context)
    venv, done = home / "venv", home / "done.json"
    if done.exists():
        return venv
    # A venv cannot be moved once made, so it is built in place; a leftover
    # from an interrupted run is removed first.
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    run_build_stage(dockerfile, context, venv, home / "work")
    shutil.rmtree(home / "work")
    done.write_text(json.dumps({"dockerfile": str(dockerfile), "python": sys.version}))
    return venv


if __name__ == "__main__":
    print(image_venv())
