"""EC2 vCPU quota needs: what the node groups need at their maximum size, per Service Quotas code.

AWS counts running On-Demand and Spot instances in separate vCPU quotas per instance family group (e.g.
``L-DB2E81BA`` "Running On-Demand G and VT instances"). The codes and AWS's default values come from the
shipped table (``mlstack/resources/prices.json``, see docs/prices.md); real accounts usually have applied
values different from the defaults, which ``mlstack doctor --preflight`` checks against the account.
"""

from __future__ import annotations

from typing import Any

from mlstack import prices
from mlstack.plan.inventory import NodeGroupSpec


def quota_needs(groups: list[NodeGroupSpec], region: str) -> list[dict[str, Any]]:
    """vCPUs needed per quota code when every node group runs at its maximum size."""
    codes = prices.quota_codes()
    needs: dict[str, dict[str, Any]] = {}
    unknown: list[dict[str, Any]] = []
    for g in groups:
        specs = [prices.instance_type(t) for t in g.instance_types]
        known = [s for s in specs if s is not None]
        if not known:
            unknown.append({"node_group": g.name, "instance_types": g.instance_types})
            continue
        # the widest listed type: a group of mixed types may launch any of them
        widest = max(known, key=lambda s: s.vcpus)
        code = widest.quota_spot if g.purchase_option == "spot" else widest.quota_on_demand
        if code is None:
            unknown.append({"node_group": g.name, "instance_types": g.instance_types})
            continue
        info = codes.get(code, {})
        entry = needs.setdefault(
            code,
            {
                "quota_code": code,
                "name": info.get("name", code),
                "purchase_option": g.purchase_option,
                "region": region,
                "vcpus_needed": 0,
                "instance_types": [],
                "node_groups": [],
                "aws_default_vcpus": info.get("default_vcpus"),
            },
        )
        entry["vcpus_needed"] += widest.vcpus * g.max_size
        for t in g.instance_types:
            if t not in entry["instance_types"]:
                entry["instance_types"].append(t)
        entry["node_groups"].append({"name": g.name, "max_size": g.max_size, "vcpus_per_node": widest.vcpus})
    out = sorted(needs.values(), key=lambda e: e["quota_code"])
    for e in out:
        default = e["aws_default_vcpus"]
        e["exceeds_aws_default"] = default is not None and e["vcpus_needed"] > default
    if unknown:
        out.append(
            {
                "quota_code": None,
                "name": "instance types not in the shipped table (quota family unknown)",
                "purchase_option": None,
                "region": region,
                "vcpus_needed": None,
                "instance_types": sorted({t for u in unknown for t in u["instance_types"]}),
                "node_groups": [{"name": u["node_group"]} for u in unknown],
                "aws_default_vcpus": None,
                "exceeds_aws_default": None,
            }
        )
    return out


def gpu_instance_types(groups: list[NodeGroupSpec], region: str) -> list[dict[str, Any]]:
    """The GPU instance types the node groups may launch, with the zones their subnets are in (when known)."""
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        for t in g.instance_types:
            spec = prices.instance_type(t)
            if spec is None or spec.gpus == 0:
                continue
            e = out.setdefault(
                t,
                {
                    "instance_type": t,
                    "region": region,
                    "zones": [],
                    "gpus": spec.gpus,
                    "gpu_model": spec.gpu_model,
                    "node_groups": [],
                    "purchase_options": [],
                },
            )
            e["zones"] = sorted(set(e["zones"]) | set(g.zones))
            e["node_groups"].append(g.name)
            if g.purchase_option not in e["purchase_options"]:
                e["purchase_options"].append(g.purchase_option)
    return list(out.values())
