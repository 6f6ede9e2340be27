"""Help pages, through the CLI: classic upper-case metavars, no typer type tags, help text printed literally.

Walks the whole command tree, so verbs added later are held to the same rules (mlstack.cli._common.tidy_help).
"""

from __future__ import annotations

import re

import pytest

from mlstack.cli import main as cli


def _commands() -> list[tuple[list[str], object]]:
    out: list[tuple[list[str], object]] = []
    stack: list[tuple[list[str], object]] = [([], cli.command())]
    while stack:
        path, cmd = stack.pop()
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            stack.append(([*path, name], sub))
    return out


COMMANDS = _commands()


def _help(path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    assert cli.main([*path, "--help"]) == 0
    return capsys.readouterr().out


def test_the_tree_holds_the_verbs_a_newcomer_meets() -> None:
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"demo", "plan", "doctor", "doctor job", "data load", "artifacts show", "outputs"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "mlstack")
def test_help_page_rules(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = _help(path, capsys, monkeypatch)
    # no typer type tags: <bool>, <str>, <path>, <dir>, <file>, <int>, <float>, <a|b>
    assert not re.search(r"<(bool|str|path|dir|file|int|float|list\[[^\]]*\]|[a-z]+\|[a-z|]+)>", text), text
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage  # typer >= 0.27 writes required arguments as {path}
    words = usage.split("Usage:", 1)[1].split()
    cmd = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    literal = set(
        getattr(cmd, "commands", {})
    )  # a group may spell out its sub-commands: `PATH | ls | rm NAME`
    for w in words[1 + len(path) :]:
        bare = w.strip("[].|")
        if bare and bare not in ("OPTIONS", "COMMAND", "ARGS") and bare not in literal:
            assert bare == bare.upper(), f"lower-case metavar {w!r} in {usage!r}"


def test_brackets_in_help_text_survive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = _help(["outputs"], capsys, monkeypatch)
    assert "secrets show as [secret] unless --show-secrets" in " ".join(page.split())
    # and in the root's list of commands
    root = " ".join(_help([], capsys, monkeypatch).split())
    assert "[secret]" in root


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS if p], ids=lambda p: " ".join(p))
def test_every_bracketed_word_of_a_help_text_is_printed(
    path: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cmd = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    import inspect

    source = inspect.getdoc(getattr(cmd, "callback", None)) or ""
    page = " ".join(_help(path, capsys, monkeypatch).split())
    for tag in re.findall(r"\[[A-Za-z_-]+\]", source.split("\n\n")[0]):
        assert tag in page, f"{tag} from the docstring of `mlstack {' '.join(path)}` was eaten"


def test_flags_take_no_value_and_options_name_theirs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = _help(["plan"], capsys, monkeypatch)
    assert re.search(r"--config\s+-c\s+FILE", page)
    assert re.search(r"--graph\s+\[mermaid\|dot\|html\]", page)
    assert re.search(r"--skip\s+TEXT", page)
    line = next(line for line in page.splitlines() if "│ --no-fail" in line)
    assert re.search(r"--no-fail\s+Exit 0", line), line  # nothing between a flag and its help
    assert "Usage: mlstack plan [OPTIONS] PATH" in page
