"""How a run looks while it runs and when it ends (``mlstack run``, ``mlstack demo``, ``run --argo``).

On a terminal: a live table (one row per step or branch: status, attempts, elapsed, result) redrawn as steps
change. Piped: one plain line per state change, never wrapped, so ids and step names stay whole for grep.
At the end: each step's result preview, the artifacts written, alias moves (and plainly, a gate that decided
not to move one), tables written, and the commands that show the run again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from rich.text import Text

from mlstack.cli._common import console, print_table

_STYLE = {
    "succeeded": "green",
    "reused": "cyan",
    "running": "yellow",
    "reusing": "cyan",
    "pending": "dim",
    "failed": "bold red",
    "timed_out": "bold red",
    "interrupted": "red",
    "skipped": "dim",
}
MAX_BRANCH_ROWS = 12  # a fan-out step wider than this shows as one row with counts


def _secs(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}"


class Row:
    def __init__(self, label: str) -> None:
        self.label = label
        self.status = "pending"
        self.attempts = 0
        self.t0: float | None = None
        self.seconds: float | None = None
        self.preview: str | None = None
        self.note: str | None = None


class RunView:
    """Receives ``(event, step)`` from a runner (any object with label/status/attempts/seconds...)."""

    def __init__(self, title: str, *, live: bool | None = None, out: Any = None) -> None:
        self.title = title
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self.rows: dict[str, Row] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()
        self._live: Any = None

    # ---- events
    def __call__(self, event: str, step: Any) -> None:
        with self._lock:
            label = step.label
            if event == "pending" and step.index is None:
                self._row(label)
                return
            if step.index is not None and label not in self.rows:
                self._branch_row(step.name, label)
            row = self._row(label)
            changed = row.status != step.status
            row.status = step.status
            row.attempts = getattr(step, "attempts", 0) or row.attempts
            if step.status in ("running", "reusing") and row.t0 is None:
                row.t0 = getattr(step, "t0", None) or time.monotonic()
            if step.status not in ("running", "reusing", "pending"):
                row.seconds = getattr(step, "seconds", None)
                row.preview = getattr(step, "preview", None)
                reused = getattr(step, "reused_from", None)
                if reused:
                    row.note = f"from {reused.get('run')}" + (
                        " (cache)" if reused.get("via") == "cache" else ""
                    )
                elif getattr(step, "why", None):
                    row.note = f"ran: {step.why}"
            if not changed:
                return
            if not self.live:
                self._line(row)

    def _branch_row(self, name: str, label: str) -> None:
        """A branch takes the place of its step's placeholder row, or follows its step's other branches."""
        at = len(self._order)
        for i, lb in enumerate(self._order):
            if lb == name or lb.startswith(name + "["):
                at = i + 1
        if name in self.rows:
            self.rows.pop(name)
            at = self._order.index(name)
            self._order.remove(name)
        self.rows[label] = Row(label)
        self._order.insert(at, label)

    def _row(self, label: str) -> Row:
        if label not in self.rows:
            self.rows[label] = Row(label)
            self._order.append(label)
        return self.rows[label]

    def _line(self, row: Row) -> None:
        parts = [time.strftime("%H:%M:%S"), row.label, row.status]
        if row.status not in ("running", "reusing", "pending"):
            if row.seconds is not None:
                parts.append(f"{row.seconds:.2f}s")
            if row.attempts > 1:
                parts.append(f"attempts={row.attempts}")
            if row.note:
                parts.append(row.note)
            if row.preview and row.status in ("succeeded", "reused"):
                parts.append(row.preview)
        self.out.write("  ".join(parts) + "\n")
        self.out.flush()

    def _elapsed(self, row: Row) -> str:
        if row.seconds is not None and row.status not in ("running", "reusing"):
            return _secs(row.seconds)
        if row.t0 is not None:
            return f"{time.monotonic() - row.t0:.1f}"
        return ""

    def _render(self) -> Any:
        with self._lock:
            return self._table()

    def _table(self) -> Any:
        # the shared table rule (mlstack.cli._common.table): step names and ids are never cut
        from mlstack.cli._common import table

        rows: list[tuple[Text, Text, Text, Text, Text]] = []
        labels = self._order
        by_step: dict[str, list[str]] = {}
        for lb in labels:
            by_step.setdefault(lb.split("[", 1)[0], []).append(lb)
        for name, group in by_step.items():
            if len(group) > MAX_BRANCH_ROWS:
                counts: dict[str, int] = {}
                for lb in group:
                    counts[self.rows[lb].status] = counts.get(self.rows[lb].status, 0) + 1
                summary = ", ".join(f"{n} {s}" for s, n in counts.items())
                rows.append(
                    (Text(f"{name}[0..{len(group) - 1}]"), Text(summary), Text(""), Text(""), Text(""))
                )
                continue
            for lb in group:
                r = self.rows[lb]
                result = r.preview or ""
                if r.note and r.status == "reused":
                    result = f"{result}  ({r.note})" if result else r.note
                rows.append(
                    (
                        Text(lb),
                        Text(r.status, style=_STYLE.get(r.status, "")),
                        Text(str(r.attempts or "")),
                        Text(self._elapsed(r)),
                        Text(result),
                    )
                )
        return table(self.title, ("step", "status", "attempts", "seconds", "result"), rows)

    # ---- lifecycle
    def __enter__(self) -> RunView:
        if self.live:
            from rich.live import Live

            # get_renderable: every refresh redraws, so elapsed times tick between events
            self._live = Live(
                get_renderable=self._render, console=console, refresh_per_second=8, transient=False
            )
            self._live.__enter__()
        else:
            self.out.write(f"{self.title}\n")
            self.out.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(*exc)
            self._live = None


# ---------------------------------------------------------------------- the end of a run
def describe_outputs(outputs: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """(kind, sentence) per output: artifacts written, alias moves and gate decisions, tables written."""
    lines: list[tuple[str, str]] = []
    for o in outputs:
        t, step = o.get("type"), o.get("step")
        by = f" by {step}" if step else ""
        if t == "artifact":
            note = " (unchanged content: no new version)" if o.get("unchanged") else ""
            lines.append(("artifact", f"{o['name']}@{o.get('version')}{by}{note}"))
        elif t == "alias":
            ref = f"{o['name']}:{o.get('alias')}"
            why = f" ({o['reason']})" if o.get("reason") else ""
            if o.get("moved", True):
                was = (
                    f" (was version {o['previous']})"
                    if o.get("previous") not in (None, o.get("version"))
                    else ""
                )
                lines.append(("alias", f"{ref} moved to version {o.get('version')}{by}{was}{why}"))
            else:
                cur = o.get("current")
                stays = f"; it stays at version {cur}" if cur else "; it points nowhere yet"
                gate = f" in {step}" if step else ""
                lines.append(
                    (
                        "alias",
                        f"{ref} NOT moved to version {o.get('version')}: the gate{gate} decided against it{why}{stays}",
                    )
                )
        elif t == "table":
            v = f"@{o['version']}" if o.get("version") not in (None, "None") else ""
            rows = f", {o['rows']} rows" if o.get("rows") is not None else ""
            lines.append(("table", f"{o['name']}{v}{by}{rows}"))
    return lines


def print_summary(
    *,
    run_id: str,
    status: str,
    seconds: float,
    steps: Sequence[Any],
    outputs: Iterable[dict[str, Any]],
    resumed_from: str | None = None,
    table: bool = True,
    errors: Sequence[str] = (),
) -> None:
    """The end of ``mlstack run``: results, artifacts, aliases (moved or not), tables, what to run next."""
    counts: dict[str, int] = {}
    for s in steps:
        counts[s.status] = counts.get(s.status, 0) + 1
    how = ", ".join(f"{n} {st}" for st, n in counts.items())
    head = f"run {run_id}: {status} in {seconds:.1f}s ({how})"
    if resumed_from:
        head += f", resumed from {resumed_from}"
    if table:
        print_table(
            head,
            ["step", "status", "attempts", "seconds", "result"],
            [
                (
                    s.label,
                    s.status,
                    s.attempts or "",
                    _secs(s.seconds) if s.status not in ("skipped", "pending") else "",
                    _result_cell(s),
                )
                for s in steps
            ],
        )
    else:
        console.print(head, markup=False)
    lines = describe_outputs(outputs)
    for kind, title in (("artifact", "Artifacts written"), ("alias", "Aliases"), ("table", "Tables written")):
        got = [text for k, text in lines if k == kind]
        if got:
            console.print(f"{title}:", markup=False)
            for text in got:
                console.print(f"  {text}", markup=False)
    if not lines:
        console.print("No artifacts or tables written.", markup=False)
    for e in errors:
        console.print(f"warning: the run record is incomplete: {e}", markup=False)
    console.print(
        f"Report: mlstack runs show {run_id} [--html report.html]   logs: mlstack runs logs {run_id} [STEP]",
        markup=False,
    )


def _result_cell(s: Any) -> str:
    text = s.preview or ""
    if s.status == "reused" and getattr(s, "reused_from", None):
        text = f"{text}  (from {s.reused_from.get('run')})".strip()
    if s.status in ("failed", "timed_out"):
        tail = (getattr(s, "log_tail", "") or "").strip().splitlines()
        text = tail[-1] if tail else ""
    return text
