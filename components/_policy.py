"""IAM statement builders every component shares, so no component hand-writes another's statements.

Statements are plain dicts whose values may be Pulumi Outputs; :func:`policy_json` resolves them into one
policy document. The owner of a resource grants on it (``store.grant_write(role)``), using these helpers.
"""

import json
from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws

RoleLike = Any  # aws.iam.Role | pulumi.Input[str] (a role name)


def statement(
    sid: str,
    actions: Sequence[str],
    resources: Sequence[pulumi.Input[str]],
    *,
    effect: str = "Allow",
    conditions: dict[str, Any] | None = None,
    principals: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One IAM statement. ``sid`` must be alphanumeric (IAM rejects other characters)."""
    if not sid.isalnum():
        raise ValueError(f"statement sid {sid!r} must be alphanumeric")
    s: dict[str, Any] = {
        "Sid": sid,
        "Effect": effect,
        "Action": sorted(set(actions)),
        "Resource": list(resources),
    }
    if conditions:
        s["Condition"] = conditions
    if principals:
        s["Principal"] = principals
    return s


def policy_json(statements: Sequence[dict[str, Any]]) -> pulumi.Output[str]:
    """A policy document (JSON string) from statements whose values may be Outputs."""
    return pulumi.Output.from_input({"Version": "2012-10-17", "Statement": list(statements)}).apply(
        lambda doc: json.dumps(doc, sort_keys=True)
    )


def role_name(role: RoleLike) -> pulumi.Output[str]:
    """The name of a role given as an aws.iam.Role, a name, or an Output of a name."""
    if isinstance(role, aws.iam.Role):
        return role.name
    return pulumi.Output.from_input(role)


def s3_prefix_arn(bucket_arn: pulumi.Input[str], prefix: pulumi.Input[str]) -> pulumi.Output[str]:
    """``arn:...:bucket/prefix/*``, or ``bucket/*`` when the prefix is empty."""
    return pulumi.Output.all(bucket_arn, prefix).apply(
        lambda a: f"{a[0]}/{a[1].strip('/')}/*" if a[1] and a[1].strip("/") else f"{a[0]}/*"
    )


def _list_condition(prefix: pulumi.Input[str]) -> pulumi.Output[dict[str, Any] | None]:
    return pulumi.Output.from_input(prefix).apply(
        lambda p: (
            {"StringLike": {"s3:prefix": [f"{p.strip('/')}/*", p.strip("/")]}} if p and p.strip("/") else None
        )
    )


def s3_read_statements(bucket_arn: pulumi.Input[str], prefix: pulumi.Input[str] = "") -> list[dict[str, Any]]:
    """Read objects under ``prefix`` (and their versions), and list only that prefix.

    No s3:GetBucketLocation here: that request carries no ``s3:prefix`` key, so under the prefix condition it
    could never match; the stores grant it in its own unconditioned statement (``BucketLocation``)."""
    list_stmt: dict[str, Any] = {
        "Sid": "ListPrefix",
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
        "Resource": [bucket_arn],
    }
    cond = _list_condition(prefix)
    list_stmt["Condition"] = cond
    return [
        list_stmt,
        statement(
            "ReadObjects",
            ["s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectAttributes", "s3:GetObjectTagging"],
            [s3_prefix_arn(bucket_arn, prefix)],
        ),
    ]


def s3_write_statements(
    bucket_arn: pulumi.Input[str], prefix: pulumi.Input[str] = ""
) -> list[dict[str, Any]]:
    """Write objects under ``prefix`` (including multipart uploads). No delete of versions, no bucket admin."""
    return [
        statement(
            "WriteObjects",
            [
                "s3:PutObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
                "s3:DeleteObject",
                "s3:PutObjectTagging",
            ],
            [s3_prefix_arn(bucket_arn, prefix)],
        ),
    ]


def kms_statements(key_arn: pulumi.Input[str], *, write: bool) -> list[dict[str, Any]]:
    """What S3 SSE-KMS needs from a caller: decrypt to read; encrypt and data keys to write."""
    actions = ["kms:Decrypt", "kms:DescribeKey"]
    if write:
        actions += ["kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
    return [statement("UseKey" + ("Write" if write else "Read"), actions, [key_arn])]


def drop_empty_conditions(doc: dict[str, Any]) -> dict[str, Any]:
    for s in doc.get("Statement", []):
        if "Condition" in s and not s["Condition"]:
            del s["Condition"]
    return doc


def attach(
    name: str,
    role: RoleLike,
    statements: Sequence[dict[str, Any]],
    parent: pulumi.Resource,
) -> aws.iam.RolePolicy:
    """Attach ``statements`` to ``role`` as one inline policy, a child of the granting component."""
    doc = pulumi.Output.from_input({"Version": "2012-10-17", "Statement": list(statements)}).apply(
        lambda d: json.dumps(drop_empty_conditions(d), sort_keys=True)
    )
    return aws.iam.RolePolicy(
        name, role=role_name(role), policy=doc, opts=pulumi.ResourceOptions(parent=parent)
    )


def irsa_trust_policy(
    oidc_provider_arn: pulumi.Input[str],
    oidc_issuer_url: pulumi.Input[str],
    namespace: pulumi.Input[str],
    service_account: pulumi.Input[str],
) -> pulumi.Output[str]:
    """Trust policy for IRSA pinned to exactly one service account and the STS audience."""

    def build(a: list[str]) -> str:
        arn, issuer, ns, sa = a
        host = issuer.replace("https://", "")
        return json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "IrsaServiceAccount",
                        "Effect": "Allow",
                        "Principal": {"Federated": arn},
                        "Action": "sts:AssumeRoleWithWebIdentity",
                        "Condition": {
                            "StringEquals": {
                                f"{host}:sub": f"system:serviceaccount:{ns}:{sa}",
                                f"{host}:aud": "sts.amazonaws.com",
                            }
                        },
                    }
                ],
            },
            sort_keys=True,
        )

    return pulumi.Output.all(oidc_provider_arn, oidc_issuer_url, namespace, service_account).apply(build)


def service_trust_policy(service: str) -> str:
    """Trust policy letting one AWS service principal (e.g. eks.amazonaws.com) assume a role."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        },
        sort_keys=True,
    )
