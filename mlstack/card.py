"""Cards: what a step adds to its run's report (``mlstack runs show RUN --html report.html``).

    import mlstack

    @pipeline.step
    def evaluate(train, threshold):
        ...
        mlstack.card.markdown(f"## Best model\\nAUC **{best['auc']:.3f}** (threshold {threshold})")
        mlstack.card.table(train)                      # a DataFrame, a list of dicts, or rows (+ columns=)
        mlstack.card.image(fig)                        # a matplotlib figure, or PNG/JPEG bytes
        return best

Each call is stored with the run at once, in the stack's artifact store: the step's card document under
``runs/records/<run>/cards/<step>.json`` (``<step>@<branch>.json`` for a fan-out branch) and images as
content-addressed blobs -- so a card exists even when the step fails later, on the laptop and in an Argo pod
alike. A retried step starts its card afresh (the last attempt's card is kept). Outside a run (a notebook, a
unit test calling the step function) the calls only collect into :func:`current`.

Markdown is rendered when the report is made, with raw HTML escaped (never passed through), links limited
to http(s), mailto and in-page anchors, and no remote images. Importing this module imports only the
standard library; pandas and matplotlib objects are recognised by their methods, never imported here.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mlstack.errors import UsageError

SCHEMA = 1
CARDS = "runs/records/{run}/cards/"
MAX_TEXT = 256 << 10  # characters of one markdown item
MAX_ROWS = 1000  # rows of one table kept (the rest counted in "truncated")
MAX_COLUMNS = 100
MAX_CELL = 2000  # characters of one table cell
MAX_IMAGE = 10 << 20  # bytes of one image
MAX_ITEMS = 200  # items of one step's card

__all__ = ["Card", "current", "image", "markdown", "table"]

_LABEL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")


def card_key(run_id: str, step: str, branch: int | None) -> str:
    """Where a step's (branch's) card document lives in the artifact store."""
    leaf = step if branch is None else f"{step}@{branch}"
    return CARDS.format(run=run_id) + f"{leaf}.json"


def _now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


class Card:
    """The items one step adds to its run's report, in call order."""

    def __init__(self, run_id: str | None = None, step: str | None = None, branch: int | None = None) -> None:
        self.run_id = run_id
        self.step = step
        self.branch = branch
        self.items: list[dict[str, Any]] = []
        self.stored_error: str | None = None  # why the last store write failed (the step goes on)
        self._etag: str | None = None
        self._fresh = True  # first write of this process: replace whatever an earlier attempt left
        self._lock = threading.Lock()
        self._backend: Any = None
        self._blobs: dict[int, bytes] = {}  # image bytes of items not stored (outside a run)

    # ------------------------------------------------------------ what steps call
    def markdown(self, text: str) -> Card:
        """A block of Markdown (CommonMark + tables). Raw HTML in it is shown as text, never run."""
        if not isinstance(text, str):
            raise UsageError(
                f"card.markdown() takes text, not {type(text).__name__}", fix="pass a str (an f-string works)"
            )
        if len(text) > MAX_TEXT:
            raise UsageError(
                f"card.markdown(): {len(text)} characters, above the {MAX_TEXT} a card item holds",
                fix="put long text in an artifact (mlstack.artifacts.put) and link or summarise it here",
            )
        return self._add({"type": "markdown", "text": text})

    def table(self, data: Any, columns: Sequence[str] | None = None, *, title: str | None = None) -> Card:
        """A table: a pandas DataFrame, a list of dicts (columns from their keys), a dict of columns, or a
        list of rows (with ``columns=``). At most 1,000 rows are kept; the report says how many were left."""
        cols, rows = _tabulate(data, columns)
        total = len(rows)
        kept = [[_cell(v) for v in r] for r in rows[:MAX_ROWS]]
        item: dict[str, Any] = {"type": "table", "columns": cols, "rows": kept}
        if total > MAX_ROWS:
            item["truncated"] = total - MAX_ROWS
        if title:
            item["title"] = str(title)
        return self._add(item)

    def image(self, img: Any, *, title: str | None = None) -> Card:
        """A picture: a matplotlib figure (saved as PNG), or PNG / JPEG / GIF / WebP bytes."""
        data = _image_bytes(img)
        fmt, width, height = _sniff(data)
        if len(data) > MAX_IMAGE:
            raise UsageError(
                f"card.image(): {len(data) >> 20} MiB, above the {MAX_IMAGE >> 20} MiB a card image holds",
                fix="save it smaller (fig.savefig(..., dpi=80)) or store it as an artifact",
            )
        item: dict[str, Any] = {"type": "image", "format": fmt, "size": len(data)}
        if width and height:
            item.update(width=width, height=height)
        if title:
            item["title"] = str(title)
        return self._add(item, blob=data)

    # ------------------------------------------------------------ storage
    def _add(self, item: dict[str, Any], blob: bytes | None = None) -> Card:
        with self._lock:
            if len(self.items) >= MAX_ITEMS:
                raise UsageError(
                    f"a step's card holds at most {MAX_ITEMS} items", fix="combine them (one table, not many)"
                )
            if self.run_id is None:
                if blob is not None:
                    self._blobs[len(self.items)] = blob
                self.items.append(item)
                return self
            try:
                backend = self._store()
                if blob is not None:
                    digest, _ = backend.put_bytes(blob)
                    item["blob"] = f"sha256:{digest}"
                self.items.append(item)
                self._write(backend)
                self.stored_error = None
            except Exception as exc:  # a card must never fail the step: say it in the step's log
                if item not in self.items:
                    self.items.append(item)
                self.stored_error = f"{type(exc).__name__}: {exc}"
                print(f"[mlstack] card of {self.label} not stored: {self.stored_error}", file=sys.stderr)
        return self

    @property
    def label(self) -> str:
        return f"{self.step}" if self.branch is None else f"{self.step}[{self.branch}]"

    def _store(self) -> Any:
        if self._backend is None:
            from mlstack import manifest as _manifest
            from mlstack.registry import load_backend

            section = _manifest.current().artifacts
            self._backend = load_backend("artifacts", section.kind).from_section(section)
        return self._backend

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "kind": "mlstack.card",
            "run": self.run_id,
            "step": self.step,
            "branch": self.branch,
            "updated": _now(),
            "items": [dict(i) for i in self.items],
        }

    def _write(self, backend: Any) -> None:
        key = card_key(str(self.run_id), str(self.step), self.branch)
        data = json.dumps(self.to_dict(), sort_keys=True, allow_nan=False).encode()
        if self._fresh:  # an earlier attempt's card (a retry) is replaced, not appended to
            cur = backend.read_doc(key)
            self._etag = cur[1] if cur else None
            self._fresh = False
        for _ in range(5):
            if backend.replace_doc(key, data, self._etag):
                got = backend.read_doc(key)
                self._etag = got[1] if got else None
                return
            # someone else wrote it (should not happen: one process per step attempt): take it over
            cur = backend.read_doc(key)
            self._etag = cur[1] if cur else None
        raise RuntimeError(f"could not write {key}: it keeps changing")

    def blob(self, index: int) -> bytes | None:
        """The image bytes of item ``index`` kept in memory (outside a run)."""
        return self._blobs.get(index)


