"""Every version the orchestrator layer pins, in one place (docs/compute.md explains how to bump them).

Images are pinned as ``tag@sha256:digest`` through the chart's image values (the chart accepts a digest in
``tag``); each digest is the multi-arch index digest, with its source and the date it was recorded here.
"""

# argo-workflows Helm chart (github.com/argoproj/argo-helm, charts/argo-workflows): chart 1.0.18 ships
# Argo Workflows v4.0.6 (2026-06), the line whose OpenAPI hera 7.x is generated from.
ARGO_CHART = "argo-workflows"
ARGO_CHART_VERSION = "1.0.18"
ARGO_CHART_REPO = "https://argoproj.github.io/argo-helm"

# Argo Workflows images, run through the chart's image values. v4.0.8 (a patch release of the chart's v4.0.6
# line, 2026-07-22): no stored public source records v4.0.6's digests, v4.0.8's are. Recorded 2026-11-30 from
# two independent public GitHub files found with the search tool (their repositories are not named by the
# index): a vendoring note for argo-workflows v4.0.8 ("digests and platforms verified with crane 2026-08-11";
# controller, argocli and argoexec), and a Go source pinning the same controller and executor index digests
# ("the official multi-platform ... index"). The two agree on every digest they both list.
ARGO_APP_VERSION = "v4.0.8"
ARGO_CONTROLLER_TAG = "v4.0.8@sha256:7a156419f80285859fc8f859927b6cc249f0d128e161e080dc17fca8fcbbceb6"
ARGO_SERVER_TAG = "v4.0.8@sha256:83e93aa9149a51da998c1df4abea7ae2c504e0b0a5892052dc092740f68323e8"
ARGO_EXECUTOR_TAG = "v4.0.8@sha256:86a965d7eea176959351156e24f3a2fa8d8e342e477ef425009af95a12e3fe87"

# kubectl of the chart's CRD install Job (crds.upgradeJob.image; chart 1.0.18's default tag v1.36.2).
# Recorded 2026-11-30: several independent public Dockerfiles and manifests in the search tool's index pin
# `registry.k8s.io/kubectl:v1.36.2@sha256:b0d792e0...` (the same digest in each).
KUBECTL_IMAGE_REPOSITORY = "registry.k8s.io/kubectl"
KUBECTL_TAG = "v1.36.2@sha256:b0d792e0d8dfb9bb1b922b78b23137e2a34bb6f9667640353a9d2aadd1fd7761"
