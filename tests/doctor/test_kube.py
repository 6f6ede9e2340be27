"""Kubernetes compute and Argo checks on recorded objects (tests/doctor/fixtures/)."""

from __future__ import annotations

import copy
import json

import pytest

from mlstack import manifest
from mlstack.doctor import kube
from tests.doctor.conftest import K8S_COMPUTE, fixture


@pytest.fixture
def compute() -> manifest.KubernetesCompute:
    return manifest.KubernetesCompute.model_validate(K8S_COMPUTE)


def test_find_context_matches_update_kubeconfig_output() -> None:
    cfg = fixture("kubeconfig.json")
    assert kube.find_context(cfg, "ml-gpu", "us-east-1") == "gpu-prod"
    assert kube.find_context(cfg, "other", "us-east-1") == "arn:aws:eks:us-east-1:123456789012:cluster/other"
    assert kube.find_context(cfg, "missing", "us-east-1") is None
    assert kube.find_context({}, "ml-gpu") is None


@pytest.mark.parametrize(
    ("tolerations", "expected"),
    [
        ([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}], True),
        ([{"key": "nvidia.com/gpu", "operator": "Exists"}], True),
        ([{"operator": "Exists"}], True),
        ([{"key": "nvidia.com/gpu", "operator": "Equal", "value": "false", "effect": "NoSchedule"}], False),
        ([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}], False),
        ([{"key": "other", "operator": "Exists"}], False),
        ([], False),
    ],
)
def test_tolerates_follows_kubernetes_rules(tolerations: list[dict], expected: bool) -> None:
    taint = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    assert kube.tolerates(tolerations, taint) is expected


def test_quantity() -> None:
    assert kube.quantity("500m") == 0.5
    assert kube.quantity("16Gi") == 16 * 1024**3
    assert kube.quantity("2") == 2
    assert kube.quantity(None) == 0


def test_healthy_gpu_cluster(compute: manifest.KubernetesCompute) -> None:
    nodes = fixture("nodes.json")["items"]
    assert kube.nodes_finding(nodes, compute).status == "ok"
    assert "1 of 3 nodes offer 1 allocatable nvidia.com/gpu" in kube.nodes_finding(nodes, compute).detail
    assert kube.taint_finding(nodes, compute).status == "ok"
    dp = kube.device_plugin_finding(fixture("daemonsets.json")["items"], 1)
    assert dp.status == "ok" and "1/1" in dp.detail
    irsa = kube.irsa_finding(fixture("serviceaccount.json"), compute)
    assert irsa.status == "ok" and "arn:aws:iam::123456789012:role/ml-gpu-jobs" in irsa.detail


def test_gpu_taint_not_tolerated_by_the_manifest(compute: manifest.KubernetesCompute) -> None:
    bare = compute.model_copy(update={"gpu": manifest.GpuScheduling(tolerations=[])})
    f = kube.taint_finding(fixture("nodes.json")["items"], bare)
    assert f.status == "fail" and "nvidia.com/gpu=true:NoSchedule" in f.detail
    tol = json.loads(f.fix.split("tolerations in the manifest: ", 1)[1])  # type: ignore[union-attr]
    assert tol == {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}


def test_no_gpu_nodes_is_a_warning(compute: manifest.KubernetesCompute) -> None:
    nodes = fixture("nodes_no_gpu.json")["items"]
    f = kube.nodes_finding(nodes, compute)
    assert f.status == "warn" and "none of 2 nodes has allocatable nvidia.com/gpu" in f.detail
    assert kube.taint_finding(nodes, compute).status == "ok"


def test_node_selector_matching(compute: manifest.KubernetesCompute) -> None:
    nodes = fixture("nodes.json")["items"]
    good = compute.model_copy(
        update={"gpu": manifest.GpuScheduling(node_selector={"mlstack.io/pool": "gpu"})}
    )
    bad = compute.model_copy(update={"gpu": manifest.GpuScheduling(node_selector={"mlstack.io/pool": "tpu"})})
    assert kube.node_selector_finding(nodes, good).status == "ok"  # type: ignore[union-attr]
    assert kube.node_selector_finding(nodes, bad).status == "fail"  # type: ignore[union-attr]
    assert kube.node_selector_finding(nodes, compute) is None


def test_device_plugin_missing_or_not_ready() -> None:
    no_plugin = fixture("daemonsets_bottlerocket.json")["items"]
    # a GPU node that needs the DaemonSet (AL2023: mlstack labels it device-plugin=daemonset) and no DaemonSet
    al2023 = copy.deepcopy(fixture("nodes_no_gpu.json")["items"])
    al2023[-1]["metadata"]["labels"]["mlstack.dev/device-plugin"] = "daemonset"
    missing = kube.device_plugin_finding(no_plugin, 0, nodes=al2023)
    assert missing.status == "fail" and "helm" in (missing.fix or "")
    assert al2023[-1]["metadata"]["name"] in missing.detail
    crashing = kube.device_plugin_finding(fixture("daemonsets_plugin_crashing.json")["items"], 1)
    assert (
        crashing.status == "fail"
        and "0/1 pods ready" in crashing.detail
        and "describe ds" in (crashing.fix or "")
    )


def test_irsa_missing(compute: manifest.KubernetesCompute) -> None:
    f = kube.irsa_finding(fixture("serviceaccount_no_irsa.json"), compute)
    assert f.status == "fail" and "eks.amazonaws.com/role-arn" in f.detail
    assert (f.fix or "").startswith(
        "kubectl -n ml-jobs annotate serviceaccount ml-jobs eks.amazonaws.com/role-arn="
    )
    assert kube.irsa_finding(None, compute).status == "fail"


