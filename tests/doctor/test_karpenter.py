"""`mlstack doctor job` under Karpenter: explanations from recorded pod and NodeClaim events carrying
Karpenter's real message texts (sigs.k8s.io/karpenter v1.14.1 scheduling/lifecycle events, the AWS provider's
fleet errors): tests/doctor/fixtures/karpenter_*.json. Plus shared GPU resources where doctor reads GPUs."""

from __future__ import annotations

import pytest

from mlstack import manifest
from mlstack.doctor import explain, karpenter, kube
from mlstack.doctor.core import Finding
from tests.doctor.conftest import K8S_COMPUTE, fixture

COMPUTE = manifest.KubernetesCompute.model_validate(K8S_COMPUTE)


def _explain(name: str) -> dict[str, Finding]:
    sc = fixture(name)
    nodes = fixture(sc["nodes"])["items"]
    state = {k: sc[k] for k in ("nodeclaims", "claim_events", "nodepools")}
    found = explain.explain_pod(sc["pod"], sc["events"], nodes, COMPUTE, karpenter_state=state)
    assert found and all(f.fix for f in found if f.status != "ok")
    return {f.check: f for f in found}


def test_message_splitting_follows_multierr() -> None:
    msg = (
        "Failed to schedule pod, all available instance types exceed limits for nodepool (NodePool=a10g); "
        "did not tolerate taint (taint=mlstack.dev/dedicated=inference:NoSchedule)"
    )
    assert karpenter.split_errors(msg) == [
        "all available instance types exceed limits for nodepool (NodePool=a10g)",
        "did not tolerate taint (taint=mlstack.dev/dedicated=inference:NoSchedule)",
    ]


def test_no_instance_type_has_room_for_the_request() -> None:
    got = _explain("karpenter_no_instance_type.json")
    f = got["job.karpenter_resources"]
    assert "no instance type NodePool a10g may launch has room for" in f.detail
    assert "nvidia.com/gpu=8" in f.detail and "pods=1" not in f.detail
    assert "allow a larger instance type in NodePool a10g" in (f.fix or "")
    # the scheduler's "didn't match node selector" on the CPU nodes is not the cause under Karpenter
    assert "job.node_selector" not in got and "job.no_scale_up" not in got


def test_no_instance_type_meets_the_requirements() -> None:
    got = _explain("karpenter_requirements.json")
    f = got["job.karpenter_requirements"]
    assert "no instance type of NodePool a10g meets the pod's requirements" in f.detail
    assert "node.kubernetes.io/instance-type In [p4d.24xlarge]" in f.detail
    assert "kubectl get nodepool a10g -o yaml" in (f.fix or "")


def test_nodepool_limits_reached_and_an_untolerated_taint() -> None:
    got = _explain("karpenter_limits.json")
    f = got["job.karpenter_limits"]
    assert "NodePool a10g is at its limits" in f.detail
    assert "nvidia.com/gpu 8 of 8" in f.detail and "cpu 64 of 64" in f.detail
    assert "kubectl patch nodepool a10g" in (f.fix or "") and "mlstack plan" in (f.fix or "")
    t = got["job.untolerated_taint"]
    assert "mlstack.dev/dedicated=inference:NoSchedule" in t.detail
    assert '"key": "mlstack.dev/dedicated", "operator": "Equal", "value": "inference"' in (t.fix or "")


def test_insufficient_capacity_for_the_nominated_claim_only() -> None:
    got = _explain("karpenter_ice.json")
    f = got["job.karpenter_capacity"]
    assert "NodeClaim a10g-x7k2p: EC2 has no capacity for g5.xlarge in us-east-1a" in f.detail
    assert "more instance types" in (f.fix or "") and "both spot and on-demand" in (f.fix or "")
    # another pool's claim (not nominated for this pod) hit a Spot quota: not this pod's problem
    assert "job.karpenter_quota" not in got
    assert "job.scaling_up" not in got


def test_spot_quota_names_the_quota_code() -> None:
    got = _explain("karpenter_spot_quota.json")
    f = got["job.karpenter_quota"]
    assert "MaxSpotInstanceCountExceeded" in f.detail and "as Spot" in f.detail
    # g5 Spot counts against "All G and VT Spot Instance Requests"
    assert "L-3819A6DF" in f.detail and "--quota-code L-3819A6DF" in (f.fix or "")
    assert "allow on-demand" in (f.fix or "")


def test_on_demand_vcpu_quota_from_event_and_launched_condition() -> None:
    got = _explain("karpenter_vcpu_quota.json")
    f = got["job.karpenter_quota"]
    assert "VcpuLimitExceeded" in f.detail and "p5.48xlarge" in f.detail
    assert "--quota-code L-417A185B" in (f.fix or "")  # Running On-Demand P instances
    sc = fixture("karpenter_vcpu_quota.json")
    # the Launched condition alone (reason VCPULimitExceeded) says the same
    only_condition = karpenter.claim_findings([], sc["nodeclaims"], "pod ml-jobs/x", {"h100-r2d2x"})
    assert [x.check for x in only_condition] == ["job.karpenter_quota"]
    assert "L-417A185B" in only_condition[0].detail


def test_shared_gpu_request_karpenter_cannot_launch_for() -> None:
    got = _explain("karpenter_shared_gpu.json")
    f = got["job.karpenter_shared_gpu"]
    assert "nvidia.com/gpu.shared=1" in f.detail and "NodePool t4 cannot launch" in f.detail
    assert "spec.replicas" in (f.fix or "")


