"""``SnowflakeDataLayer``: a warehouse, database, schema, stage, two roles and a key-pair SERVICE user for ML jobs.

Least privilege by construction: the reader role gets USAGE on the warehouse, database and schema, SELECT on
all and future tables of the schema and READ on the stage; the writer role inherits the reader and adds
CREATE TABLE on the schema and WRITE on the stage (plus, with a GPU compute pool, USAGE/MONITOR on the pool
and CREATE SERVICE on the schema). That is exactly what ``mlstack.data.write``'s bulk path needs: PUT and
REMOVE of Parquet files in the stage (WRITE), COPY INTO from it (READ), a new table beside the target
(CREATE TABLE), then RENAME / SWAP WITH of tables the writer owns (it owns what it creates). The manifest
names the stage (``stage``), so bulk writes use it. No role ever gets ALL PRIVILEGES, OWNERSHIP or an admin role. The service
user authenticates with an RSA key pair only (no password); the private key is a Pulumi secret output and
never in the manifest.

Import cost: ``pulumi_snowflake`` takes ~2 s to import; only this module imports it.
"""

from typing import Any, TypedDict

import pulumi
import pulumi_snowflake as snowflake
import pulumi_tls as tls

from mlstack.manifest import validate_section

from .. import _tokens
from .snowflake_config import (
    ADMIN_ROLES,
    GPU_INSTANCE_FAMILIES,
    WAREHOUSE_SIZES,
    GpuPoolConfig,
    JobRole,
    SnowflakeConfig,
    WarehouseSize,
    base_name,
    resolve_snowflake,
)

TYPE = _tokens.token("SnowflakeDataLayer")
OLD_TYPE = "mlstack:data:SnowflakeDataLayer"  # kept as an alias: deployed stacks replace nothing

DEFAULT_RSA_BITS = 4096


class SnowflakeGpuComputePoolArgs(TypedDict, total=False):
    """A Snowpark Container Services compute pool of GPU nodes for training jobs."""

    instance_family: str
    """GPU instance family, e.g. ``"GPU_NV_S"`` (one A10G). Default: ``"GPU_NV_S"``."""

    min_nodes: int
    """Nodes kept when the pool runs. Default: 1."""

    max_nodes: int
    """Most nodes the pool scales out to. Default: 1."""

    auto_suspend_seconds: int
    """Idle seconds before the pool suspends (and stops billing). Default: 600."""

    name: str
    """Pool name. Default: ``<BASE>_GPU_POOL``."""


