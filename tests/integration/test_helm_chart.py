"""The Helm chart: linted and rendered by a real helm, admitted by a real kube-apiserver.

helm, etcd and kube-apiserver are built from the Go module proxy by
tests/k8s/build_k8s.sh. The rendered manifests of every variant (the files in
deploy/kubernetes/) are applied to the API server with a server-side dry run
and strict field validation; a broken object is refused the same way, so the
check is known to bite. The gateway YAML each ConfigMap carries is checked by
``meshgate validate``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mesh.bootstrap import parse_text
from tests.support.chart import (
    CHART,
    MANIFESTS,
    VARIANTS,
    by_kind,
    documents,
    helm_template,
    manifest_file,
)
from tests.support.kubernetes import ApiServer, apply, k8s_tools, running_apiserver

pytestmark = pytest.mark.integration

SERVICE_MONITOR_CRD = Path(__file__).parents[1] / "k8s" / "servicemonitor-crd.yaml"


@pytest.fixture(scope="module")
def helm() -> Path:
    return k8s_tools("helm") / "helm"


@pytest.fixture(scope="module")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    bin_dir = k8s_tools("etcd", "kube-apiserver")
    with running_apiserver(bin_dir, tmp_path_factory.mktemp("kube")) as server:
        with server.client() as client:
            crd = yaml.safe_load(SERVICE_MONITOR_CRD.read_text())
            created = apply(client, crd, dry_run=False)
            assert created.status_code in (200, 201), created.text
            _wait_established(client, crd["metadata"]["name"])
        yield server


def _wait_established(client: httpx.Client, name: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crd = client.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}").json()
        conditions = (crd.get("status") or {}).get("conditions") or []
        established = any(c["type"] == "Established" and c["status"] == "True" for c in conditions)
        # Discovery of the new group lags the condition a little.
        if established and client.get("/apis/monitoring.coreos.com/v1").status_code == 200:
            return
        time.sleep(0.3)
    raise TimeoutError(f"CRD {name} not established after {timeout}s")


def render(helm: Path, *values: str) -> dict[str, dict[str, Any]]:
    return by_kind(helm_template(helm, list(values)))


def test_chart_passes_helm_lint_strict(helm: Path) -> None:
    for values in VARIANTS.values():
        sets = [argument for value in values for argument in ("--set", value)]
        result = subprocess.run(
            [str(helm), "lint", str(CHART), "--strict", "--kube-version", "1.36.1", *sets],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_plain_manifests_are_what_the_chart_renders(helm: Path, name: str) -> None:
    expected = manifest_file(name, helm_template(helm, VARIANTS[name]))
    assert (MANIFESTS / name).read_text() == expected, (
        "deploy/kubernetes is stale: run python -m tests.support.chart"
    )


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_configmap_holds_a_gateway_yaml_that_validates(
    helm: Path, name: str, tmp_path: Path
) -> None:
    configmap = render(helm, *VARIANTS[name])["ConfigMap"]
    config = tmp_path / "gateway.yaml"
    config.write_text(configmap["data"]["gateway.yaml"])
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_deployment_probes_shutdown_and_config_rollout(helm: Path) -> None:
    objects = render(helm, "drainTimeoutSeconds=20", "preStopSleepSeconds=7")
    pod = objects["Deployment"]["spec"]["template"]
    container = pod["spec"]["containers"][0]

    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "7"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 7 + 20 + 5
    assert container["args"] == ["-c", "/etc/meshgate/gateway.yaml", "--workers", "2"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True

    changed = render(helm, "config.listeners[0].name=other", "config.admin.address=0.0.0.0:9901")
    checksum = pod["metadata"]["annotations"]["checksum/config"]
    assert (
        changed["Deployment"]["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        != checksum
    )


def test_optional_objects_follow_their_values(helm: Path) -> None:
    default = render(helm)
    assert {"ConfigMap", "Deployment", "Service", "ServiceAccount", "PodDisruptionBudget"} <= set(
        default
    )
    assert "HorizontalPodAutoscaler" not in default and "ServiceMonitor" not in default

    scaled = render(helm, "autoscaling.enabled=true", "serviceMonitor.enabled=true")
    assert "replicas" not in scaled["Deployment"]["spec"]
    assert scaled["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 10
    assert scaled["ServiceMonitor"]["spec"]["endpoints"][0]["port"] == "http-admin"


def test_istio_proxyless_injects_grpc_agent_and_points_meshgate_at_its_bootstrap(
    helm: Path,
) -> None:
    objects = render(helm, "istio.mode=proxyless")
    pod = objects["Deployment"]["spec"]["template"]
    annotations = pod["metadata"]["annotations"]
    container = pod["spec"]["containers"][0]

    assert pod["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"
    assert annotations["inject.istio.io/templates"] == "grpc-agent"
    assert json.loads(annotations["proxy.istio.io/config"]) == {
        "holdApplicationUntilProxyStarts": True
    }
    bootstrap = "/etc/istio/proxy/grpc-bootstrap.json"
    assert {"name": "GRPC_XDS_BOOTSTRAP", "value": bootstrap} in container["env"]
    config = yaml.safe_load(objects["ConfigMap"]["data"]["gateway.yaml"])
    assert config["mesh"]["xds"] == {"bootstrap": bootstrap}
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is True


def test_istio_direct_gives_a_bootstrap_meshgate_parses(helm: Path) -> None:
    objects = render(helm, "istio.mode=direct")
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container["env"]}
    names = [item["name"] for item in container["env"]]
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert names.index("GRPC_XDS_BOOTSTRAP_CONFIG") > names.index("POD_IP")
    pod = {"POD_IP": "10.1.2.3", "POD_NAME": "meshgate-abc", "POD_NAMESPACE": "shop"}
    text = re.sub(
        r"\$\((\w+)\)", lambda m: pod[m.group(1)], env["GRPC_XDS_BOOTSTRAP_CONFIG"]["value"]
    )

    bootstrap = parse_text(text, "GRPC_XDS_BOOTSTRAP_CONFIG", {})

    assert bootstrap.server.server_uri == "istiod.istio-system.svc:15010"
    assert bootstrap.node.id == "sidecar~10.1.2.3~meshgate-abc.shop~shop.svc.cluster.local"
    assert bootstrap.node.metadata["GENERATOR"] == "grpc"


def test_unknown_istio_mode_is_refused(helm: Path) -> None:
    with pytest.raises(RuntimeError, match=r"istio\.mode must be none, proxyless or direct"):
        helm_template(helm, ["istio.mode=sidecar"])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rendered_manifests_pass_server_side_dry_run(apiserver: ApiServer, name: str) -> None:
    with apiserver.client() as client:
        for manifest in documents((MANIFESTS / name).read_text()):
            response = apply(client, manifest)
            assert response.status_code in (200, 201), (manifest["kind"], response.text)
            assert response.json()["kind"] == manifest["kind"]


def chart_deployment() -> dict[str, Any]:
    return next(
        doc
        for doc in documents((MANIFESTS / "meshgate.yaml").read_text())
        if doc["kind"] == "Deployment"
    )


def test_dry_run_refuses_a_field_the_schema_does_not_have(apiserver: ApiServer) -> None:
    deployment = chart_deployment()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbes"] = container.pop("readinessProbe")

    with apiserver.client() as client:
        response = apply(client, deployment)

    # Server-side apply refuses an undeclared field before validation runs,
    # with a 500 (not 422) in this version of the API server.
    assert response.status_code >= 400, response.text
    assert "readinessProbes: field not declared in schema" in response.json()["message"]


def test_dry_run_refuses_an_invalid_value(apiserver: ApiServer) -> None:
    deployment = chart_deployment()
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["port"] = "name-longer-than-15"

    with apiserver.client() as client:
        response = apply(client, deployment)

    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "Invalid"
    assert "livenessProbe.httpGet.port" in response.json()["message"]
