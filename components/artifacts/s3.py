"""``S3ArtifactStore``: the artifacts layer on S3, secure by default, with owner grants.

The bucket comes from :func:`components._s3.secure_bucket` (versioned, SSE-KMS with bucket keys, private,
ACLs off, TLS-only, lifecycle, optional access logging, retained on destroy). The store lives under
``prefix`` in that bucket; ``grant_read`` / ``grant_write`` scope roles to that prefix and its key.
"""

from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from mlstack.errors import UsageError
from mlstack.manifest import validate_section

from .. import _policy, _tokens
from .._s3 import s3_kms_statements, secure_bucket_from
from .config import DEFAULT_PREFIX, ExistingStoreConfig, StoreConfig, resolve_existing_store, resolve_store

TYPE = _tokens.token("S3ArtifactStore")
OLD_TYPE = "mlstack:artifacts:S3ArtifactStore"  # kept as an alias: deployed stacks replace nothing
EXISTING_TYPE = _tokens.token("ExistingS3ArtifactStore")
OLD_EXISTING_TYPE = "mlstack:artifacts:ExistingS3ArtifactStore"  # kept as an alias: deployed stacks replace nothing
__all__ = [
    "DEFAULT_PREFIX",
    "ExistingS3ArtifactStore",
    "ExistingStoreConfig",
    "S3ArtifactStore",
    "S3ArtifactStoreArgs",
    "StoreConfig",
    "grant_resource_name",
    "partition",
]


class S3ArtifactStoreArgs(TypedDict, total=False):
    """Arguments of :class:`S3ArtifactStore`. Every field is optional."""

    prefix: str
    """Key prefix the store (and every grant) is confined to, e.g. ``"ml/artifacts"``; ``""`` is the whole
    bucket. Default: ``"artifacts"``, leaving the rest of the bucket to other layers (e.g. an S3Lakehouse)."""

    bucket_name: pulumi.Input[str]
    """Exact bucket name (globally unique). Default: Pulumi auto-names it from the component name plus a
    random suffix, so two stacks never collide."""

    kms_key_arn: pulumi.Input[str]
    """ARN of an existing KMS key (not an alias) to encrypt with; its key policy must let this account's IAM
    policies use it. Default: a new symmetric KMS key with automatic yearly rotation, retained with the bucket."""

    noncurrent_version_expiration_days: int
    """Days a replaced or deleted object version is kept before S3 expires it; ``0`` keeps every version
    forever. Default: 90."""

    abort_incomplete_multipart_days: int
    """Days after which an unfinished multipart upload is aborted and its parts deleted. Default: 7."""

    access_log_bucket: pulumi.Input[str]
    """Name of an existing bucket receiving S3 server access logs (its policy must allow
    ``logging.s3.amazonaws.com`` to write). Default: no access logging."""

    access_log_prefix: pulumi.Input[str]
    """Key prefix of the access logs in ``access_log_bucket``. Default: ``s3-access/<bucket name>/``."""

    region: pulumi.Input[str]
    """AWS region of the bucket and key (pulumi-aws 7 per-resource region). Default: the provider's region."""

    retain_on_delete: bool
    """Keep the bucket, its key and its settings when the stack is destroyed or the store removed.
    Default: True (data outlives ``pulumi destroy``); set False, together with ``force_destroy``, to delete."""

    force_destroy: bool
    """Delete every object (and version) so the bucket itself can be deleted on destroy. Requires
    ``retain_on_delete=False``. Default: False."""

    tags: dict[str, str]
    """Tags put on the bucket and the key. Default: none besides what the provider adds (default_tags)."""


def grant_resource_name(role: Any, name: str | None, component: str, verb: str) -> str:
    """A stable child name for a grant: ``name``, else ``<component>-<verb>-<role resource name or role name>``."""
    if name:
        return name
    if isinstance(role, pulumi.Resource):
        return f"{component}-{verb}-{role._name}"
    if isinstance(role, str):
        return f"{component}-{verb}-{role}"
    raise UsageError(
        f"{component}.grant_{verb}: the role is an Output, so no stable resource name can be derived from it",
        fix=f"pass name=, e.g. store.grant_{verb}(role_name, name='{component}-{verb}-jobs')",
    )


