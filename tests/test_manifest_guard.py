"""The manifest's secret guard and file reader (issue 12, findings 7 and 12), through `mlstack manifest validate`
and `mlstack doctor --json` as a user meets them.

- credentials in a URL (``http://admin:SECRET@host``) are refused and never printed;
- a key given twice in one object is an error (JSON parsers keep the last one: a second ``artifacts`` section
  would silently redirect the store);
- the value of an unknown key is never echoed, nor more than a short preview of any value (a 60 MB value);
- the reader takes regular files only (``/dev/zero``, a FIFO) and caps what it reads.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from mlstack import manifest
from mlstack.cli.main import main
from mlstack.errors import ManifestError

SECRET = "S3cr3t-Passw0rd"


def base() -> dict[str, Any]:
    return {
        "version": 1,
        "project": "p",
        "stack": "s",
        "artifacts": {"kind": "local", "root": "artifacts"},
        "data": {"kind": "local", "path": "w.duckdb"},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(args))
    cap = capsys.readouterr()
    return code, cap.out + cap.err


def write(tmp_path: Path, data: Any, name: str = "m.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "key"),
    [
        (
            {
                "kind": "s3",
                "bucket": "my-bucket",
                "region": "us-east-1",
                "endpoint_url": f"http://admin:{SECRET}@host",
            },
            "artifacts.endpoint_url",
        ),
        (
            {
                "kind": "s3",
                "bucket": "my-bucket",
                "region": "us-east-1",
                "endpoint_url": f"https://{SECRET}@host:9000",
            },
            "artifacts.endpoint_url",
        ),
    ],
)
def test_credentials_in_a_url_are_refused_and_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: dict[str, Any], key: str
) -> None:
    m = base()
    m["artifacts"] = section
    path = write(tmp_path, m)
    code, text = run(capsys, "manifest", "validate", str(path))
    assert code == 2 and key in text and "URL with a user or password" in text
    assert SECRET not in text
    code, text = run(capsys, "manifest", "validate", str(path), "--json")
    assert code == 2 and SECRET not in text
    code, text = run(capsys, "doctor", "-m", str(path), "--json")
    assert code == 2 and SECRET not in text


def test_credentials_in_an_orchestrator_or_databricks_url_too() -> None:
    m = base()
    m["orchestrator"] = {
        "kind": "argo",
        "namespace": "ml",
        "service_account": "sa",
        "server_url": f"https://user:{SECRET}@argo.example.com",
    }
    with pytest.raises(ManifestError) as err:
        manifest.from_dict(m)
    assert "orchestrator.server_url" in str(err.value) and SECRET not in str(err.value)
    assert SECRET not in json.dumps(err.value.to_dict())


def test_a_duplicate_section_is_an_error_not_a_silent_redirect(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(base())
    # a second artifacts section at the end: json.loads would keep it and point the store elsewhere
    doubled = text[:-1] + ', "artifacts": {"kind": "local", "root": "/tmp/elsewhere"}}'
    path = write(tmp_path, doubled)
    code, out = run(capsys, "manifest", "validate", str(path))
    assert code == 2 and "artifacts" in out and "more than once" in out
    assert "/tmp/elsewhere" not in out
    inner = text.replace('"root": "artifacts"', '"root": "a", "root": "b"')
    with pytest.raises(ManifestError, match=r"artifacts\.root"):
        manifest.loads(inner)


def test_duplicate_keys_in_inline_env_json_too(monkeypatch: pytest.MonkeyPatch) -> None:
    text = json.dumps(base())
    monkeypatch.setenv("MLSTACK_MANIFEST", text[:-1] + ', "stack": "other"}')
    with pytest.raises(ManifestError, match="more than once"):
        manifest.resolve()


def test_unknown_keys_never_echo_their_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = base()
    m["artifacts"]["auth"] = SECRET
    m["data"]["headers"] = {"X-Custom": SECRET}
    m["extra_top"] = SECRET
    path = write(tmp_path, m)
    code, out = run(capsys, "manifest", "validate", str(path))
    assert code == 2
    assert "artifacts.auth" in out and "data.headers" in out and "extra_top" in out
    assert SECRET not in out
    code, out = run(capsys, "manifest", "validate", str(path), "--json")
    assert SECRET not in out


def test_component_sections_do_not_echo_unknown_values_either() -> None:
    with pytest.raises(ManifestError) as err:
        manifest.validate_section("artifacts", {"kind": "local", "root": "r", "auth": SECRET})
    assert SECRET not in str(err.value) and SECRET not in json.dumps(err.value.to_dict())


def test_a_huge_value_is_shown_as_a_short_preview(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = base()
    m["stack"] = "x" * 200_000  # too long for a name: an error that quotes the value
    path = write(tmp_path, m)
    code, out = run(capsys, "manifest", "validate", str(path))
    assert code == 2 and "stack" in out and "200000 characters" in out
    assert "x" * 100 not in out and len(out) < 2_000


def test_a_60_mb_manifest_is_refused_without_reading_it_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    m = base()
    m["project"] = "y" * (60 << 20)
    path = write(tmp_path, m)
    code, out = run(capsys, "manifest", "validate", str(path))
    assert code == 2 and "larger than" in out and "y" * 100 not in out and len(out) < 2_000


@pytest.mark.timeout(60)
def test_dev_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "manifest", "validate", "/dev/zero")
    assert code == 2 and "a device" in out and "Traceback" not in out


@pytest.mark.timeout(60)
def test_a_fifo_is_refused_without_waiting_for_a_writer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "m.json"
    os.mkfifo(fifo)
    done: list[tuple[int, str]] = []
    t = threading.Thread(
        target=lambda: done.append(run(capsys, "manifest", "validate", str(fifo))), daemon=True
    )
    t.start()
    t.join(20)
    if not done:  # unblock the reader so the test process can end, then fail
        with open(fifo, "w") as fh:
            fh.write("{}")
        t.join(5)
        pytest.fail("reading a FIFO manifest blocked")
    code, out = done[0]
    assert code == 2 and "FIFO" in out


def test_a_folder_and_non_utf8_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="a folder"):
        manifest.load_file(tmp_path)
    bad = tmp_path / "m.json"
    bad.write_bytes(b'{"project": "\xff"}')
    with pytest.raises(ManifestError, match="not UTF-8"):
        manifest.load_file(bad)


def test_invalid_json_does_not_quote_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '{"password_hint": "' + SECRET + '",}')
    with pytest.raises(ManifestError) as err:
        manifest.load_file(path)
    assert "not valid JSON at line 1" in str(err.value)
    assert SECRET not in str(err.value) and SECRET not in json.dumps(err.value.to_dict())


def test_valid_manifests_still_load(tmp_path: Path) -> None:
    m = base()
    m["artifacts"] = {
        "kind": "s3",
        "bucket": "my-bucket",
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:8333",
    }
    loaded = manifest.load_file(write(tmp_path, m))
    assert loaded.artifacts.endpoint_url == "http://127.0.0.1:8333"  # type: ignore[union-attr]
