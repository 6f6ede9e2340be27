"""`mlstack plan` on Karpenter NodePools: the $/h range and vCPU quota needs come from each pool's limits and
the instance types its requirements allow; shared-GPU slices get an effective $/h. Every figure below is
worked out by hand from mlstack/resources/prices.json (us-east-1, 2026-07-20)."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.plan import karpenter, mock_runtime
from mlstack.plan.result import analyse
from tests.support import crds
from tests.support import karpenter_objects as ko

HOURS = 730.0


def _program(*objs: dict[str, Any]):
    def prog() -> None:
        import pulumi_kubernetes as k8s

        for o in objs:
            crds.assert_valid(o)  # the plan reads only shapes the API server would accept
            k8s.apiextensions.CustomResource(
                f"{o['kind'].lower()}-{o['metadata']['name']}",
                api_version=o["apiVersion"],
                kind=o["kind"],
                metadata=o["metadata"],
                spec=o["spec"],
            )

    return prog


def _plan(*objs: dict[str, Any], region: str = "us-east-1"):
    rec = mock_runtime.run(_program(ko.ec2_node_class(), *objs), project="kp", stack="t")
    assert rec.by_type(karpenter.NODE_POOL), "no NodePool recorded"
    return analyse(rec, config={"aws:region": region})


def _line(result, pool: str) -> dict[str, Any]:
    found = [x for x in result.cost["lines"] if x["item"].startswith(f"Karpenter NodePool {pool}:")]
    assert len(found) == 1, [x["item"] for x in result.cost["lines"]]
    return found[0]


def _quota(result, code: str) -> dict[str, Any]:
    found = [q for q in result.quota_needs if q["quota_code"] == code]
    assert len(found) == 1, result.quota_needs
    return found[0]


A10G = ko.node_pool(
    "a10g",
    instance_types=["g5.xlarge", "g5.2xlarge", "g5.12xlarge"],
    capacity_types=("spot", "on-demand"),
    limits={"cpu": "64", "memory": "256Gi", "nvidia.com/gpu": "8"},
)


def test_pool_ceiling_is_the_priciest_fleet_within_its_limits() -> None:
    # g5.xlarge 1.006 $/h (4 vCPU, 1 GPU), g5.2xlarge 1.212 (8, 1), g5.12xlarge 5.672 (48, 4).
    # Within 64 vCPU and 8 GPUs: 8 x g5.2xlarge = 64 vCPU, 8 GPUs, $9.696/h; the alternatives are cheaper:
    # 12xlarge + 2xlarge + 2 x xlarge = 8.896, 12xlarge + 2 x 2xlarge = 8.096, 8 x xlarge = 8.048.
    # Memory: 8 x 32 GiB x 0.925 = 236.8 GiB <= 256Gi, not binding.
    r = _plan(A10G)
    line = _line(r, "a10g")
    assert line["hourly_usd_min"] == 0.0
    assert line["hourly_usd_max"] == pytest.approx(9.696)
    assert line["monthly_usd_max"] == pytest.approx(9.696 * HOURS)
    assert line["fleet_at_max"] == {"g5.2xlarge": 8}
    assert "8 x g5.2xlarge ($1.212/h)" in line["basis"]
    assert any("Spot priced at On-Demand" in a for a in line["assumptions"])
    assert any("scales to zero" in a for a in line["assumptions"])
    assert r.cost["totals"]["hourly_usd_max"] == pytest.approx(9.696)
    # spot and on-demand each could hold the whole pool: 64 vCPU in the G/VT bucket of each
    assert _quota(r, "L-3819A6DF")["vcpus_needed"] == 64
    assert _quota(r, "L-DB2E81BA")["vcpus_needed"] == 64
    assert _quota(r, "L-DB2E81BA")["exceeds_aws_default"] is True  # AWS's default G/VT quota is 0
    assert [p.name for p in r.node_pools] == ["a10g"]
    d = r.to_dict()
    assert d["node_pools"][0]["candidates"] == ["g5.12xlarge", "g5.2xlarge", "g5.xlarge"]
    assert d["node_pools"][0]["candidates_complete"] is True


def test_a_tight_memory_limit_changes_the_ceiling() -> None:
    # memory 110Gi; Karpenter counts a g5.xlarge as 16 GiB x 0.925 = 14.8 GiB, a g5.2xlarge as 29.6 GiB and a
    # g5.12xlarge (177.6 GiB) not at all. Per GiB the xlarge pays more ($0.068 vs $0.041): 7 x xlarge =
    # 103.6 GiB, $7.042/h (5 xlarge + 1 2xlarge = 103.6 GiB too, $6.242). Without the 7.5% overhead only 6
    # xlarge would fit (112 GiB > 110): the overhead is what makes it 7.
    pool = ko.edited(A10G, "spec.limits", {"cpu": "64", "memory": "110Gi", "nvidia.com/gpu": "8"})
    line = _line(_plan(pool), "a10g")
    assert line["hourly_usd_max"] == pytest.approx(7.042)
    assert line["fleet_at_max"] == {"g5.xlarge": 7}
    assert any("less 7.5%" in a for a in line["assumptions"])


def test_on_demand_h100_pool_and_its_p_quota() -> None:
    # p5.48xlarge: 8 x H100, 192 vCPU, $55.04/h. nvidia.com/gpu 16 -> 2 nodes: $110.08/h, 384 vCPU of
    # L-417A185B (Running On-Demand P instances); no Spot bucket (capacity-type on-demand only).
    pool = ko.node_pool(
        "h100", instance_types=["p5.48xlarge"], capacity_types=("on-demand",), limits={"nvidia.com/gpu": "16"}
    )
    r = _plan(pool)
    assert _line(r, "h100")["hourly_usd_max"] == pytest.approx(110.08)
    q = _quota(r, "L-417A185B")
    assert q["vcpus_needed"] == 384 and q["purchase_option"] == "on-demand"
    assert {"name": "nodepool/h100", "max_size": 2} in q["node_groups"]
    assert not [x for x in r.quota_needs if x["quota_code"] == "L-C4BD4855"]
    assert {e["instance_type"] for e in r.gpu_instance_types} == {"p5.48xlarge"}


def test_capacity_type_defaults_to_on_demand_as_karpenter_does() -> None:
    pool = ko.node_pool("od", instance_types=["g5.xlarge"], limits={"nvidia.com/gpu": "2"})
    pool["spec"]["template"]["spec"]["requirements"] = [
        q
        for q in pool["spec"]["template"]["spec"]["requirements"]
        if q["key"] != "karpenter.sh/capacity-type"
    ]
    r = _plan(pool)
    assert r.node_pools[0].capacity_types == ["on-demand"]
    assert _quota(r, "L-DB2E81BA")["vcpus_needed"] == 8
    assert not [x for x in r.quota_needs if x["quota_code"] == "L-3819A6DF"]


def test_requirements_select_candidates_from_the_table() -> None:
    # g5 family with more than one GPU: g5.12xlarge (4), g5.24xlarge (4), g5.48xlarge (8)
    pool = ko.node_pool(
        "multi",
        families=["g5"],
        limits={"nvidia.com/gpu": "8"},
        extra_requirements=[
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gt", "values": ["1"]},
            {"key": "karpenter.k8s.aws/instance-size", "operator": "NotIn", "values": ["24xlarge"]},
            {"key": "karpenter.k8s.aws/instance-hypervisor", "operator": "In", "values": ["nitro"]},
        ],
    )
    r = _plan(pool)
    p = r.node_pools[0]
    assert [t.name for t in p.candidates] == ["g5.12xlarge", "g5.48xlarge"]
    assert p.pinned is False and p.not_evaluated == ["karpenter.k8s.aws/instance-hypervisor"]
    line = _line(r, "multi")
    # within 8 GPUs: 1 x g5.48xlarge ($16.288/h) beats 2 x g5.12xlarge ($11.344/h)
    assert line["hourly_usd_max"] == pytest.approx(16.288)
    assert any("outside the shipped table" in a for a in line["assumptions"])
    assert any("instance-hypervisor" in a for a in line["assumptions"])
    # by GPU name and memory: L40S with 44.7 GiB per GPU, 4 GPUs or more
    pool2 = ko.node_pool(
        "l40s",
        limits={"nvidia.com/gpu": "4"},
        extra_requirements=[
            {"key": "karpenter.k8s.aws/instance-gpu-name", "operator": "In", "values": ["l40s"]},
            {"key": "karpenter.k8s.aws/instance-gpu-count", "operator": "Gte", "values": ["4"]},
            {"key": "karpenter.k8s.aws/instance-gpu-memory", "operator": "Gt", "values": ["40000"]},
        ],
    )
    r2 = _plan(pool2)
    assert [t.name for t in r2.node_pools[0].candidates] == ["g6e.12xlarge", "g6e.24xlarge", "g6e.48xlarge"]
    assert _line(r2, "l40s")["hourly_usd_max"] == pytest.approx(15.0656)  # one g6e.24xlarge (4 GPUs)


def test_a_pool_without_limits_has_no_ceiling() -> None:
    r = _plan(ko.node_pool("open", instance_types=["g5.xlarge"], limits={}))
    line = _line(r, "open")
    assert line["hourly_usd_max"] is None and line["priced"] is False
    assert "no limits" in line["basis"]
    assert any(u["item"] == line["item"] for u in r.cost["unpriced"])
    assert _quota(r, "L-3819A6DF")["vcpus_needed"] is None
    assert _quota(r, "L-3819A6DF")["exceeds_aws_default"] is True
    assert "KARP-004" in {f.rule_id for f in r.findings}


def test_limits_that_leave_a_candidate_unbounded() -> None:
    # only GPUs limited, but m6i types (no GPU) also match: Karpenter could add CPU nodes without end
    pool = ko.node_pool("mixed", instance_types=["g5.xlarge", "m6i.large"], limits={"nvidia.com/gpu": "4"})
    line = _line(_plan(pool), "mixed")
    assert line["hourly_usd_max"] is None and "do not bound every candidate" in line["basis"]


def test_static_pool_with_replicas() -> None:
    pool = ko.node_pool("static", instance_types=["g5.xlarge", "g5.2xlarge"], limits={"nodes": "2"})
    pool["spec"]["replicas"] = 2
    pool["spec"].pop("disruption")
    crds.assert_valid(pool)
    line = _line(_plan(pool), "static")
    assert line["hourly_usd_min"] == pytest.approx(2 * 1.006)
    assert line["hourly_usd_max"] == pytest.approx(2 * 1.212)


def test_us_west_2_prices_and_missing_prices() -> None:
    r = _plan(A10G, region="us-west-2")
    assert _line(r, "a10g")["hourly_usd_max"] == pytest.approx(9.696)  # same g5 prices in us-west-2
    r = _plan(
        ko.node_pool("p4", instance_types=["p4d.24xlarge"], limits={"nvidia.com/gpu": "8"}),
        region="us-west-2",
    )
    line = _line(r, "p4")
    assert line["priced"] is False and "no candidate instance type with a price" in line["basis"]


def test_time_sliced_pool_prices_a_slice() -> None:
    # 4 replicas per GPU: g4dn.xlarge 0.526 / (1 x 4) = 0.1315; g4dn.12xlarge 3.912 / (4 x 4) = 0.2445
    pool = ko.node_pool(
        "t4",
        instance_types=["g4dn.xlarge", "g4dn.12xlarge"],
        sharing={"mlstack.dev/gpu-sharing": "time-slicing", "mlstack.dev/gpu-replicas": "4"},
    )
    r = _plan(pool)
    got = {s["instance_type"]: s for s in r.gpu_slices}
    assert got["g4dn.xlarge"]["usd_per_slice_hour"] == pytest.approx(0.1315)
    assert got["g4dn.xlarge"]["slices_per_node"] == 4
    assert got["g4dn.12xlarge"]["usd_per_slice_hour"] == pytest.approx(0.2445)
    assert got["g4dn.12xlarge"]["slices_per_node"] == 16
    assert {s["resource"] for s in r.gpu_slices} == {"nvidia.com/gpu.shared"}
    assert r.to_dict()["gpu_slices"] == r.gpu_slices


def test_mig_single_profile_slice() -> None:
    # p5.48xlarge, all-1g.10gb: 7 slices per H100, 56 per node: 55.04 / 56 = 0.98286
    pool = ko.node_pool(
        "h100",
        instance_types=["p5.48xlarge"],
        limits={"nvidia.com/gpu": "8"},
        sharing={"mlstack.dev/gpu-sharing": "mig", "nvidia.com/mig.config": "all-1g.10gb"},
    )
    (s,) = _plan(pool).gpu_slices
    assert s["slices_per_node"] == 56 and s["resource"] == "nvidia.com/gpu" and s["mig_profile"] == "1g.10gb"
    assert s["usd_per_slice_hour"] == pytest.approx(0.9829)


def test_mig_three_g_profile_wastes_a_slice_and_says_what_it_costs() -> None:
    # all-3g.40gb: 2 per H100 (6 of 7 compute slices used): 55.04 / 8 GPUs / 2 = 3.44
    pool = ko.node_pool(
        "h100",
        instance_types=["p5.48xlarge"],
        limits={"nvidia.com/gpu": "8"},
        sharing={
            "mlstack.dev/gpu-sharing": "mig",
            "nvidia.com/mig.config": "all-3g.40gb",
            "mlstack.dev/mig-strategy": "mixed",
        },
    )
    (s,) = _plan(pool).gpu_slices
    assert s["usd_per_slice_hour"] == pytest.approx(3.44) and s["resource"] == "nvidia.com/mig-3g.40gb"


def test_mig_balanced_layout_on_a100_40gb() -> None:
    # p4d.24xlarge 21.957642 $/h, 8 x A100-40GB: 2.74470525 per GPU; all-balanced = 2 x 1g.5gb, 1 x 2g.10gb,
    # 1 x 3g.20gb (7 compute slices): 1g = 0.39210, 2g = 0.78420, 3g = 1.17630 per hour
    pool = ko.node_pool(
        "a100",
        instance_types=["p4d.24xlarge"],
        limits={"nvidia.com/gpu": "8"},
        sharing={"mlstack.dev/gpu-sharing": "mig", "nvidia.com/mig.config": "all-balanced"},
    )
    got = {s["mig_profile"]: s for s in _plan(pool).gpu_slices}
    assert got["1g.5gb"]["usd_per_slice_hour"] == pytest.approx(0.3921, abs=1e-4)
    assert got["2g.10gb"]["usd_per_slice_hour"] == pytest.approx(0.7842, abs=1e-4)
    assert got["3g.20gb"]["usd_per_slice_hour"] == pytest.approx(1.1763, abs=1e-4)
    assert got["1g.5gb"]["slices_per_node"] == 16 and got["3g.20gb"]["resource"] == "nvidia.com/mig-3g.20gb"


@pytest.mark.parametrize(
    ("labels", "needle"),
    [
        ({"mlstack.dev/gpu-sharing": "mig", "nvidia.com/mig.config": "all-1g.10gb"}, "not MIG-capable"),
        ({"mlstack.dev/gpu-sharing": "time-slicing", "mlstack.dev/gpu-replicas": "1"}, "replicas >= 2"),
        ({"mlstack.dev/gpu-sharing": "mps"}, "use time-slicing or mig"),
    ],
)
def test_sharing_problems_are_reported_not_priced(labels: dict[str, str], needle: str) -> None:
    (s,) = _plan(ko.node_pool("a10g", instance_types=["g5.xlarge"], sharing=labels)).gpu_slices
    assert needle in s["problem"] and "usd_per_slice_hour" not in s


def test_mig_profile_that_the_gpu_lacks() -> None:
    pool = ko.node_pool(
        "h100",
        instance_types=["p5.48xlarge"],
        sharing={"mlstack.dev/gpu-sharing": "mig", "nvidia.com/mig.config": "all-1g.5gb"},
    )
    (s,) = _plan(pool).gpu_slices
    assert "1g.5gb does not exist on H100-80GB" in s["problem"]


def test_node_group_labels_describe_sharing_too(pulumi_run) -> None:
    def prog() -> None:
        import pulumi_aws as aws

        aws.eks.NodeGroup(
            "t4",
            cluster_name="c",
            node_role_arn="arn:aws:iam::123456789012:role/n",
            subnet_ids=["s"],
            instance_types=["g4dn.xlarge"],
            scaling_config={"min_size": 0, "max_size": 2, "desired_size": 0},
            labels={"mlstack.dev/gpu-sharing": "time-slicing", "mlstack.dev/gpu-replicas": "2"},
        )

    r = analyse(pulumi_run(prog), config={"aws:region": "us-east-1"})
    (s,) = r.gpu_slices
    assert s["kind"] == "node_group" and s["usd_per_slice_hour"] == pytest.approx(0.263)


def test_max_fleet_is_exact_on_a_small_case() -> None:
    from mlstack import prices

    types = [prices.instance_type(n) for n in ("g5.xlarge", "g5.2xlarge", "g5.12xlarge")]
    assert all(types)
    vals = {t.name: t.hourly() for t in types}  # type: ignore[union-attr]
    # brute force over every count within 8 GPUs
    best = 0.0
    for a in range(9):
        for b in range(9):
            for c in range(3):
                if a + b + 4 * c <= 8 and 4 * a + 8 * b + 48 * c <= 64:
                    best = max(best, a * 1.006 + b * 1.212 + c * 5.672)
    f = karpenter.max_fleet(types, {"cpu": 64, "nvidia.com/gpu": 8}, vals)  # type: ignore[arg-type]
    assert f.exact and f.value == pytest.approx(best)


def test_cli_plan_of_a_karpenter_stack(make_stack, capsys) -> None:
    import json

    from mlstack.cli.main import main

    pool = ko.node_pool(
        "t4",
        instance_types=["g4dn.xlarge"],
        limits={"nvidia.com/gpu": "4"},
        sharing={"mlstack.dev/gpu-sharing": "time-slicing", "mlstack.dev/gpu-replicas": "4"},
    )
    program = f"""
