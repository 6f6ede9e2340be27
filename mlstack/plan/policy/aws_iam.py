"""IAM and KMS rules: least privilege, no wildcard admin, trust pinned, keys rotated and not public."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, parse_policy, rule, statements

POLICY_DOCS = (
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/policy:Policy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/userPolicyAttachment:UserPolicyAttachment",
    "aws:iam/groupPolicyAttachment:GroupPolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)
ADMIN_POLICIES = ("/AdministratorAccess", "/PowerUserAccess", "/IAMFullAccess", "/AmazonS3FullAccess")


def _allows(doc: Any) -> Iterator[dict[str, Any]]:
    for s in statements(doc):
        if s.get("Effect", "Allow") == "Allow":
            yield s


@rule(
    "IAM-001",
    "high",
    "iam",
    "policy allows every action on every resource",
    "list the actions and resource ARNs the role needs (grant_read / grant_write build scoped statements)",
    POLICY_DOCS,
)
def _admin_star(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in _allows(ctx.inputs(r).get("policy")):
        actions = [str(a) for a in as_list(s.get("Action"))]
        if "*" in as_list(s.get("Resource")) and any(a == "*" or a.endswith(":*") for a in actions):
            yield f"{r.name} allows {', '.join(actions)} on Resource *"


@rule(
    "IAM-002",
    "medium",
    "iam",
    "policy allows a service's every action",
    "replace 'service:*' with the actions needed (e.g. s3:GetObject, s3:PutObject)",
    POLICY_DOCS,
)
def _service_star(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in _allows(ctx.inputs(r).get("policy")):
        if "*" in as_list(s.get("Resource")):
            continue  # IAM-001 reports those
        wild = [str(a) for a in as_list(s.get("Action")) if str(a) == "*" or str(a).endswith(":*")]
        if wild:
            yield f"{r.name} allows {', '.join(wild)} on {s.get('Resource')}"


@rule(
    "IAM-003",
    "high",
    "iam",
    "broad AWS managed policy attached",
    "attach a scoped policy instead of AdministratorAccess / PowerUserAccess / IAMFullAccess / AmazonS3FullAccess",
    ATTACHMENTS,
)
def _admin_attach(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    arn = str(ctx.inputs(r).get("policyArn") or "")
    if arn.startswith("arn:aws:iam::aws:policy") and arn.endswith(ADMIN_POLICIES):
        yield f"{r.name} attaches {arn.rsplit('/', 1)[-1]}"


@rule(
    "IAM-004",
    "high",
    "iam",
    "role trust policy open to any principal",
    "trust named principals or a service only; for web identity, condition on the token's sub and aud",
    ("aws:iam/role:Role",),
)
def _trust_any(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in _allows(ctx.inputs(r).get("assumeRolePolicy")):
        p = s.get("Principal")
        anyone = p == "*" or (isinstance(p, dict) and "*" in as_list(p.get("AWS")))
        if anyone and not s.get("Condition"):
            yield f"role {r.name} can be assumed by any AWS principal"


@rule(
    "IAM-005",
    "high",
    "iam",
    "web-identity (IRSA) trust not pinned to a service account and audience",
    "add Condition StringEquals '<issuer>:sub': 'system:serviceaccount:<ns>:<sa>' and '<issuer>:aud': "
    "'sts.amazonaws.com'",
    ("aws:iam/role:Role",),
)
def _irsa_pinned(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in _allows(ctx.inputs(r).get("assumeRolePolicy")):
        if "sts:AssumeRoleWithWebIdentity" not in as_list(s.get("Action")):
            continue
        cond = s.get("Condition") or {}
        eq = cond.get("StringEquals") or {}
        like = cond.get("StringLike") or {}
        sub = [k for k in eq if str(k).endswith(":sub")]
        aud = [k for k in eq if str(k).endswith(":aud")]
        if not sub:
            wild = [k for k in like if str(k).endswith(":sub")]
            yield (
                f"role {r.name}: web-identity trust matches sub with StringLike (any service account)"
                if wild
                else f"role {r.name}: web-identity trust has no ':sub' condition"
            )
        elif any("*" in str(v) for k in sub for v in as_list(eq[k])):
            yield f"role {r.name}: web-identity ':sub' condition contains a wildcard"
        if not aud:
            yield f"role {r.name}: web-identity trust has no ':aud' condition"


@rule(
    "IAM-006",
    "medium",
    "iam",
    "iam:PassRole on any role",
    "scope iam:PassRole to the ARNs of the roles that must be passed",
    POLICY_DOCS,
)
def _pass_role(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in _allows(ctx.inputs(r).get("policy")):
        if "iam:PassRole" in as_list(s.get("Action")) and "*" in as_list(s.get("Resource")):
            yield f"{r.name} allows iam:PassRole on Resource *"


@rule(
    "IAM-007",
    "high",
    "iam",
    "long-lived IAM access key created",
    "use roles (IRSA for pods) instead of IAM users with access keys",
    ("aws:iam/accessKey:AccessKey",),
)
def _access_key(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    yield f"{r.name} creates a static access key for user {ctx.inputs(r).get('user')}"


@rule(
    "KMS-001",
    "medium",
    "kms",
    "KMS key rotation off",
    "set enable_key_rotation=True on the key",
    ("aws:kms/key:Key",),
)
def _rotation(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    symmetric = (
        str(i.get("customerMasterKeySpec") or i.get("keySpec") or "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    )
    if symmetric and i.get("enableKeyRotation") is not True:
        yield f"key {r.name} does not rotate"


@rule(
    "KMS-002",
    "high",
    "kms",
    "KMS key policy open to any principal",
    "name the account root or roles as principals in the key policy",
    ("aws:kms/key:Key",),
)
def _key_policy(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    doc = parse_policy(ctx.inputs(r).get("policy"))
    for s in statements(doc) if doc else []:
        p = s.get("Principal")
        anyone = p == "*" or (isinstance(p, dict) and "*" in as_list(p.get("AWS")))
        if s.get("Effect") == "Allow" and anyone and not s.get("Condition"):
            yield f"key {r.name} policy allows {s.get('Action')} to Principal *"


@rule(
    "KMS-003",
    "low",
    "kms",
    "KMS key deletion window shorter than 30 days",
    "set deletion_window_in_days=30 so a mistaken deletion can be cancelled",
    ("aws:kms/key:Key",),
)
def _deletion_window(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    w = ctx.inputs(r).get("deletionWindowInDays")
    if isinstance(w, int | float) and w < 30:
        yield f"key {r.name} deletion window is {int(w)} days"