class SnowflakeDataLayerArgs(TypedDict, total=False):
    """Arguments of :class:`SnowflakeDataLayer`. Object names default from the component name, upper-cased
    with other characters turned into ``_`` (``BASE`` below)."""

    account: str
    """Snowflake account identifier for the manifest, ``<org>-<account>``. Default: from Pulumi config
    ``snowflake:organizationName`` and ``snowflake:accountName``; one of the two is required."""

    warehouse_name: str
    """Warehouse name. Default: ``<BASE>_WH``."""

    warehouse_size: str
    """Warehouse size (``XSMALL`` .. ``X6LARGE``; ``X-SMALL`` style accepted). Default: ``"XSMALL"``."""

    auto_suspend_seconds: int
    """Idle seconds before the warehouse suspends (it resumes on the next query). Default: 60."""

    statement_timeout_seconds: int
    """Longest a statement may run on the warehouse before Snowflake cancels it. Default: 14400 (4 h)."""

    database_name: str
    """Database name. Default: ``<BASE>``."""

    schema_name: str
    """Schema name inside the database. Default: ``"ML"``."""

    data_retention_days: int
    """Time Travel retention of the database, in days (0-90). Default: 1."""

    stage_name: str
    """Internal stage (server-side encrypted) in the schema, for files and model blobs; the manifest's
    ``stage``, where bulk writes (``mlstack.data.write``, ``mlstack data load``) upload Parquet files to COPY
    INTO tables. Default: ``"MLSTACK_STAGE"``."""

    reader_role_name: str
    """Name of the read-only role. Default: ``<BASE>_READER``."""

    writer_role_name: str
    """Name of the read-write role (it inherits the reader). Default: ``<BASE>_WRITER``."""

    parent_role: str
    """Existing role the two roles are granted to, so administrators can manage what jobs create.
    ``""`` grants them to no role. Default: ``"SYSADMIN"``."""

    user_name: str
    """Name of the SERVICE user jobs log in as. Default: ``<BASE>_SVC``."""

    job_role: str
    """Which role the service user gets and the manifest names: ``"reader"`` or ``"writer"``.
    Default: ``"reader"``."""

    rsa_public_key: pulumi.Input[str]
    """The user's RSA public key (PEM, or the base64 body) when you keep the private key yourself; then
    ``private_key_pem`` is None. Default: a new 4096-bit RSA key pair (pulumi-tls); the private key is a
    secret output in the stack state."""

    network_policy: str
    """Existing network policy attached to the service user, limiting where jobs may log in from (e.g. the
    cluster's NAT IPs). Default: none (the account's policy, if any, applies)."""

    connection_name: str
    """``connections.toml`` entry jobs use (written to the manifest's ``connection_name``). Default: none (the
    connector's default connection)."""

    credit_quota: int
    """Monthly credit quota: a resource monitor notifies at 75% and 90%, suspends the warehouse at 100% and
    kills running queries at 110%. Default: no resource monitor."""

    notify_users: list[str]
    """Users e-mailed by the resource monitor (they must have verified e-mails). Default: none."""

    gpu_compute_pool: SnowflakeGpuComputePoolArgs
    """Create a Snowpark Container Services GPU compute pool (the writer role may use it). Default: none."""

    retain_on_delete: bool
    """Keep the database, schema and stage (the data) when the stack is destroyed. Default: True."""

    comment: str
    """Comment put on every object. Default: ``"managed by mlstack (<component name>)"``."""


__all__ = [
    "ADMIN_ROLES",
    "GPU_INSTANCE_FAMILIES",
    "WAREHOUSE_SIZES",
    "GpuPoolConfig",
    "JobRole",
    "SnowflakeConfig",
    "SnowflakeDataLayer",
    "SnowflakeDataLayerArgs",
    "SnowflakeGpuComputePoolArgs",
    "WarehouseSize",
    "resolve_snowflake",
]
_base = base_name


def _public_key_body(pem: str) -> str:
    """Snowflake wants the base64 body of the public key, without PEM armour or line breaks."""
    return "".join(line.strip() for line in pem.strip().splitlines() if line.strip() and "-----" not in line)


def _fqn(*parts: pulumi.Input[str]) -> pulumi.Output[str]:
    """``"DB"."SCHEMA"`` (quoted, so names are taken exactly as created)."""
    return pulumi.Output.all(*parts).apply(
        lambda ps: ".".join('"' + str(p).replace('"', '""') + '"' for p in ps)
    )


