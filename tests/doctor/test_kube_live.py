"""The fetch layer end to end: kubeconfig context -> unmodified kubernetes client -> a loopback fake API
server answering with the recorded fixtures -> the same findings as the pure functions."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlstack import manifest
from mlstack.doctor import compute, explain, orchestrator
from mlstack.doctor.core import run_checks
from tests.doctor.conftest import fixture
from tests.doctor.fake_k8s import FakeApi, serve, write_kubeconfig

pytest.importorskip("kubernetes")


@pytest.fixture
def prod() -> manifest.Manifest:
    return manifest.from_dict(fixture("manifest_prod.json"))


@pytest.fixture
def api() -> FakeApi:
    a = FakeApi()
    a.nodes = fixture("nodes.json")["items"]
    a.daemonsets = fixture("daemonsets.json")["items"]
    a.deployments = fixture("deployments.json")["items"]
    a.add("serviceaccounts", fixture("serviceaccount.json"))
    a.add("configmaps", fixture("configmap.json"))
    return a


@pytest.fixture
def cluster_url(api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serve(api) as url:
        monkeypatch.setenv("KUBECONFIG", str(write_kubeconfig(tmp_path / "kubeconfig", url)))
        yield url


def _statuses(report) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f.check: f.status for f in report.findings}


def test_healthy_cluster_end_to_end(prod: manifest.Manifest, cluster_url: str, api: FakeApi) -> None:
    report = run_checks(compute.checks(prod) + orchestrator.checks(prod), timeout=30)
    assert _statuses(report) == {
        "compute.context": "ok",
        "compute.api": "ok",
        "compute.gpu_nodes": "ok",
        "compute.gpu_taint": "ok",
        "compute.device_plugin": "ok",
        "compute.irsa": "ok",
        "orchestrator.controller": "ok",
        "orchestrator.manifest": "ok",
        "orchestrator.drift": "ok",
    }, report.findings
    assert any(r.startswith("/api/v1/namespaces/ml-jobs/configmaps/mlstack-manifest") for r in api.requests)


def test_drift_and_missing_irsa_end_to_end(prod: manifest.Manifest, cluster_url: str, api: FakeApi) -> None:
    api.add("serviceaccounts", fixture("serviceaccount_no_irsa.json"))
    local = copy.deepcopy(fixture("manifest_prod.json"))
    local["artifacts"]["bucket"] = "vision-prod-artifacts-2"
    m = manifest.from_dict(local)
    report = run_checks(compute.checks(m) + orchestrator.checks(m), timeout=30)
    by = {f.check: f for f in report.findings}
    assert by["compute.irsa"].status == "fail"
    assert by["orchestrator.drift"].status == "fail" and "artifacts.bucket" in by["orchestrator.drift"].detail
    assert report.failed


def test_no_context_for_the_cluster(
    prod: manifest.Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", "http://127.0.0.1:9", cluster="other"))
    )
    report = run_checks(compute.checks(prod), timeout=5)
    (f,) = report.findings
    assert f.check == "compute.context" and f.status == "fail"
    assert f.fix == "aws eks update-kubeconfig --name ml-gpu --region us-east-1"


def test_explain_job_pod_and_workflow(prod: manifest.Manifest, cluster_url: str, api: FakeApi) -> None:
    sc = fixture("job_untolerated_taint.json")
    api.add("pods", sc["pod"])
    api.events = sc["events"]
    report = explain.explain_job(prod, sc["pod"]["metadata"]["name"], timeout=30)
    assert "job.untolerated_taint" in _statuses(report)
    wf = fixture("workflow_quota.json")["workflow"]
    api.add("workflows", wf)
    report = explain.explain_job(prod, "train-q", timeout=30)
    assert [f.check for f in report.findings] == ["job.quota"]
    report = explain.explain_job(prod, "nothing-here", timeout=30)
    assert [f.check for f in report.findings] == ["job.not_found"]


def test_api_server_that_never_answers(
    prod: manifest.Manifest, silent_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "KUBECONFIG", str(write_kubeconfig(tmp_path / "kc", f"http://127.0.0.1:{silent_port}"))
    )
    report = run_checks(compute.checks(prod) + orchestrator.checks(prod), timeout=2)
    by = {f.check: f for f in report.findings}
    assert by["compute.api"].status == "fail" and by["compute.api"].fix
    assert by["orchestrator.controller"].status == "fail"


def test_cli_full_stack_with_drift_and_job(
    cluster_url: str, api: FakeApi, moto_s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`mlstack doctor` on an EKS + Argo + S3 stack (fake API server, moto), then `mlstack doctor job`."""
    import json

    import boto3

    from mlstack.cli.main import main

    s3 = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1")
    s3.create_bucket(Bucket="vision-prod-artifacts")
    s3.put_bucket_versioning(Bucket="vision-prod-artifacts", VersioningConfiguration={"Status": "Enabled"})
    deployed = fixture("manifest_prod.json")
    deployed["artifacts"]["endpoint_url"] = moto_s3
    deployed["data"] = {"kind": "local", "path": str(tmp_path / "w.duckdb")}
    cm = fixture("configmap.json")
    cm["data"]["manifest.json"] = json.dumps(deployed)
    api.add("configmaps", cm)
    local = copy.deepcopy(deployed)
    local["compute"]["gpu"]["tolerations"] = []  # someone edited the local copy
    m = tmp_path / "m.json"
    m.write_text(json.dumps(local))

    code = main(["doctor", "--manifest", str(m), "--json", "--timeout", "30"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    by = {}
    for f in out["findings"]:
        by.setdefault(f["check"], []).append(f)
    assert by["artifacts.versioning"][0]["status"] == "ok"
    assert by["compute.api"][0]["status"] == "ok"
    assert by["compute.gpu_taint"][0]["status"] == "fail"  # the edited manifest no longer tolerates the taint
    (drift,) = by["orchestrator.drift"]
    assert drift["status"] == "fail" and drift["detail"].startswith("compute.gpu.tolerations: deployed [{")

    sc = fixture("job_gpu_max_node_group.json")
    api.add("pods", sc["pod"])
    api.events = sc["events"]
    code = main(["doctor", "job", sc["pod"]["metadata"]["name"], "--manifest", str(m)])
    text = capsys.readouterr().out
    assert code == 1 and "job.node_group_max" in text and "maxSize" in text


@pytest.mark.parametrize(("code", "status"), [(200, "ok"), (401, "ok"), (404, "warn")])
def test_argo_server_answers(code: int, status: str) -> None:
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"version": "v3.6.2"} if code == 200 else {"code": code}).encode()
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        f = orchestrator.server_finding(f"http://127.0.0.1:{srv.server_address[1]}", 10)
    finally:
        srv.shutdown()
        srv.server_close()
    assert f.status == status
    if code == 200:
        assert "(Argo v3.6.2)" in f.detail


def test_argo_server_unreachable(closed_port: int, silent_port: int) -> None:
    refused = orchestrator.server_finding(f"http://127.0.0.1:{closed_port}", 2)
    assert (
        refused.status == "fail" and "unreachable" in refused.detail and "port-forward" in (refused.fix or "")
    )
    silent = orchestrator.server_finding(f"http://127.0.0.1:{silent_port}", 1)
    assert silent.status == "fail"  # after its own 1 s read timeout (asserted as a finding, not in seconds)


def test_explain_workflow_in_the_orchestrator_namespace(cluster_url: str, api: FakeApi) -> None:
    """A workflow submitted to orchestrator.namespace is found when it differs from compute.namespace."""
    m = fixture("manifest_prod.json")
    m["orchestrator"]["namespace"] = "ml-pipelines"
    wf = copy.deepcopy(fixture("workflow_quota.json")["workflow"])
    wf["metadata"]["namespace"] = "ml-pipelines"
    api.add("workflows", wf)
    report = explain.explain_job(manifest.from_dict(m), "train-q", timeout=30)
    (f,) = report.findings
    assert f.check == "job.quota" and "namespace ml-pipelines" in f.detail
