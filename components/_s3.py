"""The one secure-bucket builder: every S3 bucket mlstack creates goes through :func:`secure_bucket`.

What a bucket gets (each a separate pulumi-aws 7 resource, a child of the calling component):

- versioning enabled;
- SSE-KMS default encryption with S3 Bucket Keys, under a new KMS key with yearly rotation (or a key passed in);
- all four public access blocks;
- object ownership ``BucketOwnerEnforced`` (ACLs disabled);
- a bucket policy denying any request not made over TLS 1.2+, and uploads asking for another encryption
  or another KMS key;
- lifecycle rules aborting incomplete multipart uploads and expiring noncurrent versions;
- optional server access logging to another bucket;
- retained on ``pulumi destroy`` (bucket, key and every setting) unless the caller opts out explicitly.

Settings resources are retained with the bucket because deleting them would weaken a bucket that stays
(deleting a ``BucketPublicAccessBlock`` removes the block; deleting ``BucketVersioning`` suspends versioning),
and the key is retained because scheduling its deletion would make the retained data unreadable.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi
import pulumi_aws as aws

from ._args import Problems, is_known

# What S3 accepts for a bucket name; Pulumi's auto-name appends "-" and 7 characters.
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_AUTONAME_BASE_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{0,54}$")
KMS_ARN_RE = re.compile(r"^arn:aws[a-z\-]*:kms:[a-z0-9\-]+:\d{12}:key/[A-Za-z0-9\-]+$")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9!_.*'()\-/=]*$")

DEFAULT_NONCURRENT_DAYS = 90
DEFAULT_ABORT_MULTIPART_DAYS = 7
DEFAULT_KMS_DELETION_WINDOW_DAYS = 30


@dataclass
class SecureBucket:
    """What :func:`secure_bucket` created. ``kms_key`` is None when a key ARN was passed in."""

    bucket: aws.s3.Bucket
    kms_key_arn: pulumi.Output[str]
    kms_key: aws.kms.Key | None
    versioning: aws.s3.BucketVersioning
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    public_access_block: aws.s3.BucketPublicAccessBlock
    ownership: aws.s3.BucketOwnershipControls
    policy: aws.s3.BucketPolicy
    lifecycle: aws.s3.BucketLifecycleConfiguration
    logging: aws.s3.BucketLogging | None
    children: list[pulumi.Resource] = field(default_factory=list)

    @property
    def bucket_name(self) -> pulumi.Output[str]:
        return self.bucket.bucket

    @property
    def bucket_arn(self) -> pulumi.Output[str]:
        return self.bucket.arn


def normalize_prefix(prefix: str) -> str:
    """``/ml/runs/`` -> ``ml/runs``; the empty string means the bucket root."""
    return prefix.strip("/")


def check_prefix(problems: Problems, path: str, prefix: Any) -> None:
    """A key prefix must be a plain string of S3-safe characters without ``..`` segments."""
    if not isinstance(prefix, str):
        problems.add(
            path, prefix, "a string such as 'ml/artifacts' ('' = the bucket root); Outputs are not accepted"
        )
        return
    p = normalize_prefix(prefix)
    if ".." in p.split("/") or "//" in p:
        problems.add(path, prefix, "no '..' segments and no empty segments ('//')")
    elif not _PREFIX_RE.match(p):
        problems.add(path, prefix, "only letters, digits and !_.*'()-/= (S3 safe characters)")
    elif len(p) > 512:
        problems.add(path, prefix, "at most 512 characters")


def check_bucket_args(
    problems: Problems,
    name: str,
    *,
    bucket_name: Any = None,
    kms_key_arn: Any = None,
    noncurrent_version_expiration_days: Any = DEFAULT_NONCURRENT_DAYS,
    abort_incomplete_multipart_days: Any = DEFAULT_ABORT_MULTIPART_DAYS,
    retain_on_delete: Any = True,
    force_destroy: Any = False,
    access_log_bucket: Any = None,
    access_log_prefix: Any = None,
) -> None:
    """Validate the bucket-related arguments every bucket-owning component shares (paths are arg names)."""
    if bucket_name is None:
        if not _AUTONAME_BASE_RE.match(name.lower()):
            problems.add(
                "bucket_name",
                None,
                f"the bucket is auto-named from the component name {name!r}, which has characters S3 rejects "
                "or is longer than 55; pass bucket_name, or name the component with lowercase letters, "
                "digits, dots and hyphens",
            )
    elif is_known(bucket_name) and (
        not isinstance(bucket_name, str) or not BUCKET_NAME_RE.match(bucket_name) or ".." in bucket_name
    ):
        problems.add(
            "bucket_name",
            bucket_name,
            "3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit",
        )
    if (
        kms_key_arn is not None
        and is_known(kms_key_arn)
        and (not isinstance(kms_key_arn, str) or not KMS_ARN_RE.match(kms_key_arn))
    ):
        problems.add(
            "kms_key_arn",
            kms_key_arn,
            "a KMS key ARN, arn:aws:kms:<region>:<account>:key/<id> (not an alias: IAM grants and the bucket "
            "policy name the key itself); leave it out to create a key",
        )
    for path, value, low, high in (
        ("noncurrent_version_expiration_days", noncurrent_version_expiration_days, 0, 36500),
        ("abort_incomplete_multipart_days", abort_incomplete_multipart_days, 1, 365),
    ):
        if is_known(value) and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            problems.add(path, value, f"a whole number of days from {low} to {high}")
    for path, value in (("retain_on_delete", retain_on_delete), ("force_destroy", force_destroy)):
        if not isinstance(value, bool):
            problems.add(path, value, "True or False")
    if force_destroy is True and retain_on_delete is not False:
        problems.add(
            "force_destroy",
            force_destroy,
            "force_destroy=True deletes every object on destroy, which contradicts retain_on_delete=True "
            "(the default); set retain_on_delete=False as well to opt in to deleting the data",
        )
    if access_log_prefix is not None and access_log_bucket is None:
        problems.add(
            "access_log_prefix", access_log_prefix, "only meaningful with access_log_bucket; set it too"
        )
    if (
        access_log_bucket is not None
        and is_known(access_log_bucket)
        and (not isinstance(access_log_bucket, str) or not BUCKET_NAME_RE.match(access_log_bucket))
    ):
        problems.add("access_log_bucket", access_log_bucket, "the name (not the ARN) of an existing bucket")


@dataclass(frozen=True)
class BucketConfig:
    """A bucket's arguments, validated, every default filled: what :func:`secure_bucket` builds from.

    ``bucket_name``, ``kms_key_arn``, ``access_log_*`` and ``region`` may be Pulumi Outputs (passed through)."""

    bucket_name: pulumi.Input[str] | None = None
    kms_key_arn: pulumi.Input[str] | None = None
    noncurrent_version_expiration_days: int = DEFAULT_NONCURRENT_DAYS
    abort_incomplete_multipart_days: int = DEFAULT_ABORT_MULTIPART_DAYS
    access_log_bucket: pulumi.Input[str] | None = None
    access_log_prefix: pulumi.Input[str] | None = None
    retain_on_delete: bool = True
    force_destroy: bool = False
    region: pulumi.Input[str] | None = None
    tags: Mapping[str, str] | pulumi.Output[Any] | None = None
    """None: no tags argument at all (the provider's default_tags only); an Output is passed through."""

    @property
    def tags_input(self) -> Any:
        """The tags as resources take them (a plain dict, or the Output; None when none were given)."""
        return tags_input(self.tags)


def tags_input(tags: Mapping[str, str] | pulumi.Output[Any] | None) -> Any:
    """Resolved tags as resource arguments: a plain dict (Pulumi serializes dicts, not mapping proxies)."""
    return dict(tags) if isinstance(tags, Mapping) else tags


def check_tags(problems: Problems, tags: Any) -> Mapping[str, str] | pulumi.Output[Any] | None:
    """``tags`` as a read-only mapping (None stays None, an Output passes through unchecked); a problem
    unless it is a dict of str -> str."""
    if tags is None or isinstance(tags, pulumi.Output):
        return tags
    if not isinstance(tags, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
    ):
        problems.add("tags", tags, "a dict of string keys to string values")
        return None
    return MappingProxyType(dict(tags))


def resolve_bucket(problems: Problems, name: str, a: Mapping[str, Any]) -> BucketConfig:
    """The bucket arguments of ``a`` (S3ArtifactStoreArgs / S3LakehouseArgs keys) checked once, defaults
    filled; problems go to ``problems`` (the caller raises)."""
    cfg = BucketConfig(
        bucket_name=a.get("bucket_name"),
        kms_key_arn=a.get("kms_key_arn"),
        noncurrent_version_expiration_days=a.get(
            "noncurrent_version_expiration_days", DEFAULT_NONCURRENT_DAYS
        ),
        abort_incomplete_multipart_days=a.get(
            "abort_incomplete_multipart_days", DEFAULT_ABORT_MULTIPART_DAYS
        ),
        access_log_bucket=a.get("access_log_bucket"),
        access_log_prefix=a.get("access_log_prefix"),
        retain_on_delete=a.get("retain_on_delete", True),
        force_destroy=a.get("force_destroy", False),
        region=a.get("region"),
        tags=check_tags(problems, a.get("tags")),
    )
    check_bucket_args(
        problems,
        name,
        bucket_name=cfg.bucket_name,
        kms_key_arn=cfg.kms_key_arn,
        noncurrent_version_expiration_days=cfg.noncurrent_version_expiration_days,
        abort_incomplete_multipart_days=cfg.abort_incomplete_multipart_days,
        retain_on_delete=cfg.retain_on_delete,
        force_destroy=cfg.force_destroy,
        access_log_bucket=cfg.access_log_bucket,
        access_log_prefix=cfg.access_log_prefix,
    )
    return cfg


def tls_only_statements(bucket_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """Deny every request made without TLS, or with TLS older than 1.2, for anyone."""
    resources = [bucket_arn, pulumi.Output.concat(bucket_arn, "/*")]
    return [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    ]


def encryption_statements(
    bucket_arn: pulumi.Input[str], key_arn: pulumi.Input[str] | None
) -> list[dict[str, Any]]:
    """Deny uploads that ask for another encryption than SSE-KMS, or (with ``key_arn``) another KMS key.

    Requests without encryption headers stay allowed: default encryption applies the bucket's key to them
    (SDKs send no header by default), which is why the conditions check that the header is present.
    """
    objects = pulumi.Output.concat(bucket_arn, "/*")
    stmts: list[dict[str, Any]] = [
        {
            "Sid": "DenyNonKmsEncryption",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:PutObject",
            "Resource": [objects],
            "Condition": {
                "Null": {"s3:x-amz-server-side-encryption": "false"},
                "StringNotEquals": {"s3:x-amz-server-side-encryption": "aws:kms"},
            },
        }
    ]
    if key_arn is not None:
        stmts.append(
            {
                "Sid": "DenyOtherKmsKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": [objects],
                "Condition": {
                    "Null": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "false"},
                    "StringNotEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": key_arn},
                },
            }
        )
    return stmts


