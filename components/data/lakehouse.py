"""``S3Lakehouse``: a Glue database and an Athena workgroup over a prefix of an S3 bucket.

The bucket is either an :class:`~components.artifacts.s3.S3ArtifactStore`'s (a sibling prefix, same KMS
key) or a new one from :func:`components._s3.secure_bucket`. Tables live under ``s3://<bucket>/<prefix>/``;
Athena writes query results, SSE-KMS encrypted, under ``<prefix>/_athena_results/`` (a leading underscore
keeps Hive/Spark/Glue from taking it for a table). The workgroup enforces its configuration, so a client
cannot send results elsewhere or unencrypted.
"""

from typing import TYPE_CHECKING, Any, TypedDict

import pulumi
import pulumi_aws as aws

from mlstack.manifest import validate_section

from .. import _policy, _tokens
from .._s3 import SecureBucket, s3_kms_statements, secure_bucket_from, tags_input
from ..artifacts.s3 import S3ArtifactStore, _bucket_location, grant_resource_name
from .lakehouse_config import (
    DEFAULT_PREFIX,
    DEFAULT_SCAN_CUTOFF,
    OWN_BUCKET_ONLY,
    LakehouseConfig,
    resolve_lakehouse,
)

if TYPE_CHECKING:
    S3ArtifactStoreRef = S3ArtifactStore
else:  # the package schema types it Any: a resource reference from another language (components/provider.py)
    S3ArtifactStoreRef = Any

TYPE = _tokens.token("S3Lakehouse")
OLD_TYPE = "mlstack:data:S3Lakehouse"  # kept as an alias: deployed stacks replace nothing
RESULTS_DIR = "_athena_results"
__all__ = [
    "DEFAULT_PREFIX",
    "DEFAULT_SCAN_CUTOFF",
    "LakehouseConfig",
    "S3Lakehouse",
    "S3LakehouseArgs",
    "resolve_lakehouse",
]

_ATHENA_QUERY = [
    "athena:BatchGetQueryExecution",
    "athena:GetQueryExecution",
    "athena:GetQueryResults",
    "athena:GetQueryResultsStream",
    "athena:GetQueryRuntimeStatistics",
    "athena:GetWorkGroup",
    "athena:ListQueryExecutions",
    "athena:StartQueryExecution",
    "athena:StopQueryExecution",
]
_ATHENA_METADATA = [
    "athena:GetDataCatalog",
    "athena:GetDatabase",
    "athena:GetTableMetadata",
    "athena:ListDatabases",
    "athena:ListTableMetadata",
]
_GLUE_READ = [
    "glue:BatchGetPartition",
    "glue:GetDatabase",
    "glue:GetDatabases",
    "glue:GetPartition",
    "glue:GetPartitions",
    "glue:GetTable",
    "glue:GetTables",
    "glue:GetTableVersion",
    "glue:GetTableVersions",
]
_GLUE_WRITE = [
    "glue:BatchCreatePartition",
    "glue:BatchDeletePartition",
    "glue:BatchUpdatePartition",
    "glue:CreatePartition",
    "glue:CreateTable",
    "glue:DeletePartition",
    "glue:DeleteTable",
    "glue:UpdatePartition",
    "glue:UpdateTable",
]


class S3LakehouseArgs(TypedDict, total=False):
    """Arguments of :class:`S3Lakehouse`. Every field is optional."""

    artifact_store: S3ArtifactStoreRef
    """An S3ArtifactStore whose bucket (and KMS key) the lakehouse shares, under its own prefix. Default: the
    lakehouse creates its own secure bucket (versioned, SSE-KMS, private, TLS-only, retained on destroy)."""

    prefix: str
    """Key prefix holding the tables (and, under ``_athena_results/``, Athena's query results).
    Default: ``"lakehouse"``."""

    database_name: str
    """Glue database name (lowercase letters, digits, underscores). Default: the component name, lowercased,
    with ``-`` and ``.`` turned into ``_``."""

    workgroup_name: str
    """Athena workgroup name. Default: the component name."""

    bytes_scanned_cutoff_per_query: int
    """Athena cancels a query that scans more than this many bytes (at least 10 MB). Default: 1 TiB
    (about 5 USD per query at list price); ``0`` removes the limit."""

    engine_version: str
    """Athena engine version, e.g. ``"Athena engine version 3"``. Default: ``"AUTO"`` (Athena picks)."""

    bucket_name: pulumi.Input[str]
    """Own bucket only: exact bucket name. Default: auto-named from the component name."""

    kms_key_arn: pulumi.Input[str]
    """Own bucket only: an existing KMS key ARN. Default: a new key with rotation."""

    noncurrent_version_expiration_days: int
    """Own bucket only: days noncurrent versions are kept; ``0`` keeps them forever. Default: 90."""

    abort_incomplete_multipart_days: int
    """Own bucket only: days before an unfinished multipart upload is aborted. Default: 7."""

    access_log_bucket: pulumi.Input[str]
    """Own bucket only: bucket receiving S3 server access logs. Default: no access logging."""

    access_log_prefix: pulumi.Input[str]
    """Own bucket only: key prefix of the access logs. Default: ``s3-access/<bucket name>/``."""

    results_expiration_days: int
    """Own bucket only: days Athena query results are kept under ``<prefix>/_athena_results/`` before S3
    expires them; ``0`` keeps them. Default: 30. (On an artifact store's bucket its lifecycle applies.)"""

    region: pulumi.Input[str]
    """Own bucket only: AWS region of every resource. Default: the provider's region; with an
    ``artifact_store`` the lakehouse always follows the store's region."""

    retain_on_delete: bool
    """Keep the bucket (own bucket only), the Glue database and the workgroup on destroy. Default: True."""

    force_destroy: bool
    """Own bucket only: empty the bucket on destroy, and delete the workgroup with its saved queries.
    Requires ``retain_on_delete=False``. Default: False."""

    tags: dict[str, str]
    """Tags on every resource the lakehouse creates. Default: none."""


