"""EKS and EC2 rules: private API, encrypted secrets, audit logs, IRSA, GPU node hygiene, IMDSv2, open ports."""

from __future__ import annotations

from collections.abc import Iterator

from mlstack import prices
from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, rule

CLUSTER = ("aws:eks/cluster:Cluster",)
NODE_GROUP = ("aws:eks/nodeGroup:NodeGroup",)
LAUNCH_TEMPLATE = ("aws:ec2/launchTemplate:LaunchTemplate",)
REQUIRED_LOGS = ("api", "audit", "authenticator")
OPEN = ("0.0.0.0/0", "::/0")


@rule(
    "EKS-001",
    "high",
    "eks",
    "EKS API endpoint public to the whole internet",
    "set endpoint_public_access=False, or list the office/VPN CIDRs in public_access_cidrs",
    CLUSTER,
)
def _public_endpoint(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    vpc = ctx.inputs(r).get("vpcConfig") or {}
    public = vpc.get("endpointPublicAccess", True)  # the EKS API default is public
    cidrs = as_list(vpc.get("publicAccessCidrs")) or ["0.0.0.0/0"]
    if public is not False and any(c in OPEN for c in cidrs):
        yield f"cluster {r.name}: public API endpoint open to {', '.join(c for c in cidrs if c in OPEN)}"


@rule(
    "EKS-002",
    "medium",
    "eks",
    "EKS private endpoint off",
    "set endpoint_private_access=True so nodes and pods reach the API inside the VPC",
    CLUSTER,
)
def _private_endpoint(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if (ctx.inputs(r).get("vpcConfig") or {}).get("endpointPrivateAccess") is not True:
        yield f"cluster {r.name} has no private API endpoint"


@rule(
    "EKS-003",
    "medium",
    "eks",
    "Kubernetes secrets not envelope-encrypted with KMS",
    "set encryption_config with resources ['secrets'] and a KMS key with rotation",
    CLUSTER,
)
def _secrets_encryption(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    enc = ctx.inputs(r).get("encryptionConfig") or {}
    if "secrets" not in as_list(enc.get("resources")) or not (enc.get("provider") or {}).get("keyArn"):
        yield f"cluster {r.name} does not encrypt Kubernetes secrets with a KMS key"


@rule(
    "EKS-004",
    "medium",
    "eks",
    "EKS control-plane audit logging incomplete",
    "set enabled_cluster_log_types to include api, audit and authenticator",
    CLUSTER,
)
def _logs(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    logs = as_list(ctx.inputs(r).get("enabledClusterLogTypes"))
    missing = [x for x in REQUIRED_LOGS if x not in logs]
    if missing:
        yield f"cluster {r.name} does not log {', '.join(missing)}"


@rule(
    "EKS-005",
    "medium",
    "eks",
    "no OIDC provider for IRSA",
    "create aws.iam.OpenIdConnectProvider for the cluster's issuer so pods get roles through service accounts",
    CLUSTER,
)
def _oidc(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not ctx.of_type("aws:iam/openIdConnectProvider:OpenIdConnectProvider"):
        yield f"cluster {r.name} has no IAM OIDC provider: pods would need node-role or static credentials"


def _gpu_types(types: list[str]) -> list[str]:
    out = []
    for t in types:
        spec = prices.instance_type(t)
        if spec is not None and spec.gpus > 0:
            out.append(t)
    return out


def _group_types(r: Resource, ctx: Context) -> list[str]:
    i = ctx.inputs(r)
    types = [str(t) for t in as_list(i.get("instanceTypes"))]
    lt_ref = i.get("launchTemplate") or {}
    lt = ctx.by_id.get(str(lt_ref.get("id"))) if isinstance(lt_ref, dict) else None
    if not types and lt is not None and lt.inputs.get("instanceType"):
        types = [str(lt.inputs["instanceType"])]
    return types


@rule(
    "EKS-006",
    "medium",
    "eks",
    "GPU node group without the nvidia.com/gpu NoSchedule taint",
    "add the taint nvidia.com/gpu=true:NoSchedule so only pods that tolerate it (GPU jobs) land on GPU nodes",
    NODE_GROUP,
)
def _gpu_taint(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not _gpu_types(_group_types(r, ctx)):
        return
    taints = as_list(ctx.inputs(r).get("taints"))
    if not any(
        t.get("key") == "nvidia.com/gpu" and t.get("effect") == "NO_SCHEDULE"
        for t in taints
        if isinstance(t, dict)
    ):
        yield f"GPU node group {r.name} is not tainted nvidia.com/gpu:NoSchedule"


@rule(
    "EKS-007",
    "medium",
    "eks",
    "GPU node group on an AMI without NVIDIA drivers",
    "use ami_type AL2023_x86_64_NVIDIA or BOTTLEROCKET_x86_64_NVIDIA for GPU instance types",
    NODE_GROUP,
)
def _gpu_ami(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    gpu = _gpu_types(_group_types(r, ctx))
    ami = str(ctx.inputs(r).get("amiType") or "")
    if gpu and ami and "NVIDIA" not in ami and "GPU" not in ami and ami != "CUSTOM":
        yield f"GPU node group {r.name} ({', '.join(gpu)}) uses AMI type {ami}"


@rule(
    "EC2-001",
    "high",
    "ec2",
    "instance metadata service v1 allowed (IMDSv2 not required)",
    "set metadata_options http_tokens='required' (and http_put_response_hop_limit 1 or 2) on the launch template",
    (*LAUNCH_TEMPLATE, "aws:ec2/instance:Instance"),
)
def _imdsv2(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    md = ctx.inputs(r).get("metadataOptions") or {}
    if md.get("httpEndpoint") == "disabled":
        return
    if md.get("httpTokens") != "required":
        yield f"{r.name} allows IMDSv1 (http_tokens is {md.get('httpTokens') or 'unset (optional)'})"


@rule(
    "EC2-002",
    "medium",
    "ec2",
    "IMDS hop limit lets containers reach node credentials",
    "set http_put_response_hop_limit to 1 (or 2 only where a pod needs IMDS) so pods use IRSA",
    LAUNCH_TEMPLATE,
)
def _hop_limit(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    hop = (ctx.inputs(r).get("metadataOptions") or {}).get("httpPutResponseHopLimit")
    if isinstance(hop, int | float) and hop > 2:
        yield f"{r.name} has an IMDS hop limit of {int(hop)}"


@rule(
    "EC2-003",
    "high",
    "ec2",
    "security group open to the internet",
    "restrict ingress to the VPC CIDR or named security groups; reach services through the private network",
    (
        "aws:ec2/securityGroup:SecurityGroup",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    ),
)
def _open_sg(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    rules = []
    if r.type.endswith(":SecurityGroup"):
        rules = [x for x in as_list(i.get("ingress")) if isinstance(x, dict)]
    elif r.type.endswith(":SecurityGroupRule"):
        if i.get("type") == "ingress":
            rules = [i]
    else:
        rules = [
            {
                "cidrBlocks": [i.get("cidrIpv4")],
                "ipv6CidrBlocks": [i.get("cidrIpv6")],
                "fromPort": i.get("fromPort"),
                "toPort": i.get("toPort"),
            }
        ]
    for x in rules:
        cidrs = as_list(x.get("cidrBlocks")) + as_list(x.get("ipv6CidrBlocks"))
        if any(c in OPEN for c in cidrs):
            yield f"{r.name} allows ingress from the internet on ports {x.get('fromPort')}-{x.get('toPort')}"


@rule(
    "EC2-004",
    "medium",
    "ec2",
    "unencrypted EBS volume",
    "set encrypted=True on the launch template's block device mappings",
    LAUNCH_TEMPLATE,
)
def _ebs(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for bd in as_list(ctx.inputs(r).get("blockDeviceMappings")):
        ebs = (bd or {}).get("ebs") or {}
        if ebs and str(ebs.get("encrypted")).lower() != "true":
            yield f"{r.name}: volume {bd.get('deviceName')} is not encrypted"


@rule(
    "EKS-008",
    "medium",
    "eks",
    "SSH access to worker nodes",
    "drop remote_access (no SSH key on nodes); use SSM Session Manager or kubectl debug when you must get in",
    NODE_GROUP,
)
def _ssh(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    ra = ctx.inputs(r).get("remoteAccess") or {}
    if ra.get("ec2SshKey"):
        open_to = "any source" if not ra.get("sourceSecurityGroupIds") else "the listed security groups"
        yield f"node group {r.name} accepts SSH with key {ra['ec2SshKey']} from {open_to}"