_current: Card | None = None
_current_lock = threading.Lock()


def current() -> Card:
    """This process's card: the step named by ``MLSTACK_STEP`` of the run ``MLSTACK_RUN_ID`` (the runner and
    the Argo template set both), or an unstored card outside a run."""
    global _current
    with _current_lock:
        run_id = os.environ.get("MLSTACK_RUN_ID") or None
        label = os.environ.get("MLSTACK_STEP") or None
        step, branch = None, None
        if label:
            m = _LABEL.match(label)
            if m:
                step, branch = m.group(1), (int(m.group(2)) if m.group(2) is not None else None)
        if run_id is not None and step is None:
            run_id = None  # a run but no step (the runner itself): nothing to attach the card to
        if _current is None or (_current.run_id, _current.step, _current.branch) != (run_id, step, branch):
            _current = Card(run_id, step, branch)
        return _current


def markdown(text: str) -> Card:
    """Add Markdown to this step's card (see :meth:`Card.markdown`)."""
    return current().markdown(text)


def table(data: Any, columns: Sequence[str] | None = None, *, title: str | None = None) -> Card:
    """Add a table to this step's card (see :meth:`Card.table`)."""
    return current().table(data, columns, title=title)


def image(img: Any, *, title: str | None = None) -> Card:
    """Add an image to this step's card (see :meth:`Card.image`)."""
    return current().image(img, title=title)


# ---------------------------------------------------------------- helpers
def _cell(v: Any) -> Any:
    """A JSON value for a table cell: numbers and booleans as they are, the rest as (short) text."""
    if v is None or isinstance(v, bool | int | str):
        out = v
    elif isinstance(v, float):
        out = v if math.isfinite(v) else str(v)
    else:
        item = getattr(v, "item", None)  # numpy scalars
        if callable(item):
            try:
                return _cell(item())
            except (TypeError, ValueError):
                pass
        out = str(v)
    if isinstance(out, str) and len(out) > MAX_CELL:
        out = out[: MAX_CELL - 1] + "…"
    return out


