"""Every version the orchestrator layer pins, in one place (docs/compute.md explains how to bump them)."""

# argo-workflows Helm chart (github.com/argoproj/argo-helm, charts/argo-workflows): chart 1.0.18 ships
# Argo Workflows v4.0.6 (2026-06), the line whose OpenAPI hera 7.x is generated from.
ARGO_CHART = "argo-workflows"
ARGO_CHART_VERSION = "1.0.18"
ARGO_APP_VERSION = "v4.0.6"
ARGO_CHART_REPO = "https://argoproj.github.io/argo-helm"
