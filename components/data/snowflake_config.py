"""SnowflakeDataLayer's args validated once into frozen config: a pure function, no Pulumi calls.

:func:`resolve_snowflake` reads the arguments exactly once, collects every problem (each naming the key, the
value and the fix) and either raises one :class:`InputPropertiesError` or returns a :class:`SnowflakeConfig`
with every default filled (object names from the component name). The component builds only from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import pulumi

from .._args import Problems, choice, is_known, is_whole

if TYPE_CHECKING:
    from .snowflake import SnowflakeDataLayerArgs


class WarehouseSize(StrEnum):
    """A Snowflake warehouse size; ``X-SMALL`` style spellings and any case are accepted."""

    XSMALL = "XSMALL"
    SMALL = "SMALL"
    MEDIUM = "MEDIUM"
    LARGE = "LARGE"
    XLARGE = "XLARGE"
    XXLARGE = "XXLARGE"
    XXXLARGE = "XXXLARGE"
    X4LARGE = "X4LARGE"
    X5LARGE = "X5LARGE"
    X6LARGE = "X6LARGE"

    @classmethod
    def _missing_(cls, value: object) -> WarehouseSize | None:
        if not isinstance(value, str):
            return None
        canon = _SIZE_ALIASES.get(value.upper(), value.upper())
        return cls.__members__.get(canon)


class JobRole(StrEnum):
    """Which of the layer's two roles the service user gets (and the manifest names)."""

    READER = "reader"
    WRITER = "writer"


WAREHOUSE_SIZES = tuple(m.value for m in WarehouseSize)
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
IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,254}$")
_CONNECTION_RE = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
# Snowflake roles that must never be granted to, or be, a job role
ADMIN_ROLES = ("ACCOUNTADMIN", "SECURITYADMIN", "USERADMIN", "SYSADMIN", "ORGADMIN", "PUBLIC")
_NAME_KEYS = (
    "warehouse_name",
    "database_name",
    "schema_name",
    "stage_name",
    "reader_role_name",
    "writer_role_name",
    "user_name",
)


@dataclass(frozen=True)
class GpuPoolConfig:
    """The Snowpark Container Services GPU compute pool, defaults filled."""

    name: str
    instance_family: str = "GPU_NV_S"
    min_nodes: int = 1
    max_nodes: int = 1
    auto_suspend_seconds: int = 600


@dataclass(frozen=True)
class SnowflakeConfig:
    """SnowflakeDataLayer's args, validated, every default filled."""

    account: str
    """``<org>-<account>``, from ``account`` or the ``snowflake:organizationName``/``accountName`` config."""
    base: str
    """The component name as a Snowflake identifier (``BASE`` in the Args docs): the names' default stem."""
    warehouse_name: str
    warehouse_size: WarehouseSize
    auto_suspend_seconds: int
    statement_timeout_seconds: int
    database_name: str
    schema_name: str
    data_retention_days: int
    stage_name: str
    reader_role_name: str
    writer_role_name: str
    parent_role: str
    """``""``: the two roles are granted to no role."""
    user_name: str
    job_role: JobRole
    rsa_public_key: pulumi.Input[str] | None
    """None: the layer makes a key pair (pulumi-tls)."""
    network_policy: str | None
    connection_name: str | None
    credit_quota: int | None
    """None: no resource monitor."""
    notify_users: tuple[str, ...] | None
    gpu_compute_pool: GpuPoolConfig | None
    retain_on_delete: bool
    comment: str


def base_name(name: str) -> str:
    """The component name upper-cased, other characters turned into ``_``, starting with a letter or ``_``."""
    b = re.sub(r"[^A-Za-z0-9_]", "_", name).upper()
    return b if re.match(r"^[A-Z_]", b) else f"_{b}"


def _pool(p: Problems, pool: Any, base: str) -> GpuPoolConfig | None:
    if pool is None:
        return None
    if not isinstance(pool, Mapping):
        p.add(
            "gpu_compute_pool",
            pool,
            "a dict (SnowflakeGpuComputePoolArgs), e.g. {'instance_family': 'GPU_NV_S'}",
        )
        return None
    from .snowflake import SnowflakeGpuComputePoolArgs

    p.unknown_keys(pool, SnowflakeGpuComputePoolArgs, prefix="gpu_compute_pool.")
    fam = pool.get("instance_family", "GPU_NV_S")
    if fam not in GPU_INSTANCE_FAMILIES:
        p.add("gpu_compute_pool.instance_family", fam, "a GPU family: " + ", ".join(GPU_INSTANCE_FAMILIES))
    lo, hi = pool.get("min_nodes", 1), pool.get("max_nodes", 1)
    for k, val in (("min_nodes", lo), ("max_nodes", hi)):
        if not is_whole(val) or not 1 <= val <= 150:
            p.add(f"gpu_compute_pool.{k}", val, "a whole number from 1 to 150")
    if is_whole(lo) and is_whole(hi) and lo > hi:
        p.add("gpu_compute_pool.max_nodes", hi, f"at least min_nodes ({lo})")
    secs = pool.get("auto_suspend_seconds", 600)
    if not is_whole(secs) or secs < 60:
        p.add("gpu_compute_pool.auto_suspend_seconds", secs, "a whole number of seconds, at least 60")
    pn = pool.get("name", f"{base}_GPU_POOL")
    if not isinstance(pn, str) or not IDENT_RE.match(pn):
        p.add("gpu_compute_pool.name", pn, "a Snowflake identifier")
    return GpuPoolConfig(pn, fam, lo, hi, secs)


