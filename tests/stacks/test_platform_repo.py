"""examples/platform-repo: a platform team's own program on mlstack components, under the mock runtime."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mlstack.errors import ConfigError
from mlstack.plan import run_plan

REPO = Path(__file__).resolve().parents[2] / "examples" / "platform-repo"


@pytest.fixture(scope="module")
def plan():
    return run_plan(REPO)


def test_plans_with_no_findings(plan) -> None:
    assert plan.project == "acme-ml-platform"
    assert plan.findings == [], [f.message for f in plan.findings]
    assert {c.type for c in plan.recording.components()} >= {
        "mlstack:index:MLStack",
        "mlstack:index:SnowflakeDataLayer",
        "mlstack:index:EksGpuCluster",
        "mlstack:index:ArgoWorkflows",
        "mlstack:index:S3ArtifactStore",
    }


def test_uses_the_existing_vpc(plan) -> None:
    rec = plan.recording
    assert not rec.by_type("aws:ec2/vpc:Vpc") and not rec.by_type("aws:ec2/natGateway:NatGateway")
    subnets = ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"]
    for ng in rec.by_type("aws:eks/nodeGroup:NodeGroup"):
        assert ng.inputs["subnetIds"] == subnets
    cluster = rec.one("aws:eks/cluster:Cluster")
    assert cluster.inputs["vpcConfig"]["subnetIds"] == subnets


def test_two_gpu_pools_of_different_types(plan) -> None:
    gpu = {g.labels.get("acme.io/pool"): g for g in plan.node_groups if g.labels.get("acme.io/pool")}
    assert set(gpu) == {"a10g", "l40s-spot"}
    assert gpu["a10g"].instance_types == ["g5.2xlarge"] and gpu["a10g"].capacity_type == "ON_DEMAND"
    assert gpu["l40s-spot"].instance_types == ["g6e.12xlarge", "g6e.24xlarge"]
    assert gpu["l40s-spot"].capacity_type == "SPOT" and gpu["l40s-spot"].max_size == 2
    codes = {q["quota_code"]: q["vcpus_needed"] for q in plan.quota_needs}
    assert codes["L-DB2E81BA"] == 8 * 4  # g5.2xlarge on demand, 4 at most
    assert codes["L-3819A6DF"] == 96 * 2  # G Spot: the widest listed type (g6e.24xlarge) x 2


def test_argo_behind_sso_and_tags(plan) -> None:
    release = plan.recording.one("kubernetes:helm.sh/v3:Release")
    assert release.inputs["values"]["server"]["authModes"] == ["sso"]
    bucket = plan.recording.one("aws:s3/bucket:Bucket")
    assert bucket.inputs["tags"]["acme:team"] == "vision"
    assert plan.recording.stack_outputs["manifest"]["artifacts"]["prefix"] == "teams/vision"


def test_bad_pool_config_names_the_key(tmp_path: Path) -> None:
    cfg = yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())
    cfg["config"]["acme-ml-platform:gpuPools"] = [
        {"pool": "a100", "maxSize": 2},
        {"pool": "a10g", "maxSize": -1},
    ]
    cfg["config"]["acme-ml-platform:vpcId"] = "my-vpc"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as info:
        run_plan(REPO, bad)
    msg = str(info.value)
    assert "acme-ml-platform:gpuPools[0].pool" in msg and "acme-ml-platform:gpuPools[1].maxSize" in msg
    assert "acme-ml-platform:vpcId" in msg
