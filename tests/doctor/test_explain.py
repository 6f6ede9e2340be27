"""`mlstack doctor job`: explanations from recorded pods and events carrying the scheduler's, kubelet's,
API server's and cluster-autoscaler's real message texts (tests/doctor/fixtures/job_*.json)."""

from __future__ import annotations

import pytest

from mlstack import manifest
from mlstack.doctor import explain
from mlstack.doctor.core import Finding
from tests.doctor.conftest import K8S_COMPUTE, fixture

COMPUTE = manifest.KubernetesCompute.model_validate(K8S_COMPUTE)


def _explain(name: str) -> dict[str, Finding]:
    sc = fixture(name)
    nodes = fixture(sc["nodes"])["items"]
    found = explain.explain_pod(sc["pod"], sc["events"], nodes, COMPUTE)
    assert all(f.fix for f in found if f.status != "ok")
    return {f.check: f for f in found}


def test_scheduler_message_parsing() -> None:
    msg = (
        "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: true}, 2 Insufficient "
        "nvidia.com/gpu. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    )
    assert explain.scheduler_reasons(msg) == [
        (1, "node(s) had untolerated taint {nvidia.com/gpu: true}"),
        (2, "Insufficient nvidia.com/gpu"),
    ]
    old = "0/3 nodes are available: 1 node(s) had taint {node-role.kubernetes.io/master: }, that the pod didn't tolerate, 2 Insufficient cpu."
    assert explain.scheduler_reasons(old) == [
        (1, "node(s) had taint {node-role.kubernetes.io/master: } that the pod didn't tolerate"),
        (2, "Insufficient cpu"),
    ]


def test_insufficient_gpu_with_node_group_at_max() -> None:
    got = _explain("job_gpu_max_node_group.json")
    assert "lack free nvidia.com/gpu (it asks for 1)" in got["job.insufficient"].detail
    # the CPU nodes do not match the selector, the GPU node does: the selector is not the cause
    assert "job.node_selector" not in got
    mx = got["job.node_group_max"]
    assert mx.status == "fail" and "maximum size" in mx.detail and "maxSize" in (mx.fix or "")
    assert "job.no_scale_up" not in got  # the autoscaler did react


def test_untolerated_gpu_taint() -> None:
    got = _explain("job_untolerated_taint.json")
    t = got["job.untolerated_taint"]
    assert "1 of 3 node(s) carry taint nvidia.com/gpu=true:NoSchedule" in t.detail
    assert '{"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}' in (
        t.fix or ""
    )
    assert "compute.gpu.tolerations" in (t.fix or "")
    assert "job.no_scale_up" not in got  # the taint is the cause, not scaling


def test_node_selector_nothing_matches() -> None:
    got = _explain("job_node_selector.json")
    sel = got["job.node_selector"]
    assert "p4d.24xlarge" in sel.detail
    assert "nodes have node.kubernetes.io/instance-type=g5.xlarge" in (sel.fix or "")
    assert "kubectl get nodes -L node.kubernetes.io/instance-type" in (sel.fix or "")


def test_gpu_group_at_zero_without_scale_up_path() -> None:
    got = _explain("job_gpu_group_at_zero.json")
    z = got["job.no_scale_up"]
    assert "no autoscaler reacted" in z.detail
    assert "k8s.io/cluster-autoscaler/node-template/resources/nvidia.com/gpu" in (z.fix or "")
    assert "desiredSize=1" in (z.fix or "")


def test_gpu_group_at_zero_not_advertising_gpus() -> None:
    got = _explain("job_gpu_group_zero_untagged.json")
    z = got["job.no_scale_up"]
    assert "after scale-up" in z.detail and "node-template/resources/nvidia.com/gpu" in (z.fix or "")


def test_scale_up_in_progress_is_a_warning() -> None:
    got = _explain("job_scaling_up.json")
    assert got["job.scaling_up"].status == "warn" and "0->1 (max: 4)" in got["job.scaling_up"].detail
    assert "job.no_scale_up" not in got


def test_unbound_pvc() -> None:
    got = _explain("job_unbound_pvc.json")
    f = got["job.unbound_pvc"]
    assert "train-scratch" in f.detail and "kubectl -n ml-jobs describe pvc train-scratch" in (f.fix or "")
    assert "job.no_scale_up" not in got  # no GPU asked


def test_image_not_found() -> None:
    got = _explain("job_image_not_found.json")
    f = got["job.image_pull"]
    assert "vision-train:2026-11-31" in f.detail and "does not exist" in f.detail
    assert "compute.image" in (f.fix or "")


def test_image_pull_denied() -> None:
    got = _explain("job_image_denied.json")
    f = got["job.image_pull"]
    assert "not allowed to pull" in f.detail and "AmazonEC2ContainerRegistryReadOnly" in (f.fix or "")
    assert (
        "(failed to pull and unpack image it: failed to resolve reference it: pull access denied" in f.detail
    )


def test_namespace_quota_on_a_workflow() -> None:
    sc = fixture("workflow_quota.json")
    got = explain.explain_workflow(sc["workflow"], [], sc["events"], None, COMPUTE)
    assert [f.check for f in got] == ["job.quota"]
    q = got[0]
    assert "quota ml-jobs-gpu is exhausted" in q.detail and "limited requests.nvidia.com/gpu=4" in q.detail
    assert "kubectl -n ml-jobs describe resourcequota ml-jobs-gpu" in (q.fix or "")


def test_namespace_quota_from_controller_events() -> None:
    events = fixture("events_job_quota.json")["events"]
    got = explain.quota_findings([e["message"] for e in events], "ml-jobs")
    assert len(got) == 1 and "requested requests.nvidia.com/gpu=2" in got[0].detail


def test_workflow_pod_stuck_on_taint() -> None:
    sc = fixture("workflow_taint.json")
    pods = [(p["pod"], p["events"]) for p in sc["pods"]]
    got = {
        f.check: f
        for f in explain.explain_workflow(sc["workflow"], pods, [], fixture("nodes.json")["items"], COMPUTE)
    }
    assert (
        "job.untolerated_taint" in got and "etl-train-9k3-3317263500" in got["job.untolerated_taint"].detail
    )


def test_running_pod_is_not_stuck() -> None:
    got = _explain("job_running.json")
    assert list(got) == ["job.status"] and got["job.status"].status == "ok"


@pytest.mark.parametrize(
    ("message", "check"),
    [
        ("0/3 nodes are available: 3 node(s) were unschedulable.", "job.cordoned"),
        (
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
            "job.too_many_pods",
        ),
        ("0/2 nodes are available: 2 node(s) had volume node affinity conflict.", "job.volume_zone"),
        ("0/4 nodes are available: 4 Insufficient memory.", "job.insufficient"),
        ("no nodes available to schedule pods", "job.no_nodes"),
    ],
)
def test_other_scheduler_reasons(message: str, check: str) -> None:
    pod = fixture("job_unbound_pvc.json")["pod"]
    pod["status"]["conditions"][0]["message"] = message
    got = {f.check for f in explain.explain_pod(pod, [], None, COMPUTE)}
    assert check in got
