"""The plan engine: loading a project folder, cost, quota needs, the result object doctor uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.errors import ConfigError, MlstackError, UsageError
from mlstack.plan import NOTICE, run_plan
from mlstack.plan.runner import load_program

EKS = """
import pulumi, pulumi_aws as aws
cfg = pulumi.Config()
c = aws.eks.Cluster("c", role_arn="arn:aws:iam::1:role/c", vpc_config={"subnet_ids": ["s1", "s2"]})
a = aws.ec2.Subnet("a", vpc_id="v", cidr_block="10.0.0.0/24", availability_zone="us-east-1a")
b = aws.ec2.Subnet("b", vpc_id="v", cidr_block="10.0.1.0/24", availability_zone="us-east-1b")
aws.ec2.NatGateway("nat", subnet_id=a.id)
aws.eks.NodeGroup("gpu", cluster_name=c.name, node_role_arn="r", subnet_ids=[a.id, b.id],
    instance_types=[cfg.get("type") or "g5.xlarge"], capacity_type=cfg.get("capacity") or "ON_DEMAND",
    scaling_config={"min_size": 1, "max_size": cfg.get_int("max") or 3, "desired_size": 1})
"""


def _line(result, prefix: str) -> dict:
    return next(x for x in result.cost["lines"] if x["item"].startswith(prefix))


def test_cost_eks_nat_and_node_group_min_max(make_stack) -> None:
    r = run_plan(make_stack(EKS, {"aws:region": "us-east-1"}))
    eks, nat, ng = _line(r, "EKS control plane"), _line(r, "NAT gateway"), _line(r, "node group gpu")
    assert (eks["hourly_usd_max"], eks["monthly_usd_max"]) == (0.1, 73.0)
    assert (nat["hourly_usd_max"], nat["monthly_usd_max"]) == (0.045, 32.85)
    # g5.xlarge $1.006/h in the shipped table: 1 node at minimum, 3 at maximum, 730 h
    assert ng["hourly_usd_min"] == pytest.approx(1.006) and ng["hourly_usd_max"] == pytest.approx(3.018)
    assert ng["monthly_usd_min"] == pytest.approx(734.38) and ng["monthly_usd_max"] == pytest.approx(2203.14)
    t = r.cost["totals"]
    assert t["monthly_usd_max"] == pytest.approx(73.0 + 32.85 + 2203.14)
    assert r.cost["hours_per_month"] == 730
    assert any("730 hours" in a for a in r.cost["assumptions"])


def test_region_without_a_price_says_so_rather_than_guessing(make_stack) -> None:
    r = run_plan(make_stack(EKS, {"aws:region": "eu-west-1"}))
    ng = _line(r, "node group gpu")
    assert ng["priced"] is False and ng["hourly_usd_max"] is None
    assert "no price in table" in ng["basis"] and "eu-west-1" in ng["basis"]
    assert r.cost["unpriced"] and r.cost["unpriced"][0]["item"].startswith("node group gpu")
    west = run_plan(make_stack(EKS, {"aws:region": "us-west-2"}, name="west"))
    assert _line(west, "node group gpu")["hourly_usd_max"] == pytest.approx(3.018)


def test_quota_needs_per_code_at_max_size(make_stack) -> None:
    r = run_plan(make_stack(EKS, {"demo:max": 5}))
    (q,) = r.quota_needs
    assert q["quota_code"] == "L-DB2E81BA" and q["purchase_option"] == "on-demand"
    assert q["vcpus_needed"] == 4 * 5 and q["aws_default_vcpus"] == 0 and q["exceeds_aws_default"] is True
    spot = run_plan(make_stack(EKS, {"type": "p5.48xlarge", "capacity": "SPOT", "max": 2}, name="s"))
    (q,) = spot.quota_needs
    assert (q["quota_code"], q["vcpus_needed"], q["purchase_option"]) == ("L-C4BD4855", 192 * 2, "spot")
    assert _line(spot, "node group gpu")["assumptions"][0].startswith("Spot group priced at On-Demand")


def test_gpu_instance_types_with_zones_for_doctor(make_stack) -> None:
    r = run_plan(make_stack(EKS, {}))
    (g,) = r.gpu_instance_types
    assert g["instance_type"] == "g5.xlarge" and g["region"] == "us-east-1"
    assert g["zones"] == ["us-east-1a", "us-east-1b"] and g["gpus"] == 1
    d = r.to_dict()
    for key in (
        "notice",
        "resources",
        "tree",
        "counts_by_type",
        "cost",
        "quota_needs",
        "gpu_instance_types",
        "findings",
        "summary",
    ):
        assert key in d
    assert d["notice"] == NOTICE == "offline estimate, not a Pulumi preview"
    assert d["counts_by_type"]["aws:ec2/subnet:Subnet"] == 2


SNOW = """
import pulumi_snowflake as sf
sf.Warehouse("wh", name="WH", warehouse_size="SMALL", auto_suspend=60, min_cluster_count=1, max_cluster_count=2)
"""


def test_snowflake_rate_from_config_or_flagged_default(make_stack) -> None:
    r = run_plan(make_stack(SNOW, {}))
    wh = _line(r, "Snowflake warehouse WH")
    # Small = 2 credits/h per cluster; 2 clusters at most; default $3.00/credit, 160 h/month assumed
    assert wh["hourly_usd_max"] == pytest.approx(12.0) and wh["monthly_usd_min"] == 0
    assert wh["monthly_usd_max"] == pytest.approx(12.0 * 160)
    assert any("ASSUMED default" in a for a in wh["assumptions"])
    r2 = run_plan(
        make_stack(
            SNOW, {"mlstack:snowflakeUsdPerCredit": 2.5, "mlstack:warehouseHoursPerMonth": 100}, name="b"
        )
    )
    wh2 = _line(r2, "Snowflake warehouse WH")
    assert wh2["hourly_usd_max"] == pytest.approx(10.0) and wh2["monthly_usd_max"] == pytest.approx(1000.0)
    assert any("from config mlstack:snowflakeUsdPerCredit" in a for a in wh2["assumptions"])


def test_bad_rate_config_names_the_key(make_stack) -> None:
    with pytest.raises(ConfigError, match="mlstack:snowflakeUsdPerCredit"):
        run_plan(make_stack(SNOW, {"mlstack:snowflakeUsdPerCredit": "cheap"}))


def test_databricks_dbu_rate_defaults_flagged(make_stack) -> None:
    prog = """
