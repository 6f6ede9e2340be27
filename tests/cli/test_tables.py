"""Tables never split an identifier: piped output is one row per line, a terminal gets a boxed table whose
columns are at least as wide as their longest word (mlstack.cli._common.print_table, used by every verb)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from rich.console import Console

from mlstack.cli import _common
from mlstack.cli.main import main

IDS = [
    "snowflake:index/grantPrivilegesToAccountRole:GrantPrivilegesToAccountRole",
    "preflight.credentials",
    "churn-model",
]
ROWS = [
    ("fail", IDS[1], "AWS rejected or found no credentials: Unable to locate credentials", "aws configure"),
    ("ok", IDS[0], "a grant of the reader role", ""),
    ("ok", IDS[2], "version 3, promoted to production", "none needed"),
]


def _words_whole(text: str, words: list[str]) -> None:
    for w in words:
        assert any(w in line for line in text.splitlines()), f"{w!r} was split:\n{text}"


def test_piped_output_is_plain_and_keeps_identifiers(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    _common.print_table("checks", ["status", "check", "detail", "fix"], ROWS)
    out = capsys.readouterr().out
    assert "│" not in out and "┃" not in out  # no box drawing in a pipe
    lines = out.splitlines()
    assert lines[0] == "checks" and lines[1].split() == ["status", "check", "detail", "fix"]
    assert len(lines) == 2 + len(ROWS)  # one line per row
    _words_whole(out, IDS)
    # columns line up: every row's check starts where the header's does
    col = lines[1].index("check")
    assert all(line[col:].startswith(r[1]) for line, r in zip(lines[2:], ROWS, strict=True))


def _terminal(monkeypatch: pytest.MonkeyPatch, width: int) -> Console:
    con = Console(width=width, force_terminal=True, color_system=None, highlight=False, soft_wrap=True)
    monkeypatch.setattr(_common, "console", con)
    return con


def test_a_terminal_gets_a_box_that_wraps_only_at_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    con = _terminal(monkeypatch, 80)
    rows = [r for r in ROWS if r[1] != IDS[0]]
    with con.capture() as cap:
        _common.print_table(None, ["status", "check", "detail", "fix"], rows)
    out = cap.get()
    assert "│" in out and max(len(line) for line in out.splitlines()) <= 80
    _words_whole(out, [IDS[1], IDS[2], "credentials:", "Unable", "production"])
    assert "credentia\n" not in out and not re.search(r"credenti│", out)


def test_a_terminal_too_narrow_for_whole_words_gets_the_plain_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    con = _terminal(monkeypatch, 60)
    with con.capture() as cap:
        _common.print_table(None, ["status", "check", "detail", "fix"], ROWS)
    out = cap.get()
    assert "│" not in out
    _words_whole(out, IDS)


def test_column_widths() -> None:
    from rich.text import Text

    rows = [[Text("a-very-long-identifier"), Text("short words wrap here")]]
    w = _common.column_widths(["name", "text"], rows, 40)
    assert w is not None and w[0] >= len("a-very-long-identifier") and sum(w) + 7 <= 40
    assert _common.column_widths(["name", "text"], rows, 20) is None  # cannot keep the identifier whole
    assert _common.column_widths(["a", "b"], [[Text("x"), Text("y")]], 80) == [1, 1]


def test_doctor_piped_at_80_columns_keeps_every_check_id_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    main(["doctor", "--json"])
    checks = [f["check"] for f in json.loads(capsys.readouterr().out)["findings"]]
    main(["doctor"])
    out = capsys.readouterr().out
    assert checks and "│" not in out
    for c in checks:
        (line,) = [line for line in out.splitlines() if re.search(rf"\s{re.escape(c)}\s", line + " ")]
        assert line.split()[0] in ("ok", "warn", "fail")


def test_artifacts_ls_piped_keeps_long_names_whole(
    local_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlstack.artifacts as artifacts

    name = "churn-model-with-a-rather-long-name-for-a-narrow-pipe"
    artifacts.put(name, b"x" * 10, alias="production")
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["artifacts", "ls"]) == 0
    out = capsys.readouterr().out
    (row,) = [line for line in out.splitlines() if name in line]
    assert "production" in row


def test_the_live_run_table_keeps_step_names_whole_at_any_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """`mlstack run`'s live table (mlstack.cli._runview) goes through the same rule."""
    from types import SimpleNamespace

    from mlstack.cli._runview import RunView

    view = RunView("run 20260101T000000Z-abcdef12", live=False, out=open(os.devnull, "w"))  # noqa: SIM115
    label = "train-a-very-long-step-name-for-a-narrow-terminal[12]"
    step = SimpleNamespace(label=label, name=label.split("[")[0], index=12, status="running", attempts=1)
    view("running", step)
    for width in (120, 60):  # boxed at 120; at 60 the label's 53 characters leave no room for a box
        con = _terminal(monkeypatch, width)  # the console the live display draws on
        with con.capture() as cap:
            con.print(view._render())
        out = cap.get()
        _words_whole(out, [label, "running", "attempts", "seconds"])
        assert ("│" in out) == (width == 120)