class SnowflakeDataLayer(pulumi.ComponentResource):
    """Snowflake objects for ML jobs, least privilege, exporting the manifest ``data`` section (kind snowflake).

    Outputs: ``warehouse_name``, ``database_name``, ``schema_name``, ``stage_name``, ``reader_role_name``,
    ``writer_role_name``, ``user_name``, ``job_role_name``, ``account``, ``private_key_pem`` (secret, PKCS#8,
    None with ``rsa_public_key``), ``compute_pool_name`` (None without a pool), ``manifest_section``.
    """

    warehouse_name: pulumi.Output[str]
    database_name: pulumi.Output[str]
    schema_name: pulumi.Output[str]
    stage_name: pulumi.Output[str]
    reader_role_name: pulumi.Output[str]
    writer_role_name: pulumi.Output[str]
    user_name: pulumi.Output[str]
    job_role_name: pulumi.Output[str]
    account: str
    private_key_pem: pulumi.Output[str] | None
    compute_pool_name: pulumi.Output[str] | None
    manifest_section: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        name: str,
        args: SnowflakeDataLayerArgs = {},  # noqa: B006 -- read once, never mutated
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(TYPE, name, None, _tokens.with_old_token(opts, OLD_TYPE))
        provider_cfg = pulumi.Config("snowflake")
        cfg = resolve_snowflake(
            name,
            args,
            organization_name=provider_cfg.get("organizationName"),
            account_name=provider_cfg.get("accountName"),
        )
        self.config = cfg
        base = cfg.base
        comment = cfg.comment
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(parent=self, retain_on_delete=cfg.retain_on_delete)
        self.account = cfg.account

        # ---------------------------------------------------------- cost guard
        monitor = None
        if cfg.credit_quota is not None:
            monitor = snowflake.ResourceMonitor(
                f"{name}-monitor",
                name=f"{base}_MONITOR",
                credit_quota=cfg.credit_quota,
                frequency="MONTHLY",
                start_timestamp="IMMEDIATELY",
                notify_triggers=[75, 90],
                suspend_trigger=100,
                suspend_immediate_trigger=110,
                notify_users=list(cfg.notify_users) if cfg.notify_users is not None else None,
                opts=child,
            )

        # ---------------------------------------------------------- objects
        self.warehouse = snowflake.Warehouse(
            f"{name}-warehouse",
            name=cfg.warehouse_name,
            warehouse_size=cfg.warehouse_size.value,
            auto_suspend=cfg.auto_suspend_seconds,
            auto_resume="true",
            initially_suspended=True,
            statement_timeout_in_seconds=cfg.statement_timeout_seconds,
            resource_monitor=monitor.name if monitor is not None else None,
            comment=comment,
            opts=child,
        )
        self.database = snowflake.Database(
            f"{name}-database",
            name=cfg.database_name,
            data_retention_time_in_days=cfg.data_retention_days,
            comment=comment,
            opts=data_opts,
        )
        self.schema = snowflake.Schema(
            f"{name}-schema",
            database=self.database.name,
            name=cfg.schema_name,
            comment=comment,
            opts=data_opts,
        )
        self.stage = snowflake.StageInternal(
            f"{name}-stage",
            database=self.database.name,
            schema=self.schema.name,
            name=cfg.stage_name,
            encryption=snowflake.StageInternalEncryptionArgs(
                snowflake_sse=snowflake.StageInternalEncryptionSnowflakeSseArgs()
            ),
            directory=snowflake.StageInternalDirectoryArgs(enable=True),
            comment=comment,
            opts=data_opts,
        )
        schema_fqn = _fqn(self.database.name, self.schema.name)
        stage_fqn = _fqn(self.database.name, self.schema.name, self.stage.name)

        # ---------------------------------------------------------- roles and grants
        self.reader_role = snowflake.AccountRole(
            f"{name}-reader", name=cfg.reader_role_name, comment=comment, opts=child
        )
        self.writer_role = snowflake.AccountRole(
            f"{name}-writer", name=cfg.writer_role_name, comment=comment, opts=child
        )
        self.grants: list[pulumi.Resource] = []

        def grant(key: str, role: snowflake.AccountRole, privileges: list[str], **on: Any) -> None:
            self.grants.append(
                snowflake.GrantPrivilegesToAccountRole(
                    f"{name}-{key}", account_role_name=role.name, privileges=privileges, opts=child, **on
                )
            )

        def on_object(kind: str, obj_name: pulumi.Input[str]) -> Any:
            return snowflake.GrantPrivilegesToAccountRoleOnAccountObjectArgs(
                object_type=kind, object_name=obj_name
            )

        for who, role in (("reader", self.reader_role), ("writer", self.writer_role)):
            grant(
                f"{who}-warehouse-usage",
                role,
                ["USAGE"],
                on_account_object=on_object("WAREHOUSE", self.warehouse.name),
            )
            grant(
                f"{who}-database-usage",
                role,
                ["USAGE"],
                on_account_object=on_object("DATABASE", self.database.name),
            )
            grant(
                f"{who}-schema-usage",
                role,
                ["USAGE"],
                on_schema=snowflake.GrantPrivilegesToAccountRoleOnSchemaArgs(schema_name=schema_fqn),
            )
        grant(
            "reader-select-all-tables",
            self.reader_role,
            ["SELECT"],
            on_schema_object=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectArgs(
                all=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectAllArgs(
                    object_type_plural="TABLES", in_schema=schema_fqn
                )
            ),
        )
        grant(
            "reader-select-future-tables",
            self.reader_role,
            ["SELECT"],
            on_schema_object=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectArgs(
                future=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectFutureArgs(
                    object_type_plural="TABLES", in_schema=schema_fqn
                )
            ),
        )
        grant(
            "reader-stage-read",
            self.reader_role,
            ["READ"],
            on_schema_object=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectArgs(
                object_type="STAGE", object_name=stage_fqn
            ),
        )
        writer_schema_privileges = ["CREATE TABLE"]
        if cfg.gpu_compute_pool is not None:
            writer_schema_privileges.append("CREATE SERVICE")
        grant(
            "writer-schema-create",
            self.writer_role,
            writer_schema_privileges,
            on_schema=snowflake.GrantPrivilegesToAccountRoleOnSchemaArgs(schema_name=schema_fqn),
        )
        grant(
            "writer-stage-write",
            self.writer_role,
            ["READ", "WRITE"],
            on_schema_object=snowflake.GrantPrivilegesToAccountRoleOnSchemaObjectArgs(
                object_type="STAGE", object_name=stage_fqn
            ),
        )
        # the writer can read whatever the reader can (tables others created, the stage)
        self.role_grants: list[snowflake.GrantAccountRole] = [
            snowflake.GrantAccountRole(
                f"{name}-writer-inherits-reader",
                role_name=self.reader_role.name,
                parent_role_name=self.writer_role.name,
                opts=child,
            )
        ]
        parent_role = cfg.parent_role
        if parent_role:
            for who, role in (("reader", self.reader_role), ("writer", self.writer_role)):
                self.role_grants.append(
                    snowflake.GrantAccountRole(
                        f"{name}-{who}-to-{parent_role.lower()}",
                        role_name=role.name,
                        parent_role_name=parent_role,
                        opts=child,
                    )
                )

        # ---------------------------------------------------------- optional GPU compute pool
        self.compute_pool: snowflake.ComputePool | None = None
        self.compute_pool_name = None
        pool = cfg.gpu_compute_pool
        if pool is not None:
            self.compute_pool = snowflake.ComputePool(
                f"{name}-gpu-pool",
                name=pool.name,
                instance_family=pool.instance_family,
                min_nodes=pool.min_nodes,
                max_nodes=pool.max_nodes,
                auto_resume="true",
                auto_suspend_secs=pool.auto_suspend_seconds,
                initially_suspended="true",
                comment=comment,
                opts=child,
            )
            self.compute_pool_name = self.compute_pool.name
            grant(
                "writer-gpu-pool",
                self.writer_role,
                ["USAGE", "MONITOR"],
                on_account_object=on_object("COMPUTE POOL", self.compute_pool.name),
            )

        # ---------------------------------------------------------- service user (key pair only)
        job_role = self.reader_role if cfg.job_role is JobRole.READER else self.writer_role
        self.private_key: tls.PrivateKey | None = None
        self.private_key_pem = None
        if cfg.rsa_public_key is not None:
            public_key = pulumi.Output.from_input(cfg.rsa_public_key).apply(_public_key_body)
        else:
            self.private_key = tls.PrivateKey(
                f"{name}-user-key",
                algorithm="RSA",
                rsa_bits=DEFAULT_RSA_BITS,
                opts=pulumi.ResourceOptions(
                    parent=self,
                    additional_secret_outputs=["privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"],
                ),
            )
            public_key = self.private_key.public_key_pem.apply(_public_key_body)
            # PKCS#8 is what the Snowflake connector's private_key_file expects
            self.private_key_pem = pulumi.Output.secret(self.private_key.private_key_pem_pkcs8)
        self.user = snowflake.ServiceUser(
            f"{name}-user",
            name=cfg.user_name,
            login_name=cfg.user_name,
            rsa_public_key=public_key,
            default_role=job_role.name,
            default_warehouse=self.warehouse.name,
            default_namespace=schema_fqn,
            default_secondary_roles_option="NONE",
            network_policy=cfg.network_policy,
            comment=comment,
            opts=child,
        )
        self.role_grants.append(
            snowflake.GrantAccountRole(
                f"{name}-user-role", role_name=job_role.name, user_name=self.user.name, opts=child
            )
        )

        # ---------------------------------------------------------- outputs
        self.warehouse_name = self.warehouse.name
        self.database_name = self.database.name
        self.schema_name = self.schema.name
        self.stage_name = self.stage.name
        self.reader_role_name = self.reader_role.name
        self.writer_role_name = self.writer_role.name
        self.user_name = self.user.name
        self.job_role_name = job_role.name
        self._conn: str | None = cfg.connection_name
        connection = self._conn
        account = self.account
        waits = [g.urn for g in self.grants + self.role_grants]

        def section(vals: list[Any]) -> dict[str, Any]:
            wh, db, sc, role, user, stage = vals[:6]
            s = {
                "kind": "snowflake",
                "account": account,
                "warehouse": wh,
                "database": db,
                "schema": sc,
                "role": role,
                "user": user,
                "stage": stage,
            }
            if connection:
                s["connection_name"] = connection
            return validate_section("data", s)

        # the section is ready only once every grant is, so a job never starts with half its privileges
        self.manifest_section = pulumi.Output.all(
            self.warehouse_name,
            self.database_name,
            self.schema_name,
            self.job_role_name,
            self.user_name,
            self.stage_name,
            *waits,
        ).apply(section)
        self.register_outputs(
            {
                "account": self.account,
                "warehouse_name": self.warehouse_name,
                "database_name": self.database_name,
                "schema_name": self.schema_name,
                "stage_name": self.stage_name,
                "reader_role_name": self.reader_role_name,
                "writer_role_name": self.writer_role_name,
                "user_name": self.user_name,
                "job_role_name": self.job_role_name,
                "private_key_pem": self.private_key_pem,
                "compute_pool_name": self.compute_pool_name,
                "manifest_section": self.manifest_section,
            }
        )

    def jobs_access(self, private_key_path: str = "/var/run/secrets/snowflake/rsa_key.p8") -> dict[str, Any]:
        """What a job platform must hand to jobs so they can log in, for :class:`MLStack` to wire.

        Returns ``connections_toml`` (a secret Output: a ``connections.toml`` with one entry named after
        ``connection_name`` or ``default``, using key-pair auth and ``private_key_file=private_key_path``),
        ``private_key_pem`` (secret; mount it at ``private_key_path``, mode 0600), ``connection_name`` and
        the plain names. Put both files in a Kubernetes Secret (or a secrets manager), mount them, and set
        ``SNOWFLAKE_HOME`` to the folder holding ``connections.toml``. Nothing here goes in the manifest.
        """
        entry = self._conn or "default"
        account = self.account

        def toml(v: list[Any]) -> str:
            user, role, wh, db, sc = v
            lines = [
                f"[{entry}]",
                f'account = "{account}"',
                f'user = "{user}"',
                'authenticator = "SNOWFLAKE_JWT"',
                f'private_key_file = "{private_key_path}"',
                f'role = "{role}"',
                f'warehouse = "{wh}"',
                f'database = "{db}"',
                f'schema = "{sc}"',
            ]
            return "\n".join(lines) + "\n"

        return {
            "connection_name": entry,
            "connections_toml": pulumi.Output.secret(
                pulumi.Output.all(
                    self.user_name,
                    self.job_role_name,
                    self.warehouse_name,
                    self.database_name,
                    self.schema_name,
                ).apply(toml)
            ),
            "private_key_pem": self.private_key_pem,
            "private_key_path": private_key_path,
            "user_name": self.user_name,
            "role_name": self.job_role_name,
        }
