"""S3 rules: buckets are private, encrypted, versioned, TLS-only, ACL-free, and kept on destroy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, rule, statements

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PAB = ("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",)
SSE = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
VERSIONING = ("aws:s3/bucketVersioning:BucketVersioning", "aws:s3/bucketVersioningV2:BucketVersioningV2")
OWNERSHIP = ("aws:s3/bucketOwnershipControls:BucketOwnershipControls",)
POLICY = ("aws:s3/bucketPolicy:BucketPolicy",)
ACL = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
PUBLIC_ACLS = {"public-read", "public-read-write", "authenticated-read"}


def _related(bucket: Resource, ctx: Context, types: tuple[str, ...]) -> list[Resource]:
    keys = {k for k in (bucket.id, bucket.state.get("bucket"), bucket.inputs.get("bucket")) if k}
    return [r for r in ctx.of_type(*types) if ctx.inputs(r).get("bucket") in keys]


@rule(
    "S3-001",
    "high",
    "s3",
    "bucket without a full public access block",
    "add aws.s3.BucketPublicAccessBlock with block_public_acls, block_public_policy, ignore_public_acls and "
    "restrict_public_buckets all true (S3ArtifactStore does this)",
    BUCKETS,
)
def _public_access_block(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    blocks = _related(r, ctx, PAB)
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    if not blocks:
        yield f"bucket {r.name} has no public access block"
        return
    for b in blocks:
        off = [f for f in flags if ctx.inputs(b).get(f) is not True]
        if off:
            yield f"bucket {r.name}: public access block leaves {', '.join(off)} off"


@rule(
    "S3-002",
    "high",
    "s3",
    "bucket without default encryption",
    "add aws.s3.BucketServerSideEncryptionConfiguration with sse_algorithm 'aws:kms' and a KMS key",
    BUCKETS,
)
def _encryption(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if _related(r, ctx, SSE) or ctx.inputs(r).get("serverSideEncryptionConfiguration"):
        return
    yield f"bucket {r.name} has no server-side encryption configuration"


@rule(
    "S3-003",
    "medium",
    "s3",
    "bucket without versioning",
    "add aws.s3.BucketVersioning with status 'Enabled' so overwritten or deleted objects can be recovered",
    BUCKETS,
)
def _versioning(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    inline = ctx.inputs(r).get("versioning") or {}
    if isinstance(inline, dict) and inline.get("enabled") is True:
        return
    for v in _related(r, ctx, VERSIONING):
        cfg = ctx.inputs(v).get("versioningConfiguration") or {}
        if cfg.get("status") == "Enabled":
            return
    yield f"bucket {r.name} is not versioned"


@rule(
    "S3-004",
    "high",
    "s3",
    "bucket policy does not deny requests without TLS",
    "add a bucket policy statement: Effect Deny, Principal *, Action s3:*, Condition "
    "Bool aws:SecureTransport false",
    BUCKETS,
)
def _tls_only(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for p in _related(r, ctx, POLICY):
        for s in statements(ctx.inputs(p).get("policy")):
            cond = s.get("Condition") or {}
            secure = (cond.get("Bool") or {}).get("aws:SecureTransport")
            if s.get("Effect") == "Deny" and str(secure).lower() == "false":
                return
    yield f"bucket {r.name} accepts requests over plain HTTP (no Deny on aws:SecureTransport=false)"


@rule(
    "S3-005",
    "medium",
    "s3",
    "bucket ACLs not disabled",
    "add aws.s3.BucketOwnershipControls with object_ownership 'BucketOwnerEnforced'",
    BUCKETS,
)
def _ownership(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for o in _related(r, ctx, OWNERSHIP):
        if (ctx.inputs(o).get("rule") or {}).get("objectOwnership") == "BucketOwnerEnforced":
            return
    yield f"bucket {r.name} still honours ACLs (no BucketOwnerEnforced ownership control)"


@rule(
    "S3-006",
    "high",
    "s3",
    "public ACL on a bucket",
    "remove the public canned ACL; share data through IAM grants (grant_read) instead",
    BUCKETS + ACL,
)
def _public_acl(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    if str(i.get("acl") or "") in PUBLIC_ACLS:
        yield f"{r.name} sets canned ACL {i['acl']!r}"
    grants = ((i.get("accessControlPolicy") or {}).get("grants")) or []
    for g in as_list(grants):
        uri = str(((g or {}).get("grantee") or {}).get("uri") or "")
        if uri.endswith("/global/AllUsers") or uri.endswith("/global/AuthenticatedUsers"):
            yield f"{r.name} grants {g.get('permission')} to {uri.rsplit('/', 1)[-1]}"


@rule(
    "S3-007",
    "low",
    "s3",
    "bucket deleted with its data on destroy",
    "keep data buckets on destroy: retain_on_delete=True and no force_destroy (opt in explicitly to delete)",
    BUCKETS,
)
def _retained(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    retained = r.options.get("retainOnDelete") or r.options.get("protect")
    if ctx.inputs(r).get("forceDestroy") is True and not retained:
        yield f"bucket {r.name} has force_destroy on and is neither retained nor protected"


def _policy_principal_any(p: Any) -> bool:
    if p == "*":
        return True
    if isinstance(p, dict):
        return any(v == "*" or (isinstance(v, list) and "*" in v) for v in p.values())
    return False


@rule(
    "S3-008",
    "high",
    "s3",
    "bucket policy allows anyone",
    "name the principals (roles) in the bucket policy, or add a condition (aws:PrincipalOrgID, aws:SourceVpce)",
    POLICY,
)
def _policy_public(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    for s in statements(ctx.inputs(r).get("policy")):
        if (
            s.get("Effect") == "Allow"
            and _policy_principal_any(s.get("Principal"))
            and not s.get("Condition")
        ):
            yield f"bucket policy {r.name} allows {s.get('Action')} to Principal * without a condition"
