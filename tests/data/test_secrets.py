"""Secrets never reach the screen (issue 12, finding 6): connector and SDK errors pass through the redactor.

A syntax error in Snowflake's connections.toml made the connector quote the offending line, the password's,
and `mlstack data query` / `mlstack doctor --json` printed it. The same holds for a ~/.databrickscfg line
configparser cannot parse. These run the real CLI against real connector/SDK parsing (no server needed: the
files fail to parse before any connection).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mlstack.data
from mlstack._redact import is_secret_key, redact
from mlstack.cli.main import main
from tests.data.conftest import manifest_dict

SECRET = "Hunter2-TopSecret-9"
PAT = "dapi" + "0123456789abcdef" * 2


def _manifest(tmp_path: Path, section: dict) -> Path:
    path = tmp_path / "mlstack.json"
    path.write_text(json.dumps(manifest_dict(section, tmp_path)), encoding="utf-8")
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    mlstack.data.reset()
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    mlstack.data.reset()
    return code, cap.out + cap.err


def _leaks(text: str, secret: str) -> bool:
    """The secret, or any 6-character piece of it, appears in ``text``."""
    return any(secret[i : i + 6] in text for i in range(len(secret) - 5))


SNOWFLAKE = {
    "kind": "snowflake",
    "account": "myorg-acct",
    "warehouse": "wh",
    "database": "db",
    "schema": "public",
    "role": "reader",
    "user": "svc",
    "connection_name": "prod",
}


@pytest.mark.parametrize(
    "password_line",
    [
        f'password = "{SECRET}',  # the quote never closed: the report
        f"password = {SECRET}",  # a bare value
        f'password = "{SECRET}" extra',  # junk after the value
        f"password = '''{SECRET}",  # a multi-line literal never closed
    ],
)
def test_a_connections_toml_syntax_error_never_prints_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], password_line: str
) -> None:
    home = tmp_path / "snowflake"
    home.mkdir()
    toml = home / "connections.toml"
    toml.write_text(
        f'[prod]\naccount = "myorg-acct"\nuser = "svc"\n{password_line}\nwarehouse = "wh"\n', encoding="utf-8"
    )
    toml.chmod(0o600)
    monkeypatch.setenv("SNOWFLAKE_HOME", str(home))
    m = _manifest(tmp_path, SNOWFLAKE)

    code, text = _run(capsys, "data", "query", "select 1", "-m", str(m))
    assert code == 2, text
    assert not _leaks(text, SECRET), text
    assert "connections.toml" in text and "at line " in text and "Traceback" not in text

    code, text = _run(capsys, "data", "query", "select 1", "-m", str(m), "--json")
    assert code == 2 and not _leaks(text, SECRET), text

    code, text = _run(capsys, "doctor", "-m", str(m), "--json", "--timeout", "10")
    assert not _leaks(text, SECRET), text
    report = json.loads(text[: text.rindex("}") + 1])
    assert any("TOML" in json.dumps(f) for f in report["findings"]), text


DATABRICKS = {
    "kind": "databricks",
    "host": "http://127.0.0.1:9",
    "warehouse_id": "abc",
    "catalog": "main",
    "schema": "default",
    "profile": "fake",
}


@pytest.mark.parametrize("line", [f"token {PAT}", f"client_secret {SECRET}", f"{SECRET}"])
def test_a_databrickscfg_syntax_error_never_prints_the_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    cfg = tmp_path / "databrickscfg"
    cfg.write_text(f"[fake]\nhost = http://127.0.0.1:9\n{line}\n", encoding="utf-8")
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(cfg))
    m = _manifest(tmp_path, DATABRICKS)
    secret = PAT if "dapi" in line else SECRET
    code, text = _run(capsys, "data", "query", "select 1", "-m", str(m))
    assert code == 2, text
    assert not _leaks(text, secret) and "line" in text and "Traceback" not in text, text
    code, text = _run(capsys, "doctor", "-m", str(m), "--json", "--timeout", "10")
    assert not _leaks(text, secret), text


# ---------------------------------------------------------------- the redactor itself
@pytest.mark.parametrize(
    ("text", "gone"),
    [
        ('4 | password = "hunter2', "hunter2"),
        ("password=hunter2&user=x", "hunter2"),
        ('{"client_secret": "s3cr3t-value"}', "s3cr3t-value"),
        ("SNOWFLAKE_PRIVATE_KEY_FILE_PWD: pw0rd-x", "pw0rd-x"),
        ("https://admin:hunter2@db.example.com/x", "admin:hunter2"),
        ("s3://AKIAEXAMPLE:wJalrXUtnFEMI@bucket/key", "wJalrXUtnFEMI"),
        ("GET https://b.s3.amazonaws.com/k?X-Amz-Signature=deadbeef01&X-Amz-Credential=AKIA/x", "deadbeef01"),
        ("https://acct.blob.core.windows.net/c/f?sv=2024&sig=AbC%2Fdef%3D", "AbC%2Fdef"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9"),
        (f"token {PAT}", PAT),
        ("        [line  3]: 'client_secret abc123def'", "abc123def"),
        ("X-Databricks-Token = tok-abcdef", "tok-abcdef"),
    ],
)
def test_redact_removes_secret_values(text: str, gone: str) -> None:
    assert gone not in redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "table 'sales' has only version 0",
        "3 tests passed: ok",
        "private_key_file = /home/me/rsa_key.p8",  # where a key lives is not the key
        "connection_name = prod",
        "Snowflake refused the login: Incorrect username or password was specified.",
        "invalid basic string",
    ],
)
def test_redact_keeps_what_is_not_secret(text: str) -> None:
    assert redact(text) == text


def test_secret_keys() -> None:
    for key in (
        "password",
        "clientSecret",
        "X-Amz-Security-Token",
        "PRIVATE-KEY",
        "api_key",
        "Authorization",
    ):
        assert is_secret_key(key), key
    for key in ("passed", "bypass", "token_type", "private_key_file", "connection_name", "user", "author"):
        assert not is_secret_key(key), key


@pytest.mark.timeout(120)  # a hang guard: the first version of these patterns was quadratic (hours here)
def test_redact_finishes_on_huge_input() -> None:
    for text in ("y" * 1_000_000, "a." * 500_000, "x=" * 500_000, "password" * 100_000 + "=1"):
        assert len(redact(text)) > 0