def test_argo_controller() -> None:
    assert kube.controller_finding(fixture("deployments.json")["items"]).status == "ok"
    down = kube.controller_finding(fixture("deployments_controller_down.json")["items"])
    assert down.status == "fail" and "0/1 replicas ready" in down.detail
    assert kube.controller_finding([]).status == "fail"


def test_drift_equal_and_field_by_field() -> None:
    cm = fixture("configmap.json")
    local = fixture("manifest_prod.json")
    (same,) = kube.drift_findings(cm, local, "ml-jobs/mlstack-manifest")
    assert same.status == "ok" and "[manifest.json]" in same.detail
    changed = copy.deepcopy(local)
    changed["artifacts"]["bucket"] = "vision-prod-artifacts-v2"
    changed["compute"]["gpu"]["tolerations"] = []
    changed["data"]["connection_name"] = "prod"
    got = kube.drift_findings(cm, changed, "ml-jobs/mlstack-manifest")
    assert [f.check for f in got] == ["orchestrator.drift"] * 3 and all(f.status == "fail" for f in got)
    details = [f.detail for f in got]
    assert 'artifacts.bucket: deployed "vision-prod-artifacts", local "vision-prod-artifacts-v2"' in details
    assert 'data.connection_name: deployed "<absent>", local "prod"' in details
    assert any(
        d.startswith("compute.gpu.tolerations: deployed [{") and d.endswith("local []") for d in details
    )
    assert "kubectl -n ml-jobs get configmap mlstack-manifest" in (got[0].fix or "")
    rows = kube.drift_rows(cm, changed)
    assert {"path": "data.connection_name", "deployed": "<absent>", "local": "prod"} in rows


def test_drift_is_capped() -> None:
    cm = {"data": {"manifest.json": json.dumps({"version": 1, "artifacts": {f"k{i}": i for i in range(30)}})}}
    got = kube.drift_findings(cm, {"version": 1, "artifacts": {}}, "ns/cm")
    assert len(got) == kube.MAX_DRIFT_FINDINGS + 1 and got[-1].detail == "... and 10 more fields differ"


def test_configmap_missing_or_without_manifest() -> None:
    (missing,) = kube.drift_findings(None, {}, "ns/cm")
    assert missing.status == "fail" and missing.check == "orchestrator.manifest"
    (f,) = kube.drift_findings({"data": {"other": "x"}}, {}, "ns/cm")
    assert f.status == "fail" and "holds no manifest" in f.detail


def test_device_plugin_from_the_os_on_bottlerocket() -> None:
    """Bottlerocket GPU nodes run the NVIDIA plugin from the OS: no DaemonSet is needed (EksGpuCluster labels
    them mlstack.dev/device-plugin=os and installs no DaemonSet for them)."""
    from mlstack.components.compute.eks import DEVICE_PLUGIN_LABEL

    assert kube.DEVICE_PLUGIN_LABEL == DEVICE_PLUGIN_LABEL
    nodes = fixture("nodes_bottlerocket.json")["items"]
    daemonsets = fixture("daemonsets_bottlerocket.json")["items"]
    gpus = kube.gpu_nodes(nodes, "nvidia.com/gpu")
    f = kube.device_plugin_finding(daemonsets, len(gpus), nodes=nodes)
    assert f.status == "ok", f
    assert "OS" in f.detail and "1 GPU node" in f.detail

    # the mlstack DaemonSet present for other groups, scheduling on none of these nodes: still covered
    with_ds = fixture("daemonsets.json")["items"]
    for d in with_ds:
        if "nvidia" in d["metadata"]["name"]:
            d["status"].update(desiredNumberScheduled=0, numberReady=0, currentNumberScheduled=0)
    assert kube.device_plugin_finding(with_ds, len(gpus), nodes=nodes).status == "ok"

    # a node labelled os that advertises no GPU: the OS's plugin is not running there
    broken = copy.deepcopy(nodes)
    del broken[-1]["status"]["allocatable"]["nvidia.com/gpu"]
    f = kube.device_plugin_finding(daemonsets, 0, nodes=broken)
    assert f.status == "fail" and broken[-1]["metadata"]["name"] in f.detail and f.fix


def test_device_plugin_missing_without_any_gpu_node_is_a_warning() -> None:
    """No DaemonSet and no GPU node yet (a group scaled to zero): the doctor cannot tell a Bottlerocket
    cluster (fine) from one missing the plugin, so it warns and says both."""
    f = kube.device_plugin_finding(fixture("daemonsets_bottlerocket.json")["items"], 0, nodes=[])
    assert f.status == "warn" and "Bottlerocket" in f.detail and "helm" in (f.fix or "")


def test_compute_findings_pass_nodes_to_the_device_plugin_check() -> None:
    from mlstack.doctor import compute as doctor_compute
    from mlstack.doctor.core import Sink

    class Cluster:
        def server_version(self) -> str:
            return "1.31"

        def nodes(self) -> list:
            return fixture("nodes_bottlerocket.json")["items"]

        def daemonsets(self) -> list:
            return fixture("daemonsets_bottlerocket.json")["items"]

        def service_account(self, ns: str, name: str) -> dict:
            return fixture("serviceaccount.json")

    c = manifest.KubernetesCompute.model_validate(K8S_COMPUTE)
    sink = Sink()
    doctor_compute.cluster_findings(Cluster(), c, sink)
    dp = next(f for f in sink._items if f.check == "compute.device_plugin")
    assert dp.status == "ok", dp