def _bucket_location(bucket_arn: pulumi.Input[str]) -> list[dict[str, Any]]:
    """GetBucketLocation carries no ``s3:prefix`` key, so the prefix-conditioned list statement never allows it;
    SDKs call it to find the bucket's region."""
    return [_policy.statement("BucketLocation", ["s3:GetBucketLocation"], [bucket_arn])]


class _Grants:
    """grant_read / grant_write shared by created and referenced stores."""

    _store_name: str
    bucket_arn: pulumi.Output[str]
    prefix: str
    kms_key_arn: pulumi.Output[str] | None
    region: pulumi.Output[str]

    def read_statements(self) -> list[dict[str, Any]]:
        """IAM statements for reading under the prefix (list the prefix, get objects and versions, decrypt)."""
        stmts = [
            *_bucket_location(self.bucket_arn),
            *_policy.s3_read_statements(self.bucket_arn, self.prefix),
        ]
        if self.kms_key_arn is not None:
            stmts += s3_kms_statements(self.kms_key_arn, self.region, write=False)
        return stmts

    def write_statements(self) -> list[dict[str, Any]]:
        """IAM statements for reading and writing under the prefix (put, multipart, delete current versions,
        encrypt). Never deletes versions, never changes the bucket's configuration."""
        stmts = [
            *_bucket_location(self.bucket_arn),
            *_policy.s3_read_statements(self.bucket_arn, self.prefix),
            *_policy.s3_write_statements(self.bucket_arn, self.prefix),
        ]
        if self.kms_key_arn is not None:
            stmts += s3_kms_statements(self.kms_key_arn, self.region, write=True)
        return stmts

    def grant_read(self, role: _policy.RoleLike, name: str | None = None) -> aws.iam.RolePolicy:
        """Let ``role`` (an aws.iam.Role or a role name) read the store: an inline policy, a child of the store.

        ``name`` is the policy's resource name; default ``<store>-read-<role>`` (required when ``role`` is an
        Output)."""
        assert isinstance(self, pulumi.Resource)
        key = grant_resource_name(role, name, self._store_name, "read")
        return _policy.attach(key, role, self.read_statements(), self)

    def grant_write(self, role: _policy.RoleLike, name: str | None = None) -> aws.iam.RolePolicy:
        """Let ``role`` read AND write the store (writers check what exists before writing content-addressed
        objects and move aliases with conditional writes, so writing without reading is not useful)."""
        assert isinstance(self, pulumi.Resource)
        key = grant_resource_name(role, name, self._store_name, "write")
        return _policy.attach(key, role, self.write_statements(), self)


