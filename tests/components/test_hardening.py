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


# ---------------------------------------------------------------- network policies
def _policies(rec: Recording, namespace: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rec.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy"):
        meta = r.inputs["metadata"]
        if meta["namespace"] == namespace:
            out[meta["name"]] = r.inputs["spec"]
    return out


@pytest.mark.parametrize("namespace", ["ml-jobs", "argo"])
def test_namespaces_deny_ingress_and_allow_only_dns_and_https_out(rec: Recording, namespace: str) -> None:
    pol = _policies(rec, namespace)
    deny = pol["default-deny-ingress"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress"]}
    egress = pol["allow-egress-dns-https"]
    assert egress["podSelector"] == {} and egress["policyTypes"] == ["Egress"]
    dns, https = egress["egress"]
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
    assert sorted(p["protocol"] for p in dns["ports"]) == ["TCP", "UDP"]
    assert all(p["port"] == 53 for p in dns["ports"])
    assert https["ports"] == [{"protocol": "TCP", "port": 443}]
    assert "allow-egress-extra" not in pol  # nothing opened beyond that unless the owner asks


def test_argo_server_only_from_the_jobs_namespace(rec: Recording) -> None:
    server = _policies(rec, "argo")["allow-argo-server"]
    assert server["podSelector"] == {"matchLabels": {"app.kubernetes.io/component": "server"}}
    (rule,) = server["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 2746}]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ml-jobs"}}}
    ]
    values = test_argo.release(rec)["values"]
    assert values["server"]["serviceType"] == "ClusterIP"  # reachable by port-forward or in-cluster only


def test_multi_node_workers_reach_each_other(rec: Recording) -> None:
    peers = _policies(rec, "ml-jobs")["allow-jobset-peers"]
    sel = {"matchExpressions": [{"key": "jobset.sigs.k8s.io/jobset-name", "operator": "Exists"}]}
    assert peers["podSelector"] == sel
    assert peers["ingress"] == [{"from": [{"podSelector": sel}]}]
    assert peers["egress"] == [{"to": [{"podSelector": sel}]}]


def test_vpc_cni_enforces_network_policies(rec: Recording) -> None:
    import json

    (cni,) = [a for a in rec.by_type("aws:eks/addon:Addon") if a.inputs["addonName"] == "vpc-cni"]
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_extra_egress_is_its_own_policy_and_bad_rules_are_refused(pulumi_run) -> None:
    rule = {"to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    rec = test_eks.build(pulumi_run, {"gpu_node_groups": [test_eks.GROUP], "jobs_extra_egress": [rule]})
    assert _policies(rec, "ml-jobs")["allow-egress-extra"]["egress"] == [rule]
    problems = test_eks._problems(
        pulumi_run,
        {"gpu_node_groups": [test_eks.GROUP], "jobs_extra_egress": [{"to": [{"ipBlok": {}}]}]},
    )
    assert any(p[0] == "jobs_extra_egress[0].to[0]" for p in problems), problems


def test_argo_server_ingress_from_extra_peers(pulumi_run) -> None:
    peer = {"ipBlock": {"cidr": "10.40.0.0/16"}}
    rec = test_argo.build(pulumi_run, {"server_ingress_from": [peer]})
    (rule,) = _policies(rec, "argo")["allow-argo-server"]["ingress"]
    assert rule["from"][1] == peer


# ---------------------------------------------------------------- add-ons
def test_device_plugin_hardened(rec: Recording) -> None:
    ds = rec.one("kubernetes:apps/v1:DaemonSet").inputs
    pod = ds["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    deny = _policies(rec, "kube-system")["nvidia-device-plugin"]
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny


def test_cluster_autoscaler_probes_read_only_and_limits(rec: Recording) -> None:
    dep = rec.one("kubernetes:apps/v1:Deployment").inputs
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health-check", "port": 8085.0}, probe
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}
    pol = _policies(rec, "kube-system")["cluster-autoscaler"]
    assert pol["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in pol
    assert [p["port"] for r in pol["egress"] for p in r["ports"]] == [53.0, 53.0, 443.0]


def test_argo_crd_job_is_restricted_and_pinned(rec: Recording) -> None:
    job = test_argo.release(rec)["values"]["crds"]["upgradeJob"]
    assert job["podSecurityContext"]["runAsNonRoot"] is True
    assert job["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert job["securityContext"]["allowPrivilegeEscalation"] is False
    assert "@sha256:" in job["image"]["tag"]