def resolve_snowflake(
    name: str,
    args: SnowflakeDataLayerArgs | Mapping[str, Any] | None,
    *,
    organization_name: str | None = None,
    account_name: str | None = None,
) -> SnowflakeConfig:
    """SnowflakeDataLayer's args as a frozen :class:`SnowflakeConfig`; every problem reported in one error.

    ``organization_name`` / ``account_name`` are the ``snowflake:`` provider config, the account's default."""
    from .snowflake import SnowflakeDataLayerArgs

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"SnowflakeDataLayer {name!r}")
    p.unknown_keys(a, SnowflakeDataLayerArgs)
    base = base_name(name)

    account = a.get("account")
    if account is None and organization_name and account_name:
        account = f"{organization_name}-{account_name}"
    if account is None:
        p.add(
            "account",
            None,
            "required: pass account='<org>-<account>' or set the Pulumi config snowflake:organizationName "
            "and snowflake:accountName",
        )
    elif not isinstance(account, str) or not _ACCOUNT_RE.match(account):
        p.add("account", account, "an account identifier such as 'myorg-myaccount'")

    size = choice(p, "warehouse_size", a.get("warehouse_size", "XSMALL"), WarehouseSize, WarehouseSize.XSMALL)

    ints: dict[str, Any] = {}
    for key, low, high, default in (
        ("auto_suspend_seconds", 60, 86400 * 7, 60),
        ("statement_timeout_seconds", 1, 604800, 14400),
        ("data_retention_days", 0, 90, 1),
        ("credit_quota", 1, 10**7, None),
    ):
        value = ints[key] = a.get(key, default)
        if value is not None and (not is_whole(value) or not low <= value <= high):
            p.add(key, value, f"a whole number from {low} to {high}")

    defaults = {
        "warehouse_name": f"{base}_WH",
        "database_name": base,
        "schema_name": "ML",
        "stage_name": "MLSTACK_STAGE",
        "reader_role_name": f"{base}_READER",
        "writer_role_name": f"{base}_WRITER",
        "user_name": f"{base}_SVC",
    }
    names: dict[str, str] = {}
    for key in _NAME_KEYS:
        value = a.get(key)
        if value is not None and (not isinstance(value, str) or not IDENT_RE.match(value)):
            p.add(key, value, "a Snowflake identifier: a letter or _ then letters, digits, _ or $")
        names[key] = value if value is not None else defaults[key]
    for key in ("reader_role_name", "writer_role_name"):
        if isinstance(a.get(key), str) and a[key].upper() in ADMIN_ROLES:
            p.add(key, a[key], "a new role of its own, never a system/admin role")
    if isinstance(a.get("reader_role_name"), str) and a.get("reader_role_name") == a.get("writer_role_name"):
        p.add("writer_role_name", a["writer_role_name"], "a different name than reader_role_name")

    policy = a.get("network_policy")
    if policy is not None and (not isinstance(policy, str) or not IDENT_RE.match(policy)):
        p.add("network_policy", policy, "the name of an existing network policy")
    parent_role = a.get("parent_role", "SYSADMIN")
    if not isinstance(parent_role, str) or (parent_role and not IDENT_RE.match(parent_role)):
        p.add("parent_role", parent_role, "an existing role name, or '' for none")

    job_role = choice(
        p, "job_role", a.get("job_role", "reader"), JobRole, JobRole.READER, "'reader' or 'writer'"
    )

    pub = a.get("rsa_public_key")
    if pub is not None and is_known(pub) and (not isinstance(pub, str) or "PRIVATE" in pub.upper()):
        p.add("rsa_public_key", "<redacted>", "a PUBLIC key (PEM or base64 body); never pass a private key")

    conn = a.get("connection_name")
    if conn is not None and (not isinstance(conn, str) or not _CONNECTION_RE.match(conn)):
        p.add("connection_name", conn, "letters, digits, '_' and '-'")

    users = a.get("notify_users")
    if users is not None and (not isinstance(users, list) or not all(isinstance(u, str) for u in users)):
        p.add("notify_users", users, "a list of user names")
    if users and ints["credit_quota"] is None:
        p.add("notify_users", users, "only used with credit_quota; set it too")

    pool = _pool(p, a.get("gpu_compute_pool"), base)
    retain = a.get("retain_on_delete", True)
    if not isinstance(retain, bool):
        p.add("retain_on_delete", retain, "True or False")
    comment = a.get("comment", f"managed by mlstack ({name})")
    if not isinstance(comment, str):
        p.add("comment", comment, "a string")
    p.raise_if_any()
    return SnowflakeConfig(
        account=account,  # type: ignore[arg-type]  # checked above
        base=base,
        warehouse_size=size,
        auto_suspend_seconds=ints["auto_suspend_seconds"],
        statement_timeout_seconds=ints["statement_timeout_seconds"],
        data_retention_days=ints["data_retention_days"],
        credit_quota=ints["credit_quota"],
        parent_role=parent_role,
        job_role=job_role,
        rsa_public_key=pub,
        network_policy=policy,
        connection_name=conn,
        notify_users=tuple(users) if users is not None else None,
        gpu_compute_pool=pool,
        retain_on_delete=retain,
        comment=comment,
        **names,
    )
