"""Issue #11 hardening of the components: restricted jobs namespace, non-root workflow defaults."""

from __future__ import annotations

from typing import Any

import pytest

from mlstack.pipeline import security
from mlstack.plan.mock_runtime import Recording
from tests.components import test_argo, test_eks


@pytest.fixture(scope="module")
def rec() -> Recording:
    from mlstack.plan import mock_runtime

    return test_argo.build(lambda program: mock_runtime.run(program, project="test", stack="test"))


def _ns_labels(rec: Recording, name: str) -> dict[str, str]:
    return rec.one("kubernetes:core/v1:Namespace", name).inputs["metadata"]["labels"]


def test_jobs_namespace_enforces_restricted(rec: Recording) -> None:
    labels = _ns_labels(rec, "gpu-jobs")
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert labels["pod-security.kubernetes.io/enforce-version"] == "latest"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_baseline_only_on_request_and_privileged_refused(pulumi_run) -> None:
    rec = test_eks.build(pulumi_run, {"gpu_node_groups": [test_eks.GROUP], "jobs_pod_security": "baseline"})
    labels = _ns_labels(rec, "gpu-jobs")
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"  # still visible at kubectl apply
    problems = test_eks._problems(
        pulumi_run, {"gpu_node_groups": [test_eks.GROUP], "jobs_pod_security": "privileged"}
    )
    (hit,) = [p for p in problems if p[0] == "jobs_pod_security"]
    assert hit[1] == "privileged" and "take over its node" in hit[2]


def test_existing_cluster_jobs_namespace_restricted(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import EksGpuCluster

        EksGpuCluster.from_existing(
            "byo",
            {
                "cluster_name": "theirs",
                "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/x",
                "oidc_issuer_url": "https://oidc.eks.us-east-1.amazonaws.com/id/X",
                "kubeconfig": "{}",
            },
        )

    rec = pulumi_run(program)
    assert _ns_labels(rec, "byo-jobs")["pod-security.kubernetes.io/enforce"] == "restricted"


def test_chart_workflow_defaults_run_non_root(rec: Recording) -> None:
    values: dict[str, Any] = test_argo.release(rec)["values"]
    spec = values["controller"]["workflowDefaults"]["spec"]
    assert spec["securityContext"] == security.pod_security_context()
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    assert spec["serviceAccountName"] == "mlstack-jobs"
    ex = values["executor"]["securityContext"]
    assert ex["runAsNonRoot"] is True and ex["allowPrivilegeEscalation"] is False
    assert ex["capabilities"] == {"drop": ["ALL"]} and ex["readOnlyRootFilesystem"] is True
    main = values["mainContainer"]["securityContext"]
    assert main["allowPrivilegeEscalation"] is False and main["capabilities"] == {"drop": ["ALL"]}
    assert main["runAsNonRoot"] is True
