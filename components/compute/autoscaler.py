"""cluster-autoscaler for EksGpuCluster: pinned per Kubernetes minor, IRSA role limited to this cluster's
groups, least-waste expander, scale from zero through the node-template tags (node_groups.py).
"""

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from mlstack import names

from .. import _network_policy, _policy
from . import versions
from ._shared import JobsClusterBase

AUTOSCALER_PORT = 8085
"""cluster-autoscaler's HTTP port (/health-check, /metrics): its --address default."""


@dataclass(frozen=True)
class Autoscaler:
    role: aws.iam.Role
    deployment: k8s.apps.v1.Deployment


def cluster_autoscaler(
    parent: JobsClusterBase,
    name: str,
    cluster_arn: pulumi.Output[str],
    cluster_name: str,
    kubernetes_version: str,
    tags: Mapping[str, str],
    partition: pulumi.Output[str],
    opts: pulumi.ResourceOptions,
) -> Autoscaler:
    """cluster-autoscaler with an IRSA role that may only resize this cluster's groups."""
    assert isinstance(parent, pulumi.Resource)  # the cluster component: JobsClusterBase and a Resource
    sa_name = "cluster-autoscaler"
    role = parent.irsa_role(f"{name}-autoscaler", "kube-system", sa_name, tags)
    owned = {"StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}}
    nodegroup_arn = pulumi.Output.all(partition, parent.region, cluster_arn).apply(
        lambda v: f"arn:{v[0]}:eks:{v[1]}:{v[2].split(':')[4]}:nodegroup/{cluster_name}/*"
    )
    _policy.attach(
        f"{name}-autoscaler",
        role,
        [
            _policy.statement(
                "Describe",
                [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                ["*"],  # Describe* calls do not support resource-level permissions
            ),
            _policy.statement("DescribeNodegroups", ["eks:DescribeNodegroup"], [nodegroup_arn]),
            _policy.statement(
                "ResizeOwnedGroups",
                ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                ["*"],
                conditions=owned,
            ),
        ],
        parent,
    )
    labels = {"app.kubernetes.io/name": "cluster-autoscaler", "app.kubernetes.io/managed-by": "mlstack"}
    meta = {"name": sa_name, "namespace": "kube-system", "labels": labels}
    sa = k8s.core.v1.ServiceAccount(  # no ignore: mypy skips pulumi_kubernetes.core (pyproject.toml)
        f"{name}-autoscaler",
        metadata={**meta, "annotations": {"eks.amazonaws.com/role-arn": role.arn}},
        automount_service_account_token=True,
        opts=opts,
    )
    read = ["get", "list", "watch"]
    cluster_role = k8s.rbac.v1.ClusterRole(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata={"name": sa_name, "labels": labels},
        rules=[
            {"apiGroups": [""], "resources": ["events", "endpoints"], "verbs": ["create", "patch"]},
            {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["update"]},
            {
                "apiGroups": [""],
                "resources": ["endpoints"],
                "resourceNames": [sa_name],
                "verbs": ["get", "update"],
            },
            {"apiGroups": [""], "resources": ["nodes"], "verbs": [*read, "update"]},
            {
                "apiGroups": [""],
                "resources": [
                    "namespaces",
                    "pods",
                    "services",
                    "replicationcontrollers",
                    "persistentvolumeclaims",
                    "persistentvolumes",
                ],
                "verbs": read,
            },
            {
                "apiGroups": ["apps"],
                "resources": ["daemonsets", "replicasets", "statefulsets"],
                "verbs": read,
            },
            {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"], "verbs": read},
            {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["list", "watch"]},
            {
                "apiGroups": ["storage.k8s.io"],
                "resources": [
                    "storageclasses",
                    "csinodes",
                    "csidrivers",
                    "csistoragecapacities",
                    "volumeattachments",
                ],
                "verbs": read,
            },
            {
                "apiGroups": ["resource.k8s.io"],
                "resources": ["resourceclaims", "resourceslices", "deviceclasses"],
                "verbs": read,
            },
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
            {
                "apiGroups": ["coordination.k8s.io"],
                "resources": ["leases"],
                "resourceNames": [sa_name],
                "verbs": ["get", "update"],
            },
        ],
        opts=opts,
    )
    k8s.rbac.v1.ClusterRoleBinding(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata={"name": sa_name, "labels": labels},
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": sa_name},
        subjects=[{"kind": "ServiceAccount", "name": sa_name, "namespace": "kube-system"}],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cluster_role, sa])),
    )
    role_k8s = k8s.rbac.v1.Role(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata=meta,
        rules=[
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "list", "watch"]},
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": ["cluster-autoscaler-status", "cluster-autoscaler-priority-expander"],
                "verbs": ["delete", "get", "update", "watch"],
            },
        ],
        opts=opts,
    )
    k8s.rbac.v1.RoleBinding(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata=meta,
        role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa_name},
        subjects=[{"kind": "ServiceAccount", "name": sa_name, "namespace": "kube-system"}],
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[role_k8s, sa])),
    )
    # no ingress (kubelet probes are node traffic, not pod traffic); egress to DNS and HTTPS (the API server,
    # the AWS Auto Scaling / EC2 / EKS APIs)
    k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata=meta,
        spec={
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cluster-autoscaler"}},
            "policyTypes": ["Ingress", "Egress"],
            "egress": _network_policy.baseline_egress(),
        },
        opts=opts,
    )
    command = [
        "./cluster-autoscaler",
        "--cloud-provider=aws",
        f"--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        f"k8s.io/cluster-autoscaler/{cluster_name}",
        "--balance-similar-node-groups",
        # least-waste picks the group that fits the pending GPU pods with the fewest idle resources
        "--expander=least-waste",
        "--skip-nodes-with-system-pods=false",
        "--skip-nodes-with-local-storage=false",
        "--scale-down-unneeded-time=10m",
        "--max-node-provision-time=15m",
        "--logtostderr=true",
        "--stderrthreshold=info",
        "--v=2",
    ]
    deployment = k8s.apps.v1.Deployment(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-autoscaler",
        metadata=meta,
        spec={
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "cluster-autoscaler"}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                },
                "spec": {
                    "serviceAccountName": sa_name,
                    "priorityClassName": "system-cluster-critical",
                    "nodeSelector": {names.ROLE_LABEL: "system"},
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "runAsGroup": 65534,
                        "fsGroup": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "cluster-autoscaler",
                            "image": versions.CLUSTER_AUTOSCALER_IMAGES[kubernetes_version],
                            "command": command,
                            "env": [{"name": "AWS_REGION", "value": parent.region}],
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "600Mi"},
                                "limits": {"cpu": "1", "memory": "600Mi"},
                            },
                            "ports": [{"name": "http", "containerPort": AUTOSCALER_PORT, "protocol": "TCP"}],
                            # /health-check answers 200 while the main loop runs (500 once it stalls
                            # longer than --max-inactivity), so a wedged autoscaler is restarted
                            "livenessProbe": {
                                "httpGet": {"path": "/health-check", "port": AUTOSCALER_PORT},
                                "initialDelaySeconds": 30,
                                "periodSeconds": 30,
                                "timeoutSeconds": 5,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/health-check", "port": AUTOSCALER_PORT},
                                "periodSeconds": 10,
                                "timeoutSeconds": 5,
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                                "privileged": False,
                                "runAsNonRoot": True,
                            },
                        }
                    ],
                },
            },
        },
        opts=opts,
    )
    return Autoscaler(role, deployment)
