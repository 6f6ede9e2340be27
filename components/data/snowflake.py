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

import re
from typing import Any, TypedDict

import pulumi
import pulumi_snowflake as snowflake
import pulumi_tls as tls

from mlstack.manifest import validate_section

from .. import _tokens
from .._args import Problems, is_known

TYPE = _tokens.token("SnowflakeDataLayer")
OLD_TYPE = "mlstack:data:SnowflakeDataLayer"  # kept as an alias: deployed stacks replace nothing

WAREHOUSE_SIZES = (
    "XSMALL",
    "SMALL",
    "MEDIUM",
    "LARGE",
    "XLARGE",
    "XXLARGE",
    "XXXLARGE",
    "X4LARGE",
    "X5LARGE",
    "X6LARGE",
)
# Accepted spellings -> the canonical size (Snowflake accepts both)
_SIZE_ALIASES = {"X-SMALL": "XSMALL", "X-LARGE": "XLARGE", "2X-LARGE": "XXLARGE", "X2LARGE": "XXLARGE"}
_SIZE_ALIASES |= {"3X-LARGE": "XXXLARGE", "X3LARGE": "XXXLARGE", "4X-LARGE": "X4LARGE", "5X-LARGE": "X5LARGE"}
_SIZE_ALIASES |= {"6X-LARGE": "X6LARGE"}
GPU_INSTANCE_FAMILIES = (
    "GPU_NV_XS",
    "GPU_NV_S",
    "GPU_NV_SM",
    "GPU_NV_M",
    "GPU_NV_2M",
    "GPU_NV_3M",
    "GPU_NV_L",
    "GPU_NV_SL",
    "GPU_GCP_NV_L4_1_24G",
    "GPU_GCP_NV_L4_4_24G",
    "GPU_GCP_NV_A100_8_40G",
    "GPU_L40S_G1_8",
    "GPU_L40S_G1_16",
    "GPU_L40S_G1_48",
    "GPU_L40S_G1_192",
    "GPU_A100_G1_12",
    "GPU_A100_G1_48",
)
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,254}$")
# Snowflake roles that must never be granted to, or be, a job role
ADMIN_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN", "ORGADMIN", "PUBLIC")
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


