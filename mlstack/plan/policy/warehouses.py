"""Snowflake and Databricks rules: no admin roles or ALL PRIVILEGES, key-pair service users, warehouses that
suspend, clusters that terminate, data kept on destroy."""

from __future__ import annotations

from collections.abc import Iterator

from mlstack.plan.mock_runtime import Resource
from mlstack.plan.policy.engine import Context, as_list, parse_policy, rule

SF = "snowflake:index/"
DBX = "databricks:index/"
SF_ADMIN = {"ACCOUNTADMIN", "SECURITYADMIN", "SYSADMIN", "USERADMIN", "ORGADMIN"}


@rule(
    "SF-001",
    "high",
    "snowflake",
    "Snowflake admin role granted",
    "grant the job roles only what they use (usage, select, create table); never an admin role",
    (SF + "grantAccountRole:GrantAccountRole",),
)
def _sf_admin(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    role = str(ctx.inputs(r).get("roleName") or "").strip('"').upper()
    if role in SF_ADMIN:
        to = ctx.inputs(r).get("userName") or ctx.inputs(r).get("parentRoleName")
        if str(to or "").strip('"').upper() != "SYSADMIN" or role != "SYSADMIN":
            # granting a custom role to SYSADMIN is the recommended hierarchy; granting admin roles is not
            yield f"{r.name} grants {role} to {to}"


@rule(
    "SF-002",
    "high",
    "snowflake",
    "Snowflake ALL PRIVILEGES granted",
    "list the privileges (USAGE, SELECT, CREATE TABLE) instead of all_privileges",
    (
        SF + "grantPrivilegesToAccountRole:GrantPrivilegesToAccountRole",
        SF + "grantPrivilegesToDatabaseRole:GrantPrivilegesToDatabaseRole",
    ),
)
def _sf_all(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    privs = [str(p).upper() for p in as_list(i.get("privileges"))]
    if i.get("allPrivileges") is True or "ALL" in privs or "ALL PRIVILEGES" in privs:
        yield f"{r.name} grants ALL PRIVILEGES to {i.get('accountRoleName') or i.get('databaseRoleName')}"


@rule(
    "SF-003",
    "high",
    "snowflake",
    "Snowflake user with a password",
    "make ML jobs SERVICE users with RSA key-pair auth (snowflake.ServiceUser with rsa_public_key)",
    (SF + "user:User", SF + "serviceUser:ServiceUser", SF + "legacyServiceUser:LegacyServiceUser"),
)
def _sf_password(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if ctx.inputs(r).get("password"):
        yield f"user {r.name} authenticates with a password"


@rule(
    "SF-004",
    "medium",
    "snowflake",
    "Snowflake warehouse never suspends",
    "set auto_suspend (seconds; 60 is typical) and auto_resume=True",
    (SF + "warehouse:Warehouse",),
)
def _sf_suspend(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    s = ctx.inputs(r).get("autoSuspend")
    if isinstance(s, int | float) and s <= 0:
        yield f"warehouse {r.name} has auto_suspend {int(s)}: it bills credits around the clock"
    elif isinstance(s, int | float) and s > 3600:
        yield f"warehouse {r.name} suspends only after {int(s)} s idle"


@rule(
    "SF-005",
    "medium",
    "snowflake",
    "Snowflake database deleted on destroy",
    "protect or retain the database (protect=True or retain_on_delete=True); delete data only on purpose",
    (SF + "database:Database",),
)
def _sf_retain(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    if not (r.options.get("protect") or r.options.get("retainOnDelete")):
        yield f"database {r.name} would be dropped by `pulumi destroy`"


@rule(
    "DBX-001",
    "medium",
    "databricks",
    "Databricks SQL warehouse never stops",
    "set auto_stop_mins (10 is typical) so an idle warehouse stops billing DBUs",
    (DBX + "sqlEndpoint:SqlEndpoint",),
)
def _dbx_stop(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    s = ctx.inputs(r).get("autoStopMins")
    if isinstance(s, int | float) and s <= 0:
        yield f"SQL warehouse {r.name} has auto_stop_mins {int(s)}"


@rule(
    "DBX-002",
    "medium",
    "databricks",
    "Databricks cluster policy does not enforce auto-termination",
    "add 'autotermination_minutes': {'type': 'range', 'maxValue': 120} (or fixed) to the policy definition",
    (DBX + "clusterPolicy:ClusterPolicy",),
)
def _dbx_policy(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    if i.get("policyFamilyId") and not i.get("definition"):
        return  # a Databricks-managed family; it sets its own limits
    d = parse_policy(i.get("definition")) or {}
    at = d.get("autotermination_minutes")
    if (
        not isinstance(at, dict)
        or (at.get("type") not in ("fixed", "range", "allowlist"))
        or (at.get("type") == "fixed" and not at.get("value"))
    ):
        yield f"cluster policy {r.name} does not bound autotermination_minutes"


@rule(
    "DBX-003",
    "high",
    "databricks",
    "Databricks ALL_PRIVILEGES or MANAGE granted",
    "grant USE_CATALOG / USE_SCHEMA / SELECT (reader) and MODIFY / CREATE_TABLE (writer) only",
    (DBX + "grants:Grants", DBX + "grant:Grant"),
)
def _dbx_grants(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    i = ctx.inputs(r)
    grants = as_list(i.get("grants")) or [i]
    for g in grants:
        if not isinstance(g, dict):
            continue
        bad = [p for p in as_list(g.get("privileges")) if str(p).upper() in ("ALL_PRIVILEGES", "MANAGE")]
        if bad:
            yield f"{r.name} grants {', '.join(bad)} to {g.get('principal')}"


@rule(
    "DBX-004",
    "medium",
    "databricks",
    "Databricks personal access token created",
    "authenticate the service principal with OAuth (client id + secret from a secret store), not a PAT",
    (DBX + "token:Token", DBX + "oboToken:OboToken"),
)
def _dbx_token(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    yield f"{r.name} creates a long-lived personal access token"


@rule(
    "DBX-005",
    "medium",
    "databricks",
    "Unity Catalog catalog deleted with its data on destroy",
    "protect or retain the catalog and leave force_destroy off",
    (DBX + "catalog:Catalog",),
)
def _dbx_retain(r: Resource | None, ctx: Context) -> Iterator[str]:
    assert r is not None
    kept = r.options.get("protect") or r.options.get("retainOnDelete")
    if not kept:
        yield f"catalog {r.name} would be dropped by `pulumi destroy`"
    elif ctx.inputs(r).get("forceDestroy") is True and not r.options.get("protect"):
        yield f"catalog {r.name} has force_destroy on"
