"""The Helm chart rendered with helm, and the plain manifests in deploy/kubernetes/.

Each file in deploy/kubernetes/ is ``helm template`` of the chart with one set
of values (VARIANTS); the tests check that the files are what helm renders
today. ``python -m tests.support.chart`` writes them again after a chart change.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.support.processes import REPO

CHART = REPO / "deploy" / "helm" / "meshgate"
MANIFESTS = REPO / "deploy" / "kubernetes"
RELEASE = "meshgate"
NAMESPACE = "default"
# The Kubernetes version helm renders for: the API server the tests build.
KUBE_VERSION = "1.36.1"

# File in deploy/kubernetes -> helm --set values.
VARIANTS: dict[str, list[str]] = {
    "meshgate.yaml": [],
    "meshgate-istio-proxyless.yaml": [
        "istio.mode=proxyless",
        "autoscaling.enabled=true",
        "serviceMonitor.enabled=true",
    ],
    "meshgate-istio-direct.yaml": ["istio.mode=direct"],
}


def helm_template(helm: Path, values: list[str]) -> str:
    sets = [argument for value in values for argument in ("--set", value)]
    result = subprocess.run(
        [
            str(helm),
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            "--kube-version",
            KUBE_VERSION,
            *sets,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"helm template {values} failed:\n{result.stderr}")
    return result.stdout


def manifest_file(name: str, rendered: str) -> str:
    values = " ".join(f"--set {value}" for value in VARIANTS[name])
    header = (
        "# Generated from deploy/helm/meshgate by python -m tests.support.chart:\n"
        f"# helm template {RELEASE} deploy/helm/meshgate -n {NAMESPACE} {values}".rstrip()
        + "\n"
    )
    return header + rendered


def documents(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(rendered: str) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in documents(rendered)}


def write_manifests(helm: Path) -> None:
    MANIFESTS.mkdir(parents=True, exist_ok=True)
    for name, values in VARIANTS.items():
        (MANIFESTS / name).write_text(manifest_file(name, helm_template(helm, values)))


if __name__ == "__main__":
    from tests.support.kubernetes import k8s_tools

    write_manifests(k8s_tools("helm") / "helm")
    print(f"wrote {len(VARIANTS)} files to {MANIFESTS}", file=sys.stderr)
