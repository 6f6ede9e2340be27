"""EksGpuCluster under the mock runtime: what it asks AWS and Kubernetes for, and what it refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlstack import _astutil
from mlstack.plan.mock_runtime import Recording, contains_secret, is_secret, unwrap_secrets

GROUP = {
    "name": "a10g",
    "instance_types": ["g5.xlarge", "g5.2xlarge"],
    "min_size": 0,
    "desired_size": 0,
    "max_size": 4,
    "capacity_type": "SPOT",
    "ami_type": "AL2023_x86_64_NVIDIA",
    "disk_size_gib": 300,
    "labels": {"team": "vision"},
}


class FakeStore:
    """Duck-typed artifact store: records which roles it granted to."""

    def __init__(self) -> None:
        self.granted: list[tuple[str, Any]] = []

    def grant_read(self, role: Any) -> None:
        self.granted.append(("read", role))

    def grant_write(self, role: Any) -> None:
        self.granted.append(("write", role))


class FakeData:
    def __init__(self) -> None:
        self.granted: list[Any] = []

    def grant_read(self, role: Any) -> None:
        self.granted.append(role)


def build(pulumi_run, args: dict[str, Any] | None = None, keep: dict[str, Any] | None = None) -> Recording:
    def program() -> None:
        import pulumi

        from mlstack.components import EksGpuCluster

        cluster = EksGpuCluster("gpu", args if args is not None else {"gpu_node_groups": [GROUP]})
        pulumi.export("manifest", cluster.manifest_section)
        pulumi.export("kubeconfig", cluster.kubeconfig)
        pulumi.export("jobs_namespace", cluster.jobs_namespace)
        if keep is not None:
            keep["cluster"] = cluster

    return pulumi_run(program)


@pytest.fixture(scope="module")
def rec() -> Recording:
    # one recording shared by the read-only assertions below (the mock runtime takes ~1 s per stack)
    from mlstack.plan import mock_runtime

    return mock_runtime.run(lambda: _default_program(), project="test", stack="test")


def _default_program() -> None:
    import pulumi

    from mlstack.components import EksGpuCluster

    c = EksGpuCluster(
        "gpu",
        {
            "gpu_node_groups": [
                GROUP,
                {"name": "l4", "instance_types": ["g6.xlarge"], "ami_type": "BOTTLEROCKET_x86_64_NVIDIA"},
            ]
        },
    )
    pulumi.export("manifest", c.manifest_section)
    pulumi.export("kubeconfig", c.kubeconfig)
    pulumi.export("specs", c.gpu_node_group_specs)


def test_no_duplicate_urns_and_everything_is_a_child(rec: Recording) -> None:
    assert not rec.duplicate_urns()
    comp = rec.one("mlstack:index:EksGpuCluster")
    assert {r.urn for r in rec.descendants(comp)} == {r.urn for r in rec.resources if r is not comp}


def test_secrets_encrypted_with_a_rotating_key(rec: Recording) -> None:
    key = rec.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    cluster = rec.one("aws:eks/cluster:Cluster")
    enc = cluster.inputs["encryptionConfig"]
    assert enc["resources"] == ["secrets"]
    assert enc["provider"]["keyArn"] == key.state["arn"]
    # the cluster role may use exactly that key
    kms_policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "gpu-cluster-kms").inputs["policy"])
    assert kms_policy["Statement"][0]["Resource"] == [key.state["arn"]]


def test_control_plane_logs_and_retention(rec: Recording) -> None:
    cluster = rec.one("aws:eks/cluster:Cluster")
    assert set(cluster.inputs["enabledClusterLogTypes"]) >= {"api", "audit", "authenticator"}
    group = rec.one("aws:cloudwatch/logGroup:LogGroup")
    assert group.inputs["name"] == f"/aws/eks/{cluster.inputs['name']}/cluster"
    assert group.inputs["retentionInDays"] == 90.0
    assert group.urn in cluster.options["dependencies"]


def test_endpoint_is_private_by_default(rec: Recording) -> None:
    vpc = rec.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    assert vpc["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in vpc
    assert len(vpc["subnetIds"]) == 2
    access = rec.one("aws:eks/cluster:Cluster").inputs["accessConfig"]
    assert access["authenticationMode"] == "API"


def test_public_access_only_to_listed_cidrs(pulumi_run) -> None:
    rec = build(pulumi_run, {"gpu_node_groups": [GROUP], "public_access_cidrs": ["203.0.113.0/24"]})
    vpc = rec.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPublicAccess"] is True
    assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]


def test_vpc_private_subnets_in_two_zones_behind_nat(rec: Recording) -> None:
    privates = [r for r in rec.by_type("aws:ec2/subnet:Subnet") if "private" in r.name]
    assert sorted(s.inputs["availabilityZone"] for s in privates) == ["us-east-1a", "us-east-1b"]
    assert all(s.inputs["tags"]["kubernetes.io/role/internal-elb"] == "1" for s in privates)
    assert all(not s.inputs.get("mapPublicIpOnLaunch") for s in rec.by_type("aws:ec2/subnet:Subnet"))
    assert len(rec.by_type("aws:ec2/natGateway:NatGateway")) == 1
    for rt in [r for r in rec.by_type("aws:ec2/routeTable:RouteTable") if "private" in r.name]:
        assert rt.inputs["routes"][0]["natGatewayId"]
    assert rec.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup").inputs.get("ingress") in (None, [])


def test_nat_per_zone_and_three_zones(pulumi_run) -> None:
    rec = build(
        pulumi_run,
        {
            "gpu_node_groups": [GROUP],
            "nat_gateways": "per_zone",
            "availability_zones": ["us-east-1a", "us-east-1b", "us-east-1c"],
        },
    )
    assert len(rec.by_type("aws:ec2/natGateway:NatGateway")) == 3
    cidrs = [s.inputs["cidrBlock"] for s in rec.by_type("aws:ec2/subnet:Subnet")]
    assert len(set(cidrs)) == 6  # no overlap


def test_bring_your_own_vpc_creates_no_network(pulumi_run) -> None:
    rec = build(
        pulumi_run,
        {"gpu_node_groups": [GROUP], "vpc_id": "vpc-123", "private_subnet_ids": ["subnet-a", "subnet-b"]},
    )
    assert not rec.by_type("aws:ec2/vpc:Vpc")
    assert not rec.by_type("aws:ec2/natGateway:NatGateway")
    assert rec.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-a10g").inputs["subnetIds"] == ["subnet-a", "subnet-b"]


def test_gpu_groups_tainted_labelled_and_scale_to_zero(rec: Recording) -> None:
    ng = rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-a10g")
    i = ng.inputs
    assert i["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert i["scalingConfig"] == {"minSize": 0.0, "desiredSize": 0.0, "maxSize": 4.0}
    assert i["capacityType"] == "SPOT"
    assert i["amiType"] == "AL2023_x86_64_NVIDIA"
    assert i["instanceTypes"] == ["g5.xlarge", "g5.2xlarge"]
    assert i["labels"]["mlstack.dev/gpu"] == "true"
    assert i["labels"]["team"] == "vision"
    assert i["labels"]["k8s.amazonaws.com/accelerator"] == "nvidia-a10g"
    assert "diskSize" not in i  # the size lives in the launch template (EKS refuses both)
    assert i["nodeGroupNamePrefix"] == "a10g-" and "nodeGroupName" not in i  # create-before-delete works
    assert i["nodeRepairConfig"] == {"enabled": True}
    # cluster-autoscaler owns the node count after creation
    assert "scalingConfig.desiredSize" in ng.options["ignoreChanges"]
    system = rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-system").inputs
    assert not system.get("taints")
    assert system["scalingConfig"]["minSize"] >= 1


def test_imdsv2_required_with_hop_limit_one(rec: Recording) -> None:
    templates = rec.by_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert len(templates) == 3  # system + two GPU groups
    for lt in templates:
        md = lt.inputs["metadataOptions"]
        assert md["httpTokens"] == "required"
        assert md["httpPutResponseHopLimit"] == 1.0
        ebs = lt.inputs["blockDeviceMappings"][0]["ebs"]
        assert ebs["encrypted"] == "true" and ebs["volumeType"] == "gp3"
    ng = rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-a10g")
    lt = rec.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-a10g")
    assert ng.inputs["launchTemplate"]["id"] == lt.id
    assert lt.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 300.0
    assert lt.inputs["blockDeviceMappings"][0]["deviceName"] == "/dev/xvda"
    # Bottlerocket keeps images on its data volume
    br = rec.one("aws:ec2/launchTemplate:LaunchTemplate", "gpu-l4")
    assert br.inputs["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"


def test_hop_limit_two_on_request(pulumi_run) -> None:
    rec = build(pulumi_run, {"gpu_node_groups": [GROUP], "imds_hop_limit": 2})
    for lt in rec.by_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert lt.inputs["metadataOptions"]["httpPutResponseHopLimit"] == 2.0


def test_oidc_provider_and_jobs_irsa_trust_pinned(rec: Recording) -> None:
    oidc = rec.one("aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    issuer = oidc.inputs["url"]
    assert issuer.startswith("https://oidc.eks.")
    trust = json.loads(rec.one("aws:iam/role:Role", "gpu-jobs").inputs["assumeRolePolicy"])
    (stmt,) = trust["Statement"]
    host = issuer.removeprefix("https://")
    assert stmt["Principal"] == {"Federated": oidc.state["arn"]}
    assert stmt["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert stmt["Condition"] == {
        "StringEquals": {
            f"{host}:sub": "system:serviceaccount:ml-jobs:mlstack-jobs",
            f"{host}:aud": "sts.amazonaws.com",
        }
    }
    sa = rec.one("kubernetes:core/v1:ServiceAccount", "gpu-jobs")
    assert sa.inputs["metadata"]["namespace"] == "ml-jobs"
    assert (
        sa.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        == rec.one("aws:iam/role:Role", "gpu-jobs").state["arn"]
    )
    # the jobs role has no policy of its own: only owners' grants give it access
    assert not [p for p in rec.by_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == "gpu-jobs"]


def test_vpc_cni_uses_its_own_irsa_role_not_the_node_role(rec: Recording) -> None:
    cni = rec.one("aws:eks/addon:Addon", "gpu-vpc-cni")
    role = rec.one("aws:iam/role:Role", "gpu-vpc-cni")
    assert cni.inputs["serviceAccountRoleArn"] == role.state["arn"]
    assert "system:serviceaccount:kube-system:aws-node" in role.inputs["assumeRolePolicy"]
    node_policies = [
        a.inputs["policyArn"]
        for a in rec.by_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == "gpu-node"
    ]
    assert not any("CNI" in p for p in node_policies)


def test_device_plugin_pinned_tolerates_taint_and_skips_bottlerocket(rec: Recording) -> None:
    from mlstack.components.compute import versions

    ds = rec.one("kubernetes:apps/v1:DaemonSet")
    pod = ds.inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == versions.NVIDIA_DEVICE_PLUGIN_IMAGE
    assert ":latest" not in versions.NVIDIA_DEVICE_PLUGIN_IMAGE
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    exprs = terms["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "mlstack.dev/device-plugin", "operator": "In", "values": ["daemonset"]} in exprs
    labels = {
        ng.name: ng.inputs["labels"]["mlstack.dev/device-plugin"]
        for ng in rec.by_type("aws:eks/nodeGroup:NodeGroup")
        if "mlstack.dev/gpu" in ng.inputs["labels"]
    }
    assert labels == {"gpu-a10g": "daemonset", "gpu-l4": "os"}


def test_no_device_plugin_daemonset_when_only_bottlerocket(pulumi_run) -> None:
    rec = build(pulumi_run, {"gpu_node_groups": [{**GROUP, "ami_type": "BOTTLEROCKET_x86_64_NVIDIA"}]})
    assert not rec.by_type("kubernetes:apps/v1:DaemonSet")


def test_scale_from_zero_node_template_tags(rec: Recording) -> None:
    tags = {
        t.inputs["tag"]["key"]: t.inputs["tag"]["value"]
        for t in rec.by_type("aws:autoscaling/tag:Tag")
        if t.name.startswith("gpu-a10g-")
    }
    prefix = "k8s.io/cluster-autoscaler/node-template"
    assert tags[f"{prefix}/taint/nvidia.com/gpu"] == "true:NoSchedule"
    assert tags[f"{prefix}/label/mlstack.dev/gpu"] == "true"
    assert tags[f"{prefix}/label/team"] == "vision"
    assert tags[f"{prefix}/resources/nvidia.com/gpu"] == "1"
    asg = rec.by_type("aws:autoscaling/tag:Tag")[0].inputs["autoscalingGroupName"]
    assert asg == "eks-gpu-a10g-asg" or asg.startswith("eks-")


def test_cluster_autoscaler_pinned_and_scoped(rec: Recording) -> None:
    from mlstack.components.compute import versions

    dep = rec.one("kubernetes:apps/v1:Deployment")
    c = dep.inputs["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == versions.CLUSTER_AUTOSCALER_IMAGES[versions.DEFAULT_KUBERNETES_VERSION]
    cluster_name = rec.one("aws:eks/cluster:Cluster").inputs["name"]
    assert any(f"k8s.io/cluster-autoscaler/{cluster_name}" in a for a in c["command"])
    policy = json.loads(rec.one("aws:iam/rolePolicy:RolePolicy", "gpu-autoscaler").inputs["policy"])
    resize = next(s for s in policy["Statement"] if s["Sid"] == "ResizeOwnedGroups")
    assert resize["Condition"] == {
        "StringEquals": {f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned"}
    }
    trust = rec.one("aws:iam/role:Role", "gpu-autoscaler").inputs["assumeRolePolicy"]
    assert "system:serviceaccount:kube-system:cluster-autoscaler" in trust


def test_node_auto_repair_with_monitoring_agent(rec: Recording, pulumi_run) -> None:
    assert (
        rec.one("aws:eks/addon:Addon", "gpu-node-monitoring").inputs["addonName"]
        == "eks-node-monitoring-agent"
    )
    off = build(pulumi_run, {"gpu_node_groups": [GROUP], "node_auto_repair": False})
    assert not [a for a in off.by_type("aws:eks/addon:Addon") if a.name == "gpu-node-monitoring"]
    assert all(
        ng.inputs["nodeRepairConfig"] == {"enabled": False}
        for ng in off.by_type("aws:eks/nodeGroup:NodeGroup")
    )


def test_jobs_gpu_quota(pulumi_run) -> None:
    keep: dict[str, Any] = {}
    rec = build(pulumi_run, {"gpu_node_groups": [GROUP], "jobs_gpu_quota": 3}, keep)
    quota = rec.one("kubernetes:core/v1:ResourceQuota").inputs
    assert quota["metadata"]["namespace"] == "ml-jobs"
    assert quota["spec"] == {"hard": {"requests.nvidia.com/gpu": "3"}}
    assert keep["cluster"].max_gpus == 4  # 4 x g5.xlarge (1 GPU)


def test_autoscaler_can_be_turned_off(pulumi_run) -> None:
    rec = build(pulumi_run, {"gpu_node_groups": [GROUP], "cluster_autoscaler": False, "device_plugin": False})
    assert not rec.by_type("kubernetes:apps/v1:Deployment")
    assert not rec.by_type("aws:autoscaling/tag:Tag")
    assert not rec.by_type("kubernetes:apps/v1:DaemonSet")


def test_manifest_section_matches_the_node_groups(rec: Recording) -> None:
    from mlstack.manifest import KubernetesCompute

    m = rec.stack_outputs["manifest"]
    section = KubernetesCompute.model_validate(m)
    assert section.namespace == "ml-jobs" and section.service_account == "mlstack-jobs"
    assert section.region == "us-east-1"
    assert section.gpu.resource == "nvidia.com/gpu"
    # the selector matches every GPU group's labels, and the tolerations tolerate its taints
    for ng in rec.by_type("aws:eks/nodeGroup:NodeGroup"):
        if ng.inputs.get("taints"):
            assert section.gpu.node_selector.items() <= ng.inputs["labels"].items()
            for taint in ng.inputs["taints"]:
                assert any(
                    t.key == taint["key"] and t.value == taint["value"] and t.effect == "NoSchedule"
                    for t in section.gpu.tolerations
                )
    assert not contains_secret(m)


def test_kubeconfig_is_secret_and_holds_no_token(rec: Recording) -> None:
    kc = rec.stack_outputs["kubeconfig"]
    assert is_secret(kc)
    doc = json.loads(unwrap_secrets(kc))
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_["command"] == "aws" and "get-token" in exec_["args"]
    assert "token" not in doc["users"][0]["user"]
    comp = rec.one("mlstack:index:EksGpuCluster")
    assert is_secret(comp.outputs["kubeconfig"])
    provider = rec.one("pulumi:providers:kubernetes")
    assert is_secret(provider.inputs["kubeconfig"])
    # every Kubernetes object goes through this cluster's provider
    for r in rec.resources:
        if r.type.startswith("kubernetes:"):
            assert r.options["provider"].startswith(provider.urn), r.name


def test_gpu_specs_for_cost_and_quota(rec: Recording) -> None:
    specs = rec.stack_outputs["specs"]
    a10g = next(s for s in specs if s["name"] == "a10g")
    assert a10g["gpus_per_node"] == 1 and a10g["gpu_model"] == "A10G"
    assert a10g["max_size"] == 4 and a10g["capacity_type"] == "SPOT"
    l4 = next(s for s in specs if s["name"] == "l4")
    assert l4["min_size"] == 0 and l4["desired_size"] == 0 and l4["max_size"] == 2


def test_grants_go_to_the_jobs_role_only(pulumi_run) -> None:
    store, data = FakeStore(), FakeData()
    keep: dict[str, Any] = {}
    build(pulumi_run, {"gpu_node_groups": [GROUP], "artifact_store": store, "data_layer": data}, keep)
    jobs_role = keep["cluster"].jobs_role
    # grant_write already includes read: one grant, not two overlapping inline policies
    assert [(k, r is jobs_role) for k, r in store.granted] == [("write", True)]
    assert data.granted == [jobs_role]


def test_grants_with_the_real_artifact_store(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import EksGpuCluster, S3ArtifactStore

        store = S3ArtifactStore("art", {})
        EksGpuCluster("gpu", {"gpu_node_groups": [GROUP], "artifact_store": store})

    rec = pulumi_run(program)
    policies = [p for p in rec.by_type("aws:iam/rolePolicy:RolePolicy") if p.inputs["role"] == "gpu-jobs"]
    assert len(policies) == 1, [p.name for p in policies]  # one policy per (role, store): write includes read
    actions = {a for p in policies for s in json.loads(p.inputs["policy"])["Statement"] for a in s["Action"]}
    assert "s3:GetObject" in actions and "s3:PutObject" in actions
    assert not any(a in actions for a in ("s3:*", "s3:DeleteBucket", "s3:PutBucketPolicy"))


def test_defaults_give_one_gpu_group(pulumi_run) -> None:
    rec = build(pulumi_run, {})
    ng = rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-gpu")
    assert ng.inputs["instanceTypes"] == ["g5.xlarge"]
    assert ng.inputs["scalingConfig"]["minSize"] == 0.0
    assert rec.one("aws:eks/cluster:Cluster").inputs["upgradePolicy"] == {"supportType": "STANDARD"}


def test_admin_roles_get_access_entries(pulumi_run) -> None:
    arn = "arn:aws:iam::123456789012:role/platform-admins"
    rec = build(pulumi_run, {"gpu_node_groups": [GROUP], "admin_role_arns": [arn]})
    entries = [e for e in rec.by_type("aws:eks/accessEntry:AccessEntry") if e.inputs["principalArn"] == arn]
    assert len(entries) == 1
    assoc = rec.one("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    assert assoc.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy")


# ---------------------------------------------------------------- validation
def _problems(pulumi_run, args: dict[str, Any]) -> list[tuple[str, Any, str]]:
    from mlstack.components._args import InputPropertiesError

    with pytest.raises(Exception) as info:
        build(pulumi_run, args)
    err = info.value
    while not isinstance(err, InputPropertiesError) and err.__cause__ is not None:
        err = err.__cause__  # type: ignore[assignment]
    assert isinstance(err, InputPropertiesError), repr(info.value)
    return err.problems


def test_every_problem_reported_at_once(pulumi_run) -> None:
    problems = _problems(
        pulumi_run,
        {
            "gpu_node_groups": [
                {
                    "name": "a",
                    "instance_types": ["g5.xlarg"],
                    "min_size": 3,
                    "desired_size": 1,
                    "max_size": 2,
                },
                {
                    "name": "a",
                    "instance_types": ["m6i.large"],
                    "capacity_type": "RESERVED",
                    "ami_type": "AL2_x86_64_GPU",
                },
            ],
            "public_access_cidrs": ["0.0.0.0/0"],
            "log_types": ["api"],
            "imds_hop_limit": 3,
            "jobs_namespace": "kube-system",
            "typo_arg": 1,
        },
    )
    paths = [p for p, _, _ in problems]
    text = "\n".join(f"{p}: {v!r} {w}" for p, v, w in problems)
    assert "gpu_node_groups[0].instance_types[0]" in paths and "g5.xlarge" in text  # suggestion
    assert "gpu_node_groups[0]" in paths  # min <= desired <= max
    assert "gpu_node_groups[1].name" in paths  # duplicate
    assert "gpu_node_groups[1].instance_types[0]" in paths and "not a GPU instance type" in text
    assert "gpu_node_groups[1].capacity_type" in paths
    assert "gpu_node_groups[1].ami_type" in paths
    assert "public_access_cidrs[0]" in paths
    assert "log_types" in paths and "audit" in text
    assert "imds_hop_limit" in paths
    assert "jobs_namespace" in paths
    assert "typo_arg" in paths


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ({"gpu_node_groups": []}, "gpu_node_groups"),
        (
            {"gpu_node_groups": [{**GROUP, "instance_types": ["g5.xlarge", "g5.12xlarge"]}]},
            "gpu_node_groups[0].instance_types",
        ),
        (
            {"gpu_node_groups": [{**GROUP, "labels": {"mlstack.dev/gpu": "false"}}]},
            "gpu_node_groups[0].labels.mlstack.dev/gpu",
        ),
        ({"gpu_node_groups": [{**GROUP, "ami_type": "AL2023_ARM_64_NVIDIA"}]}, "gpu_node_groups[0].ami_type"),
        ({"gpu_node_groups": [{**GROUP, "max_size": 0}]}, "gpu_node_groups[0].max_size"),
        ({"gpu_node_groups": [{**GROUP, "disk_size_gib": 5}]}, "gpu_node_groups[0].disk_size_gib"),
        ({"gpu_node_groups": [GROUP], "vpc_id": "vpc-1"}, "private_subnet_ids"),
        (
            {
                "gpu_node_groups": [GROUP],
                "vpc_id": "vpc-1",
                "private_subnet_ids": ["subnet-a", "subnet-b"],
                "nat_gateways": "per_zone",
            },
            "nat_gateways",
        ),
        (
            {"gpu_node_groups": [GROUP], "vpc_id": "vpc-1", "private_subnet_ids": ["subnet-a"]},
            "private_subnet_ids",
        ),
        ({"gpu_node_groups": [GROUP], "kubernetes_version": "1.20"}, "kubernetes_version"),
        (
            {"gpu_node_groups": [GROUP], "system_node_group": {"instance_types": ["g5.xlarge"]}},
            "system_node_group.instance_types",
        ),
        ({"gpu_node_groups": [GROUP], "system_node_group": {"min_size": 0}}, "system_node_group.min_size"),
        ({"gpu_node_groups": [GROUP], "vpc_cidr": "8.8.0.0/16"}, "vpc_cidr"),
        ({"gpu_node_groups": [GROUP], "availability_zones": ["us-east-1a"]}, "availability_zones"),
        ({"gpu_node_groups": [GROUP], "log_retention_days": 42}, "log_retention_days"),
        ({"gpu_node_groups": [GROUP], "admin_role_arns": ["admin"]}, "admin_role_arns[0]"),
        ({"gpu_node_groups": [GROUP], "artifact_store": object()}, "artifact_store"),
        ({"gpu_node_groups": [GROUP], "jobs_gpu_quota": -1}, "jobs_gpu_quota"),
    ],
)
def test_contradictions_refused(pulumi_run, args: dict[str, Any], path: str) -> None:
    paths = [p for p, _, _ in _problems(pulumi_run, args)]
    assert path in paths, paths


def test_gpu_table_describes_types() -> None:
    from mlstack.components.compute import gpu_types

    assert gpu_types.gpu_type("g5.xlarge").gpus == 1  # type: ignore[union-attr]
    assert gpu_types.gpu_type("m6i.large") is None
    assert "g5.xlarge" in gpu_types.suggest("g5.xlarg")
    line = gpu_types.describe("g5.xlarge")
    assert "A10G" in line and "$1.006/h" in line and "2026-07-20" in line
    rows = gpu_types.rows()
    assert {r["instance_type"] for r in rows} >= {"g5.xlarge", "p5.48xlarge", "g6e.xlarge"}
    assert all(r["gpus"] > 0 for r in rows)


def test_args_document_their_defaults() -> None:
    import ast
    import inspect

    from mlstack.components.compute import eks
    from mlstack.components.orchestrator import argo

    tree = _astutil.parse(inspect.getsource(eks) + "\n" + inspect.getsource(argo))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Args"):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    doc = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), (
                        f"{node.name}.{stmt.target.id} has no docstring"  # type: ignore[union-attr]
                    )
                    text = doc.value.value
                    assert "Default" in text or "Required" in text, f"{node.name}: {text!r}"


def test_docs_gpu_table_matches_the_shipped_table() -> None:
    from pathlib import Path

    from mlstack.components.compute import gpu_types

    doc = (Path(__file__).resolve().parents[2] / "docs" / "compute.md").read_text()
    start, end = "<!-- gpu-table:start -->\n", "<!-- gpu-table:end -->"
    embedded = doc[doc.index(start) + len(start) : doc.index(end)]
    assert embedded == gpu_types.markdown_table(), "regenerate the table in docs/compute.md"


# ---------------------------------------------------------------- bring your own cluster
EXISTING = {
    "cluster_name": "platform",
    "oidc_provider_arn": "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/ABC",
    "oidc_issuer_url": "https://oidc.eks.us-east-1.amazonaws.com/id/ABC",
    "cluster_endpoint": "https://ABC.gr7.us-east-1.eks.amazonaws.com",
    "certificate_authority_data": "LS0tLS1CRUdJTg==",
}


def test_existing_cluster_adds_only_the_jobs_identity(pulumi_run) -> None:
    store = FakeStore()
    keep: dict[str, Any] = {}

    def program() -> None:
        import pulumi

        from mlstack.components import EksGpuCluster

        c = EksGpuCluster.from_existing("byo", {**EXISTING, "artifact_store": store})
        keep["c"] = c
        pulumi.export("manifest", c.manifest_section)

    rec = pulumi_run(program)
    assert rec.one("mlstack:index:ExistingEksCluster")
    assert not rec.by_type("aws:eks/cluster:Cluster") and not rec.by_type("aws:eks/nodeGroup:NodeGroup")
    assert not rec.by_type("kubernetes:apps/v1:DaemonSet")  # the cluster runs its own device plugin
    trust = json.loads(rec.one("aws:iam/role:Role", "byo-jobs").inputs["assumeRolePolicy"])
    (stmt,) = trust["Statement"]
    assert stmt["Principal"] == {"Federated": EXISTING["oidc_provider_arn"]}
    assert stmt["Condition"]["StringEquals"] == {
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:sub": "system:serviceaccount:ml-jobs:mlstack-jobs",
        "oidc.eks.us-east-1.amazonaws.com/id/ABC:aud": "sts.amazonaws.com",
    }
    assert [k for k, _ in store.granted] == ["write"]
    assert all(r is keep["c"].jobs_role for _, r in store.granted)
    m = rec.stack_outputs["manifest"]
    assert m["cluster_name"] == "platform" and m["namespace"] == "ml-jobs"
    assert m["gpu"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert m["gpu"]["node_selector"] == {}
    kc = json.loads(unwrap_secrets(rec.one("pulumi:providers:kubernetes").inputs["kubeconfig"]))
    assert kc["clusters"][0]["cluster"]["server"] == EXISTING["cluster_endpoint"]


def test_existing_cluster_with_argo(pulumi_run) -> None:
    def program() -> None:
        from mlstack.components import ArgoWorkflows, EksGpuCluster

        c = EksGpuCluster.from_existing("byo", dict(EXISTING))
        ArgoWorkflows("argo", {"cluster": c})

    rec = pulumi_run(program)
    values = rec.one("kubernetes:helm.sh/v3:Release").inputs["values"]
    # no mlstack system group in a foreign cluster: Argo must not wait for one
    assert values["controller"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert values["controller"]["workflowDefaults"]["spec"]["tolerations"][0]["operator"] == "Exists"


@pytest.mark.parametrize(
    ("args", "path"),
    [
        ({k: v for k, v in EXISTING.items() if k != "oidc_provider_arn"}, "oidc_provider_arn"),
        ({k: v for k, v in EXISTING.items() if k != "cluster_endpoint"}, "cluster_endpoint"),
        ({**EXISTING, "oidc_issuer_url": "oidc.eks.us-east-1.amazonaws.com/id/ABC"}, "oidc_issuer_url"),
        ({**EXISTING, "gpu_tolerations": [{"operator": "Sometimes"}]}, "gpu_tolerations[0]"),
        ({**EXISTING, "jobs_namespace": "default"}, "jobs_namespace"),
        ({**EXISTING, "node_groups": []}, "node_groups"),
    ],
)
def test_existing_cluster_refuses(pulumi_run, args: dict[str, Any], path: str) -> None:
    from mlstack.components._args import InputPropertiesError

    def program() -> None:
        from mlstack.components import EksGpuCluster

        EksGpuCluster.from_existing("byo", args)  # type: ignore[arg-type]

    with pytest.raises(Exception) as info:
        pulumi_run(program)
    err: BaseException | None = info.value
    while err is not None and not isinstance(err, InputPropertiesError):
        err = err.__cause__
    assert err is not None and path in [p for p, _, _ in err.problems], repr(info.value)  # type: ignore[attr-defined]


def test_subnets_as_one_output_and_odd_project_names(pulumi_run) -> None:
    def program() -> None:
        import pulumi

        from mlstack.components import EksGpuCluster

        EksGpuCluster(
            "gpu",
            {
                "gpu_node_groups": [GROUP],
                "vpc_id": pulumi.Output.from_input("vpc-1"),
                "private_subnet_ids": pulumi.Output.from_input(["subnet-a", "subnet-b"]),
            },
        )

    rec = pulumi_run(program)
    assert rec.one("aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"] == ["subnet-a", "subnet-b"]
    assert rec.one("aws:eks/nodeGroup:NodeGroup", "gpu-a10g").inputs["subnetIds"] == ["subnet-a", "subnet-b"]

    from mlstack.plan import mock_runtime

    rec2 = mock_runtime.run(lambda: program(), project="my.project", stack="dev.1")
    assert rec2.one("aws:eks/cluster:Cluster").inputs["name"] == "my-project-dev-1-gpu"


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_aws_input_is_a_real_provider_argument(rec: Recording) -> None:
    """The mock runtime accepts any key; the real provider would reject a misspelt one at `pulumi up`."""
    import importlib
    import inspect

    checked = 0
    for r in rec.resources:
        if not r.type.startswith("aws:"):
            continue
        _, module_path, cls_name = r.type.split(":")
        module = importlib.import_module(f"pulumi_aws.{module_path.split('/')[0]}")
        args_cls = getattr(module, f"{cls_name}Args")
        allowed = set(inspect.signature(args_cls.__init__).parameters) - {"self"}
        unknown = {k for k in r.inputs if _snake(k) not in allowed and k not in ("name", "__defaults")}
        assert not unknown, f"{r.type} {r.name}: {unknown}"
        checked += 1
    assert checked > 40


@pytest.mark.parametrize(
    ("args_cls", "used"),
    [
        (
            "eks.ClusterVpcConfigArgs",
            {"subnet_ids", "endpoint_private_access", "endpoint_public_access", "public_access_cidrs"},
        ),
        (
            "eks.ClusterAccessConfigArgs",
            {"authentication_mode", "bootstrap_cluster_creator_admin_permissions"},
        ),
        (
            "ec2.LaunchTemplateMetadataOptionsArgs",
            {"http_endpoint", "http_tokens", "http_put_response_hop_limit", "instance_metadata_tags"},
        ),
        (
            "ec2.LaunchTemplateBlockDeviceMappingEbsArgs",
            {"volume_size", "volume_type", "encrypted", "delete_on_termination"},
        ),
        ("eks.NodeGroupScalingConfigArgs", {"min_size", "desired_size", "max_size"}),
        ("eks.NodeGroupNodeRepairConfigArgs", {"enabled"}),
        ("autoscaling.TagTagArgs", {"key", "value", "propagate_at_launch"}),
        ("eks.ClusterUpgradePolicyArgs", {"support_type"}),
    ],
)
def test_nested_inputs_are_real_provider_fields(args_cls: str, used: set[str]) -> None:
    import importlib
    import inspect

    module, cls = args_cls.split(".")
    params = set(
        inspect.signature(getattr(importlib.import_module(f"pulumi_aws.{module}"), cls).__init__).parameters
    )
    assert used <= params, used - params
