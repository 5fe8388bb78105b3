"""Hessian 2.0 vectors from Java: hessian-lite, the serializer Apache Dubbo ships.

``tests/peers/hessian-vectors`` is a tiny Maven project. It is built once into
``${MESHGATE_CACHE:-~/.cache/meshgate}/hessian-vectors/<digest of its sources>``
and rebuilt only when its sources change. ``java_vectors`` returns the bytes
hessian-lite writes for each named value; ``java_check`` asks hessian-lite to
decode bytes we wrote and compare them with its own value of the same name.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.dubbo.hessian2 import JavaObject, TypedList, TypedMap

SOURCE_DIR = Path(__file__).resolve().parents[1] / "peers" / "hessian-vectors"
MAIN_CLASS = "meshgate.vectors.HessianVectors"
BUILD_TIMEOUT_S = 900.0
RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class JavaVector:
    name: str
    data: bytes
    description: str


@dataclass(frozen=True)
class JavaCheck:
    name: str
    equal: bool
    expected: str
    actual: str
    error: str | None


def cache_root() -> Path:
    base = os.environ.get("MESHGATE_CACHE") or "~/.cache/meshgate"
    return Path(base).expanduser() / "hessian-vectors"


def source_digest() -> str:
    digest = hashlib.sha256()
    files = [SOURCE_DIR / "pom.xml", *sorted((SOURCE_DIR / "src").rglob("*.java"))]
    for path in files:
        digest.update(str(path.relative_to(SOURCE_DIR)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def build(mvn: str) -> Path:
    """The build directory, compiling it with Maven unless already cached."""
    root = cache_root()
    done = root / source_digest()
    if (done / "classpath.txt").is_file():
        return done
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        shutil.copy2(SOURCE_DIR / "pom.xml", work / "pom.xml")
        shutil.copytree(SOURCE_DIR / "src", work / "src")
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "compile",
                "dependency:build-classpath",
                "-Dmdep.outputFile=classpath.txt",
            ],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"maven build of {SOURCE_DIR} failed ({result.returncode}):\n"
                f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
            )
        try:
            work.rename(done)
        except OSError:
            # Another process finished the same build first; its result is as good.
            if not (done / "classpath.txt").is_file():
                raise
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    _prune_stale_builds(root, keep=done.name)
    return done


def _prune_stale_builds(root: Path, keep: str) -> None:
    for entry in root.iterdir():
        if entry.name != keep and len(entry.name) == 16 and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)


def _command(build_dir: Path, mode: str) -> list[str]:
    classpath = (build_dir / "classpath.txt").read_text().strip()
    java = shutil.which("java") or "java"
    entries = [str(build_dir / "target" / "classes"), classpath]
    return [java, "-cp", os.pathsep.join(entries), MAIN_CLASS, mode]


def _run(build_dir: Path, mode: str, stdin: str = "") -> list[dict[str, object]]:
    result = subprocess.run(
        _command(build_dir, mode),
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{MAIN_CLASS} {mode} failed ({result.returncode}): {result.stderr[-4000:]}"
        )
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def java_vectors(build_dir: Path) -> dict[str, JavaVector]:
    """Every vector hessian-lite writes, by name."""
    vectors = {}
    for row in _run(build_dir, "write"):
        name = str(row["name"])
        vectors[name] = JavaVector(name, bytes.fromhex(str(row["hex"])), str(row["description"]))
    return vectors


def java_check(build_dir: Path, items: list[tuple[str, bytes]]) -> list[JavaCheck]:
    """Decode each ``(name, bytes)`` in Java and compare it with Java's value ``name``."""
    stdin = "".join(f"{name}\t{data.hex()}\n" for name, data in items)
    checks = []
    for row in _run(build_dir, "check", stdin):
        checks.append(
            JavaCheck(
                name=str(row["name"]),
                equal=bool(row.get("equal", False)),
                expected=str(row.get("expected", "")),
                actual=str(row.get("actual", "")),
                error=None if row.get("error") is None else str(row["error"]),
            )
        )
    if len(checks) != len(items):
        raise RuntimeError(f"{MAIN_CLASS} check answered {len(checks)} of {len(items)} values")
    return checks


def assert_same(actual: Any, expected: Any, path: str = "$") -> None:
    """Equal values of equal Python types (so a Java long never passes for an int)."""
    assert type(actual) is type(expected), f"{path}: {type(actual)} != {type(expected)}"
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), path
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, TypedList):
        assert actual.type_name == expected.type_name, path
        assert_same(actual.items, expected.items, f"{path}.items")
    elif isinstance(expected, TypedMap):
        assert actual.type_name == expected.type_name, path
        assert_same(actual.entries, expected.entries, f"{path}.entries")
    elif isinstance(expected, JavaObject):
        assert actual.class_name == expected.class_name, path
        assert_same(actual.fields, expected.fields, f"{path}.fields")
    else:
        assert actual == expected, path
