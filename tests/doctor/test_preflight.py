"""`mlstack doctor --preflight`: GPU vCPU needs vs. EC2 quotas, GPU instance types vs. zone offerings,
against moto's EC2 and Service Quotas endpoints."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlstack.cli.main import main
from mlstack.doctor import preflight

NEED = {
    "quota_code": "L-DB2E81BA",
    "name": "Running On-Demand G and VT instances",
    "purchase_option": "on-demand",
    "region": "us-east-1",
    "vcpus_needed": 16,
    "instance_types": ["g5.xlarge"],
    "node_groups": [{"name": "gpu", "max_size": 4, "vcpus_per_node": 4}],
    "aws_default_vcpus": 0,
}


@pytest.fixture
def ec2_quotas(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """Applied EC2 quota values served by moto (whose Service Quotas backend knows only VPC quotas)."""
    from moto.servicequotas.exceptions import NoSuchResource
    from moto.servicequotas.models import ServiceQuotasBackend

    applied: dict[str, float] = {}
    original = ServiceQuotasBackend.get_service_quota

    def get_service_quota(self: Any, service_code: str, quota_code: str) -> dict[str, Any]:
        if service_code == "ec2":
            if quota_code not in applied:
                raise NoSuchResource
            return {
                "ServiceCode": "ec2",
                "QuotaCode": quota_code,
                "QuotaName": quota_code,
                "Value": applied[quota_code],
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
        return original(self, service_code, quota_code)

    monkeypatch.setattr(ServiceQuotasBackend, "get_service_quota", get_service_quota)
    return applied


def _report(moto: str, needs: list[dict], types: list[dict]) -> dict[str, list[tuple[str, str, str | None]]]:
    # generous: moto loads its offering tables on first use, slowly on a busy 2-core machine
    rep = preflight.preflight(needs, types, timeout=60, endpoint_url=moto)
    out: dict[str, list[tuple[str, str, str | None]]] = {}
    for f in rep.findings:
        out.setdefault(f.check, []).append((f.status, f.detail, f.fix))
    return out


def test_quota_enough_and_short(moto_s3: str, ec2_quotas: dict[str, float]) -> None:
    ec2_quotas["L-DB2E81BA"] = 64
    got = _report(moto_s3, [NEED], [])
    ((status, detail, _),) = got["preflight.quota"]
    assert status == "ok" and "16 vCPUs needed (gpu×4), quota 64 (applied)" in detail
    ec2_quotas["L-DB2E81BA"] = 8
    ((status, detail, fix),) = _report(moto_s3, [NEED], [])["preflight.quota"]
    assert status == "fail" and "quota 8 (applied)" in detail
    assert fix == (
        "aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-DB2E81BA "
        "--desired-value 16 --region us-east-1"
    )


def test_no_applied_value_falls_back_to_the_aws_default(moto_s3: str, ec2_quotas: dict[str, float]) -> None:
    ((status, detail, fix),) = _report(moto_s3, [NEED], [])["preflight.quota"]
    assert status == "fail" and "quota 0 (AWS default (no applied value))" in detail
    assert "request-service-quota-increase" in (fix or "")


def test_unknown_instance_family_is_a_warning(moto_s3: str) -> None:
    unknown = {"quota_code": None, "instance_types": ["x9z.huge"], "region": "us-east-1"}
    ((status, detail, _),) = _report(moto_s3, [unknown], [])["preflight.quota"]
    assert status == "warn" and "x9z.huge" in detail


def test_zone_offerings(moto_s3: str) -> None:
    types = [
        {
            "instance_type": "g5.xlarge",
            "region": "us-east-1",
            "zones": ["us-east-1a", "us-east-1b"],
            "node_groups": ["gpu"],
        },
        {
            "instance_type": "g6e.xlarge",
            "region": "us-east-1",
            "zones": ["us-east-1a", "us-east-1f"],
            "node_groups": ["big"],
        },
        {
            "instance_type": "p4d.24xlarge",
            "region": "us-east-1",
            "zones": ["us-east-1e"],
            "node_groups": ["p4"],
        },
        {"instance_type": "g5.nope", "region": "us-east-1", "zones": [], "node_groups": ["typo"]},
    ]
    got = _report(moto_s3, [], types)["preflight.offering"]
    by_type = {d.split(" ")[0]: (s, d, f) for s, d, f in got}
    assert by_type["g5.xlarge"][0] == "ok"
    assert by_type["g6e.xlarge"][0] == "warn" and "not offered in us-east-1f" in by_type["g6e.xlarge"][1]
    assert (
        by_type["p4d.24xlarge"][0] == "fail"
        and "none of the chosen zones (us-east-1e)" in by_type["p4d.24xlarge"][1]
    )
    assert "us-east-1a" in (by_type["p4d.24xlarge"][2] or "")
    assert by_type["g5.nope"][0] == "fail" and "not offered in any zone" in by_type["g5.nope"][1]


def test_no_credentials(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    got = _report(moto_s3, [NEED], [{"instance_type": "g5.xlarge", "region": "us-east-1", "zones": []}])
    assert set(got) == {"preflight.credentials"}
    assert all(s == "fail" and "aws configure" in (f or "") for s, _, f in got["preflight.credentials"])


def test_dead_endpoint_within_timeout(closed_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused endpoint costs one attempt per call, no retries, with --timeout as the connect and read
    timeouts; the quota check says it could not read the quota, with a fix. Behaviour, not seconds."""
    from tests.doctor.conftest import Attempts

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    spy = Attempts()
    real = preflight.client_factory

    def factory(timeout: float, endpoint_url: str | None = None):  # type: ignore[no-untyped-def]
        make = real(timeout, endpoint_url)
        return lambda service, region: spy.watch(make(service, region))

    monkeypatch.setattr(preflight, "client_factory", factory)
    rep = preflight.preflight([NEED], [], timeout=3, endpoint_url=f"http://127.0.0.1:{closed_port}")
    spy.settle()
    assert spy.clients and all(
        (c.meta.config.connect_timeout, c.meta.config.read_timeout) == (3, 3)
        and c.meta.config.retries["total_max_attempts"] == 1
        for c in spy.clients
    )
    # one attempt per call: no operation is sent twice (botocore's retries would repeat it)
    ops = [op for op, _ in spy.sent]
    assert ops and len(ops) == len(set(ops)), spy.sent
    assert all(url.startswith(f"http://127.0.0.1:{closed_port}") for _, url in spy.sent)
    ((f),) = rep.findings
    # refused at once: "cannot read the quota" (warn); on a loaded machine the deadline may come first (fail)
    assert f.check == "preflight.quota" and f.status in ("warn", "fail") and f.fix