def secure_bucket(
    name: str,
    parent: pulumi.Resource,
    *,
    bucket_name: pulumi.Input[str] | None = None,
    kms_key_arn: pulumi.Input[str] | None = None,
    noncurrent_version_expiration_days: int = DEFAULT_NONCURRENT_DAYS,
    abort_incomplete_multipart_days: int = DEFAULT_ABORT_MULTIPART_DAYS,
    access_log_bucket: pulumi.Input[str] | None = None,
    access_log_prefix: pulumi.Input[str] | None = None,
    retain_on_delete: bool = True,
    force_destroy: bool = False,
    region: pulumi.Input[str] | None = None,
    tags: dict[str, str] | None = None,
    description: str = "mlstack bucket",
    extra_lifecycle_rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs] | None = None,
) -> SecureBucket:
    """Create a bucket with every secure default (see the module docstring) as children of ``parent``.

    Child resource names are ``<name>``, ``<name>-key``, ``<name>-versioning``, ... (public API: renaming them
    replaces resources). Validate arguments with :func:`check_bucket_args` first.
    """
    base = name.lower()
    children: list[pulumi.Resource] = []

    def opts(*depends: pulumi.Resource | None, retain: bool = retain_on_delete) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=parent, retain_on_delete=retain, depends_on=[d for d in depends if d is not None]
        )

    kms_key: aws.kms.Key | None = None
    if kms_key_arn is None:
        kms_key = aws.kms.Key(
            f"{base}-key",
            description=f"{description} ({name}): S3 default encryption",
            enable_key_rotation=True,
            deletion_window_in_days=DEFAULT_KMS_DELETION_WINDOW_DAYS,
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            region=region,
            tags=tags,
            opts=opts(),
        )
        children.append(kms_key)
        key_arn: pulumi.Output[str] = kms_key.arn
    else:
        key_arn = pulumi.Output.from_input(kms_key_arn)

    bucket = aws.s3.Bucket(
        base,
        bucket=bucket_name,
        force_destroy=force_destroy,
        region=region,
        tags=tags,
        opts=opts(),
    )
    children.append(bucket)
    if kms_key is not None:
        # a readable name in the KMS console: alias/mlstack/<bucket>
        children.append(
            aws.kms.Alias(
                f"{base}-key-alias",
                name=pulumi.Output.concat("alias/mlstack/", bucket.bucket),
                target_key_id=kms_key.key_id,
                region=region,
                opts=opts(),
            )
        )

    # S3 rejects concurrent configuration calls on one bucket ("OperationAborted"), so the settings are
    # applied one after the other: public access block first, so the bucket is never public for a moment.
    pab = aws.s3.BucketPublicAccessBlock(
        f"{base}-public-access-block",
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        region=region,
        opts=opts(),
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{base}-ownership",
        bucket=bucket.id,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        region=region,
        opts=opts(pab),
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{base}-encryption",
        bucket=bucket.id,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                    sse_algorithm="aws:kms", kms_master_key_id=key_arn
                ),
                bucket_key_enabled=True,
            )
        ],
        region=region,
        opts=opts(ownership),
    )
    versioning = aws.s3.BucketVersioning(
        f"{base}-versioning",
        bucket=bucket.id,
        versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
        region=region,
        opts=opts(encryption),
    )
    policy = aws.s3.BucketPolicy(
        f"{base}-policy",
        bucket=bucket.id,
        policy=pulumi.Output.from_input(
            {
                "Version": "2012-10-17",
                "Statement": tls_only_statements(bucket.arn) + encryption_statements(bucket.arn, key_arn),
            }
        ).apply(lambda d: json.dumps(d, sort_keys=True)),
        region=region,
        opts=opts(pab, versioning),
    )
    children += [pab, ownership, encryption, versioning, policy]

    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs] = [
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-multipart-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=abort_incomplete_multipart_days
            ),
        )
    ]
    if noncurrent_version_expiration_days:
        rules.append(
            aws.s3.BucketLifecycleConfigurationRuleArgs(
                id="expire-noncurrent-versions",
                status="Enabled",
                filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                    noncurrent_days=noncurrent_version_expiration_days
                ),
                # once every noncurrent version is gone, the lone delete marker is clutter
                expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                    expired_object_delete_marker=True
                ),
            )
        )
    rules += list(extra_lifecycle_rules or [])
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{base}-lifecycle",
        bucket=bucket.id,
        rules=rules,
        region=region,
        opts=opts(versioning, policy),
    )
    children.append(lifecycle)

    logging: aws.s3.BucketLogging | None = None
    if access_log_bucket is not None:
        logging = aws.s3.BucketLogging(
            f"{base}-logging",
            bucket=bucket.id,
            target_bucket=access_log_bucket,
            target_prefix=access_log_prefix
            if access_log_prefix is not None
            else pulumi.Output.concat("s3-access/", bucket.bucket, "/"),
            region=region,
            opts=opts(lifecycle),
        )
        children.append(logging)

    return SecureBucket(
        bucket=bucket,
        kms_key_arn=key_arn,
        kms_key=kms_key,
        versioning=versioning,
        encryption=encryption,
        public_access_block=pab,
        ownership=ownership,
        policy=policy,
        lifecycle=lifecycle,
        logging=logging,
        children=children,
    )


