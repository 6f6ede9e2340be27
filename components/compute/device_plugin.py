"""The NVIDIA device plugin: advertises ``nvidia.com/gpu`` on AL2023 GPU nodes (Bottlerocket's OS runs its own).

Pinned image (components/compute/versions.py), only on nodes labelled ``mlstack.dev/device-plugin=daemonset``,
no network at all (it talks to the kubelet over a unix socket).
"""

import pulumi
import pulumi_kubernetes as k8s

from mlstack import names

from . import versions


def device_plugin(name: str, kopts: pulumi.ResourceOptions) -> k8s.apps.v1.DaemonSet:
    """The plugin's DaemonSet in kube-system and a NetworkPolicy denying its pods all traffic."""
    labels = {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/managed-by": "mlstack"}
    daemonset = k8s.apps.v1.DaemonSet(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-nvidia-device-plugin",
        metadata={"name": "nvidia-device-plugin", "namespace": "kube-system", "labels": labels},
        spec={
            "selector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-node-critical",
                    # the plugin talks to the kubelet over a unix socket, never to the API server
                    "automountServiceAccountToken": False,
                    # root: it creates its socket in the kubelet's root-owned device-plugins hostPath and
                    # opens /dev/nvidia* (docs/policy.md lists this deliberate exception)
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "affinity": {
                        "nodeAffinity": {
                            "requiredDuringSchedulingIgnoredDuringExecution": {
                                "nodeSelectorTerms": [
                                    {
                                        "matchExpressions": [
                                            {"key": names.GPU_LABEL, "operator": "In", "values": ["true"]},
                                            {
                                                "key": names.DEVICE_PLUGIN_LABEL,
                                                "operator": "In",
                                                "values": ["daemonset"],
                                            },
                                        ]
                                    }
                                ]
                            }
                        }
                    },
                    "tolerations": [
                        {"key": names.GPU_TAINT["key"], "operator": "Exists", "effect": "NoSchedule"},
                        {"key": "CriticalAddonsOnly", "operator": "Exists"},
                    ],
                    "containers": [
                        {
                            "name": "nvidia-device-plugin",
                            "image": versions.NVIDIA_DEVICE_PLUGIN_IMAGE,
                            "env": [{"name": "FAIL_ON_INIT_ERROR", "value": "false"}],
                            "resources": {
                                "requests": {"cpu": "10m", "memory": "32Mi"},
                                "limits": {"cpu": "100m", "memory": "128Mi"},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                                "privileged": False,
                                "seccompProfile": {"type": "RuntimeDefault"},
                            },
                            "volumeMounts": [
                                {"name": "device-plugins", "mountPath": "/var/lib/kubelet/device-plugins"}
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "device-plugins",
                            "hostPath": {"path": "/var/lib/kubelet/device-plugins"},
                        }
                    ],
                },
            },
        },
        opts=kopts,
    )

    # the plugin needs no network (unix sockets to the kubelet): deny both directions for its pods
    k8s.networking.v1.NetworkPolicy(  # type: ignore[call-overload]  # camelCase Kubernetes keys: pulumi_kubernetes types its dicts snake_case only
        f"{name}-nvidia-device-plugin",
        metadata={"name": "nvidia-device-plugin", "namespace": "kube-system", "labels": labels},
        spec={
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "nvidia-device-plugin"}},
            "policyTypes": ["Ingress", "Egress"],
        },
        opts=kopts,
    )
    return daemonset
