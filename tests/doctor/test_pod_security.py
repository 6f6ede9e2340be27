"""`mlstack doctor` reports the jobs namespace's Pod Security level and WorkflowTemplate steps running as root."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlstack import manifest
from mlstack.doctor import orchestrator
from mlstack.doctor.core import run_checks
from tests.doctor.fake_k8s import FakeApi
from tests.doctor.test_kube_live import api, cluster_url, prod  # noqa: F401  (fixtures)

pytest.importorskip("hera")

ROOT_PIPELINE = """
from mlstack.pipeline import Pipeline

pipeline = Pipeline("rooty")

@pipeline.step(run_as_root=True)
def install():
    return 1

@pipeline.step
def train(install):
    return install + 1
"""


def _template(tmp_path: Path, body: str) -> dict[str, Any]:
    from mlstack.pipeline import load
    from mlstack.pipeline.argo import to_workflow_template

    f = tmp_path / "pipeline.py"
    f.write_text(body)
    doc = yaml.safe_load(to_workflow_template(load(f), manifest=manifest.local_default()).to_yaml())
    doc["metadata"]["namespace"] = "ml-jobs"
    return doc


def _ns(level: str | None) -> dict[str, Any]:
    labels = {"pod-security.kubernetes.io/enforce": level} if level else {}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-jobs", "labels": labels}}


def test_restricted_namespace_and_non_root_templates_are_ok(tmp_path, local_home) -> None:
    wt = _template(tmp_path, ROOT_PIPELINE.replace("run_as_root=True", "run_as_root=False"))
    found = orchestrator.pod_security_findings("ml-jobs", _ns("restricted"), [wt])
    assert [(f.status, f.check) for f in found] == [("ok", "orchestrator.pod_security")]


def test_root_step_and_lowered_namespace_are_reported(tmp_path, local_home) -> None:
    wt = _template(tmp_path, ROOT_PIPELINE)
    found = orchestrator.pod_security_findings("ml-jobs", _ns("baseline"), [wt])
    details = [f.detail for f in found if f.status == "warn"]
    assert any("enforces Pod Security 'baseline'" in d for d in details)
    assert any("step 'install' runs as root" in d for d in details)
    assert not any("'train'" in d for d in details)
    # a hand-written template without any securityContext counts as root
    bare = copy.deepcopy(wt)
    bare["spec"].pop("securityContext")
    for t in bare["spec"]["templates"]:
        t.pop("securityContext", None)
        if "container" in t:
            t["container"].pop("securityContext", None)
    found = orchestrator.pod_security_findings("ml-jobs", None, [bare])
    steps = [t["name"] for t in bare["spec"]["templates"] if "container" in t or "script" in t]
    assert {"install", "train"} <= set(steps)
    assert {f.detail.split("step ")[1] for f in found} == {f"'{n}' runs as root" for n in steps}


def test_doctor_reads_them_from_the_cluster(
    prod: manifest.Manifest,  # noqa: F811
    cluster_url: str,  # noqa: F811
    api: FakeApi,  # noqa: F811
    tmp_path,
    local_home,
) -> None:
    api.add("namespaces", _ns("baseline"))
    api.add("workflowtemplates", _template(tmp_path, ROOT_PIPELINE))
    report = run_checks(orchestrator.checks(prod), timeout=30)
    warns = [f.detail for f in report.findings if f.check == "orchestrator.pod_security"]
    assert any("'baseline'" in d for d in warns) and any("'install' runs as root" in d for d in warns), warns
    assert "/apis/argoproj.io/v1alpha1/namespaces/ml-jobs/workflowtemplates" in api.requests
