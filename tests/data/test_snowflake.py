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


def test_login_and_connect_timeouts_are_short_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dead Snowflake must not hold a job for the connector's 120 s default login budget."""
    from mlstack.data import snowflake as sf

    monkeypatch.delenv(sf.LOGIN_TIMEOUT_ENV, raising=False)
    kw = src(connection_name="prod").connect_kwargs()
    assert kw["login_timeout"] == sf.DEFAULT_LOGIN_TIMEOUT < 120
    assert 0 < kw["connect_timeout"] <= kw["login_timeout"]
    # only the connector's current names: the deprecated ones warn (network_timeout, socket_timeout, ...)
    assert not {"network_timeout", "socket_timeout", "private_key_file_pwd"} & set(kw)


def test_login_timeout_from_the_environment_and_the_keyword(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlstack.data import snowflake as sf

    monkeypatch.setenv(sf.LOGIN_TIMEOUT_ENV, "7")
    kw = src(connection_name="prod").connect_kwargs()
    assert kw["login_timeout"] == 7 and kw["connect_timeout"] == 7
    # the keyword wins over the environment
    s = SnowflakeSource(
        SnowflakeData.model_validate({**SECTION, "connection_name": "prod"}), login_timeout=90
    )
    assert s.connect_kwargs()["login_timeout"] == 90
    # 0 is the connector's "no limit": passed through, connect timeout left to the connector
    monkeypatch.setenv(sf.LOGIN_TIMEOUT_ENV, "0")
    kw = src(connection_name="prod").connect_kwargs()
    assert kw["login_timeout"] == 0 and "connect_timeout" not in kw


@pytest.mark.parametrize("bad", ["soon", "-5", "1.5"])
def test_a_bad_login_timeout_names_the_variable(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    from mlstack.data import snowflake as sf
    from mlstack.errors import ConfigError

    monkeypatch.setenv(sf.LOGIN_TIMEOUT_ENV, bad)
    with pytest.raises(ConfigError) as err:
        src(connection_name="prod").connect_kwargs()
    assert sf.LOGIN_TIMEOUT_ENV in str(err.value) and bad in str(err.value) and err.value.fix


def test_the_key_password_uses_the_current_parameter_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_FILE", str(tmp_path / "k.p8"))
    monkeypatch.setenv("SNOWFLAKE_PRIVATE_KEY_FILE_PWD", "pw")
    kw = src().connect_kwargs()
    assert kw["private_key_password"] == "pw" and "private_key_file_pwd" not in kw


def test_a_bad_timeout_is_reported_as_is_on_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    """connection() must not re-wrap its own configuration errors as a failed login."""
    from mlstack.data import snowflake as sf
    from mlstack.errors import ConfigError

    monkeypatch.setenv(sf.LOGIN_TIMEOUT_ENV, "soon")
    with pytest.raises(ConfigError):
        src(connection_name="prod").connection()
