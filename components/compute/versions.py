"""Every version the compute layer pins, in one place (docs/compute.md explains how to bump them).

Why pinned: a cluster that pulls ``latest`` changes under its users; a pin changes only in a reviewed commit.
"""

# EKS Kubernetes minor versions this module is tested against, newest last. The default is the newest
# with standard support at the time of writing (extended support costs 6x per cluster-hour).
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35")
DEFAULT_KUBERNETES_VERSION = "1.35"

# cluster-autoscaler must match the cluster's minor version (its scheduler simulation is that release's).
# Patch releases as of 2026-07 (registry.k8s.io/autoscaling/cluster-autoscaler).
CLUSTER_AUTOSCALER_IMAGES = {
    "1.32": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.7",
    "1.33": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.5",
    "1.34": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.4",
    "1.35": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.1",
}

# NVIDIA device plugin (github.com/NVIDIA/k8s-device-plugin), run as a DaemonSet on AL2023 NVIDIA nodes.
# Bottlerocket NVIDIA variants ship the plugin in the OS, so the DaemonSet skips them.
NVIDIA_DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.18.0"
