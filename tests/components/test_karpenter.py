"""Karpenter and the JobSet controller under the mock runtime (issue #14).

The NodePools and EC2NodeClasses the component records are validated against Karpenter v1.14.1's pinned CRDs
(tests/support/crds.py: schema strict on unknown fields, defaults, CEL rules); the controller's IAM policy is
asserted statement by statement (scoped to the cluster by tag and ARN); the interruption queue and its four
EventBridge rules; the recording passes every `mlstack plan` policy rule and is priced by the plan.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack.plan.mock_runtime import Recording
from tests.components.test_k8s_validate import _ints
from tests.support import crds

CLUSTER = "ml-gpu"
CLUSTER_ARN = f"arn:aws:eks:us-east-1:123456789012:cluster/{CLUSTER}"
OIDC_ARN = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC"
ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/ABC"


def _pools() -> tuple[Any, ...]:
    from mlstack.components.compute.karpenter import KarpenterPool, Mig, TimeSlicing

    return (
        KarpenterPool(name="a10g", instance_types=("g5.xlarge", "g5.2xlarge", "g5.12xlarge"), max_gpus=8),
        KarpenterPool(
            name="h100",
            instance_families=("p5",),
            capacity_types=("on-demand",),
            zones=("us-east-1a", "us-east-1b"),
            max_gpus=16,
            expire_after="Never",
            labels={"team": "llm"},
        ),
        KarpenterPool(
            name="t4-shared",
            instance_types=("g4dn.xlarge",),
            sharing=TimeSlicing(replicas=4),
            static_nodes=2,
            capacity_types=("on-demand",),
        ),
        KarpenterPool(name="a100-mig", instance_types=("p4d.24xlarge",), sharing=Mig("1g.5gb"), max_gpus=8),
    )


def _args(**kw: Any) -> Any:
    from mlstack.components.compute.karpenter import KarpenterArgs

    base: dict[str, Any] = dict(
        cluster_name=CLUSTER,
        cluster_arn=CLUSTER_ARN,
        cluster_endpoint="https://ABC.gr7.us-east-1.eks.amazonaws.com",
        oidc_provider_arn=OIDC_ARN,
        oidc_issuer_url=ISSUER,
        pools=_pools(),
    )
    base.update(kw)
    return KarpenterArgs(**base)


def _program(args: Any, jobset: bool = True) -> Any:
    def program() -> None:
        import pulumi
        import pulumi_kubernetes as k8s

        from mlstack.components.compute.jobset import JobSetArgs, JobSetController
        from mlstack.components.compute.karpenter import Karpenter

        provider = k8s.Provider("k8s", kubeconfig="{}")
        Karpenter("karp", args, pulumi.ResourceOptions(provider=provider))
        if jobset:
            JobSetController(
                "jobset", JobSetArgs("ml-jobs", "ml-jobs"), pulumi.ResourceOptions(provider=provider)
            )

    return program


@pytest.fixture(scope="module")
def rec() -> Recording:
    from mlstack.plan import mock_runtime

    return mock_runtime.run(_program(_args()), project="test", stack="test")


def _custom(rec: Recording, kind: str) -> dict[str, dict[str, Any]]:
    out = {}
    for r in rec.resources:
        if r.type.endswith(f":{kind}") and r.type.startswith("kubernetes:karpenter"):
            obj = _ints({k: r.inputs[k] for k in ("apiVersion", "kind", "metadata", "spec")})
            out[obj["metadata"]["name"]] = obj
    return out


def _policy(rec: Recording) -> list[dict[str, Any]]:
    (p,) = [r for r in rec.by_type("aws:iam/rolePolicy:RolePolicy") if r.name == "karp-controller"]
    return json.loads(p.inputs["policy"])["Statement"]


# ------------------------------------------------------------------------------------------ CRD validity
def test_every_node_pool_and_node_class_is_valid_against_the_pinned_crds(rec) -> None:
    pools, classes = _custom(rec, "NodePool"), _custom(rec, "EC2NodeClass")
    assert sorted(pools) == sorted(classes) == ["a100-mig", "a10g", "h100", "t4-shared"]
    for obj in [*pools.values(), *classes.values()]:
        crds.assert_valid(obj)


def test_node_pools_carry_types_capacity_zones_taint_labels_limits_and_disruption(rec) -> None:
    pools = _custom(rec, "NodePool")
    a10g = pools["a10g"]["spec"]
    reqs = {r["key"]: r for r in a10g["template"]["spec"]["requirements"]}
    assert reqs["node.kubernetes.io/instance-type"]["values"] == ["g5.xlarge", "g5.2xlarge", "g5.12xlarge"]
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["spot", "on-demand"]
    assert a10g["template"]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    assert a10g["template"]["metadata"]["labels"] == {
        "mlstack.dev/gpu": "true",
        "mlstack.dev/node-pool": "a10g",
        "mlstack.dev/device-plugin": "daemonset",  # the cluster's DaemonSet advertises whole GPUs here
    }
    assert a10g["disruption"] == {"consolidationPolicy": "WhenEmpty", "consolidateAfter": "10m"}
    assert a10g["template"]["spec"]["expireAfter"] == "336h"
    assert a10g["template"]["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "a10g",
    }
    # 8 GPUs of the most CPU/memory-rich way to hold them: g5.12xlarge has 12 vCPUs and 48 GiB per GPU
    assert a10g["limits"] == {"cpu": "96", "memory": "384Gi", "nvidia.com/gpu": "8"}
    h100 = pools["h100"]["spec"]
    reqs = {r["key"]: r for r in h100["template"]["spec"]["requirements"]}
    assert reqs["karpenter.k8s.aws/instance-family"]["values"] == ["p5"]
    assert reqs["karpenter.k8s.aws/instance-gpu-count"] == {
        "key": "karpenter.k8s.aws/instance-gpu-count",
        "operator": "Gt",
        "values": ["0"],
    }
    assert reqs["topology.kubernetes.io/zone"]["values"] == ["us-east-1a", "us-east-1b"]
    assert reqs["karpenter.sh/capacity-type"]["values"] == ["on-demand"]
    assert h100["template"]["metadata"]["labels"]["team"] == "llm"
    assert h100["template"]["spec"]["expireAfter"] == "Never"
    assert h100["limits"]["nvidia.com/gpu"] == "16"
    # a time-sliced pool is static (Karpenter cannot launch for nvidia.com/gpu.shared): replicas, limits.nodes
    shared = pools["t4-shared"]["spec"]
    assert shared["replicas"] == 2 and shared["limits"] == {"nodes": "2"}


def test_node_classes_require_imdsv2_hop_one_encrypted_gp3_and_discover_by_tag(rec) -> None:
    for name, nc in _custom(rec, "EC2NodeClass").items():
        spec = nc["spec"]
        assert spec["metadataOptions"]["httpTokens"] == "required"
        assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
        assert spec["amiSelectorTerms"] == [{"alias": "al2023@latest"}]
        (vol,) = spec["blockDeviceMappings"]
        assert (
            vol["rootVolume"] is True
            and vol["ebs"]["encrypted"] is True
            and vol["ebs"]["volumeType"] == "gp3"
        )
        assert (
            spec["subnetSelectorTerms"]
            == spec["securityGroupSelectorTerms"]
            == [{"tags": {"karpenter.sh/discovery": CLUSTER}}]
        )
        node_role = next(r for r in rec.by_type("aws:iam/role:Role") if r.name == "karp-node")
        assert spec["role"] == node_role.state.get("name", "karp-node"), name


def test_a_broken_node_pool_is_rejected_by_the_validator(rec) -> None:
    """Guard: the pinned schema and CEL rules are really applied to what the component emits."""
    pool = json.loads(json.dumps(_custom(rec, "NodePool")["a10g"]))
    pool["spec"]["template"]["spec"]["requirements"].append(
        {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["x"]}
    )
    assert any("restricted" in p for p in crds.validate(pool))
    static = json.loads(json.dumps(_custom(rec, "NodePool")["t4-shared"]))
    static["spec"]["limits"]["cpu"] = "8"
    assert any("only 'limits.nodes'" in p for p in crds.validate(static))


# ------------------------------------------------------------------------------------------ sharing
def test_sharing_labels_and_device_plugin_configs(rec) -> None:
    from mlstack.plan import karpenter as plan_k

    pools = _custom(rec, "NodePool")
    ts = pools["t4-shared"]["spec"]["template"]["metadata"]["labels"]
    assert ts["mlstack.dev/gpu-sharing"] == "time-slicing" and ts["mlstack.dev/gpu-replicas"] == "4"
    assert ts["nvidia.com/device-plugin.config"] == "t4-shared"
    mig = pools["a100-mig"]["spec"]["template"]["metadata"]["labels"]
    assert mig["nvidia.com/mig.config"] == "all-1g.5gb" and mig["mlstack.dev/mig-strategy"] == "single"
    for labels in (ts, mig):  # what plan and doctor read, with no problem
        s = plan_k.sharing_from_labels(labels)
        assert s is not None and s.problem is None
    (cm,) = rec.by_type("kubernetes:core/v1:ConfigMap")
    assert cm.inputs["metadata"]["name"] == "nvidia-device-plugin-configs"
    data = {k: json.loads(v) for k, v in cm.inputs["data"].items()}
    assert sorted(data) == ["a100-mig", "t4-shared"]
    ts_cfg = data["t4-shared"]["sharing"]["timeSlicing"]
    assert ts_cfg["renameByDefault"] is True and ts_cfg["resources"] == [
        {"name": "nvidia.com/gpu", "replicas": 4}
    ]
    assert data["a100-mig"] == {"version": "v1", "flags": {"migStrategy": "single"}}


@pytest.mark.parametrize(
    ("pool_kw", "key", "needle"),
    [
        (
            {"instance_types": ("g5.xlarge",), "sharing": "mig:1g.10gb"},
            "pools[0].sharing",
            "g5.xlarge (A10G) is not MIG-capable",
        ),
        (
            {"instance_families": ("g6e",), "sharing": "mig:1g.10gb"},
            "pools[0].sharing",
            "g6e is not MIG-capable",
        ),
        (
            {"instance_types": ("p4d.24xlarge",), "sharing": "mig:1g.20gb"},
            "pools[0].sharing.profile",
            "not a MIG profile of A100-40GB",
        ),
        (
            {"instance_types": ("p5.48xlarge",), "sharing": "mig:balanced:single"},
            "pools[0].sharing.strategy",
            "needs strategy='mixed'",
        ),
        (
            {"instance_types": ("p5.48xlarge",), "sharing": "mig:balanced:mixed"},
            "pools[0].static_nodes",
            "must be static",
        ),
        (
            {"instance_types": ("g4dn.xlarge",), "sharing": "ts:1", "static_nodes": 1},
            "pools[0].sharing.replicas",
            ">= 2",
        ),
        ({"instance_types": ("g4dn.xlarge",), "sharing": "ts:4"}, "pools[0].static_nodes", "must be static"),
        ({"instance_types": ("g5.xlargee",)}, "pools[0].instance_types", "did you mean g5.xlarge"),
        ({}, "pools[0].instance_types", "give instance_types or instance_families"),
        (
            {"instance_types": ("g5.xlarge",), "capacity_types": ("preemptible",)},
            "pools[0].capacity_types",
            "spot, on-demand, reserved",
        ),
        (
            {"instance_types": ("g5.xlarge",), "consolidate_after": "10 minutes"},
            "pools[0].consolidate_after",
            "a duration",
        ),
        (
            {"instance_types": ("g5.xlarge",), "ami_alias": "ubuntu@latest"},
            "pools[0].ami_alias",
            "al2023@latest",
        ),
        (
            {"instance_types": ("g5.xlarge",), "labels": {"karpenter.sh/x": "y"}},
            "pools[0].labels",
            "set by mlstack",
        ),
        ({"instance_types": ("g5.xlarge",), "max_gpus": 0}, "pools[0].max_gpus", ">= 1"),
    ],
)
def test_invalid_pools_are_errors_naming_the_key(pool_kw, key, needle) -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute.karpenter import KarpenterPool, Mig, TimeSlicing, validate

    kw = dict(pool_kw)
    raw = kw.pop("sharing", None)
    if raw:
        kind, *rest = raw.split(":")
        kw["sharing"] = TimeSlicing(int(rest[0])) if kind == "ts" else Mig(rest[0], *(rest[1:] or []))
    with pytest.raises(InputPropertiesError) as exc:
        validate(_args(pools=(KarpenterPool(name="p", **kw),)))
    hits = [(path, why) for path, _, why in exc.value.problems if path == key]
    assert hits and any(needle in why for _, why in hits), exc.value.problems


def test_valid_pools_pass_and_duplicate_names_and_missing_oidc_fail() -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute.karpenter import KarpenterPool, validate

    validate(_args())
    p = KarpenterPool(name="a", instance_types=("g5.xlarge",))
    with pytest.raises(InputPropertiesError, match=r"pools\[1\].name: got 'a'; pool names must be unique"):
        validate(_args(pools=(p, p)))
    with pytest.raises(InputPropertiesError, match="oidc_provider_arn"):
        validate(_args(oidc_provider_arn=None))
    validate(_args(oidc_provider_arn=None, oidc_issuer_url=None, identity="pod-identity"))


# ------------------------------------------------------------------------------------------ IAM
def test_controller_policy_is_scoped_to_the_cluster_by_tag_and_arn(rec) -> None:
    st = {s["Sid"]: s for s in _policy(rec)}
    owned = f"aws:RequestTag/kubernetes.io/cluster/{CLUSTER}"
    create = st["AllowScopedEC2InstanceActionsWithTags"]
    assert create["Condition"]["StringEquals"][owned] == "owned"
    assert create["Condition"]["StringLike"] == {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    delete = st["AllowScopedDeletion"]
    assert set(delete["Action"]) == {"ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"}
    assert delete["Condition"]["StringEquals"] == {
        f"aws:ResourceTag/kubernetes.io/cluster/{CLUSTER}": "owned"
    }
    node_role = next(r for r in rec.by_type("aws:iam/role:Role") if r.name == "karp-node")
    assert st["AllowPassingInstanceRole"]["Resource"] == [node_role.state["arn"]]
    assert st["AllowPassingInstanceRole"]["Condition"] == {
        "StringEquals": {"iam:PassedToService": ["ec2.amazonaws.com"]}
    }
    assert st["AllowAPIServerEndpointDiscovery"]["Resource"] == [CLUSTER_ARN]
    (queue,) = rec.by_type("aws:sqs/queue:Queue")
    assert st["AllowInterruptionQueueActions"]["Resource"] == [queue.state["arn"]]
    # the only actions on "*" are reads without resource-level permissions
    for s in st.values():
        if "*" in s["Resource"]:
            assert all(a.startswith(("ec2:Describe", "pricing:Get")) for a in s["Action"]), s
        # nothing that changes instances, profiles or roles goes unconditioned
        mutating = [a for a in s["Action"] if not a.split(":")[1].startswith(("Describe", "Get", "List"))]
        if mutating and s["Sid"] not in (
            "AllowScopedEC2InstanceAccessActions",
            "AllowInterruptionQueueActions",
        ):
            assert s.get("Condition"), s["Sid"]
    assert not any(a.endswith(":*") for s in st.values() for a in s["Action"])


def test_controller_identity_irsa_trusts_only_kube_system_karpenter(rec) -> None:
    role = next(r for r in rec.by_type("aws:iam/role:Role") if r.name == "karp-controller")
    (stmt,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"] == {"Federated": OIDC_ARN}
    host = ISSUER.replace("https://", "")
    assert stmt["Condition"]["StringEquals"] == {
        f"{host}:sub": "system:serviceaccount:kube-system:karpenter",
        f"{host}:aud": "sts.amazonaws.com",
    }
    release = next(r for r in rec.by_type("kubernetes:helm.sh/v3:Release") if r.name == "karp-controller")
    sa = release.inputs["values"]["serviceAccount"]
    assert sa["annotations"] == {"eks.amazonaws.com/role-arn": role.state["arn"]}
    assert not rec.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")


def test_pod_identity_variant(pulumi_run) -> None:
    r = pulumi_run(
        _program(_args(identity="pod-identity", oidc_provider_arn=None, oidc_issuer_url=None), jobset=False)
    )
    (assoc,) = r.by_type("aws:eks/podIdentityAssociation:PodIdentityAssociation")
    assert assoc.inputs["namespace"] == "kube-system" and assoc.inputs["serviceAccount"] == "karpenter"
    role = next(x for x in r.by_type("aws:iam/role:Role") if x.name == "karp-controller")
    (stmt,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"] == {"Service": "pods.eks.amazonaws.com"}
    release = next(x for x in r.by_type("kubernetes:helm.sh/v3:Release") if x.name == "karp-controller")
    assert release.inputs["values"]["serviceAccount"]["annotations"] == {}


def test_node_role_and_access_entry(rec) -> None:
    node_role = next(r for r in rec.by_type("aws:iam/role:Role") if r.name == "karp-node")
    (stmt,) = json.loads(node_role.inputs["assumeRolePolicy"])["Statement"]
    assert stmt["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = sorted(
        a.inputs["policyArn"].rsplit("/", 1)[1]
        for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    )
    assert attached == [
        "AmazonEC2ContainerRegistryPullOnly",
        "AmazonEKSWorkerNodePolicy",
        "AmazonSSMManagedInstanceCore",
    ]
    (entry,) = rec.by_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX" and entry.inputs["principalArn"] == node_role.state["arn"]
    assert entry.inputs["clusterName"] == CLUSTER


# ------------------------------------------------------------------------------------------ interruption
def test_interruption_queue_is_encrypted_tls_only_and_fed_by_four_rules(rec) -> None:
    (queue,) = rec.by_type("aws:sqs/queue:Queue")
    assert queue.inputs["sqsManagedSseEnabled"] is True and queue.inputs["messageRetentionSeconds"] == 300
    (qp,) = rec.by_type("aws:sqs/queuePolicy:QueuePolicy")
    st = {s["Sid"]: s for s in json.loads(qp.inputs["policy"])["Statement"]}
    assert st["EventsToQueue"]["Principal"] == {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]}
    assert st["DenyHTTP"]["Effect"] == "Deny" and st["DenyHTTP"]["Condition"] == {
        "Bool": {"aws:SecureTransport": "false"}
    }
    patterns = sorted(
        json.loads(r.inputs["eventPattern"])["detail-type"][0]
        for r in rec.by_type("aws:cloudwatch/eventRule:EventRule")
    )
    assert patterns == [
        "AWS Health Event",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "EC2 Spot Instance Interruption Warning",
    ]
    targets = rec.by_type("aws:cloudwatch/eventTarget:EventTarget")
    assert len(targets) == 4 and {t.inputs["arn"] for t in targets} == {queue.state["arn"]}
    release = next(r for r in rec.by_type("kubernetes:helm.sh/v3:Release") if r.name == "karp-controller")
    assert release.inputs["values"]["settings"]["interruptionQueue"] == queue.state["name"]


# ------------------------------------------------------------------------------------------ charts
def test_charts_are_pinned_and_the_controller_stays_off_its_own_nodes(rec) -> None:
    from mlstack.components.compute import jobset, karpenter

    releases = {r.name: r.inputs for r in rec.by_type("kubernetes:helm.sh/v3:Release")}
    assert releases["karp-crd"]["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert (
        releases["karp-crd"]["version"]
        == releases["karp-controller"]["version"]
        == karpenter.KARPENTER_VERSION
        == "1.14.1"
    )
    assert releases["karp-controller"]["skipCrds"] is True
    values = releases["karp-controller"]["values"]
    assert values["nodeSelector"] == {"mlstack.dev/node-role": "system"} and values["replicas"] == 2
    assert values["settings"]["clusterName"] == CLUSTER
    assert releases["jobset-jobset"]["chart"] == "oci://registry.k8s.io/jobset/charts/jobset"
    assert releases["jobset-jobset"]["version"] == jobset.JOBSET_VERSION == "0.12.0"
    # the versions the tests' CRDs are (tests/crds/README.md)
    readme = (crds.CRDS / "README.md").read_text()
    assert "| v1.14.1 |" in readme and "| v0.12.0 |" in readme


def test_jobset_rbac_for_the_workflow_service_account(rec) -> None:
    import kubernetes_validate

    (role,) = rec.by_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    (binding,) = rec.by_type("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding")
    assert role.inputs["rules"] == [
        {
            "apiGroups": ["jobset.x-k8s.io"],
            "resources": ["jobsets"],
            "verbs": ["create", "get", "list", "watch"],
        }
    ]
    assert binding.inputs["subjects"] == [
        {"kind": "ServiceAccount", "name": "ml-jobs", "namespace": "ml-jobs"}
    ]
    for r in (role, binding):
        kubernetes_validate.validate(dict(r.inputs), "1.35.0", strict=True)


# ------------------------------------------------------------------------------------------ plan
def test_the_recording_has_zero_plan_findings_and_is_priced(rec) -> None:
    from mlstack.plan import karpenter as plan_k
    from mlstack.plan.policy import engine

    findings = engine.evaluate(rec)
    assert not findings, [(f.rule_id, f.resource_name, f.message) for f in findings]
    pools = {p.name: p for p in plan_k.node_pools(rec)}
    assert sorted(pools) == ["a100-mig", "a10g", "h100", "t4-shared"]
    from mlstack.plan.cost import _line

    lines = plan_k.cost_lines(list(pools.values()), "us-east-1", _line, 730)
    by = {name: next(ln for ln in lines if f"NodePool {name}:" in ln["item"]) for name in pools}
    # every dynamic pool has a ceiling (its default limits bound every candidate), and scales to zero
    for name in ("a10g", "h100", "a100-mig"):
        assert by[name]["hourly_usd_min"] == 0 and by[name]["hourly_usd_max"] is not None, by[name]
    # a10g, hand-computed from prices.json: limits 96 vCPU / 384Gi / 8 GPUs. 2 x g5.12xlarge (96 vCPU,
    # 2 x 192 GiB x 0.925 = 355.2 GiB, 8 GPUs) at $5.672/h = $11.344/h beats 8 x g5.2xlarge ($9.696/h) and
    # g5.12xlarge + 4 x g5.2xlarge ($10.52/h): the priciest fleet within the limits
    assert by["a10g"]["hourly_usd_max"] == pytest.approx(2 * 5.672)
    # the static time-sliced pool: 2 x g4dn.xlarge ($0.526/h) whether busy or not
    assert by["t4-shared"]["hourly_usd_min"] == by["t4-shared"]["hourly_usd_max"] == pytest.approx(2 * 0.526)


def test_nodes_can_select_subnets_and_security_groups_by_id(pulumi_run) -> None:
    """With the cluster's subnet and security group IDs (EksGpuCluster's), no discovery tags are needed."""
    r = pulumi_run(
        _program(_args(subnet_ids=["subnet-1", "subnet-2"], security_group_ids=["sg-9"]), jobset=False)
    )
    for nc in _custom(r, "EC2NodeClass").values():
        crds.assert_valid(nc)
        assert nc["spec"]["subnetSelectorTerms"] == [{"id": "subnet-1"}, {"id": "subnet-2"}]
        assert nc["spec"]["securityGroupSelectorTerms"] == [{"id": "sg-9"}]


def test_bottlerocket_pools_get_an_encrypted_data_volume_too(pulumi_run) -> None:
    from mlstack.components.compute.karpenter import KarpenterPool

    pool = KarpenterPool(name="br", instance_types=("g6.xlarge",), ami_alias="bottlerocket@latest")
    r = pulumi_run(_program(_args(pools=(pool,)), jobset=False))
    (nc,) = _custom(r, "EC2NodeClass").values()
    crds.assert_valid(nc)
    vols = nc["spec"]["blockDeviceMappings"]
    assert [v["deviceName"] for v in vols] == ["/dev/xvda", "/dev/xvdb"]
    assert all(v["ebs"]["encrypted"] is True and v["ebs"]["volumeType"] == "gp3" for v in vols)
    assert [v.get("rootVolume", False) for v in vols] == [False, True]
    from mlstack.plan.policy import engine

    assert not engine.evaluate(r)


def test_pools_from_plain_config() -> None:
    from mlstack.components.compute.karpenter import Mig, TimeSlicing, pools_from

    a, b, c = pools_from(
        [
            {"name": "a", "instance_types": ["g5.xlarge"]},
            {
                "name": "b",
                "instance_types": ["g4dn.xlarge"],
                "sharing": {"time_slicing": {"replicas": 4}},
                "static_nodes": 1,
            },
            {"name": "c", "instance_families": ["p5"], "sharing": {"mig": {"profile": "1g.10gb"}}},
        ]
    )
    assert a.instance_types == ("g5.xlarge",) and a.sharing is None
    assert b.sharing == TimeSlicing(4) and c.sharing == Mig("1g.10gb", "single")


def test_sharing_pools_get_their_own_device_plugin_with_the_pools_config(rec) -> None:
    import kubernetes_validate

    ds = {r.inputs["metadata"]["name"]: r.inputs for r in rec.by_type("kubernetes:apps/v1:DaemonSet")}
    assert sorted(ds) == ["nvidia-device-plugin-a100-mig", "nvidia-device-plugin-t4-shared"]
    t4 = ds["nvidia-device-plugin-t4-shared"]
    spec = t4["spec"]["template"]["spec"]
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {"key": "mlstack.dev/node-pool", "operator": "In", "values": ["t4-shared"]} in term[
        "matchExpressions"
    ]
    (c,) = spec["containers"]
    assert {"name": "CONFIG_FILE", "value": "/etc/nvidia-device-plugin/config.yaml"} in c["env"]
    assert c["image"].startswith("nvcr.io/nvidia/k8s-device-plugin:v0.18.0@sha256:")
    assert (
        spec["automountServiceAccountToken"] is False
        and c["securityContext"]["allowPrivilegeEscalation"] is False
    )
    (cfg,) = [v for v in spec["volumes"] if v["name"] == "config"]
    assert cfg["configMap"] == {
        "name": "nvidia-device-plugin-configs",
        "items": [{"key": "t4-shared", "path": "config.yaml"}],
    }
    # shared nodes are labelled so the cluster's whole-GPU DaemonSet (device-plugin=daemonset) stays off them
    pools = _custom(rec, "NodePool")
    assert (
        pools["t4-shared"]["spec"]["template"]["metadata"]["labels"]["mlstack.dev/device-plugin"] == "shared"
    )
    policies = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in rec.by_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert sorted(policies) == sorted(ds)  # each plugin: no network at all
    assert policies["nvidia-device-plugin-t4-shared"]["spec"]["policyTypes"] == ["Ingress", "Egress"]
    cm = rec.by_type("kubernetes:core/v1:ConfigMap")[0].inputs
    objs = [{"apiVersion": "apps/v1", "kind": "DaemonSet", **_ints(d)} for d in ds.values()]
    objs.append({"apiVersion": "v1", "kind": "ConfigMap", **cm})
    for obj in objs:
        kubernetes_validate.validate(obj, "1.35.0", strict=True)


def test_whole_gpu_pools_can_get_a_device_plugin_too(pulumi_run) -> None:
    r = pulumi_run(_program(_args(whole_gpu_device_plugin=True), jobset=False))
    ds = {x.inputs["metadata"]["name"]: x.inputs for x in r.by_type("kubernetes:apps/v1:DaemonSet")}
    own = ds["nvidia-device-plugin-karpenter"]["spec"]["template"]["spec"]
    (term,) = own["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert {"key": "mlstack.dev/node-pool", "operator": "In", "values": ["a10g", "h100"]} in term[
        "matchExpressions"
    ]
    assert not any(e["name"] == "CONFIG_FILE" for e in own["containers"][0]["env"])


def test_sharing_on_bottlerocket_is_refused() -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute.karpenter import KarpenterPool, TimeSlicing, validate

    pool = KarpenterPool(
        name="br",
        instance_types=("g4dn.xlarge",),
        sharing=TimeSlicing(2),
        static_nodes=1,
        ami_alias="bottlerocket@latest",
    )
    with pytest.raises(InputPropertiesError, match=r"pools\[0\]\.ami_alias: got 'bottlerocket@latest'"):
        validate(_args(pools=(pool,)))


def test_jobset_controller_args_are_validated() -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute.jobset import JobSetArgs, validate

    validate(JobSetArgs())
    with pytest.raises(InputPropertiesError, match="replicas: got 0; a whole number >= 1"):
        validate(JobSetArgs(replicas=0))
    with pytest.raises(InputPropertiesError, match="jobs_namespace: got ''"):
        validate(JobSetArgs(jobs_namespace=""))


# ------------------------------------------------------------------------------------------ EksGpuCluster
GROUPS = [
    {
        "name": "a10g",
        "instance_types": ["g5.xlarge", "g5.2xlarge"],
        "max_size": 4,
        "capacity_type": "SPOT",
        "labels": {"team": "vision"},
    },
    {"name": "l4", "instance_types": ["g6.xlarge"], "max_size": 2, "ami_type": "BOTTLEROCKET_x86_64_NVIDIA"},
]


def _cluster(pulumi_run, **args: Any) -> Recording:
    def program() -> None:
        import pulumi

        from mlstack.components import EksGpuCluster

        c = EksGpuCluster("gpu", {"gpu_node_groups": GROUPS, **args})
        pulumi.export("compute", c.manifest_section)

    return pulumi_run(program)


def test_eks_gpu_cluster_with_karpenter_makes_node_pools_instead_of_gpu_groups(pulumi_run) -> None:
    from mlstack.components.compute.karpenter import KarpenterPool, TimeSlicing
    from mlstack.plan.policy import engine

    shared = KarpenterPool(
        "t4-shared", instance_types=("g4dn.xlarge",), sharing=TimeSlicing(4), static_nodes=1
    )
    rec = _cluster(pulumi_run, autoscaler="karpenter", karpenter_pools=[shared], jobset=True)
    # only the system group is a managed node group; no cluster-autoscaler
    groups = [
        r.inputs.get("nodeGroupNamePrefix") or r.inputs.get("nodeGroupName")
        for r in rec.by_type("aws:eks/nodeGroup:NodeGroup")
    ]
    assert len(groups) == 1 and "system" in str(groups[0])
    assert not [r for r in rec.by_type("kubernetes:apps/v1:Deployment") if "autoscaler" in r.name]
    pools, classes = _custom(rec, "NodePool"), _custom(rec, "EC2NodeClass")
    assert sorted(pools) == sorted(classes) == ["a10g", "l4", "t4-shared"]
    # the nodes' subnets are the cluster's private subnets, by ID (the mock runtime's ids are not shaped
    # like EC2's subnet-..., so they are mapped to that shape before the CRD's pattern sees them)
    subnet_ids = {r.id for r in rec.by_type("aws:ec2/subnet:Subnet") if "private" in r.name}
    for nc in classes.values():
        assert {t["id"] for t in nc["spec"]["subnetSelectorTerms"]} == subnet_ids
        nc["spec"]["subnetSelectorTerms"] = [{"id": "subnet-0a1b2c" + str(i)} for i in range(len(subnet_ids))]
    for obj in [*pools.values(), *classes.values()]:
        crds.assert_valid(obj)
    a10g = pools["a10g"]["spec"]
    reqs = {r["key"]: r["values"] for r in a10g["template"]["spec"]["requirements"]}
    assert reqs["karpenter.sh/capacity-type"] == ["spot", "on-demand"]  # SPOT group: On-Demand fallback
    assert reqs["node.kubernetes.io/instance-type"] == ["g5.xlarge", "g5.2xlarge"]
    assert a10g["limits"]["nvidia.com/gpu"] == "4"  # max_size 4 x 1 GPU
    assert a10g["template"]["metadata"]["labels"]["team"] == "vision"
    assert classes["l4"]["spec"]["amiSelectorTerms"] == [{"alias": "bottlerocket@latest"}]
    assert pools["l4"]["spec"]["template"]["metadata"]["labels"]["mlstack.dev/device-plugin"] == "os"
    # nodes in the cluster's private subnets with the cluster security group (no discovery tags needed)
    subnets = classes["a10g"]["spec"]["subnetSelectorTerms"]
    assert subnets and all(set(t) == {"id"} for t in subnets)
    assert [set(t) for t in classes["a10g"]["spec"]["securityGroupSelectorTerms"]] == [{"id"}]
    # the controller trusts the cluster's own OIDC provider; the JobSet controller is installed
    role = next(r for r in rec.by_type("aws:iam/role:Role") if r.name == "gpu-karpenter-controller")
    assert "system:serviceaccount:kube-system:karpenter" in role.inputs["assumeRolePolicy"]
    charts = {r.inputs["chart"] for r in rec.by_type("kubernetes:helm.sh/v3:Release")}
    assert {
        "oci://public.ecr.aws/karpenter/karpenter",
        "oci://registry.k8s.io/jobset/charts/jobset",
    } <= charts
    findings = engine.evaluate(rec)
    assert not findings, [(f.rule_id, f.resource_name, f.message) for f in findings]


def test_eks_gpu_cluster_default_stays_cluster_autoscaler(pulumi_run) -> None:
    rec = _cluster(pulumi_run)
    assert len(rec.by_type("aws:eks/nodeGroup:NodeGroup")) == 3
    assert not _custom(rec, "NodePool") and not rec.by_type("kubernetes:helm.sh/v3:Release")
    assert [r for r in rec.by_type("kubernetes:apps/v1:Deployment") if "autoscaler" in r.name]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            {"autoscaler": "keda"},
            "autoscaler: got 'keda'; 'cluster-autoscaler' (default: managed GPU groups) or 'karpenter'",
        ),
        ({"karpenter_pools": ["x"]}, "karpenter_pools: got ['x']; only with autoscaler='karpenter'"),
        (
            {"autoscaler": "karpenter", "karpenter_pools": ["x"]},
            "karpenter_pools[0]: got 'x'; a KarpenterPool",
        ),
        ({"jobset": "yes"}, "jobset: got 'yes'; True or False"),
    ],
)
def test_eks_gpu_cluster_autoscaler_args_are_validated(args, needle) -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute import config

    with pytest.raises(InputPropertiesError) as exc:
        config.resolve_cluster(
            "gpu", {"gpu_node_groups": GROUPS, **args}, project="p", stack="s", region="us-east-1"
        )
    assert needle in str(exc.value.message)


def test_a_sharing_pool_clashing_with_a_group_name_is_refused() -> None:
    from mlstack.components._args import InputPropertiesError
    from mlstack.components.compute import config
    from mlstack.components.compute.karpenter import KarpenterPool

    with pytest.raises(InputPropertiesError, match="a pool of that name exists"):
        config.resolve_cluster(
            "gpu",
            {
                "gpu_node_groups": GROUPS,
                "autoscaler": "karpenter",
                "karpenter_pools": [KarpenterPool("a10g", instance_types=("g5.xlarge",))],
            },
            project="p",
            stack="s",
            region="us-east-1",
        )