def test_a_nominated_claim_still_launching_is_a_warning() -> None:
    got = _explain("karpenter_launching.json")
    assert list(got) == ["job.scaling_up"]
    assert got["job.scaling_up"].status == "warn" and "nodeclaim/a10g-q9w3e" in got["job.scaling_up"].detail


def test_without_karpenter_state_the_pod_events_still_explain() -> None:
    sc = fixture("karpenter_limits.json")
    got = {f.check for f in explain.explain_pod(sc["pod"], sc["events"], None, COMPUTE)}
    assert {"job.karpenter_limits", "job.untolerated_taint"} <= got


@pytest.mark.parametrize(
    ("text", "check"),
    [
        (
            "InsufficientCapacityError: creating instance, insufficient capacity, all requested instance types were unavailable during launch",
            "job.karpenter_capacity",
        ),
        (
            "InsufficientCapacityError: creating instance, insufficient capacity, with fleet error(s), UnfulfillableCapacity: Unable to fulfill capacity due to your request configuration. Please adjust your request and try again.",
            "job.karpenter_capacity",
        ),
        (
            "SpotQuotaExceeded: A spot instance launch was requested but this would exceed your spot instance quota",
            "job.karpenter_quota",
        ),
        ("NodeClassNotReady: NodeClaim x event: SecurityGroupsReady=False", "job.karpenter_nodeclass"),
    ],
)
def test_launch_failure_kinds(text: str, check: str) -> None:
    f = karpenter.launch_findings(text, "a10g-abcde", None, "pod ml-jobs/p", "a10g")
    assert f is not None and f.check == check


def test_karpenter_failed_scheduling_is_not_read_as_the_schedulers() -> None:
    # no PodScheduled condition: only Karpenter's FailedScheduling exists; it must not become "unschedulable: ..."
    sc = fixture("karpenter_limits.json")
    pod = sc["pod"]
    pod["status"]["conditions"] = []
    karp = [e for e in sc["events"] if karpenter.is_karpenter(e)]
    got = {f.check for f in explain.explain_pod(pod, karp, None, COMPUTE)}
    assert "job.unschedulable" not in got


# ---------------------------------------------------------------- shared GPU resources elsewhere in doctor
def _node(name: str, alloc: dict[str, str]) -> dict:
    return {
        "metadata": {"name": name, "labels": {}},
        "spec": {},
        "status": {"allocatable": {"cpu": "8", **alloc}},
    }


def test_gpu_nodes_include_shared_and_mig_nodes() -> None:
    nodes = [
        _node("cpu", {}),
        _node("whole", {"nvidia.com/gpu": "4"}),
        _node("sliced", {"nvidia.com/gpu.shared": "16"}),
        _node("mig", {"nvidia.com/mig-1g.10gb": "14", "nvidia.com/mig-3g.40gb": "2"}),
    ]
    assert [n["metadata"]["name"] for n in kube.gpu_nodes(nodes, "nvidia.com/gpu")] == [
        "whole",
        "sliced",
        "mig",
    ]
    f = kube.nodes_finding(nodes, COMPUTE)
    assert "3 of 4 nodes offer 4 allocatable nvidia.com/gpu" in f.detail
    assert "16 nvidia.com/gpu.shared" in f.detail and "14 nvidia.com/mig-1g.10gb" in f.detail
    assert kube.is_gpu_resource("nvidia.com/mig-2g.20gb") and not kube.is_gpu_resource("nvidia.com/gpux")


def test_scheduler_shortage_of_a_mig_slice_gets_a_sharing_fix() -> None:
    pod = fixture("job_scaling_up.json")["pod"]
    c = pod["spec"]["containers"][0]["resources"]
    c["requests"] = {"cpu": "2", "nvidia.com/mig-1g.10gb": "1"}
    c["limits"] = {"nvidia.com/mig-1g.10gb": "1"}
    pod["status"]["conditions"][0]["message"] = (
        "0/3 nodes are available: 1 Insufficient nvidia.com/mig-1g.10gb, 2 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    nodes = [_node("mig", {"nvidia.com/mig-1g.10gb": "14"}), _node("cpu1", {}), _node("cpu2", {})]
    got = {f.check: f for f in explain.explain_pod(pod, [], nodes, COMPUTE)}
    f = got["job.insufficient"]
    assert "lack free nvidia.com/mig-1g.10gb (it asks for 1)" in f.detail
    assert "shared-GPU pool" in (f.fix or "")
    # a MIG node exists, so it is a full pool, not a missing scale-up path... unless nothing reacted at all
    assert "job.no_scale_up" in got  # no autoscaler event: nothing will add a MIG node


def test_karpenter_objects_are_fetched_only_when_karpenter_spoke() -> None:
    calls: list[str] = []

    class Cluster:
        def nodeclaims(self):
            calls.append("nodeclaims")
            return [{"metadata": {"name": "a10g-abcde"}}]

        def nodepools(self):
            calls.append("nodepools")
            raise PermissionError("forbidden")  # RBAC hides NodePools: the rest still explains

        def kind_events(self, kind):
            calls.append(f"events:{kind}")
            return []

    sc = fixture("karpenter_ice.json")
    assert (
        explain._karpenter_state(Cluster(), [e for e in sc["events"] if not karpenter.is_karpenter(e)])
        is None
    )
    assert calls == []
    state = explain._karpenter_state(Cluster(), sc["events"])
    assert state == {
        "nodeclaims": [{"metadata": {"name": "a10g-abcde"}}],
        "nodepools": [],
        "claim_events": [],
    }
    assert calls == ["nodeclaims", "nodepools", "events:NodeClaim"]
