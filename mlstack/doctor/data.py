"""Data checks: connection, the role and warehouse in use, ``SELECT 1``, read permission on the schema.

Each warehouse is reached with its own connector, bounded by the doctor's timeout (login, network and
HTTP timeouts set from it, no retries), so a dead warehouse costs one timeout.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from mlstack.doctor.core import Check, Finding, Sink, error_text, fail, ok, warn
from mlstack.errors import require
from mlstack.manifest import DatabricksData, LakehouseData, LocalData, Manifest, SnowflakeData


# ---------------------------------------------------------------- local
def local_findings(section: LocalData) -> list[Finding]:
    out: list[Finding] = []
    db = Path(section.path).expanduser()
    if db.exists():
        duckdb = require("duckdb", "local", "the local data checks")
        try:
            con = duckdb.connect(str(db), read_only=True)
            try:
                one = con.execute("SELECT 1").fetchone()
                tables = con.execute(
                    "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database()"
                ).fetchone()
            finally:
                con.close()
        except Exception as exc:  # duckdb raises its own hierarchy (IOException for a lock held by a writer)
            locked = "lock" in str(exc).lower()
            return [
                fail(
                    "data.connection",
                    f"cannot open DuckDB {db}: {error_text(exc)}",
                    "stop the process holding the database open, then retry"
                    if locked
                    else f"move the damaged file away and recreate it: mv {db} {db}.bad && mlstack init",
                )
            ]
        out.append(ok("data.connection", f"DuckDB {db} opens"))
        out.append(
            ok(
                "data.select",
                f"SELECT 1 returned {one[0] if one else None}; {tables[0] if tables else 0} tables",
            )
        )
    else:
        parent = next((p for p in [db.parent, *db.parent.parents] if p.exists()), None)
        if parent == db.parent and os.access(parent, os.W_OK):
            out.append(
                ok("data.connection", f"{db.parent} is writable; the database is created on the first write")
            )
        elif parent is not None and parent.is_dir() and os.access(parent, os.W_OK):
            out.append(
                warn(
                    "data.connection", f"{db} does not exist yet (created on the first write)", "mlstack init"
                )
            )
        else:
            out.append(
                fail(
                    "data.connection",
                    f"{db} does not exist and {parent} is not writable",
                    f"set data.path to a writable location, or: mkdir -p {db.parent}",
                )
            )
    if section.lake_root:
        lake = Path(section.lake_root).expanduser()
        if lake.is_dir() and os.access(lake, os.W_OK):
            out.append(ok("data.lake", f"Delta lake folder {lake} is writable"))
        elif lake.exists():
            out.append(fail("data.lake", f"{lake} is not a writable folder", f"chmod u+rwx {lake}"))
        else:
            out.append(
                warn("data.lake", f"{lake} does not exist yet (created on the first write)", "mlstack init")
            )
    return out


# ---------------------------------------------------------------- snowflake
def snowflake_findings(section: SnowflakeData, timeout: float, sink: Sink, connect: Any = None) -> None:
    connector = require("snowflake.connector", "snowflake", "the Snowflake checks")
    if connect is None:
        connect = connector.connect
    t = max(1, round(timeout))
    kw: dict[str, Any] = {
        "account": section.account,
        "user": section.user,
        "role": section.role,
        "warehouse": section.warehouse,
        "database": section.database,
        "schema": section.schema_,
        "login_timeout": t,
    }
    # connector 5.x renamed the network timeouts; 4.x knows only the old names
    major = int(str(getattr(connector, "__version__", "4")).split(".")[0] or 4)
    if major >= 5:
        kw.update(connect_timeout=t, query_timeout=t, request_timeout=t)
        # said explicitly (5.x warns otherwise): a closed check connection logs its session out
        kw["enable_server_session_keep_alive_auto_detection"] = False
    else:
        kw.update(network_timeout=t, socket_timeout=t)
    if section.connection_name:
        kw["connection_name"] = section.connection_name
    where = f"Snowflake account {section.account} as {section.user}"
    try:
        con = connect(**kw)
    except Exception as exc:
        text = error_text(exc)
        lowered = text.lower()
        if "toml" in lowered:
            fix = "fix the syntax of connections.toml at the line named ($SNOWFLAKE_HOME or ~/.snowflake)"
        elif any(s in lowered for s in ("password", "authenticat", "jwt", "private key", "credentials")):
            fix = (
                f"put this user's key pair or password in the [{section.connection_name or 'NAME'}] entry of "
                "~/.snowflake/connections.toml (mode 0600)"
                + ("" if section.connection_name else " and set data.connection_name to it")
            )
        else:
            fix = f"check data.account ({section.account}) and that Snowflake is reachable from here"
        sink.add(fail("data.connection", f"cannot connect to {where}: {text}", fix))
        return
    try:
        sink.add(ok("data.connection", f"connected to {where}"))
        cur = con.cursor()
        role, wh = _scalar(cur, "SELECT CURRENT_ROLE()"), _scalar(cur, "SELECT CURRENT_WAREHOUSE()")
        if wh is _UNKNOWN:
            sink.add(
                warn(
                    "data.warehouse",
                    "the server cannot say which warehouse is in use (CURRENT_WAREHOUSE() failed)",
                    f"check by hand: SHOW GRANTS ON WAREHOUSE {section.warehouse}",
                )
            )
        elif not wh:
            sink.add(
                fail(
                    "data.warehouse",
                    f"no warehouse in use: role {role or section.role} cannot use warehouse {section.warehouse}",
                    f"GRANT USAGE ON WAREHOUSE {section.warehouse} TO ROLE {section.role}",
                )
            )
        elif str(wh).upper() != section.warehouse.upper():
            sink.add(
                warn(
                    "data.warehouse",
                    f"warehouse in use is {wh}, the manifest says {section.warehouse}",
                    f"correct data.warehouse, or GRANT USAGE ON WAREHOUSE {section.warehouse} TO ROLE {section.role}",
                )
            )
        else:
            sink.add(ok("data.warehouse", f"warehouse {wh} in use"))
        if role and role is not _UNKNOWN and str(role).upper() != section.role.upper():
            sink.add(
                warn(
                    "data.role",
                    f"role in use is {role}, the manifest says {section.role}",
                    f"GRANT ROLE {section.role} TO USER {section.user}",
                )
            )
        else:
            sink.add(ok("data.role", f"role {section.role if role in (None, _UNKNOWN) else role} in use"))
        cur.execute("SELECT 1")
        sink.add(ok("data.select", f"SELECT 1 returned {(cur.fetchone() or [None])[0]}"))
        try:
            cur.execute(
                f"SELECT COUNT(*) FROM {section.database}.INFORMATION_SCHEMA.TABLES "
                "WHERE UPPER(TABLE_SCHEMA) = UPPER(%s)",
                (section.schema_,),
            )
            n = (cur.fetchone() or [0])[0]
            cur.execute(
                f"SELECT COUNT(*) FROM {section.database}.INFORMATION_SCHEMA.SCHEMATA "
                "WHERE UPPER(SCHEMA_NAME) = UPPER(%s)",
                (section.schema_,),
            )
            visible = (cur.fetchone() or [0])[0]
        except Exception as exc:
            sink.add(_snowflake_read_fail(section, error_text(exc)))
            return
        if not visible:
            sink.add(_snowflake_read_fail(section, f"schema {section.schema_} is not visible to the role"))
        else:
            sink.add(
                ok("data.read", f"role {section.role} sees {section.database}.{section.schema_} ({n} tables)")
            )
    finally:
        try:
            con.close()
        except Exception:
            pass


_UNKNOWN: Any = object()


def _scalar(cur: Any, sql: str) -> Any:
    """The single value of ``sql``, or _UNKNOWN when the server does not support it."""
    try:
        cur.execute(sql)
        row = cur.fetchone()
        return row[0] if row else None
    except Exception:  # the connector's ProgrammingError for an unsupported function
        return _UNKNOWN


def _snowflake_read_fail(section: SnowflakeData, why: str) -> Finding:
    db, sc, role = section.database, section.schema_, section.role
    return fail(
        "data.read",
        f"cannot read {db}.{sc} as {role}: {why}",
        f"GRANT USAGE ON DATABASE {db} TO ROLE {role}; GRANT USAGE ON SCHEMA {db}.{sc} TO ROLE {role}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {db}.{sc} TO ROLE {role}",
    )


# ---------------------------------------------------------------- databricks
def databricks_findings(section: DatabricksData, timeout: float, sink: Sink, client: Any = None) -> None:
    if client is None:
        sdk = require("databricks.sdk", "databricks", "the Databricks checks")
        cfg = sdk.core.Config(
            host=section.host,
            profile=section.profile,
            http_timeout_seconds=max(1, round(timeout)),
            retry_timeout_seconds=max(1, round(timeout)),
        )
        client = sdk.WorkspaceClient(config=cfg)
    where = f"Databricks {section.host}"
    wait = f"{min(50, max(5, round(timeout)))}s"

    def run(sql: str) -> Any:
        resp = client.statement_execution.execute_statement(
            statement=sql,
            warehouse_id=section.warehouse_id,
            catalog=section.catalog,
            schema=section.schema_,
            wait_timeout=wait,
        )
        # a statement still PENDING/RUNNING after wait_timeout is polled; the doctor's deadline bounds it
        while _state(resp) in ("PENDING", "RUNNING"):
            time.sleep(0.1)
            resp = client.statement_execution.get_statement(resp.statement_id)
        if _state(resp) != "SUCCEEDED":
            err = getattr(resp.status, "error", None)
            raise RuntimeError(f"statement {_state(resp)}: {getattr(err, 'message', None) or ''}".strip())
        return (resp.result.data_array or []) if resp.result else []

    try:
        rows = run("SELECT 1")
    except Exception as exc:
        text = error_text(exc)
        low = text.lower()
        if any(s in low for s in ("401", "403", "token", "unauthor", "credential", "authenticat")):
            fix = (
                f"create a token and put it in the [{section.profile or 'DEFAULT'}] profile of ~/.databrickscfg "
                f"(databricks auth login --host {section.host})"
            )
        elif "warehouse" in low or "not found" in low:
            fix = f"check data.warehouse_id ({section.warehouse_id}): databricks warehouses list"
        else:
            fix = f"check data.host ({section.host}) and that the workspace is reachable from here"
        sink.add(fail("data.connection", f"cannot run SQL on {where}: {text}", fix))
        return
    sink.add(ok("data.connection", f"connected to {where}"))
    sink.add(
        ok(
            "data.select",
            f"SELECT 1 on SQL warehouse {section.warehouse_id} returned {rows[0][0] if rows else None}",
        )
    )
    try:
        me = client.current_user.me()
        sink.add(ok("data.role", f"running as {me.user_name or me.display_name or me.id}"))
    except Exception as exc:
        sink.add(
            warn(
                "data.role",
                f"cannot read the identity in use: {error_text(exc)}",
                "check the token's identity: databricks current-user me",
            )
        )
    try:
        tables = run(
            "SELECT count(*) FROM information_schema.tables "
            f"WHERE table_catalog = '{section.catalog}' AND table_schema = '{section.schema_}'"
        )
        schemas = run(
            f"SELECT count(*) FROM information_schema.schemata WHERE schema_name = '{section.schema_}'"
        )
    except Exception as exc:
        sink.add(_databricks_read_fail(section, error_text(exc)))
        return
    if not schemas or not int(schemas[0][0] or 0):
        sink.add(_databricks_read_fail(section, f"schema {section.schema_} is not visible"))
    else:
        n = tables[0][0] if tables else 0
        sink.add(ok("data.read", f"{section.catalog}.{section.schema_} is readable ({n} tables)"))


def _state(resp: Any) -> str:
    state = getattr(getattr(resp, "status", None), "state", None)
    return str(getattr(state, "value", state) or "")


def _databricks_read_fail(section: DatabricksData, why: str) -> Finding:
    c, s = section.catalog, section.schema_
    return fail(
        "data.read",
        f"cannot read {c}.{s}: {why}",
        f"GRANT USE CATALOG ON CATALOG {c} TO `<principal>`; GRANT USE SCHEMA, SELECT ON SCHEMA {c}.{s} "
        "TO `<principal>`",
    )


# ---------------------------------------------------------------- lakehouse
def lakehouse_findings(section: LakehouseData, timeout: float, sink: Sink) -> None:
    boto3 = require("boto3", "aws", "the lakehouse checks")
    from botocore.config import Config

    cfg = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 1}
    )
    session = boto3.session.Session()
    try:
        session.client("glue", region_name=section.region, config=cfg).get_database(Name=section.database)
        sink.add(ok("data.connection", f"Glue database {section.database} exists in {section.region}"))
    except Exception as exc:
        sink.add(
            fail(
                "data.connection",
                f"Glue database {section.database}: {error_text(exc)}",
                "deploy the stack (`mlstack up`) or correct data.database; check AWS credentials (aws sts get-caller-identity)",
            )
        )
        return
    try:
        wg = session.client("athena", region_name=section.region, config=cfg).get_work_group(
            WorkGroup=section.workgroup
        )
        state = wg["WorkGroup"].get("State", "ENABLED")
        if state != "ENABLED":
            sink.add(
                fail(
                    "data.warehouse",
                    f"Athena workgroup {section.workgroup} is {state}",
                    f"aws athena update-work-group --work-group {section.workgroup} --state ENABLED",
                )
            )
        else:
            sink.add(ok("data.warehouse", f"Athena workgroup {section.workgroup} enabled"))
    except Exception as exc:
        sink.add(
            fail(
                "data.warehouse",
                f"Athena workgroup {section.workgroup}: {error_text(exc)}",
                "deploy the stack (`mlstack up`) or correct data.workgroup",
            )
        )


def checks(m: Manifest) -> list[Check]:
    section = m.data
    if isinstance(section, LocalData):
        local = section
        return [
            Check("data.connection", lambda sink, t: sink.extend(local_findings(local)), "check the disk")
        ]
    if isinstance(section, SnowflakeData):
        sf = section
        return [
            Check(
                "data.connection",
                lambda sink, t: snowflake_findings(sf, t, sink),
                f"check that {sf.account}.snowflakecomputing.com is reachable from here (network policy, proxy)",
            )
        ]
    if isinstance(section, DatabricksData):
        dbx = section
        return [
            Check(
                "data.connection",
                lambda sink, t: databricks_findings(dbx, t, sink),
                f"check that {dbx.host} is reachable from here and SQL warehouse {dbx.warehouse_id} is running",
            )
        ]
    lh = section
    return [
        Check(
            "data.connection",
            lambda sink, t: lakehouse_findings(lh, t, sink),
            f"check that the Glue and Athena endpoints of {lh.region} are reachable from here",
        )
    ]
