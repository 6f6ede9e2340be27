"""`mlstack doctor job` on a multi-node step (a JobSet created by a resource template): its pods are found by
the run label, and the resource template's refusals (no JobSet CRD, RBAC) are explained with their fix, from
the API server's own message texts (issue #14)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from mlstack import manifest
from mlstack.doctor import explain
from tests.doctor.conftest import K8S_COMPUTE, fixture
from tests.doctor.fake_k8s import FakeApi, serve, write_kubeconfig

COMPUTE = manifest.KubernetesCompute.model_validate(K8S_COMPUTE)
NO_CRD = (
    'error: resource mapping not found for name: "" namespace: "ml-jobs" from "/tmp/manifest.yaml": no matches '
    'for kind "JobSet" in version "jobset.x-k8s.io/v1alpha2"\nensure CRDs are installed first'
)
FORBIDDEN = (
    'jobsets.jobset.x-k8s.io is forbidden: User "system:serviceaccount:ml-jobs:ml-jobs" cannot create resource '
    '"jobsets" in API group "jobset.x-k8s.io" in the namespace "ml-jobs"'
)


def _workflow(message: str, name: str = "train-mn") -> dict[str, Any]:
    node = f"{name}-2233445566"
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "namespace": "ml-jobs"},
        "spec": {"entrypoint": "main", "serviceAccountName": "ml-jobs"},
        "status": {
            "phase": "Failed" if message else "Running",
            "nodes": {
                name: {"id": name, "name": name, "type": "DAG", "phase": "Running", "children": [node]},
                node: {
                    "id": node,
                    "name": f"{name}.train",
                    "displayName": "train",
                    "type": "Pod",
                    "phase": "Error" if message else "Running",
                    "message": message,
                    "templateName": "train",
                },
            },
        },
    }


def test_missing_jobset_crd_is_explained_with_the_install() -> None:
    (f,) = explain.explain_workflow(_workflow(NO_CRD), [], [], None, COMPUTE)
    assert f.check == "job.jobset_missing" and f.status == "fail"
    assert "no JobSet CRD" in f.detail
    assert "JobSetController" in (f.fix or "") and "--version 0.12.0" in (f.fix or "")


def test_forbidden_jobset_is_explained_with_the_rbac_fix() -> None:
    (f,) = explain.explain_workflow(_workflow(FORBIDDEN), [], [], None, COMPUTE)
    assert f.check == "job.jobset_rbac"
    assert "system:serviceaccount:ml-jobs:ml-jobs may not create jobsets.jobset.x-k8s.io" in f.detail
    assert "auth can-i create jobsets.jobset.x-k8s.io --as system:serviceaccount:ml-jobs:ml-jobs" in (
        f.fix or ""
    )


def test_other_failures_are_not_blamed_on_jobset() -> None:
    got = explain.explain_workflow(_workflow("failed with exit code 1"), [], [], None, COMPUTE)
    assert not any(f.check.startswith("job.jobset") for f in got)


@pytest.fixture
def api() -> FakeApi:
    a = FakeApi()
    a.nodes = fixture("nodes.json")["items"]
    return a


def test_doctor_job_finds_the_jobset_pods_of_a_workflow(api: FakeApi, tmp_path: Path, monkeypatch) -> None:
    """A Running workflow whose JobSet pod is stuck on a taint: the pod is found through mlstack.io/run."""
    sc = fixture("job_untolerated_taint.json")
    pod = copy.deepcopy(sc["pod"])
    pod["metadata"]["name"] = "train-mn-train-x7k2p-node-0-1-q9z8w"
    pod["metadata"]["labels"] = {
        "mlstack.io/run": "train-mn",
        "jobset.sigs.k8s.io/jobset-name": "train-mn-train-x7k2p",
    }
    events = copy.deepcopy(sc["events"])
    for e in events:
        e["involvedObject"]["name"] = pod["metadata"]["name"]
    api.add("pods", pod)
    api.events = events
    api.add("workflows", _workflow(""))
    prod = manifest.from_dict(fixture("manifest_prod.json"))
    with serve(api) as url:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        report = explain.explain_job(prod, "train-mn", timeout=30)
    checks = {f.check: f for f in report.findings}
    assert "job.untolerated_taint" in checks, report.findings
    assert "train-mn-train-x7k2p-node-0-1-q9z8w" in checks["job.untolerated_taint"].detail