def _tabulate(data: Any, columns: Sequence[str] | None) -> tuple[list[str], list[list[Any]]]:
    """(column names, rows). ``columns`` names the values of plain rows, and selects (and orders) the columns
    of a DataFrame, a list of dicts or a dict of columns."""
    records: list[Mapping[Any, Any]] | None = None
    if hasattr(data, "columns") and hasattr(data, "itertuples"):  # a pandas DataFrame
        names = [str(c) for c in data.columns]
        records = [dict(zip(names, r, strict=False)) for r in data.itertuples(index=False, name=None)]
        cols = names
    elif isinstance(data, Mapping):  # {column: [values]}
        cols = [str(c) for c in data]
        series = [
            list(v) if isinstance(v, Iterable) and not isinstance(v, str | bytes) else [v]
            for v in data.values()
        ]
        n = max((len(x) for x in series), default=0)
        records = [
            {c: (x[i] if i < len(x) else None) for c, x in zip(cols, series, strict=True)} for i in range(n)
        ]
    elif isinstance(data, Iterable) and not isinstance(data, str | bytes):
        items = list(data)
        if items and all(isinstance(r, Mapping) for r in items):
            cols = []
            for r in items:
                cols += [str(k) for k in r if str(k) not in cols]
            records = [{str(k): v for k, v in r.items()} for r in items]
        elif all(isinstance(r, Iterable) and not isinstance(r, str | bytes | Mapping) for r in items):
            rows = [list(r) for r in items]
            width = max((len(r) for r in rows), default=0)
            cols = [str(c) for c in columns] if columns is not None else [str(i) for i in range(width)]
            if any(len(r) > len(cols) for r in rows):
                raise UsageError(
                    f"card.table(): a row has {width} values but {len(cols)} columns are named",
                    fix="give one name per value in columns=",
                )
            rows = [r + [None] * (len(cols) - len(r)) for r in rows]
            _check_width(cols)
            return cols, rows
        else:
            raise UsageError(
                "card.table(): the rows are neither all dicts nor all sequences",
                fix="pass a DataFrame, a list of dicts, or a list of rows with columns=",
            )
    else:
        raise UsageError(
            f"card.table() takes a DataFrame, a list of dicts or a list of rows, not {type(data).__name__}",
            fix="convert it first, e.g. card.table([{'metric': 'auc', 'value': 0.91}])",
        )
    if columns is not None:
        unknown = [str(c) for c in columns if str(c) not in cols]
        if unknown:
            raise UsageError(
                f"card.table(): columns={unknown!r} are not in the data", fix=f"pick from {cols!r}"
            )
        cols = [str(c) for c in columns]
    _check_width(cols)
    return cols, [[r.get(c) for c in cols] for r in records]


def _check_width(cols: list[str]) -> None:
    if len(cols) > MAX_COLUMNS:
        raise UsageError(
            f"card.table(): {len(cols)} columns, above the {MAX_COLUMNS} a card table holds",
            fix="select the columns worth reading (columns=[...])",
        )


def _image_bytes(img: Any) -> bytes:
    if isinstance(img, bytes | bytearray | memoryview):
        return bytes(img)
    savefig = getattr(img, "savefig", None)  # a matplotlib Figure (or anything that saves like one)
    if savefig is None and hasattr(img, "figure") and hasattr(img.figure, "savefig"):  # an Axes
        savefig = img.figure.savefig
    if callable(savefig):
        buf = io.BytesIO()
        savefig(buf, format="png", dpi=100, bbox_inches="tight")
        return buf.getvalue()
    raise UsageError(
        f"card.image() takes a matplotlib figure or PNG/JPEG bytes, not {type(img).__name__}",
        fix="pass fig (from plt.subplots()) or open(path, 'rb').read()",
    )


def _sniff(data: bytes) -> tuple[str, int | None, int | None]:
    """The image format and its pixel size, from its header; UsageError for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        w, h = struct.unpack(">II", data[16:24])
        return "png", w, h
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg", *_jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return "gif", w, h
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", None, None
    raise UsageError(
        "card.image(): the bytes are not a PNG, JPEG, GIF or WebP image",
        fix="pass the file's bytes (open(path, 'rb').read()) or a matplotlib figure",
    )


def _jpeg_size(data: bytes) -> tuple[int | None, int | None]:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None, None
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None, None
