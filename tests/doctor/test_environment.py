"""Environment checks: Python, extras against the manifest's kinds, the pulumi CLI (a stub executable)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlstack import manifest
from mlstack.doctor import environment
from tests.doctor.conftest import K8S_COMPUTE, manifest_dict


def test_python_version() -> None:
    assert environment.python_finding((3, 12, 1)).status == "ok"
    old = environment.python_finding((3, 10, 14))
    assert old.status == "fail" and "3.10.14" in old.detail and "3.11" in (old.fix or "")


def test_extras_follow_the_manifest_kinds() -> None:
    m = manifest.from_dict(
        manifest_dict(
            artifacts={"kind": "s3", "bucket": "b-1", "region": "us-east-1"},
            data={
                "kind": "databricks",
                "host": "https://dbc-1.cloud.databricks.com",
                "warehouse_id": "w",
                "catalog": "c",
                "schema": "s",
            },
            compute=K8S_COMPUTE,
            orchestrator={"kind": "argo", "namespace": "ml-jobs", "service_account": "ml-jobs"},
        )
    )
    assert environment.needed_extras(m) == {
        "aws": ["artifacts=s3"],
        "databricks": ["data=databricks"],
        "k8s": ["compute=kubernetes", "orchestrator=argo"],
    }
    got = {f.check: f for f in environment.extras_findings(m, installed=lambda mod: mod != "hera")}
    assert got["environment.extra.aws"].status == "ok"
    k8s = got["environment.extra.k8s"]
    assert k8s.status == "fail" and "missing: hera" in k8s.detail and k8s.fix == "pip install 'mlstack[k8s]'"


def _stub(tmp_path: Path, output: str, code: int = 0) -> str:
    exe = tmp_path / "pulumi"
    exe.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.mark.parametrize(
    ("output", "code", "status"),
    [("v3.140.0", 0, "ok"), ("v2.25.2", 0, "fail"), ("error: broken install", 1, "fail")],
)
def test_pulumi_cli(tmp_path: Path, output: str, code: int, status: str) -> None:
    exe = _stub(tmp_path, output, code)
    f = environment.pulumi_finding(5, which=lambda name: exe)
    assert f.status == status
    if status == "ok":
        assert f.detail.startswith("pulumi v3.140.0")


def test_pulumi_missing_is_a_warning() -> None:
    f = environment.pulumi_finding(5, which=lambda name: None)
    assert f.status == "warn" and "get.pulumi.com" in (f.fix or "")