STACK = """
import pulumi_aws as aws
c = aws.eks.Cluster("c", role_arn="arn:aws:iam::1:role/c", vpc_config={"subnet_ids": ["s1", "s2"]})
a = aws.ec2.Subnet("a", vpc_id="v", cidr_block="10.0.0.0/24", availability_zone="us-east-1a")
e = aws.ec2.Subnet("e", vpc_id="v", cidr_block="10.0.1.0/24", availability_zone="us-east-1e")
aws.eks.NodeGroup("gpu", cluster_name=c.name, node_role_arn="r", subnet_ids=[a.id, e.id],
    instance_types=["g5.xlarge"], capacity_type="ON_DEMAND",
    scaling_config={"min_size": 0, "max_size": 4, "desired_size": 0})
"""


def test_cli_preflight_plans_offline_then_checks(
    moto_s3: str, ec2_quotas: dict[str, float], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    pytest.importorskip("pulumi_aws")
    folder = tmp_path / "gpu-stack"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: gpu-stack\nruntime: python\n")
    (folder / "__main__.py").write_text(textwrap.dedent(STACK))
    (folder / "Pulumi.example.yaml").write_text("config:\n  aws:region: us-east-1\n")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3)  # boto3 sends every service to moto
    ec2_quotas["L-DB2E81BA"] = 8
    code = main(["doctor", "--preflight", str(folder), "--json", "--timeout", "60"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    checks = {(f["check"], f["status"]) for f in out["findings"]}
    assert ("preflight.quota", "fail") in checks  # 4 × g5.xlarge = 16 vCPUs > 8
    assert ("preflight.offering", "warn") in checks  # g5.xlarge is not offered in us-east-1e
    assert out["quota_needs"][0]["vcpus_needed"] == 16
