"""The compute components' args, validated once into frozen config: the pure functions, called directly.

No Pulumi run here: :func:`resolve_cluster` / :func:`resolve_existing` take plain args and return frozen
dataclasses (or raise one error listing every problem). What the components build from the config is covered
by test_eks.py and the golden recordings (tests/stacks/test_golden_resources.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from mlstack import names
from mlstack.components._args import InputPropertiesError, Problems, choice
from mlstack.components.compute import config
from mlstack.components.compute.args import CapacityType, GpuAmiType, NatGateways, PodSecurity, SystemAmiType
from mlstack.components.compute.spec import NewVpc, OwnVpc


def resolve(args: dict[str, Any], region: str | None = "us-east-1") -> config.ClusterConfig:
    return config.resolve_cluster("gpu", args, project="proj", stack="dev", region=region)


def problems_of(args: dict[str, Any]) -> list[tuple[str, Any, str]]:
    with pytest.raises(InputPropertiesError) as err:
        resolve(args)
    return err.value.problems


def test_every_default_is_filled_once() -> None:
    cfg = resolve({})
    assert cfg.cluster_name == "proj-dev-gpu"
    assert cfg.kubernetes_version == config.versions.DEFAULT_KUBERNETES_VERSION
    assert cfg.vpc == NewVpc("10.40.0.0/16", ("us-east-1a", "us-east-1b"), NatGateways.SINGLE)
    assert cfg.log_types == ("api", "audit", "authenticator") and cfg.log_retention_days == 90
    assert (cfg.imds_hop_limit, cfg.cluster_autoscaler, cfg.device_plugin) == (1, True, True)
    assert (cfg.node_auto_repair, cfg.extended_support) == (True, False)
    assert cfg.jobs == config.JobsConfig(
        names.JOBS_NAMESPACE, names.JOBS_SERVICE_ACCOUNT, PodSecurity.RESTRICTED
    )
    assert dict(cfg.tags) == {"mlstack:component": "gpu"}
    s = cfg.system
    assert (s.instance_types, s.min_size, s.desired_size, s.max_size) == (("m6i.large",), 2, 2, 4)
    assert (s.capacity_type, s.ami_type, s.disk_size_gib) == (
        CapacityType.ON_DEMAND,
        "AL2023_x86_64_STANDARD",
        50,
    )
    (g,) = cfg.gpu_groups
    assert (g.name, g.instance_types, g.min_size, g.desired_size, g.max_size) == (
        "gpu",
        ("g5.xlarge",),
        0,
        0,
        2,
    )
    assert (g.gpus_per_node, g.gpu_model, g.device_plugin, g.disk_size_gib) == (1, "A10G", "daemonset", 200)
    assert cfg.max_gpus == 2


def test_config_is_frozen_and_owns_its_values() -> None:
    args: dict[str, Any] = {
        "tags": {"team": "ml"},
        "gpu_node_groups": [{"name": "a", "instance_types": ["g5.xlarge"]}],
    }
    cfg = resolve(args)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.cluster_name = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.tags["team"] = "other"  # type: ignore[index]
    args["tags"]["team"] = "changed later"  # the caller's dict is not the config's
    assert cfg.tags["team"] == "ml"


def test_choices_are_enums_that_accept_plain_strings() -> None:
    cfg = resolve(
        {
            "nat_gateways": "per_zone",
            "jobs_pod_security": PodSecurity.BASELINE,
            "system_node_group": {"ami_type": "BOTTLEROCKET_x86_64", "capacity_type": "SPOT"},
            "gpu_node_groups": [
                {
                    "name": "l4",
                    "instance_types": ["g6.xlarge"],
                    "ami_type": GpuAmiType.BOTTLEROCKET_X86_64_NVIDIA,
                }
            ],
        }
    )
    assert isinstance(cfg.vpc, NewVpc) and cfg.vpc.nat_gateways is NatGateways.PER_ZONE
    assert cfg.jobs.pod_security is PodSecurity.BASELINE
    assert cfg.system.ami_type is SystemAmiType.BOTTLEROCKET_X86_64
    assert cfg.system.capacity_type == "SPOT"  # a StrEnum equals its plain value
    assert cfg.gpu_groups[0].device_plugin == "os" and cfg.gpu_groups[0].disk_device == "/dev/xvdb"


def test_every_problem_is_reported_at_once_naming_key_value_and_fix() -> None:
    problems = problems_of(
        {
            "nat_gateways": "both",
            "jobs_pod_security": "privileged",
            "log_retention_days": 42,
            "gpu_node_groups": [{"name": "a", "instance_types": ["g5.xlarge"], "capacity_type": "spot"}],
            "tpyo": 1,
        }
    )
    by_path = {path: (value, why) for path, value, why in problems}
    assert by_path["nat_gateways"] == ("both", "one of: single, per_zone")
    assert (
        by_path["jobs_pod_security"][0] == "privileged"
        and "take over its node" in by_path["jobs_pod_security"][1]
    )
    assert by_path["log_retention_days"][0] == 42
    assert by_path["gpu_node_groups[0].capacity_type"] == ("spot", "one of: ON_DEMAND, SPOT")
    assert "unknown argument" in by_path["tpyo"][1]
    assert len(problems) == 5


def test_choice_returns_the_member_or_records_a_problem() -> None:
    p = Problems("t")
    assert choice(p, "k", "SPOT", CapacityType, CapacityType.ON_DEMAND) is CapacityType.SPOT
    assert choice(p, "k", CapacityType.SPOT, CapacityType, CapacityType.ON_DEMAND) is CapacityType.SPOT
    assert not p.items
    assert choice(p, "k", 3, CapacityType, CapacityType.ON_DEMAND) is CapacityType.ON_DEMAND
    assert p.items == [("k", 3, "one of: ON_DEMAND, SPOT")]


def test_sizes_and_disks() -> None:
    p = Problems("t")
    assert config.check_sizes(p, "g", {"min_size": 1, "max_size": 3}, 0, 2) == (1, 1, 3)
    assert config.check_sizes(p, "g", {}, 1, 4) == (1, 1, 4)
    assert not p.items
    config.check_sizes(p, "g", {"min_size": 3, "desired_size": 1, "max_size": 2}, 0, 2)
    assert p.items[-1][0] == "g" and "min_size <= desired_size <= max_size" in p.items[-1][2]
    assert config.check_sizes(p, "g", {"min_size": True}, 0, 2) == (0, 0, 0)
    # desired_size defaults to min_size, so both are reported
    assert p.items[-2:] == [
        ("g.min_size", True, "a whole number >= 0"),
        ("g.desired_size", True, "a whole number >= 0"),
    ]
    config.check_disk(p, "d", 19)
    assert p.items[-1] == ("d", 19, "a whole number of GiB between 20 and 16384")


def test_labels() -> None:
    p = Problems("t")
    config.check_label(p, "l", "team", "vision")
    config.check_label(p, "l", "example.com/owner", "a.b-c")
    assert not p.items
    config.check_label(p, "l", "mlstack.dev/gpu", "false")
    assert "reserved" in p.items[-1][2]
    config.check_label(p, "l", "team", "x" * 64)
    assert p.items[-1][0] == "l.value"


def test_bring_your_own_vpc_and_per_group_subnets() -> None:
    cfg = resolve(
        {
            "vpc_id": "vpc-1",
            "private_subnet_ids": ["subnet-a", "subnet-b"],
            "gpu_node_groups": [{"name": "a", "instance_types": ["g5.xlarge"], "subnet_ids": ["subnet-a"]}],
        }
    )
    assert cfg.vpc == OwnVpc("vpc-1", ["subnet-a", "subnet-b"])
    assert cfg.gpu_groups[0].subnet_ids == ("subnet-a",)
    problems = problems_of({"vpc_id": "vpc-1", "private_subnet_ids": ["subnet-a"], "vpc_cidr": "10.0.0.0/16"})
    assert {p[0] for p in problems} == {"private_subnet_ids", "vpc_cidr"}


def test_zones_need_a_region_only_when_defaulted() -> None:
    assert resolve({}, region=None).vpc == NewVpc("10.40.0.0/16", (), NatGateways.SINGLE)
    cfg = resolve({"availability_zones": ["eu-west-1a", "eu-west-1c"]}, region=None)
    assert isinstance(cfg.vpc, NewVpc) and cfg.vpc.zones == ("eu-west-1a", "eu-west-1c")


class Store:
    def grant_read(self, role: Any, name: str | None = None) -> Any: ...

    def grant_write(self, role: Any, name: str | None = None) -> Any: ...


class ReadOnly:
    def grant_read(self, role: Any, name: str | None = None) -> Any: ...


def test_contracts_are_protocols_checked_by_members() -> None:
    store, data = Store(), ReadOnly()
    cfg = resolve({"artifact_store": store, "data_layer": data})
    assert cfg.artifact_store is store and cfg.data_layer is data
    problems = problems_of({"artifact_store": ReadOnly(), "data_layer": object()})
    assert ("artifact_store", "ReadOnly") in {(p[0], p[1]) for p in problems}
    assert ("data_layer", "object") in {(p[0], p[1]) for p in problems}


def test_existing_cluster_defaults_and_problems() -> None:
    cfg = config.resolve_existing(
        "byo",
        {
            "cluster_name": "prod",
            "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/x",
            "oidc_issuer_url": "https://oidc.eks.us-east-1.amazonaws.com/id/X",
            "kubeconfig": "{}",
        },
    )
    assert cfg.jobs.namespace == "ml-jobs" and cfg.device_plugin is False
    assert [dict(t) for t in cfg.gpu_tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    with pytest.raises(InputPropertiesError) as err:
        config.resolve_existing("byo", {"cluster_name": "prod", "jobs_namespace": "kube-system"})
    paths = {p[0] for p in err.value.problems}
    assert paths == {
        "oidc_provider_arn",
        "oidc_issuer_url",
        "cluster_endpoint",
        "certificate_authority_data",
        "jobs_namespace",
    }


def test_the_shared_names_are_the_ones_both_halves_use() -> None:
    """One module holds them; the components and the runtime library read it instead of keeping copies."""
    import ast
    from pathlib import Path

    from mlstack.components import stack
    from mlstack.components.compute import eks

    assert stack.CREDENTIALS_SECRET is names.DATA_CREDENTIALS_SECRET
    assert eks.GPU_TOLERATION is names.GPU_TOLERATION
    root = Path(__file__).resolve().parents[2]
    literals = set()
    for folder in ("mlstack", "components"):
        for path in (root / folder).rglob("*.py"):
            if path.name == "names.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in (
                    "mlstack-data-credentials",
                    "mlstack-manifest",
                    "mlstack.dev/device-plugin",
                ):
                    literals.add(f"{path.relative_to(root)}: {node.value}")
    assert not literals, f"shared names spelled out instead of imported from mlstack/names.py: {literals}"


def test_a_gpu_group_runs_in_its_own_subnets(pulumi_run) -> None:
    """``subnet_ids`` of a GPU group reaches its node group (before the typed config it was dropped)."""

    def program() -> None:
        from mlstack.components import EksGpuCluster

        EksGpuCluster(
            "gpu",
            {
                "vpc_id": "vpc-1",
                "private_subnet_ids": ["subnet-a", "subnet-b"],
                "gpu_node_groups": [
                    {"name": "a", "instance_types": ["g5.xlarge"], "subnet_ids": ["subnet-b"]},
                    {"name": "b", "instance_types": ["g5.xlarge"]},
                ],
            },
        )

    rec = pulumi_run(program)
    subnets = {r.name: r.inputs["subnetIds"] for r in rec.by_type("aws:eks/nodeGroup:NodeGroup")}
    assert subnets == {
        "gpu-a": ["subnet-b"],
        "gpu-b": ["subnet-a", "subnet-b"],
        "gpu-system": ["subnet-a", "subnet-b"],
    }
