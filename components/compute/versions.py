"""Every version the compute layer pins, in one place (docs/compute.md explains how to bump them).

Why pinned: a cluster that pulls ``latest`` changes under its users; a pin changes only in a reviewed commit.
Images are pinned as ``tag@sha256:digest``: the tag says what it is, the digest makes it immutable (a re-pushed
tag cannot change what runs). Each digest is the multi-arch index digest, recorded with its source and the date
it was recorded here; tests/components/test_image_digests.py checks every recorded image carries one.
"""

# EKS Kubernetes minor versions this module is tested against, newest last. The default is the newest
# with standard support at the time of writing (extended support costs 6x per cluster-hour).
KUBERNETES_VERSIONS = ("1.32", "1.33", "1.34", "1.35")
DEFAULT_KUBERNETES_VERSION = "1.35"

# cluster-autoscaler must match the cluster's minor version (its scheduler simulation is that release's).
# Digests as promoted to registry.k8s.io (the image promoter copies by digest, so the staging digest is the
# registry.k8s.io one), recorded 2026-11-30 from the kubernetes/k8s.io promotion pull requests:
#   v1.32.7: github.com/kubernetes/k8s.io/pull/9116 ("Release Cluster Autoscaler v1.32.7", 2026-02-13,
#            `gcloud container images describe gcr.io/k8s-staging-autoscaling/cluster-autoscaler:v1.32.7`)
#   v1.33.6, v1.34.5, v1.35.2: github.com/kubernetes/k8s.io/pull/9760 ("Add cluster-autoscaler releases:
#            1.33.6, 1.34.5, 1.35.2, 1.36.1", 2026-07-22, `gcrane digest ...`). These replaced the tag-only pins
#            v1.33.5, v1.34.4 and v1.35.1, whose digests no stored public source recorded.
CLUSTER_AUTOSCALER_IMAGES = {
    "1.32": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.32.7"
    "@sha256:b3a6d87dbd23b17c6bc8cf8436fc5eeca668f343d3a0fd86202a4ffaa2f8eb06",
    "1.33": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.33.6"
    "@sha256:7b44e0f075b2c8f9952e339b6c396cd4d1c3831c24c0fe092a3e708c45e6ec51",
    "1.34": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.34.5"
    "@sha256:5c3a56440ffc76eac79e7d7e840153c1fbe7b6e02d415e76a45ba2e0ef99a266",
    "1.35": "registry.k8s.io/autoscaling/cluster-autoscaler:v1.35.2"
    "@sha256:aac369dc283927a623deb1af54696efcc722ae79255aa07788422e495bab887d",
}

# NVIDIA device plugin (github.com/NVIDIA/k8s-device-plugin), run as a DaemonSet on AL2023 NVIDIA nodes.
# Bottlerocket NVIDIA variants ship the plugin in the OS, so the DaemonSet skips them.
# Digest recorded 2026-11-30 from NVIDIA's GPU Operator, which pins the plugin it ships by digest:
# github.com/NVIDIA/gpu-operator commit b1f0b2aeef6830be3625c9c139eeeeee35f015b3 ("bump k8s-device-plugin to
# v0.18.0", 2025-10-21), bundle/manifests/gpu-operator-certified.clusterserviceversion.yaml, device-plugin-image.
NVIDIA_DEVICE_PLUGIN_IMAGE = (
    "nvcr.io/nvidia/k8s-device-plugin:v0.18.0"
    "@sha256:2d16df5f3f12081b4bd6b317cf697e5c7a195c53cec7e0bab756db02a06b985c"
)

# Karpenter (github.com/aws/karpenter-provider-aws), opt-in GPU autoscaler (components/compute/karpenter.py):
# the `karpenter-crd` and `karpenter` charts at oci://public.ecr.aws/karpenter/, release v1.14.1 (tag commit
# bde00654cd316fddb3dccfba3f5ac07039865429, 2026-08-20). tests/crds holds that release's v1 CRDs, which the
# component's NodePools and EC2NodeClasses are validated against; bump both together.
KARPENTER_VERSION = "1.14.1"

# JobSet (github.com/kubernetes-sigs/jobset), the controller multi-node steps need
# (components/compute/jobset.py): chart oci://registry.k8s.io/jobset/charts/jobset, release v0.12.0 (tag commit
# f22e565ac3cc3265c7c45ef67ecffdc689af5d77, 2026-05-08); tests/crds/jobset.x-k8s.io_jobsets.yaml is its CRD.
JOBSET_VERSION = "0.12.0"
