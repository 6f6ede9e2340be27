"""What every CLI verb shares: options, output (tables or --json), manifest loading, errors, help pages.

Two rules live here so that every verb, old or new, follows them without doing anything:

- tables (:func:`print_table`): identifiers are never split. On a terminal a boxed table whose columns are
  at least as wide as their longest word, wrapping only at spaces; when that cannot fit, or when stdout is
  not a terminal (a pipe, a file), a plain layout: one row per line, columns padded and separated by two
  spaces, nothing cut or wrapped (``grep`` and ``awk`` friendly).
- help pages (:func:`tidy_help`, applied by ``main`` to the whole command tree): classic upper-case
  metavars (``PATH``, ``TEXT``, ``[a|b]``), no ``<bool>`` tags on flags, and help text printed literally
  (``[secret]`` is text, not rich markup).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
ManifestOpt = Annotated[
    Path | None,
    typer.Option(
        "--manifest",
        "-m",
        help="Stack manifest file. Default: $MLSTACK_MANIFEST, else the nearest mlstack.json or .mlstack/ "
        "in this folder or a parent, else $MLSTACK_HOME, else a new local stack in ./.mlstack.",
        dir_okay=False,
    ),
]


def load(manifest_path: Path | None, *, quiet: bool = False):
    """Resolve the manifest in force for a command (raises ManifestError, handled by main).

    When the stack was not chosen here explicitly — found in a parent folder, or none exists yet and a new
    local stack is used — one line on stderr says which (stdout stays clean for --json and pipes).
    """
    from mlstack import manifest

    loaded = manifest.resolve(manifest_path)
    if not quiet:
        note = loaded.note()
        if note:
            err_console.print(note, markup=False, highlight=False)
    return loaded


def emit_json(obj: Any) -> None:
    """JSON on stdout, nothing else: machines parse it."""
    sys.stdout.write(json.dumps(obj, indent=2, default=str, sort_keys=False) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- tables
def _cell(v: Any) -> Text:
    # cells are data, not markup: "[prod]" in a name must print as is
    return v if isinstance(v, Text) else Text("" if v is None else str(v))


def _longest_word(t: Text) -> int:
    return max((len(w) for w in t.plain.split()), default=0)


def _longest_line(t: Text) -> int:
    return max((len(line) for line in t.plain.splitlines()), default=0)


def column_widths(columns: Sequence[str], rows: Sequence[Sequence[Text]], width: int) -> list[int] | None:
    """Widths for a boxed table of ``width`` columns that never split a word, or None when none exist.

    Every column gets at least its longest word; the space left goes to the columns that want more, in
    proportion to what they still lack.
    """
    n = len(columns)
    cols = [[Text(c), *(r[i] for r in rows)] for i, c in enumerate(columns)]
    least = [max(_longest_word(t) for t in col) or 1 for col in cols]
    want = [max(_longest_line(t) for t in col) or 1 for col in cols]
    room = width - (3 * n + 1)  # "│ " + " " per column, and the closing "│"
    if sum(least) > room:
        return None
    if sum(want) <= room:
        return want
    widths = list(least)
    spare = room - sum(least)
    lack = [w - m for w, m in zip(want, least, strict=True)]
    total_lack = sum(lack)
    for i in range(n):
        widths[i] += spare * lack[i] // total_lack
    # hand out what integer division left, to the columns still short, left to right
    left = room - sum(widths)
    for i in range(n):
        if left <= 0:
            break
        if widths[i] < want[i]:
            widths[i] += 1
            left -= 1
    return widths


def table(
    title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, width: int | None = None
) -> Table | Text:
    """The table as a renderable, by the shared rule (for live displays too): a boxed table sized so no word
    is split (see :func:`column_widths`), or, when ``width`` cannot hold every column's longest word, the
    plain layout as Text, whose over-long lines wrap at spaces (a word is only folded when it is wider than
    the whole screen)."""
    cells = [[_cell(v) for v in r] for r in rows]
    widths = column_widths(columns, cells, width or console.width)
    if widths is None:
        return Text(plain_table(title, columns, cells), overflow="fold")
    t = Table(title=title, title_justify="left", show_lines=False)
    for i, c in enumerate(columns):
        t.add_column(c, width=widths[i], overflow="fold")
    for r in cells:
        t.add_row(*r)
    return t


PLAIN_PAD = 40


def plain_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """The plain layout: optional title line, header, one line per row; columns padded, two spaces apart."""
    cells = [[" ".join(_cell(v).plain.split("\n")) for v in r] for r in rows]
    head = list(columns)
    # columns line up to PLAIN_PAD characters; a longer cell (prose, a long path) runs on, shifting the
    # rest of its own row instead of padding every row with its width
    widths = [min(PLAIN_PAD, max([len(head[i]), *(len(r[i]) for r in cells)])) for i in range(len(head))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(widths[i]) for i, v in enumerate(values)).rstrip()

    out = [title] if title else []
    out.append(line(head))
    out.extend(line(r) for r in cells)
    return "\n".join(out)


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table by the shared rule: boxed on a terminal wide enough, else the plain layout."""
    cells = [[_cell(v) for v in r] for r in rows]
    if console.is_terminal and column_widths(columns, cells, console.width) is not None:
        console.print(table(title, columns, cells, width=console.width))
    else:
        console.print(plain_table(title, columns, cells), markup=False, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- help pages
# typer >= 0.27 labels types "<str>", "<path>", "<bool>" and required arguments "{path}"; help pages here use
# the classic words (click's, and typer's before 0.27), which read as placeholders in a usage line.
_TYPE_WORDS = {
    "str": "TEXT",
    "int": "INTEGER",
    "float": "FLOAT",
    "path": "PATH",
    "file": "FILE",
    "dir": "DIRECTORY",
    "bool": "",
    "datetime": "DATETIME",
}
_TAG = re.compile(r"^<(?P<inner>.*)>(?P<dots>\.\.\.)?$")


def classic_type(label: str | None) -> str | None:
    """``<str>`` -> ``TEXT``, ``<a|b>`` -> ``[a|b]``, ``<bool>`` -> '' (a flag takes no value)."""
    if label is None:
        return None
    m = _TAG.match(label)
    if not m:
        return label
    inner = m.group("inner")
    while inner.startswith("list[") and inner.endswith("]"):  # a repeatable option: one value per use
        inner = inner[5:-1]
    word = f"[{inner}]" if "|" in inner else _TYPE_WORDS.get(inner, inner.upper())
    return word + (m.group("dots") or "") if word else ""


_CLASSIC: dict[type, type] = {}


def _classic_class(base: type, is_argument: bool) -> type:
    cls = _CLASSIC.get(base)
    if cls is None:

        def display_type_rich(self: Any, ctx: Any) -> str | None:
            return classic_type(base.display_type_rich(self, ctx))  # type: ignore[attr-defined]

        ns: dict[str, Any] = {"display_type_rich": display_type_rich}
        if is_argument:

            def get_usage_pieces(self: Any, ctx: Any) -> list[str]:
                name = self.metavar or (self.name or "").upper()
                piece = name if self.required else f"[{name}]"
                return [piece + ("..." if self.nargs != 1 else "")]

            ns["get_usage_pieces"] = get_usage_pieces
        cls = _CLASSIC[base] = type(f"Classic{base.__name__}", (base,), ns)
    return cls


def tidy_help(command: Any) -> Any:
    """Apply the help-page rules to a click command tree (in place); returns it."""
    from rich.markup import escape

    seen: set[int] = set()
    stack = [command]
    while stack:
        cmd = stack.pop()
        if id(cmd) in seen:
            continue
        seen.add(id(cmd))
        for attr in ("help", "short_help", "epilog"):
            text = getattr(cmd, attr, None)
            if isinstance(text, str):
                setattr(cmd, attr, escape(text))
        params = list(getattr(cmd, "params", []))
        help_option = _help_option(cmd)
        if help_option is not None:
            params.append(help_option)
        for param in params:
            if isinstance(getattr(param, "help", None), str):
                param.help = escape(param.help)
            # typer >= 0.27 only: older releases print click's classic words already
            if hasattr(param, "display_type_rich") and hasattr(param, "display_type"):
                is_argument = getattr(param, "param_type_name", "") == "argument"
                if type(param) not in _CLASSIC.values():
                    param.__class__ = _classic_class(type(param), is_argument)
        stack.extend(getattr(cmd, "commands", {}).values())
    return command


def _help_option(cmd: Any) -> Any:
    """The command's --help option: click makes it on demand (and, in the releases that need fixing, caches it)."""
    try:
        return cmd.get_help_option(cmd.context_class(cmd))
    except Exception:  # pragma: no cover - a click without the hook: nothing to tidy
        return None


def parse_kv(pairs: Sequence[str] | None, option: str) -> dict[str, str]:
    """Parse ``k=v`` pairs; a pair without '=' is a usage error naming the option and the value."""
    from mlstack.errors import UsageError

    out: dict[str, str] = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} expects key=value, got {p!r}", fix=f"write it as {option} name=value")
        out[key.strip()] = value
    return out
