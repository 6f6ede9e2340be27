"""The Snowflake adapter: SQL generation and credentials (unit), then the real connector against fakesnow."""

from __future__ import annotations

from pathlib import Path

import pytest

import mlstack.run
from mlstack.data.snowflake import SnowflakeSource, ident, version_clause
from mlstack.errors import CredentialsError, UsageError
from mlstack.manifest import SnowflakeData
from tests.support.snowflake import SnowflakeConnection

SECTION = {
    "kind": "snowflake",
    "account": "myorg-acct",
    "warehouse": "ml_wh",
    "database": "ml",
    "schema": "features",
    "role": "ml_reader",
    "user": "svc_ml",
}


def src(**over: object) -> SnowflakeSource:
    return SnowflakeSource(SnowflakeData.model_validate({**SECTION, **over}))


def test_identifiers_resolve_like_unquoted_snowflake_names() -> None:
    assert ident("amount") == '"AMOUNT"'
    assert ident("Mixed Case") == '"Mixed Case"'
    assert src().select_sql("sales", ["id", "amount"], None) == 'SELECT "ID", "AMOUNT" FROM "SALES"'


@pytest.mark.parametrize(
    ("version", "clause"),
    [
        (-3600, " AT(OFFSET => -3600)"),
        ("01b2c3d4-0000-1111-2222-333344445555", " AT(STATEMENT => '01b2c3d4-0000-1111-2222-333344445555')"),
        ("2026-01-01 00:00:00", " AT(TIMESTAMP => '2026-01-01 00:00:00'::TIMESTAMP_LTZ)"),
        (None, ""),
    ],
)
def test_time_travel_clauses(version: object, clause: str) -> None:
    assert version_clause(version) == clause  # type: ignore[arg-type]


def test_a_positive_offset_is_refused() -> None:
    with pytest.raises(UsageError):
        version_clause(60)


def test_key_pair_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "rsa_key.p8"
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_FILE", str(key))
    kw = src().connect_kwargs()
    assert kw["authenticator"] == "SNOWFLAKE_JWT" and kw["private_key_file"] == str(key)
    assert kw["user"] == "svc_ml" and kw["role"] == "ml_reader" and kw["warehouse"] == "ml_wh"
    assert "password" not in kw


def test_no_credentials_says_where_they_go(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SNOWFLAKE_PRIVATE_KEY_FILE", raising=False)
    with pytest.raises(CredentialsError) as err:
        src().connect_kwargs()
    assert "connection_name" in (err.value.fix or "")


def test_connection_name_is_passed_through() -> None:
    kw = src(connection_name="prod").connect_kwargs()
    assert kw["connection_name"] == "prod" and kw["database"] == "ml" and kw["schema"] == "features"


@pytest.mark.fakesnow
def test_fakesnow_unknown_connection_name_is_a_credentials_error(
    snowflake_connection: SnowflakeConnection,
) -> None:
    s = SnowflakeSource(
        SnowflakeData.model_validate(
            {**snowflake_connection.manifest_section(), "connection_name": "missing"}
        )
    )
    with pytest.raises(CredentialsError):
        s.ping()


@pytest.mark.fakesnow
def test_fakesnow_write_returns_a_statement_id_and_lineage_is_qualified(
    snowflake_connection: SnowflakeConnection,
) -> None:
    s = SnowflakeSource(SnowflakeData.model_validate(snowflake_connection.manifest_section()))
    try:
        res = s.write("sales", {"id": [1, 2], "amount": [1.5, 2.5]})
        assert res.rows == 2 and isinstance(res.version, str) and res.version
        mlstack.run.start()
        assert s.read_arrow("sales", columns=["amount"]).column_names == ["AMOUNT"]
        db = snowflake_connection.database.upper()
        assert [i.name for i in mlstack.run.current().inputs()] == [f"{db}.PUBLIC.SALES"]
        facts = s.ping()
        assert facts["user"] and facts["database"] == db and facts["account"] == "fakesnow"
    finally:
        s.close()