_OWN_BUCKET_ONLY = OWN_BUCKET_ONLY


def _renamed(stmts: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    """The same statements with ``suffix`` appended to each Sid (Sids must be unique in one policy)."""
    return [{**s, "Sid": s["Sid"] + suffix} for s in stmts]


def _glue_arns(database_arn: pulumi.Output[str]) -> dict[str, pulumi.Output[str]]:
    """Catalog, database and tables ARNs, from the database ARN (so no account-id lookup is needed)."""

    def part(kind: str) -> pulumi.Output[str]:
        def build(arn: str) -> str:
            head, _, db = arn.partition(":database/")
            return {"catalog": f"{head}:catalog", "database": arn, "tables": f"{head}:table/{db}/*"}[kind]

        return database_arn.apply(build)

    return {k: part(k) for k in ("catalog", "database", "tables")}


class S3Lakehouse(pulumi.ComponentResource):
    """Glue + Athena over ``s3://<bucket>/<prefix>/``; exports the manifest ``data`` section (kind lakehouse).

    Outputs: ``bucket_name``, ``bucket_arn``, ``location``, ``database_name``, ``workgroup_name``,
    ``results_location``, ``kms_key_arn``, ``region``, ``manifest_section``. ``grant_read(role)`` lets a role
    query (Athena + Glue read + S3 read, and writing query results); ``grant_write(role)`` adds creating and
    changing tables and writing data under the prefix.
    """

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    location: pulumi.Output[str]
    results_location: pulumi.Output[str]
    database_name: pulumi.Output[str]
    workgroup_name: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    region: pulumi.Output[str]
    prefix: str
    manifest_section: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        args: S3LakehouseArgs = {},  # noqa: B006 -- read once, never mutated
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        cfg = resolve_lakehouse(name, args)
        self.config = cfg
        self._name_ = name
        self.prefix = cfg.prefix
        store = cfg.artifact_store
        tags = tags_input(cfg.tags)
        force = cfg.force_destroy
        child = pulumi.ResourceOptions(parent=self, retain_on_delete=cfg.retain_on_delete)

        if store is not None:
            if store.prefix == "" or _overlaps(store.prefix, self.prefix):
                pulumi.log.warn(
                    f"S3Lakehouse {name!r}: prefix {self.prefix!r} overlaps the artifact store's prefix "
                    f"{store.prefix!r}, so grants on one reach the other's objects; give them sibling prefixes",
                    resource=self,
                )
            self.secure_bucket: SecureBucket | None = None
            self.bucket_name = store.bucket_name
            self.bucket_arn = store.bucket_arn
            self.kms_key_arn = store.kms_key_arn
            self.region = store.region
            region_in: pulumi.Input[str] | None = store.region
            waits: list[pulumi.Output[Any]] = [store.manifest_section]
        else:
            assert cfg.bucket is not None  # resolve_lakehouse: no store means an own bucket
            results_days = cfg.results_expiration_days
            sb = secure_bucket_from(
                name,
                self,
                cfg.bucket,
                description="mlstack lakehouse",
                extra_lifecycle_rules=[
                    aws.s3.BucketLifecycleConfigurationRuleArgs(
                        id="expire-athena-results",
                        status="Enabled",
                        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                            prefix=f"{self.prefix}/{RESULTS_DIR}/"
                        ),
                        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=results_days),
                    )
                ]
                if results_days
                else None,
            )
            self.secure_bucket = sb
            self.bucket_name = sb.bucket.bucket
            self.bucket_arn = sb.bucket.arn
            self.kms_key_arn = sb.kms_key_arn
            self.region = sb.bucket.region
            region_in = cfg.bucket.region
            waits = [c.urn for c in sb.children]

        prefix_ = self.prefix
        self.location = self.bucket_name.apply(lambda b: f"s3://{b}/{prefix_}/")
        self.results_location = self.bucket_name.apply(lambda b: f"s3://{b}/{prefix_}/{RESULTS_DIR}/")

        self.database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=cfg.database_name,
            description=f"mlstack lakehouse {name}: tables under its S3 prefix",
            location_uri=self.location,
            region=region_in,
            tags=tags,
            opts=child,
        )
        if self.kms_key_arn is not None:
            encryption = aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                encryption_option="SSE_KMS", kms_key_arn=self.kms_key_arn
            )
        else:  # an existing store without a customer key: S3-managed keys
            encryption = aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                encryption_option="SSE_S3"
            )
        self.workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=cfg.workgroup_name,
            description=f"mlstack lakehouse {name}",
            state="ENABLED",
            force_destroy=force,
            configuration=aws.athena.WorkgroupConfigurationArgs(
                enforce_workgroup_configuration=True,
                enable_minimum_encryption_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                requester_pays_enabled=False,
                bytes_scanned_cutoff_per_query=cfg.bytes_scanned_cutoff_per_query or None,
                engine_version=aws.athena.WorkgroupConfigurationEngineVersionArgs(
                    selected_engine_version=cfg.engine_version
                ),
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=self.results_location,
                    encryption_configuration=encryption,
                ),
            ),
            region=region_in,
            tags=tags,
            opts=child,
        )
        self.database_name = self.database.name
        self.workgroup_name = self.workgroup.name
        self.database_arn = self.database.arn
        self.workgroup_arn = self.workgroup.arn

        def section(v: list[Any]) -> dict[str, Any]:
            db, wg, loc, region = v[:4]
            return validate_section(
                "data",
                {
                    "kind": "lakehouse",
                    "database": db,
                    "workgroup": wg,
                    "location": loc.rstrip("/"),
                    "region": region,
                },
            )

        self.manifest_section = pulumi.Output.all(
            self.database_name, self.workgroup_name, self.location, self.region, *waits
        ).apply(section)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "bucket_arn": self.bucket_arn,
                "location": self.location,
                "results_location": self.results_location,
                "database_name": self.database_name,
                "workgroup_name": self.workgroup_name,
                "kms_key_arn": self.kms_key_arn,
                "region": self.region,
                "prefix": self.prefix,
                "manifest_section": self.manifest_section,
            }
        )

    # ------------------------------------------------------------------ grants
    def read_statements(self) -> list[dict[str, Any]]:
        """Query the lakehouse: Athena in this workgroup, Glue read on this database, S3 read under the prefix,
        write under the results prefix (Athena writes results with the caller's credentials)."""
        results_prefix = f"{self.prefix}/{RESULTS_DIR}"
        glue = _glue_arns(self.database.arn)
        stmts = [
            _policy.statement("AthenaQuery", _ATHENA_QUERY, [self.workgroup.arn]),
            # listing databases/tables through Athena (drivers and notebooks do) names the Glue data catalog
            _policy.statement("AthenaMetadata", _ATHENA_METADATA, [_data_catalog_arn(self.workgroup.arn)]),
            _policy.statement("GlueRead", _GLUE_READ, [glue["catalog"], glue["database"], glue["tables"]]),
            *_bucket_location(self.bucket_arn),
            *_policy.s3_read_statements(self.bucket_arn, self.prefix),
            *_renamed(_policy.s3_write_statements(self.bucket_arn, results_prefix), "Results"),
        ]
        if self.kms_key_arn is not None:
            # results are written encrypted, so even readers need data keys (only through S3)
            stmts += s3_kms_statements(self.kms_key_arn, self.region, write=True)
        return stmts

    def write_statements(self) -> list[dict[str, Any]]:
        """Everything in :meth:`read_statements`, plus table DDL in Glue and writing data under the prefix."""
        glue = _glue_arns(self.database.arn)
        return [
            *self.read_statements(),
            _policy.statement("GlueWrite", _GLUE_WRITE, [glue["catalog"], glue["database"], glue["tables"]]),
            *_policy.s3_write_statements(self.bucket_arn, self.prefix),
        ]

    def grant_read(self, role: _policy.RoleLike, name: str | None = None) -> aws.iam.RolePolicy:
        """Let ``role`` (an aws.iam.Role or a role name) query the lakehouse; an inline policy, our child."""
        return _policy.attach(
            grant_resource_name(role, name, self._name_, "read"), role, self.read_statements(), self
        )

    def grant_write(self, role: _policy.RoleLike, name: str | None = None) -> aws.iam.RolePolicy:
        """Let ``role`` query, create and change tables, and write data under the prefix."""
        return _policy.attach(
            grant_resource_name(role, name, self._name_, "write"), role, self.write_statements(), self
        )


def _data_catalog_arn(workgroup_arn: pulumi.Output[str]) -> pulumi.Output[str]:
    """``arn:...:athena:<region>:<account>:datacatalog/AwsDataCatalog`` from the workgroup's ARN."""
    return workgroup_arn.apply(lambda arn: arn.split(":workgroup/")[0] + ":datacatalog/AwsDataCatalog")


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")
