"""Managed node groups: the always-on system group and the GPU groups, each with its own launch template.

Every node: IMDSv2 only (hop limit 1 unless the owner opts into 2), an encrypted gp3 root (or Bottlerocket
data) volume, EKS node auto repair. GPU nodes carry the ``nvidia.com/gpu=true:NoSchedule`` taint and the
labels GPU steps select; cluster-autoscaler node-template tags on each GPU group's Auto Scaling group let it
scale from zero.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from mlstack import names

from . import gpu_types
from .spec import NodeGroupSpec


@dataclass(frozen=True)
class NodeGroupContext:
    """What every node group of one cluster shares."""

    cluster: aws.eks.Cluster
    cluster_name: str
    node_role: aws.iam.Role
    subnets: Any
    """The cluster's private subnets (a group's own ``subnet_ids`` take precedence)."""
    imds_hop_limit: int
    auto_repair: bool
    tags: Mapping[str, str]
    deps: Sequence[pulumi.Resource]


SYSTEM_LABELS = {names.ROLE_LABEL: "system"}


def gpu_labels(spec: NodeGroupSpec) -> dict[str, str]:
    """The labels of a GPU group's nodes: the owner's, then mlstack's (which win)."""
    return {
        **spec.labels,
        names.GPU_LABEL: "true",
        names.ROLE_LABEL: "gpu",
        "mlstack.dev/node-group": spec.name,
        names.DEVICE_PLUGIN_LABEL: spec.device_plugin,
        "k8s.amazonaws.com/accelerator": gpu_types.accelerator_label(
            gpu_types.gpu_type(spec.instance_types[0])  # type: ignore[arg-type]  # validated GPU type
        ),
    }


def template_tags(spec: NodeGroupSpec, labels: Mapping[str, str]) -> dict[str, str]:
    """cluster-autoscaler node-template tags: what a node of this group looks like while it has none."""
    prefix = "k8s.io/cluster-autoscaler/node-template"
    taint = names.GPU_TAINT
    tags = {f"{prefix}/label/{k}": v for k, v in labels.items()}
    tags[f"{prefix}/taint/{taint['key']}"] = f"{taint['value']}:{taint['effect']}"
    tags[f"{prefix}/resources/{gpu_types.GPU_RESOURCE}"] = str(spec.gpus_per_node)
    return tags


def scale_from_zero_tags(
    parent: pulumi.Resource, name: str, spec: NodeGroupSpec, ng: aws.eks.NodeGroup, labels: Mapping[str, str]
) -> None:
    """The node-template tags on the group's Auto Scaling group (children of ``parent``)."""
    asg = ng.resources.apply(lambda r: (r[0].autoscaling_groups or [])[0].name)
    for i, (k, v) in enumerate(sorted(template_tags(spec, labels).items())):
        aws.autoscaling.Tag(
            f"{name}-{spec.name}-template-{i}",
            autoscaling_group_name=asg,
            tag={"key": k, "value": v, "propagate_at_launch": False},
            opts=pulumi.ResourceOptions(parent=parent),
        )


def node_group(
    parent: pulumi.Resource,
    name: str,
    ctx: NodeGroupContext,
    spec: NodeGroupSpec,
    labels: Mapping[str, str],
    taints: Sequence[Mapping[str, str]] = (),
) -> tuple[aws.ec2.LaunchTemplate, aws.eks.NodeGroup]:
    """One managed node group and its launch template (``<name>-<group>``), children of ``parent``."""
    child = pulumi.ResourceOptions(parent=parent)
    group = spec.name
    cluster_name = ctx.cluster_name
    tags = ctx.tags
    lt = aws.ec2.LaunchTemplate(
        f"{name}-{group}",
        description=f"EKS {cluster_name} node group {group}: IMDSv2 only, encrypted gp3",
        metadata_options={
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": ctx.imds_hop_limit,
            "instance_metadata_tags": "disabled",
        },
        block_device_mappings=[
            {
                "device_name": spec.disk_device,
                "ebs": {
                    "volume_size": spec.disk_size_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        tag_specifications=[
            {"resource_type": "instance", "tags": {**tags, "Name": f"{cluster_name}-{group}"}},
            {"resource_type": "volume", "tags": dict(tags)},
        ],
        update_default_version=True,
        tags=tags,
        opts=child,
    )
    ng = aws.eks.NodeGroup(
        f"{name}-{group}",
        cluster_name=ctx.cluster.name,
        # a prefix, not a fixed name: a replaced group (new instance types) is created before the old one
        # is deleted, so jobs keep running; nodes are selected by the mlstack.dev/node-group label
        node_group_name_prefix=f"{group}-",
        node_role_arn=ctx.node_role.arn,
        subnet_ids=list(spec.subnet_ids) if spec.subnet_ids else ctx.subnets,
        instance_types=list(spec.instance_types),
        capacity_type=str(spec.capacity_type),
        ami_type=str(spec.ami_type),
        scaling_config={
            "min_size": spec.min_size,
            "desired_size": spec.desired_size,
            "max_size": spec.max_size,
        },
        labels=dict(labels),
        taints=[{"key": t["key"], "value": t["value"], "effect": "NO_SCHEDULE"} for t in taints],
        launch_template={"id": lt.id, "version": lt.latest_version.apply(str)},
        update_config={"max_unavailable": 1},
        # EKS replaces nodes that turn NotReady or, with the monitoring agent, report GPU (XID) faults
        node_repair_config={"enabled": ctx.auto_repair},
        tags={**tags, "mlstack:node-group": group},
        opts=pulumi.ResourceOptions(
            parent=parent,
            depends_on=list(ctx.deps),
            # cluster-autoscaler owns the node count once the group exists
            ignore_changes=["scalingConfig.desiredSize"],
        ),
    )
    return lt, ng