def secure_bucket_from(
    name: str,
    parent: pulumi.Resource,
    cfg: BucketConfig,
    *,
    description: str,
    extra_lifecycle_rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs] | None = None,
) -> SecureBucket:
    """:func:`secure_bucket` from a resolved :class:`BucketConfig`."""
    return secure_bucket(
        name,
        parent,
        bucket_name=cfg.bucket_name,
        kms_key_arn=cfg.kms_key_arn,
        noncurrent_version_expiration_days=cfg.noncurrent_version_expiration_days,
        abort_incomplete_multipart_days=cfg.abort_incomplete_multipart_days,
        access_log_bucket=cfg.access_log_bucket,
        access_log_prefix=cfg.access_log_prefix,
        retain_on_delete=cfg.retain_on_delete,
        force_destroy=cfg.force_destroy,
        region=cfg.region,
        tags=cfg.tags_input,
        description=description,
        extra_lifecycle_rules=extra_lifecycle_rules,
    )


def s3_kms_statements(
    key_arn: pulumi.Input[str], region: pulumi.Input[str], *, write: bool
) -> list[dict[str, Any]]:
    """KMS use for SSE-KMS objects, only through S3 in ``region`` (``kms:ViaService``): a role granted a store
    cannot use its key directly, e.g. to decrypt data taken out of the bucket some other way."""
    actions = ["kms:Decrypt", "kms:DescribeKey"]
    if write:
        actions += ["kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo"]
    return [
        {
            "Sid": "UseKeyViaS3" + ("Write" if write else "Read"),
            "Effect": "Allow",
            "Action": sorted(actions),
            "Resource": [key_arn],
            "Condition": {
                "StringEquals": {"kms:ViaService": pulumi.Output.concat("s3.", region, ".amazonaws.com")}
            },
        }
    ]