def _base(name: str) -> str:
    b = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
    return b if re.match(r"^[A-Z_]", b) else f"_{b}"


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
        a: dict[str, Any] = dict(args or {})
        v = _validate(name, a)
        base = _base(name)
        comment = a.get("comment", f"managed by mlstack ({name})")
        retain = a.get("retain_on_delete", True)
        child = pulumi.ResourceOptions(parent=self)
        data_opts = pulumi.ResourceOptions(parent=self, retain_on_delete=retain)
        self.account = v["account"]

        # ---------------------------------------------------------- cost guard
        monitor = None
        if a.get("credit_quota") is not None:
            monitor = snowflake.ResourceMonitor(
                f"{name}-monitor",
                name=f"{base}_MONITOR",
                credit_quota=a["credit_quota"],
                frequency="MONTHLY",
                start_timestamp="IMMEDIATELY",
                notify_triggers=[75, 90],
                suspend_trigger=100,
                suspend_immediate_trigger=110,
                notify_users=a.get("notify_users"),
                opts=child,
            )

        # ---------------------------------------------------------- objects
        self.warehouse = snowflake.Warehouse(
            f"{name}-warehouse",
            name=a.get("warehouse_name", f"{base}_WH"),
            warehouse_size=v["warehouse_size"],
            auto_suspend=a.get("auto_suspend_seconds", 60),
            auto_resume="true",
            initially_suspended=True,
            statement_timeout_in_seconds=a.get("statement_timeout_seconds", 14400),
            resource_monitor=monitor.name if monitor is not None else None,
            comment=comment,
            opts=child,
        )
        self.database = snowflake.Database(
            f"{name}-database",
            name=a.get("database_name", base),
            data_retention_time_in_days=a.get("data_retention_days", 1),
            comment=comment,
            opts=data_opts,
        )
        self.schema = snowflake.Schema(
            f"{name}-schema",
            database=self.database.name,
            name=a.get("schema_name", "ML"),
            comment=comment,
            opts=data_opts,
        )
        self.stage = snowflake.StageInternal(
            f"{name}-stage",
            database=self.database.name,
            schema=self.schema.name,
            name=a.get("stage_name", "MLSTACK_STAGE"),
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
            f"{name}-reader", name=a.get("reader_role_name", f"{base}_READER"), comment=comment, opts=child
        )
        self.writer_role = snowflake.AccountRole(
            f"{name}-writer", name=a.get("writer_role_name", f"{base}_WRITER"), comment=comment, opts=child
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
        if "gpu_compute_pool" in a:
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
        parent_role = a.get("parent_role", "SYSADMIN")
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
        pool = a.get("gpu_compute_pool")
        if pool is not None:
            self.compute_pool = snowflake.ComputePool(
                f"{name}-gpu-pool",
                name=pool.get("name", f"{base}_GPU_POOL"),
                instance_family=pool.get("instance_family", "GPU_NV_S"),
                min_nodes=pool.get("min_nodes", 1),
                max_nodes=pool.get("max_nodes", 1),
                auto_resume="true",
                auto_suspend_secs=pool.get("auto_suspend_seconds", 600),
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
        job_role = self.reader_role if v["job_role"] == "reader" else self.writer_role
        self.private_key: tls.PrivateKey | None = None
        self.private_key_pem = None
        if a.get("rsa_public_key") is not None:
            public_key = pulumi.Output.from_input(a["rsa_public_key"]).apply(_public_key_body)
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
            name=a.get("user_name", f"{base}_SVC"),
            login_name=a.get("user_name", f"{base}_SVC"),
            rsa_public_key=public_key,
            default_role=job_role.name,
            default_warehouse=self.warehouse.name,
            default_namespace=schema_fqn,
            default_secondary_roles_option="NONE",
            network_policy=a.get("network_policy"),
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
        self._conn: str | None = a.get("connection_name")
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


def _validate(name: str, a: dict[str, Any]) -> dict[str, Any]:
    """Check every argument, raise once; return the normalised values the constructor needs."""
    p = Problems(f"SnowflakeDataLayer {name!r}")
    p.unknown_keys(a, SnowflakeDataLayerArgs)
    out: dict[str, Any] = {}

    account = a.get("account")
    if account is None:
        cfg = pulumi.Config("snowflake")
        org, acct = cfg.get("organizationName"), cfg.get("accountName")
        account = f"{org}-{acct}" if org and acct else None
    if account is None:
        p.add(
            "account",
            None,
            "required: pass account='<org>-<account>' or set the Pulumi config snowflake:organizationName "
            "and snowflake:accountName",
        )
    elif not isinstance(account, str) or not _ACCOUNT_RE.match(account):
        p.add("account", account, "an account identifier such as 'myorg-myaccount'")
    out["account"] = account

    size = a.get("warehouse_size", "XSMALL")
    canon = _SIZE_ALIASES.get(size.upper(), size.upper()) if isinstance(size, str) else size
    if canon not in WAREHOUSE_SIZES:
        p.add("warehouse_size", size, "one of: " + ", ".join(WAREHOUSE_SIZES))
    out["warehouse_size"] = canon

    for key, low, high in (
        ("auto_suspend_seconds", 60, 86400 * 7),
        ("statement_timeout_seconds", 1, 604800),
        ("data_retention_days", 0, 90),
        ("credit_quota", 1, 10**7),
    ):
        value = a.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            p.add(key, value, f"a whole number from {low} to {high}")

    for key in (
        "warehouse_name",
        "database_name",
        "schema_name",
        "stage_name",
        "reader_role_name",
        "writer_role_name",
        "user_name",
    ):
        value = a.get(key)
        if value is not None and (not isinstance(value, str) or not _IDENT_RE.match(value)):
            p.add(key, value, "a Snowflake identifier: a letter or _ then letters, digits, _ or $")
    for key in ("reader_role_name", "writer_role_name"):
        if isinstance(a.get(key), str) and a[key].upper() in ADMIN_ROLES:
            p.add(key, a[key], "a new role of its own, never a system/admin role")
    if isinstance(a.get("reader_role_name"), str) and a.get("reader_role_name") == a.get("writer_role_name"):
        p.add("writer_role_name", a["writer_role_name"], "a different name than reader_role_name")

    policy = a.get("network_policy")
    if policy is not None and (not isinstance(policy, str) or not _IDENT_RE.match(policy)):
        p.add("network_policy", policy, "the name of an existing network policy")
    parent_role = a.get("parent_role", "SYSADMIN")
    if not isinstance(parent_role, str) or (parent_role and not _IDENT_RE.match(parent_role)):
        p.add("parent_role", parent_role, "an existing role name, or '' for none")

    job_role = a.get("job_role", "reader")
    if job_role not in ("reader", "writer"):
        p.add("job_role", job_role, "'reader' or 'writer'")
    out["job_role"] = job_role

    pub = a.get("rsa_public_key")
    if pub is not None and is_known(pub) and (not isinstance(pub, str) or "PRIVATE" in pub.upper()):
        p.add("rsa_public_key", "<redacted>", "a PUBLIC key (PEM or base64 body); never pass a private key")

    conn = a.get("connection_name")
    if conn is not None and (not isinstance(conn, str) or not re.match(r"^[A-Za-z0-9_\-]{1,64}$", conn)):
        p.add("connection_name", conn, "letters, digits, '_' and '-'")

    users = a.get("notify_users")
    if users is not None and (not isinstance(users, list) or not all(isinstance(u, str) for u in users)):
        p.add("notify_users", users, "a list of user names")
    if users and a.get("credit_quota") is None:
        p.add("notify_users", users, "only used with credit_quota; set it too")

    pool = a.get("gpu_compute_pool")
    if pool is not None:
        if not isinstance(pool, dict):
            p.add(
                "gpu_compute_pool",
                pool,
                "a dict (SnowflakeGpuComputePoolArgs), e.g. {'instance_family': 'GPU_NV_S'}",
            )
        else:
            p.unknown_keys(pool, SnowflakeGpuComputePoolArgs, prefix="gpu_compute_pool.")
            fam = pool.get("instance_family", "GPU_NV_S")
            if fam not in GPU_INSTANCE_FAMILIES:
                p.add(
                    "gpu_compute_pool.instance_family",
                    fam,
                    "a GPU family: " + ", ".join(GPU_INSTANCE_FAMILIES),
                )
            lo, hi = pool.get("min_nodes", 1), pool.get("max_nodes", 1)
            for k, val in (("min_nodes", lo), ("max_nodes", hi)):
                if isinstance(val, bool) or not isinstance(val, int) or not 1 <= val <= 150:
                    p.add(f"gpu_compute_pool.{k}", val, "a whole number from 1 to 150")
            if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
                p.add("gpu_compute_pool.max_nodes", hi, f"at least min_nodes ({lo})")
            secs = pool.get("auto_suspend_seconds", 600)
            if isinstance(secs, bool) or not isinstance(secs, int) or secs < 60:
                p.add("gpu_compute_pool.auto_suspend_seconds", secs, "a whole number of seconds, at least 60")
            pn = pool.get("name")
            if pn is not None and (not isinstance(pn, str) or not _IDENT_RE.match(pn)):
                p.add("gpu_compute_pool.name", pn, "a Snowflake identifier")

    if not isinstance(a.get("retain_on_delete", True), bool):
        p.add("retain_on_delete", a["retain_on_delete"], "True or False")
    if "comment" in a and not isinstance(a["comment"], str):
        p.add("comment", a["comment"], "a string")
    p.raise_if_any()
    return out