import pulumi_databricks as dbx
dbx.SqlEndpoint("wh", name="wh", cluster_size="Small", auto_stop_mins=10, enable_serverless_compute=True)
"""
    r = run_plan(make_stack(prog, {}))
    line = _line(r, "Databricks SQL warehouse wh")
    assert line["hourly_usd_max"] == pytest.approx(12 * 0.70)  # 12 DBU/h x serverless $0.70 (third-party)
    assert any("ASSUMED" in a for a in line["assumptions"])
    assert "NOT first-party" in line["source"]


def test_load_program_errors(tmp_path: Path, make_stack) -> None:
    with pytest.raises(UsageError, match=r"no Pulumi\.yaml"):
        load_program(tmp_path)
    with pytest.raises(UsageError, match="not supported"):
        load_program(make_stack("", {}, runtime="nodejs"))
    with pytest.raises(UsageError, match="--config"):
        load_program(make_stack("", {}, name="x"), tmp_path / "nope.yaml")


def test_structured_config_values_reach_the_program_as_json(make_stack) -> None:
    prog = """
import pulumi, pulumi_aws as aws
cfg = pulumi.Config()
for t in cfg.require_object("types"):
    aws.s3.Bucket("b-" + t.replace(".", "-"))
"""
    p = load_program(make_stack(prog, {"demo:types": ["a.b", "c.d"], "aws:region": "us-west-2"}))
    assert p.config["demo:types"] == '["a.b", "c.d"]' and p.region == "us-west-2"
    r = run_plan(p.path)
    assert {x["name"] for x in r.to_dict()["resources"]} == {"b-a-b", "b-c-d"}


def test_program_errors_become_mlstack_errors(make_stack) -> None:
    with pytest.raises(MlstackError, match="failed under the mock runtime"):
        run_plan(make_stack("raise RuntimeError('boom')\n", {}))
    prog = """