def _section(bucket: str, prefix: str, region: str, kms_key_arn: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {"kind": "s3", "bucket": bucket, "prefix": prefix, "region": region}
    if kms_key_arn:
        section["kms_key_arn"] = kms_key_arn
    return validate_section("artifacts", section)


class S3ArtifactStore(pulumi.ComponentResource, _Grants):
    """An S3 bucket (or a prefix of one) holding mlstack artifacts; exports the manifest ``artifacts`` section.

    Outputs: ``bucket_name``, ``bucket_arn``, ``kms_key_arn``, ``region``, ``manifest_section``; ``prefix`` is
    a plain string. ``grant_read(role)`` / ``grant_write(role)`` attach least-privilege inline policies.
    """

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    region: pulumi.Output[str]
    prefix: str
    manifest_section: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        args: S3ArtifactStoreArgs = {},  # noqa: B006 -- read once, never mutated
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_store(name, args)
        self.config = cfg
        self._store_name = name
        self.prefix = cfg.prefix
        sb = secure_bucket_from(name, self, cfg.bucket, description="mlstack artifact store")
        self.secure_bucket = sb
        self.bucket = sb.bucket
        self.kms_key = sb.kms_key
        self.bucket_name = sb.bucket.bucket
        self.bucket_arn = sb.bucket.arn
        self.kms_key_arn = sb.kms_key_arn
        # the bucket's own (provider-computed) region: right even under an explicit provider, and no invoke
        self.region = sb.bucket.region
        # the section waits for every bucket setting, so nothing reads the manifest before the bucket is secure
        ready = pulumi.Output.all(*[c.urn for c in sb.children])
        prefix_ = self.prefix
        self.manifest_section = pulumi.Output.all(
            self.bucket_name, self.region, self.kms_key_arn, ready
        ).apply(lambda v: _section(v[0], prefix_, v[1], v[2]))
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
                "region": self.region,
                "prefix": self.prefix,
                "manifest_section": self.manifest_section,
            }
        )

    @classmethod
    def from_bucket_name(
        cls,
        name: str,
        bucket_name: pulumi.Input[str],
        *,
        prefix: str = "",
        region: pulumi.Input[str] | None = None,
        kms_key_arn: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> "S3ArtifactStore":
        """A store in a bucket created elsewhere: same outputs and grant methods, nothing created but grants.

        mlstack cannot check or set that bucket's versioning, encryption, public access block, TLS policy or
        lifecycle; it logs a warning saying so. Pass ``kms_key_arn`` when the bucket encrypts with a
        customer-managed key, so grants include the KMS permissions.
        """
        return ExistingS3ArtifactStore(
            name, bucket_name, prefix=prefix, region=region, kms_key_arn=kms_key_arn, opts=opts
        )


class ExistingS3ArtifactStore(S3ArtifactStore):
    """An artifact store in an existing bucket (see :meth:`S3ArtifactStore.from_bucket_name`)."""

    def __init__(
        self,
        name: str,
        bucket_name: pulumi.Input[str],
        *,
        prefix: str = "",
        region: pulumi.Input[str] | None = None,
        kms_key_arn: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        pulumi.ComponentResource.__init__(
            self, EXISTING_TYPE, name, None, _tokens.with_old_token(opts, OLD_EXISTING_TYPE)
        )
        cfg = resolve_existing_store(
            name,
            bucket_name,
            prefix=prefix,
            region=region,
            kms_key_arn=kms_key_arn,
            default_region=pulumi.Config("aws").get("region") or None,
        )
        self.existing_config = cfg
        self._store_name = name
        self.prefix = cfg.prefix
        self.secure_bucket = None  # type: ignore[assignment]
        self.bucket = None  # type: ignore[assignment]
        self.kms_key = None
        self.bucket_name = pulumi.Output.from_input(cfg.bucket_name)
        self.region = pulumi.Output.from_input(cfg.region)
        self.bucket_arn = pulumi.Output.all(self.region, self.bucket_name).apply(
            lambda v: f"arn:{partition(v[0])}:s3:::{v[1]}"
        )
        self.kms_key_arn = pulumi.Output.from_input(cfg.kms_key_arn) if cfg.kms_key_arn is not None else None
        self.bucket_name.apply(
            lambda b: pulumi.log.warn(
                f"S3ArtifactStore {name!r} uses existing bucket {b!r}: mlstack does not manage its versioning, "
                "encryption, public access block, TLS-only policy, lifecycle or logging; check them yourself"
                + (
                    ""
                    if cfg.kms_key_arn is not None
                    else ", and pass kms_key_arn if it encrypts with a customer key"
                ),
                resource=self,
            )
        )
        prefix_ = self.prefix
        kms = self.kms_key_arn if self.kms_key_arn is not None else pulumi.Output.from_input(None)
        self.manifest_section = pulumi.Output.all(self.bucket_name, self.region, kms).apply(
            lambda v: _section(v[0], prefix_, v[1], v[2])
        )
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "kms_key_arn": self.kms_key_arn,
                "region": self.region,
                "prefix": self.prefix,
                "manifest_section": self.manifest_section,
            }
        )


def partition(region: str) -> str:
    """The ARN partition of a region (aws, aws-cn, aws-us-gov), without an invoke."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"