import pulumi_kubernetes as k8s
for o in {[ko.ec2_node_class(), pool]!r}:
    k8s.apiextensions.CustomResource(o["metadata"]["name"], api_version=o["apiVersion"], kind=o["kind"],
                                     metadata=o["metadata"], spec=o["spec"])
"""
    folder = make_stack(program, {"aws:region": "us-east-1"})
    assert main(["plan", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "Karpenter NodePool t4" in out and "Shared GPUs" in out and "$0.1315" in out
    assert main(["plan", str(folder), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["summary"]["hourly_usd_max"] == pytest.approx(4 * 0.526)  # 4 GPUs = 4 x g4dn.xlarge
    assert d["node_pools"][0]["sharing"] == {"mode": "time-slicing", "replicas": 4}
    assert d["gpu_slices"][0]["usd_per_slice_hour"] == pytest.approx(0.1315)


def test_static_pool_without_limits_is_bounded_by_its_replicas() -> None:
    pool = ko.node_pool("fixed", instance_types=["g5.xlarge"], limits={})
    pool["spec"]["replicas"] = 3
    pool["spec"].pop("disruption")
    r = _plan(pool)
    line = _line(r, "fixed")
    assert line["hourly_usd_min"] == pytest.approx(3 * 1.006) and line["hourly_usd_max"] == pytest.approx(
        3 * 1.006
    )
    assert "KARP-004" not in {f.rule_id for f in r.findings}


def test_preflight_warns_on_an_unbounded_need() -> None:
    from mlstack.doctor import preflight

    r = _plan(ko.node_pool("open", instance_types=["g5.xlarge"], limits={}))
    need = next(q for q in r.quota_needs if q["quota_code"] == "L-3819A6DF")

    def factory(*a, **k):  # never called for an unbounded need
        raise AssertionError("no AWS call expected")

    (f,) = [x for x in preflight.quota_findings([need], factory)]
    assert f.status == "warn" and "unbounded" in f.detail and "nodepool/open" in f.detail
