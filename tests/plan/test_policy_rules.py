"""Each built-in rule fires on a bad resource and stays quiet on a good one (small raw-resource programs)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from mlstack.plan import mock_runtime
from mlstack.plan.policy import RULES, evaluate
from mlstack.plan.policy.engine import load_rules

TLS_DENY = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": "*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


def _fired(program: Callable[[], Any]) -> dict[str, list[str]]:
    rec = mock_runtime.run(program, project="rules", stack="t")
    out: dict[str, list[str]] = {}
    for f in evaluate(rec):
        out.setdefault(f.rule_id, []).append(f.message)
    return out


# ---------------------------------------------------------------- S3
def _bucket(
    *,
    pab: bool = True,
    sse: bool = True,
    versioning: str = "Enabled",
    tls: bool = True,
    ownership: str = "BucketOwnerEnforced",
    acl: str | None = None,
    force_destroy: bool = False,
    retain: bool = True,
    extra_statement: dict | None = None,
) -> None:
    import pulumi
    import pulumi_aws as aws

    b = aws.s3.Bucket(
        "b",
        bucket="bkt",
        force_destroy=force_destroy,
        acl=acl,
        opts=pulumi.ResourceOptions(retain_on_delete=retain),
    )
    if pab:
        aws.s3.BucketPublicAccessBlock(
            "pab",
            bucket=b.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
    else:
        aws.s3.BucketPublicAccessBlock(
            "pab",
            bucket=b.id,
            block_public_acls=True,
            block_public_policy=False,
            ignore_public_acls=True,
            restrict_public_buckets=True,
        )
    if sse:
        aws.s3.BucketServerSideEncryptionConfiguration(
            "sse",
            bucket=b.id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"},
                    "bucket_key_enabled": True,
                }
            ],
        )
    aws.s3.BucketVersioning("v", bucket=b.id, versioning_configuration={"status": versioning})
    aws.s3.BucketOwnershipControls("o", bucket=b.id, rule={"object_ownership": ownership})
    stmts = ([TLS_DENY] if tls else []) + ([extra_statement] if extra_statement else [])
    if stmts:
        aws.s3.BucketPolicy(
            "p", bucket=b.id, policy=json.dumps({"Version": "2012-10-17", "Statement": stmts})
        )


def _role(trust: dict, policy: dict | None = None, attach: str | None = None) -> None:
    import pulumi_aws as aws

    role = aws.iam.Role("r", assume_role_policy=json.dumps({"Version": "2012-10-17", "Statement": [trust]}))
    if policy is not None:
        aws.iam.RolePolicy(
            "rp", role=role.name, policy=json.dumps({"Version": "2012-10-17", "Statement": [policy]})
        )
    if attach is not None:
        aws.iam.RolePolicyAttachment("ra", role=role.name, policy_arn=attach)


SVC_TRUST = {"Effect": "Allow", "Principal": {"Service": "eks.amazonaws.com"}, "Action": "sts:AssumeRole"}
ISS = "oidc.eks.us-east-1.amazonaws.com/id/ABC"


def _irsa(cond: dict) -> dict:
    return {
        "Effect": "Allow",
        "Principal": {"Federated": f"arn:aws:iam::1:oidc-provider/{ISS}"},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": cond,
    }


def _key(rotation: bool = True, window: int = 30, principal: Any = None) -> None:
    import pulumi_aws as aws

    policy = None
    if principal is not None:
        policy = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": principal, "Action": "kms:*", "Resource": "*"}
                ],
            }
        )
    aws.kms.Key("k", enable_key_rotation=rotation, deletion_window_in_days=window, policy=policy)


def _cluster(
    *,
    public: bool = False,
    cidrs: list[str] | None = None,
    private: bool = True,
    secrets: bool = True,
    logs: tuple[str, ...] = ("api", "audit", "authenticator"),
    oidc: bool = True,
) -> None:
    import pulumi_aws as aws

    aws.eks.Cluster(
        "c",
        role_arn="arn:aws:iam::1:role/c",
        vpc_config={
            "subnet_ids": ["s1", "s2"],
            "endpoint_public_access": public,
            "endpoint_private_access": private,
            "public_access_cidrs": cidrs,
        },
        encryption_config={"resources": ["secrets"], "provider": {"key_arn": "arn:aws:kms:us-east-1:1:key/k"}}
        if secrets
        else None,
        enabled_cluster_log_types=list(logs),
    )
    if oidc:
        aws.iam.OpenIdConnectProvider("oidc", url=f"https://{ISS}", client_id_lists=["sts.amazonaws.com"])


def _nodegroup(
    *, types: list[str], taint: bool = True, ami: str = "AL2023_x86_64_NVIDIA", ssh: str | None = None
) -> None:
    import pulumi_aws as aws

    aws.eks.NodeGroup(
        "ng",
        cluster_name="c",
        node_role_arn="arn:aws:iam::1:role/n",
        subnet_ids=["s1"],
        instance_types=types,
        ami_type=ami,
        scaling_config={"min_size": 0, "max_size": 2, "desired_size": 0},
        taints=[{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}] if taint else None,
        remote_access={"ec2_ssh_key": ssh} if ssh else None,
    )


def _lt(tokens: str | None = "required", hop: int = 1, encrypted: bool = True) -> None:
    import pulumi_aws as aws

    aws.ec2.LaunchTemplate(
        "lt",
        metadata_options={
            "http_tokens": tokens,
            "http_put_response_hop_limit": hop,
            "http_endpoint": "enabled",
        },
        block_device_mappings=[
            {
                "device_name": "/dev/xvda",
                "ebs": {"volume_size": 100, "encrypted": "true" if encrypted else "false"},
            }
        ],
    )


def _sg(cidr: str) -> None:
    import pulumi_aws as aws

    aws.ec2.SecurityGroup(
        "sg",
        vpc_id="vpc-1",
        ingress=[{"protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_blocks": [cidr]}],
    )


def _sg_rule(cidr: str) -> None:
    import pulumi_aws as aws

    aws.vpc.SecurityGroupIngressRule(
        "in", security_group_id="sg-1", ip_protocol="tcp", from_port=443, to_port=443, cidr_ipv4=cidr
    )


def _k8s(kind: str, **kw: Any) -> None:
    import pulumi_kubernetes as k8s

    meta = {"name": "x", "namespace": "ml"}
    if kind == "ds":
        c = {
            "name": "c",
            "image": kw.get("image", "nvcr.io/nvidia/k8s-device-plugin:v0.17.0"),
            "security_context": {"privileged": kw.get("privileged", False)},
        }
        k8s.apps.v1.DaemonSet(
            "ds",
            metadata=meta,
            spec={
                "selector": {"match_labels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [c], "host_network": kw.get("host_network", False)},
                },
            },
        )
    elif kind == "crb":
        k8s.rbac.v1.ClusterRoleBinding(
            "crb",
            metadata={"name": "x"},
            role_ref={"api_group": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": kw["role"]},
            subjects=[{"kind": "ServiceAccount", "name": "jobs", "namespace": "ml"}],
        )
    elif kind == "role":
        k8s.rbac.v1.Role(
            "role",
            metadata=meta,
            rules=[{"api_groups": [""], "resources": kw["resources"], "verbs": kw["verbs"]}],
        )
    elif kind == "release":
        k8s.helm.v3.Release(
            "argo",
            chart=kw.get("chart", "argo-workflows"),
            version=kw.get("version"),
            repository_opts={"repo": "https://argoproj.github.io/argo-helm"},
            values=kw.get("values", {}),
        )


def _configmap(data: dict) -> None:
    import pulumi_kubernetes as k8s

    k8s.core.v1.ConfigMap("cm", metadata={"name": "cm", "namespace": "ml"}, data=data)


GOOD_ARGO = {
    "server": {"authModes": ["client"], "serviceType": "ClusterIP"},
    "artifactRepository": {"s3": {"bucket": "b", "useSDKCreds": True}},
}


# ---------------------------------------------------------------- hardening (issue #11)
NON_ROOT = {"runAsNonRoot": True, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}}
DIGEST = "@sha256:" + "a" * 64


def _namespace(enforce: str | None = "restricted", policies: bool = True) -> None:
    import pulumi_kubernetes as k8s

    labels = {"pod-security.kubernetes.io/enforce": enforce} if enforce else {}
    k8s.core.v1.Namespace("ns", metadata={"name": "ml", "labels": labels})
    if policies:
        k8s.networking.v1.NetworkPolicy(
            "deny",
            metadata={"name": "default-deny-ingress", "namespace": "ml"},
            spec={"pod_selector": {}, "policy_types": ["Ingress"]},
        )
        k8s.networking.v1.NetworkPolicy(
            "egress",
            metadata={"name": "egress", "namespace": "ml"},
            spec={
                "pod_selector": {},
                "policy_types": ["Egress"],
                "egress": [{"ports": [{"protocol": "TCP", "port": 443}]}],
            },
        )


def _workflow_template(root_step: bool = False, pod: dict | None = None) -> None:
    import pulumi_kubernetes as k8s

    step = {"name": "train", "container": {"image": "ghcr.io/acme/ml:1" + DIGEST}}
    if root_step:
        step["securityContext"] = {"runAsNonRoot": False, "runAsUser": 0}
    k8s.apiextensions.CustomResource(
        "wt",
        api_version="argoproj.io/v1alpha1",
        kind="WorkflowTemplate",
        metadata={"name": "churn", "namespace": "ml"},
        spec={
            "entrypoint": "train",
            "securityContext": NON_ROOT if pod is None else pod,
            "templates": [step],
        },
    )


def _cni(config: str | None) -> None:
    import pulumi_aws as aws

    aws.eks.Addon("cni", cluster_name="c", addon_name="vpc-cni", configuration_values=config)


ARGO_PINNED = {
    **GOOD_ARGO,
    "controller": {
        "image": {"tag": "v4.0.8" + DIGEST},
        "workflowDefaults": {"spec": {"securityContext": NON_ROOT}},
    },
    "server": {**GOOD_ARGO["server"], "image": {"tag": "v4.0.8" + DIGEST}},
    "executor": {"image": {"tag": "v4.0.8" + DIGEST}},
    "crds": {"upgradeJob": {"image": {"tag": "v1.36.2" + DIGEST}}},
}


def _sf(kind: str, **kw: Any) -> None:
    import pulumi
    import pulumi_snowflake as sf

    if kind == "grant_role":
        sf.GrantAccountRole("g", role_name=kw["role"], parent_role_name=kw.get("parent", "ML_READER"))
    elif kind == "grant_priv":
        sf.GrantPrivilegesToAccountRole(
            "gp",
            account_role_name="ML_READER",
            all_privileges=kw.get("all"),
            privileges=kw.get("privileges"),
            on_account=True,
        )
    elif kind == "user":
        sf.ServiceUser(
            "u",
            name="SVC",
            rsa_public_key="MIIB",
            **({"password": kw["password"]} if "password" in kw else {}),
        )
    elif kind == "user_pw":
        sf.LegacyServiceUser("u", name="SVC", password="hunter2")
    elif kind == "warehouse":
        sf.Warehouse("wh", name="WH", warehouse_size="XSMALL", auto_suspend=kw["suspend"])
    elif kind == "database":
        sf.Database("db", name="ML", opts=pulumi.ResourceOptions(retain_on_delete=kw["retain"]))


def _dbx(kind: str, **kw: Any) -> None:
    import pulumi
    import pulumi_databricks as dbx

    if kind == "sql":
        dbx.SqlEndpoint("wh", name="wh", cluster_size="2X-Small", auto_stop_mins=kw["stop"])
    elif kind == "policy":
        dbx.ClusterPolicy("p", name="gpu", definition=json.dumps(kw["definition"]))
    elif kind == "grants":
        dbx.Grants("g", catalog="ml", grants=[{"principal": "sp", "privileges": kw["privileges"]}])
    elif kind == "token":
        dbx.Token("t", comment="ci")
    elif kind == "catalog":
        dbx.Catalog(
            "cat",
            name="ml",
            force_destroy=kw.get("force", False),
            opts=pulumi.ResourceOptions(retain_on_delete=kw["retain"]),
        )


def _outputs(value: Any, key: str = "db_password") -> None:
    import pulumi
    import pulumi_aws as aws

    aws.s3.Bucket("anchor", bucket="anchor")
    pulumi.export(key, value)


def _secret_output() -> None:
    import pulumi

    _outputs(pulumi.Output.secret("hunter2"))


GOOD_MANIFEST = {
    "version": 1,
    "project": "p",
    "stack": "s",
    "artifacts": {"kind": "s3", "bucket": "my-bucket", "prefix": "ml", "region": "us-east-1"},
    "data": {
        "kind": "lakehouse",
        "database": "ml",
        "workgroup": "ml",
        "location": "s3://my-bucket/lake",
        "region": "us-east-1",
    },
    "compute": {
        "kind": "kubernetes",
        "cluster_name": "c",
        "region": "us-east-1",
        "namespace": "ml-jobs",
        "service_account": "jobs",
    },
    "orchestrator": {"kind": "argo", "namespace": "argo", "service_account": "wf"},
}
BAD_MANIFEST = {**GOOD_MANIFEST, "data": {**GOOD_MANIFEST["data"], "password": "hunter2"}}


CASES: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
    "S3-001": (lambda: _bucket(pab=False), _bucket),
    "S3-002": (lambda: _bucket(sse=False), _bucket),
    "S3-003": (lambda: _bucket(versioning="Suspended"), _bucket),
    "S3-004": (lambda: _bucket(tls=False), _bucket),
    "S3-005": (lambda: _bucket(ownership="ObjectWriter"), _bucket),
    "S3-006": (lambda: _bucket(acl="public-read"), lambda: _bucket(acl="private")),
    "S3-007": (
        lambda: _bucket(force_destroy=True, retain=False),
        lambda: _bucket(force_destroy=True, retain=True),
    ),
    "S3-008": (
        lambda: _bucket(
            extra_statement={
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bkt/*",
            }
        ),
        lambda: _bucket(
            extra_statement={
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::1:role/r"},
                "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::bkt/*",
            }
        ),
    ),
    "IAM-001": (
        lambda: _role(SVC_TRUST, {"Effect": "Allow", "Action": "*", "Resource": "*"}),
        lambda: _role(
            SVC_TRUST, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ),
    ),
    "IAM-002": (
        lambda: _role(SVC_TRUST, {"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"}),
        lambda: _role(
            SVC_TRUST, {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::b/*"}
        ),
    ),
    "IAM-003": (
        lambda: _role(SVC_TRUST, attach="arn:aws:iam::aws:policy/AdministratorAccess"),
        lambda: _role(SVC_TRUST, attach="arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"),
    ),
    "IAM-004": (
        lambda: _role({"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}),
        lambda: _role(
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "sts:AssumeRole"}
        ),
    ),
    "IAM-005": (
        lambda: _role(_irsa({"StringLike": {f"{ISS}:sub": "system:serviceaccount:*:*"}})),
        lambda: _role(
            _irsa(
                {
                    "StringEquals": {
                        f"{ISS}:sub": "system:serviceaccount:ml:jobs",
                        f"{ISS}:aud": "sts.amazonaws.com",
                    }
                }
            )
        ),
    ),
    "IAM-006": (
        lambda: _role(SVC_TRUST, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*"}),
        lambda: _role(
            SVC_TRUST, {"Effect": "Allow", "Action": "iam:PassRole", "Resource": "arn:aws:iam::1:role/x"}
        ),
    ),
    "IAM-007": (
        lambda: __import__("pulumi_aws").iam.AccessKey("ak", user="bot"),
        lambda: _role(SVC_TRUST),
    ),
    "KMS-001": (lambda: _key(rotation=False), _key),
    "KMS-002": (lambda: _key(principal="*"), lambda: _key(principal={"AWS": "arn:aws:iam::1:root"})),
    "KMS-003": (lambda: _key(window=7), _key),
    "EKS-001": (
        lambda: _cluster(public=True, cidrs=["0.0.0.0/0"]),
        lambda: _cluster(public=True, cidrs=["203.0.113.0/24"]),
    ),
    "EKS-002": (lambda: _cluster(private=False), _cluster),
    "EKS-003": (lambda: _cluster(secrets=False), _cluster),
    "EKS-004": (lambda: _cluster(logs=("api",)), _cluster),
    "EKS-005": (lambda: _cluster(oidc=False), _cluster),
    "EKS-006": (
        lambda: _nodegroup(types=["g5.xlarge"], taint=False),
        lambda: _nodegroup(types=["m6i.large"], taint=False),
    ),
    "EKS-007": (
        lambda: _nodegroup(types=["g5.xlarge"], ami="AL2023_x86_64_STANDARD"),
        lambda: _nodegroup(types=["g5.xlarge"], ami="BOTTLEROCKET_x86_64_NVIDIA"),
    ),
    "EKS-008": (
        lambda: _nodegroup(types=["g5.xlarge"], ssh="ops-key"),
        lambda: _nodegroup(types=["g5.xlarge"]),
    ),
    "EC2-001": (lambda: _lt(tokens="optional"), _lt),
    "EC2-002": (lambda: _lt(hop=3), lambda: _lt(hop=2)),
    "EC2-003": (lambda: _sg("0.0.0.0/0"), lambda: _sg("10.0.0.0/16")),
    "EC2-004": (lambda: _lt(encrypted=False), _lt),
    "K8S-001": (lambda: _k8s("ds", privileged=True), lambda: _k8s("ds")),
    "K8S-002": (lambda: _k8s("ds", image="nginx"), lambda: _k8s("ds", image="registry.k8s.io/pause:3.10")),
    "K8S-003": (lambda: _k8s("crb", role="cluster-admin"), lambda: _k8s("crb", role="view")),
    "K8S-004": (
        lambda: _k8s("role", resources=["*"], verbs=["get"]),
        lambda: _k8s("role", resources=["pods"], verbs=["get", "list"]),
    ),
    "K8S-005": (
        lambda: _k8s("release", values=GOOD_ARGO),
        lambda: _k8s("release", version="0.45.0", values=GOOD_ARGO),
    ),
    "K8S-006": (
        lambda: _configmap({"rsa_key.p8": "-----BEGIN PRIVATE KEY-----\nMII..."}),
        lambda: _configmap({"mlstack.json": '{"version": 1}'}),
    ),
    "ARGO-001": (
        lambda: _k8s("release", version="1", values={**GOOD_ARGO, "server": {"authModes": ["server"]}}),
        lambda: _k8s("release", version="1", values=GOOD_ARGO),
    ),
    "ARGO-002": (
        lambda: _k8s(
            "release",
            version="1",
            values={
                **GOOD_ARGO,
                "artifactRepository": {"s3": {"bucket": "b", "accessKeySecret": {"name": "k", "key": "a"}}},
            },
        ),
        lambda: _k8s("release", version="1", values=GOOD_ARGO),
    ),
    "ARGO-003": (
        lambda: _k8s(
            "release",
            version="1",
            values={**GOOD_ARGO, "server": {"authModes": ["client"], "serviceType": "LoadBalancer"}},
        ),
        lambda: _k8s("release", version="1", values=GOOD_ARGO),
    ),
    "SF-001": (
        lambda: _sf("grant_role", role="ACCOUNTADMIN"),
        lambda: _sf("grant_role", role="ML_READER", parent="SYSADMIN"),
    ),
    "SF-002": (lambda: _sf("grant_priv", all=True), lambda: _sf("grant_priv", privileges=["USAGE"])),
    "SF-003": (lambda: _sf("user_pw"), lambda: _sf("user")),
    "SF-004": (lambda: _sf("warehouse", suspend=0), lambda: _sf("warehouse", suspend=60)),
    "SF-005": (lambda: _sf("database", retain=False), lambda: _sf("database", retain=True)),
    "DBX-001": (lambda: _dbx("sql", stop=0), lambda: _dbx("sql", stop=10)),
    "DBX-002": (
        lambda: _dbx("policy", definition={"spark_version": {"type": "regex", "pattern": ".*-gpu-ml-.*"}}),
        lambda: _dbx("policy", definition={"autotermination_minutes": {"type": "range", "maxValue": 120}}),
    ),
    "DBX-003": (
        lambda: _dbx("grants", privileges=["ALL_PRIVILEGES"]),
        lambda: _dbx("grants", privileges=["USE_CATALOG", "SELECT"]),
    ),
    "DBX-004": (lambda: _dbx("token"), lambda: _dbx("sql", stop=10)),
    "DBX-005": (lambda: _dbx("catalog", retain=False), lambda: _dbx("catalog", retain=True)),
    "ARGO-004": (
        lambda: _workflow_template(root_step=True),
        lambda: (_workflow_template(), _k8s("release", version="1", values=ARGO_PINNED)),
    ),
    "K8S-007": (lambda: _namespace(policies=False), _namespace),
    "K8S-008": (lambda: _namespace(enforce="baseline"), _namespace),
    "K8S-009": (
        lambda: _k8s("release", version="1", values=GOOD_ARGO),
        lambda: (
            _k8s("ds", image="nvcr.io/nvidia/k8s-device-plugin:v0.18.0" + DIGEST),
            _k8s("release", version="1", values=ARGO_PINNED),
        ),
    ),
    "EKS-009": (lambda: _cni(None), lambda: _cni('{"enableNetworkPolicy": "true"}')),
    "OUT-001": (lambda: _outputs("hunter2"), _secret_output),
    "OUT-002": (
        lambda: _outputs(BAD_MANIFEST, key="manifest"),
        lambda: _outputs(GOOD_MANIFEST, key="manifest"),
    ),
}

# rule modules with their own case files (kept apart so lanes adding rules do not collide here)
from tests.plan.karpenter_policy_cases import EXTRA_BAD, KARPENTER_CASES  # noqa: E402

CASES.update(KARPENTER_CASES)


@pytest.mark.parametrize(("rule_id", "bad"), EXTRA_BAD)
def test_rule_fires_on_more_bad_programs(rule_id: str, bad: Callable[[], Any]) -> None:
    assert rule_id in _fired(bad)


def test_every_rule_has_a_case() -> None:
    assert set(load_rules()) == set(CASES), (
        "add a bad/good program for every rule (and no case without a rule)"
    )


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_bad_and_is_quiet_on_good(rule_id: str) -> None:
    bad, good = CASES[rule_id]
    fired = _fired(bad)
    assert rule_id in fired, f"{rule_id} did not fire on its bad program; fired: {sorted(fired)}"
    assert all(m for m in fired[rule_id])
    quiet = _fired(good)
    assert rule_id not in quiet, f"{rule_id} fired on its good program: {quiet[rule_id]}"


def test_findings_carry_rule_severity_resource_and_fix() -> None:
    rec = mock_runtime.run(lambda: _cluster(public=True, cidrs=["0.0.0.0/0"]), project="rules", stack="t")
    f = next(x for x in evaluate(rec) if x.rule_id == "EKS-001")
    d = f.to_dict()
    assert d["severity"] == "high" == RULES["EKS-001"].severity
    assert d["resource"]["type"] == "aws:eks/cluster:Cluster"
    assert d["resource"]["urn"].endswith("aws:eks/cluster:Cluster::c")
    assert d["fix"] and "public_access_cidrs" in d["fix"]


def test_skip_drops_a_rule() -> None:
    rec = mock_runtime.run(lambda: _key(window=7), project="rules", stack="t")
    assert "KMS-003" in {f.rule_id for f in evaluate(rec)}
    assert "KMS-003" not in {f.rule_id for f in evaluate(rec, skip=["KMS-003"])}


def test_findings_sorted_high_first() -> None:
    rec = mock_runtime.run(
        lambda: _cluster(public=True, cidrs=["0.0.0.0/0"], logs=()), project="rules", stack="t"
    )
    sev = [f.severity for f in evaluate(rec)]
    order = {"high": 0, "medium": 1, "low": 2}
    assert sev == sorted(sev, key=order.__getitem__)


@pytest.mark.parametrize(
    ("program", "needle"),
    [
        (lambda: _workflow_template(pod={}), "spec.securityContext does not make its pods non-root"),
        (lambda: _workflow_template(root_step=True), "template 'train' runs as root"),
        (
            lambda: _k8s("release", version="1", values={**ARGO_PINNED, "controller": {}}),
            "controller.workflowDefaults.spec.securityContext",
        ),
    ],
)
def test_argo_004_names_what_runs_as_root(program: Callable[[], Any], needle: str) -> None:
    assert any(needle in m for m in _fired(program).get("ARGO-004", [])), _fired(program)


def test_k8s_009_names_each_unpinned_argo_image() -> None:
    msgs = _fired(lambda: _k8s("release", version="1", values=GOOD_ARGO))["K8S-009"]
    assert {m.split(": ")[1].split(" ")[0] for m in msgs} == {
        "controller.image.tag",
        "server.image.tag",
        "executor.image.tag",
        "crds.upgradeJob.image.tag",
    }
    ds = _fired(lambda: _k8s("ds", image="nvcr.io/nvidia/k8s-device-plugin:v0.18.0"))["K8S-009"]
    assert "not pinned by digest" in ds[0]


def test_k8s_007_wants_both_deny_ingress_and_egress() -> None:
    def only_deny() -> None:
        import pulumi_kubernetes as k8s

        _namespace(policies=False)
        k8s.networking.v1.NetworkPolicy(
            "deny",
            metadata={"name": "d", "namespace": "ml"},
            spec={"pod_selector": {}, "policy_types": ["Ingress"]},
        )

    (msg,) = _fired(only_deny)["K8S-007"]
    assert "egress" in msg