from mlstack.errors import ConfigError
raise ConfigError("demo:size must be an integer", fix="set demo:size")
"""
    with pytest.raises(ConfigError, match="demo:size"):
        run_plan(make_stack(prog, {}, name="cfg"))


def test_config_file_option_overrides_example(make_stack, tmp_path: Path) -> None:
    folder = make_stack(EKS, {"demo:max": 3})
    other = tmp_path / "prod.yaml"
    other.write_text("config:\n  demo:max: 7\n")
    r = run_plan(folder, other)
    assert r.config_file == str(other.resolve())
    assert r.quota_needs[0]["vcpus_needed"] == 28


def test_local_helper_modules_do_not_leak_between_projects(make_stack) -> None:
    one = make_stack("import helpers, pulumi_aws as aws\naws.s3.Bucket(helpers.NAME)\n", {}, name="one")
    (one / "helpers.py").write_text("NAME = 'from-one'\n")
    two = make_stack("import helpers, pulumi_aws as aws\naws.s3.Bucket(helpers.NAME)\n", {}, name="two")
    (two / "helpers.py").write_text("NAME = 'from-two'\n")
    assert [r["name"] for r in run_plan(one).to_dict()["resources"]] == ["from-one"]
    assert [r["name"] for r in run_plan(two).to_dict()["resources"]] == ["from-two"]


def test_a_missing_provider_sdk_names_the_extra(make_stack) -> None:
    from mlstack.errors import MissingExtraError

    with pytest.raises(MissingExtraError) as info:
        run_plan(make_stack("import pulumi_nosuchprovider\n", {}))
    assert info.value.fix == "pip install 'mlstack[components]'"


PREFIXED = """
import pulumi_aws as aws
c = aws.eks.Cluster("c", role_arn="arn:aws:iam::1:role/c", vpc_config={"subnet_ids": ["s1", "s2"]})
aws.eks.NodeGroup("ml-gpu-a10g", cluster_name=c.name, node_role_arn="r", subnet_ids=["s1"],
    node_group_name_prefix="a10g-", instance_types=["g5.xlarge"],
    scaling_config={"min_size": 0, "max_size": 2, "desired_size": 0})
aws.eks.NodeGroup("ml-gpu-fixed", cluster_name=c.name, node_role_arn="r", subnet_ids=["s1"],
    node_group_name="batch", instance_types=["g5.xlarge"],
    scaling_config={"min_size": 0, "max_size": 1, "desired_size": 0})
"""


def test_node_groups_are_named_as_the_user_named_them(make_stack) -> None:
    """A group created with a name prefix (EksGpuCluster's create-before-delete) is planned under the prefix
    without its dash, not under the Pulumi resource name; an explicit name is kept."""
    r = run_plan(make_stack(PREFIXED, {"aws:region": "us-east-1"}))
    assert sorted(g.name for g in r.node_groups) == ["a10g", "batch"]
    assert _line(r, "node group a10g") and _line(r, "node group batch")


def test_eks_gpu_cluster_groups_carry_their_spec_names(pulumi_run) -> None:
    from mlstack.plan.inventory import node_groups

    def program() -> None:
        from mlstack.components import EksGpuCluster

        EksGpuCluster(
            "ml",
            {
                "gpu_node_groups": [
                    {"name": "a10g", "instance_types": ["g5.xlarge"], "max_size": 2},
                    {"name": "l4", "instance_types": ["g6.xlarge"], "max_size": 1},
                ]
            },
        )

    names = sorted(g.name for g in node_groups(pulumi_run(program)))
    assert names == ["a10g", "l4", "system"]


TWO_GROUPS = """
import pulumi, pulumi_aws as aws
c = aws.eks.Cluster("c", role_arn="arn:aws:iam::1:role/c", vpc_config={"subnet_ids": ["s1"]})
for name, cap in (("a", "ON_DEMAND"), ("b", "SPOT")):
    aws.eks.NodeGroup(name, cluster_name=c.name, node_role_arn="r", subnet_ids=["s1"], instance_types=["g5.xlarge"],
        capacity_type=cap, scaling_config={"min_size": 0, "max_size": 3, "desired_size": 0})
for name in ("n1", "n2"):
    aws.ec2.NatGateway(name, subnet_id="s1")
"""


def test_the_plan_does_not_depend_on_registration_order(make_stack) -> None:
    """Resources that wait on the same outputs register in whatever order the event loop resolves them (the
    golden test of examples/platform-repo saw three orders of its node groups); the report must not change."""
    import dataclasses

    from mlstack.plan.result import analyse

    first = run_plan(make_stack(TWO_GROUPS, {"aws:region": "us-east-1"}))
    rec = first.recording
    again = analyse(
        dataclasses.replace(rec, resources=list(reversed(rec.resources))),
        config={"aws:region": "us-east-1"},
        project=first.project,
        path=first.path,
        config_file=first.config_file,
    )
    a, b = first.to_dict(), again.to_dict()
    for d in (a, b):
        del d["resources"], d["tree"]  # the recording itself, in registration order by definition
    assert a == b
    assert [g.name for g in again.node_groups] == ["a", "b"]
    # each group's assumptions in group order: "a" scales to zero, then "b" adds the Spot note
    asm = a["cost"]["assumptions"]
    assert asm.index("scales to zero: $0 while idle") < asm.index(
        "Spot group priced at On-Demand rates (upper bound)"
    )
