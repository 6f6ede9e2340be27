"""Read what a recorded program builds: the resource tree, counts by type, node groups and the region.

Shared by the cost, quota, policy and graph code so that each reads the recording the same way.
Recorded inputs are wire format (camelCase keys, numbers as floats); helpers here turn them back into
plain values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mlstack.plan.mock_runtime import Recording, Resource, unwrap_secrets

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
SUBNET = "aws:ec2/subnet:Subnet"


def region_of(recording: Recording, config: dict[str, str]) -> str:
    return config.get("aws:region") or "us-east-1"


def roots(recording: Recording) -> list[Resource]:
    """Resources whose parent is the stack itself (or not recorded)."""
    urns = {r.urn for r in recording.resources}
    return [r for r in recording.resources if not r.parent or r.parent not in urns]


def tree(recording: Recording) -> list[dict[str, Any]]:
    """The resource tree, components holding their children, in registration order."""
    kids: dict[str | None, list[Resource]] = {}
    urns = {r.urn for r in recording.resources}
    for r in recording.resources:
        parent = r.parent if r.parent in urns else None
        kids.setdefault(parent, []).append(r)

    def node(r: Resource) -> dict[str, Any]:
        children = [node(c) for c in kids.get(r.urn, [])]
        out: dict[str, Any] = {"type": r.type, "name": r.name, "urn": r.urn, "component": r.is_component}
        if children:
            out["children"] = children
            out["resource_count"] = sum(1 + c.get("resource_count", 0) for c in children)
        return out

    return [node(r) for r in kids.get(None, [])]


def counts_by_type(recording: Recording) -> dict[str, int]:
    """Custom resources (what a cloud API would create) by type token, most frequent first."""
    c = Counter(r.type for r in recording.resources if r.custom)
    return dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0])))


def component_of(recording: Recording, resource: Resource) -> Resource | None:
    """The nearest enclosing component of a resource."""
    by_urn = {r.urn: r for r in recording.resources}
    cur = by_urn.get(resource.parent or "")
    while cur is not None and not cur.is_component:
        cur = by_urn.get(cur.parent or "")
    return cur


def num(value: Any, default: float | None = None) -> float | None:
    value = unwrap_secrets(value)
    if isinstance(value, bool):
        return default
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return default
    return default


@dataclass
class NodeGroupSpec:
    """A managed node group as planned: what it can scale between and on which instance types."""

    name: str
    urn: str
    instance_types: list[str]
    min_size: int
    desired_size: int
    max_size: int
    capacity_type: str  # ON_DEMAND | SPOT
    ami_type: str | None
    zones: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def purchase_option(self) -> str:
        return "spot" if self.capacity_type == "SPOT" else "on-demand"


def _by_id(recording: Recording, type_token: str) -> dict[str, Resource]:
    return {r.id: r for r in recording.by_type(type_token) if r.id}


def node_group_name(inputs: Mapping[str, Any], resource_name: str) -> str:
    """The group's name as its author wrote it: ``nodeGroupName``, else ``nodeGroupNamePrefix`` without its
    trailing dash (EksGpuCluster names groups ``<spec name>-`` + a random suffix so a replacement is created
    before the old group goes), else the Pulumi resource name."""
    name = inputs.get("nodeGroupName")
    if isinstance(name, str) and name:
        return name
    prefix = inputs.get("nodeGroupNamePrefix")
    if isinstance(prefix, str) and prefix.rstrip("-"):
        return prefix.rstrip("-")
    return resource_name


def node_groups(recording: Recording) -> list[NodeGroupSpec]:
    """Every EKS managed node group, with its instance types resolved through its launch template if needed."""
    templates = _by_id(recording, LAUNCH_TEMPLATE)
    subnets = _by_id(recording, SUBNET)
    out: list[NodeGroupSpec] = []
    for r in recording.by_type(NODE_GROUP):
        i = unwrap_secrets(r.inputs)
        types = [t for t in (i.get("instanceTypes") or []) if isinstance(t, str)]
        lt_ref = i.get("launchTemplate") or {}
        lt = templates.get(str(lt_ref.get("id"))) if isinstance(lt_ref, dict) else None
        if lt is None and isinstance(lt_ref, dict) and lt_ref.get("name"):
            lt = next(
                (t for t in recording.by_type(LAUNCH_TEMPLATE) if t.inputs.get("name") == lt_ref["name"]),
                None,
            )
        if not types and lt is not None and isinstance(lt.inputs.get("instanceType"), str):
            types = [lt.inputs["instanceType"]]
        if not types:
            types = ["t3.medium"]  # the EKS API default when neither the group nor its template names a type
        sc = i.get("scalingConfig") or {}
        zones: list[str] = []
        for sid in i.get("subnetIds") or []:
            sn = subnets.get(str(sid))
            az = sn.inputs.get("availabilityZone") if sn is not None else None
            if isinstance(az, str) and az not in zones:
                zones.append(az)
        out.append(
            NodeGroupSpec(
                name=node_group_name(i, r.name),
                urn=r.urn,
                instance_types=types,
                min_size=int(num(sc.get("minSize"), 0) or 0),
                desired_size=int(num(sc.get("desiredSize"), 0) or 0),
                max_size=int(num(sc.get("maxSize"), 0) or 0),
                capacity_type=str(i.get("capacityType") or "ON_DEMAND"),
                ami_type=i.get("amiType"),
                zones=zones,
                labels=dict(i.get("labels") or {}),
                taints=list(i.get("taints") or []),
            )
        )
    return out
