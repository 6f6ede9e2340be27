"""Reading runs: :func:`list_runs`, :func:`get_run`, and the Run / StepRun objects they return."""

from __future__ import annotations

import builtins
import json
import pickle
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from mlstack.errors import IntegrityError, RunNotFound, UsageError
from mlstack.runs._store import STATUSES, IndexEntry, RunStore, check_run_id, label, parse_label

_stores: dict[str, RunStore] = {}
_lock = threading.Lock()
LIST_STATUSES = (*STATUSES, "unreadable")


def run_store(manifest: Any = None) -> RunStore:
    """The run store of ``manifest`` (a Manifest, a path, or None for the manifest in force); cached."""
    from mlstack import manifest as _manifest
    from mlstack.registry import load_backend

    m = manifest if isinstance(manifest, _manifest.Manifest) else _manifest.current(manifest)
    section = m.artifacts
    key = json.dumps(section.model_dump(mode="json"), sort_keys=True)
    with _lock:
        if key not in _stores:
            _stores[key] = RunStore(load_backend("artifacts", section.kind).from_section(section))
        return _stores[key]


class StepRun:
    """One step of a run, or one branch of a fan-out step (``branch`` is its index).

    A fan-out step's own StepRun has ``branches`` and a ``result`` that is the list of the branch results.
    """

    def __init__(
        self, run: Run, name: str, branch: int | None, doc: dict[str, Any] | None, status: str
    ) -> None:
        self._run = run
        self.name = name
        self.branch = branch
        self.doc = doc or {}
        self.status = str(self.doc.get("status") or status)
        self.branches: builtins.list[StepRun] = []
        self._result: Any = _UNSET

    @property
    def label(self) -> str:
        return label(self.name, self.branch)

    @property
    def attempts(self) -> int:
        if self.branches:
            return max((b.attempts for b in self.branches), default=0)
        return int(self.doc.get("attempts") or 0)

    @property
    def seconds(self) -> float | None:
        if self.branches:
            got = [b.seconds for b in self.branches if b.seconds is not None]
            return round(max(got), 3) if got else None
        s = self.doc.get("seconds")
        return None if s is None else float(s)

    @property
    def exit_code(self) -> int | None:
        return self.doc.get("exit_code")

    @property
    def reused_from(self) -> dict[str, Any] | None:
        return self.doc.get("reused_from")

    @property
    def result(self) -> Any:
        """The step's return value: inline JSON from the record, else its blob (JSON, or a pickle you trust:
        local steps may return any Python object). A fan-out step: the list of its branches' results."""
        if self._result is _UNSET:
            if self.branches:
                self._result = [b.result for b in self.branches]
            else:
                self._result = self._run._load_result(self.doc)
        return self._result

    @property
    def preview(self) -> str | None:
        if self.branches:
            parts = [b.preview or "" for b in self.branches]
            return "[" + ", ".join(parts) + "]" if parts else None
        return self.doc.get("result_preview")

    @property
    def card(self) -> dict[str, Any] | None:
        """The card document this step (branch) stored with :mod:`mlstack.card`, or None. A fan-out step's
        own StepRun has none: each branch has its own (``steps["train[1]"].card``)."""
        return self._run.cards.get(self.label)

    @property
    def cards(self) -> builtins.list[dict[str, Any]]:
        """The items of this step's card in call order (markdown, table, image with its blob), or []."""
        return builtins.list((self.card or {}).get("items") or [])

    def log(self) -> str:
        """The step's log (every branch's, one after another, for a fan-out step)."""
        if self.branches:
            return "".join(f"==> {b.label} <==\n{b.log()}\n" for b in self.branches)
        ref = (self.doc.get("log") or {}).get("blob")
        if not ref:
            return self.doc.get("log_tail") or ""
        return self._run.store.get_blob(ref).decode("utf-8", "replace")

    def to_dict(self, *, with_result: bool = True) -> dict[str, Any]:
        d = self.doc
        out: dict[str, Any] = {
            "name": self.name,
            "branch": self.branch,
            "status": self.status,
            "attempts": self.attempts,
            "seconds": self.seconds,
            "started": d.get("started"),
            "ended": d.get("ended"),
            "exit_code": d.get("exit_code"),
        }
        if "item" in d:
            out["item"] = d["item"]
        if with_result:
            try:
                out["result"] = _jsonable(self.result)
            except Exception as exc:  # a blob that cannot be read: say so, keep the rest
                out["result"] = None
                out["result_error"] = f"{type(exc).__name__}: {exc}"
        for k in (
            "result_preview",
            "result_ref",
            "log",
            "log_tail",
            "reused_from",
            "why",
            "code",
            "inputs_digest",
            "cache_key",
            "artifacts",
            "aliases",
            "tables_read",
            "artifacts_read",
            "tables_written",
            "error",
        ):
            if d.get(k) not in (None, [], {}):
                out[k] = d[k]
        # the card lives beside the record (written as the step calls mlstack.card), not in it
        card = None if self.branches else self.card
        if card is not None:
            out["cards"] = builtins.list(card.get("items") or [])
            if card.get("error"):
                out["cards_error"] = card["error"]
        return out

    def __repr__(self) -> str:
        return f"StepRun({self.label!r}, status={self.status!r})"


_UNSET = object()


def _jsonable(value: Any) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return repr(value)


class Steps(Mapping[str, StepRun]):
    """Steps by name in pipeline order; ``steps["train[2]"]`` is one branch of ``train``."""

    def __init__(self, steps: dict[str, StepRun]) -> None:
        self._steps = steps

    def __getitem__(self, key: str) -> StepRun:
        if key in self._steps:
            return self._steps[key]
        name, branch = parse_label(key)
        if branch is not None and name in self._steps:
            for b in self._steps[name].branches:
                if b.branch == branch:
                    return b
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def flat(self) -> builtins.list[StepRun]:
        """Every step and every branch (a fan-out step as its branches), in pipeline order."""
        out: builtins.list[StepRun] = []
        for s in self._steps.values():
            out.extend(s.branches or [s])
        return out


class Run:
    """A recorded run: ``.id``, ``.pipeline``, ``.status``, ``.params``, ``.steps[...]``, ``.inputs``,
    ``.outputs`` and ``.logs()``. Step records load on first use."""

    def __init__(
        self,
        store: RunStore,
        rec: dict[str, Any] | None,
        *,
        run_id: str | None = None,
        error: str | None = None,
        entry: IndexEntry | None = None,
    ) -> None:
        self.store = store
        self.record = rec or {}
        self.id: str = str(self.record.get("id") or run_id or (entry.run_id if entry else "?"))
        self.pipeline: str = str(self.record.get("pipeline") or (entry.pipeline if entry else "?"))
        self.error = error
        if rec is None:
            self.status, self.reason = "unreadable", error
        else:
            self.status, self.reason = store.effective_status(rec)
        self._entry = entry
        self._steps: Steps | None = None
        self._cards: dict[str, dict[str, Any]] | None = None
        self.unreadable_steps: builtins.list[str] = []

    # ---- run fields
    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.get("params") or {})

    @property
    def started(self) -> str | None:
        return self.record.get("started") or (self._entry.started_iso if self._entry else None)

    @property
    def ended(self) -> str | None:
        return self.record.get("ended")

    @property
    def seconds(self) -> float | None:
        s = self.record.get("seconds")
        return None if s is None else float(s)

    @property
    def orchestrator(self) -> dict[str, Any]:
        return dict(self.record.get("orchestrator") or {"kind": self._entry.where if self._entry else "?"})

    @property
    def resumed_from(self) -> str | None:
        return self.record.get("resumed_from")

    # ---- steps
    @property
    def steps(self) -> Steps:
        if self._steps is None:
            self._steps = self._load_steps()
        return self._steps

    def _load_steps(self) -> Steps:
        if not self.record:
            return Steps({})
        docs, bad = self.store.read_steps(self.id)
        self.unreadable_steps = bad
        by: dict[str, dict[int | None, dict[str, Any]]] = {}
        for d in docs:
            if isinstance(d.get("name"), str):
                by.setdefault(d["name"], {})[d.get("branch")] = d
        missing = {"running": "pending", "interrupted": "interrupted"}.get(self.status, "skipped")
        out: dict[str, StepRun] = {}
        dag = self.record.get("dag") or [{"name": n} for n in by]
        for node in dag:
            name = node["name"]
            got = by.pop(name, {})
            if node.get("foreach") is not None or any(b is not None for b in got):
                agg = StepRun(self, name, None, None, missing)
                count = node.get("branches")
                idx = sorted(b for b in got if b is not None)
                if isinstance(count, int):
                    idx = sorted(set(idx) | set(range(count)))
                agg.branches = [StepRun(self, name, i, got.get(i), missing) for i in idx]
                agg.status = _aggregate([b.status for b in agg.branches], missing, count)
                out[name] = agg
            else:
                out[name] = StepRun(self, name, None, got.get(None), missing)
        for name, got in by.items():  # records of steps the DAG does not name (older record): keep them
            out[name] = StepRun(self, name, None, got.get(None), missing)
        return Steps(out)

    @property
    def cards(self) -> dict[str, dict[str, Any]]:
        """The card documents steps stored with the run, by step label (``train[1]`` for a branch); one
        listing of ``runs/records/<id>/cards/``. A card that cannot be read is ``{"error": ..., "items": []}``."""
        if self._cards is None:
            self._cards = _read_cards(self.store, self.id) if self.record else {}
        return self._cards

    def _load_result(self, doc: dict[str, Any]) -> Any:
        if "result" in doc:
            return doc["result"]
        ref = doc.get("result_ref") or {}
        if not ref.get("blob"):
            return None
        data = self.store.get_blob(ref["blob"])
        if ref.get("format") == "json":
            return json.loads(data)
        if ref.get("format") == "pickle":
            return pickle.loads(data)  # the stack's own store
        raise IntegrityError(
            f"run {self.id}: result of unknown format {ref.get('format')!r}", fix="upgrade mlstack"
        )

    # ---- lineage
    @property
    def inputs(self) -> builtins.list[dict[str, Any]]:
        """What the run's steps read: tables and artifacts at their versions (with the step that read them)."""
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        for s in self.steps.flat():
            for field in ("tables_read", "artifacts_read"):
                for i in s.doc.get(field) or []:
                    k = (i.get("type"), i.get("name"), i.get("version"))
                    seen.setdefault(k, {**i, "steps": []})["steps"].append(s.label)
        return builtins.list(seen.values())

    @property
    def outputs(self) -> builtins.list[dict[str, Any]]:
        """What the run's steps wrote: artifact versions, alias moves (and gates that kept one), tables."""
        out: builtins.list[dict[str, Any]] = []
        for s in self.steps.flat():
            for field in ("artifacts", "aliases", "tables_written"):
                for o in s.doc.get(field) or []:
                    out.append({**o, "step": s.label})
        return out

    def logs(self, step: str | None = None) -> str:
        """The log of one step (``"train"``, ``"train[2]"``) or of every step, in pipeline order."""
        if step is not None:
            return self.steps[step].log()
        return "".join(f"==> {s.label} <==\n{s.log()}\n" for s in self.steps.flat() if s.doc)

    def to_dict(self) -> dict[str, Any]:
        """The ``mlstack runs show --json`` document."""
        r = self.record
        d: dict[str, Any] = {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "reason": self.reason,
            "params": self.params,
            "started": self.started,
            "ended": self.ended,
            "seconds": self.seconds,
            "orchestrator": self.orchestrator,
            "code": r.get("code"),
            "stack": r.get("stack"),
            "who": r.get("who"),
            "resumed_from": self.resumed_from,
            "error": r.get("error") if self.record else self.error,
            "steps": [s.to_dict() for s in self.steps.flat()],
            "inputs": self.inputs,
            "outputs": self.outputs,
            "store": self.store.location,
        }
        if self.unreadable_steps:
            d["unreadable"] = self.unreadable_steps
        return d

    def summary(self) -> dict[str, Any]:
        """The ``runs ls --json`` row: no step records read."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "status": self.status,
            "reason": self.reason,
            "started": self.started,
            "seconds": self.seconds
            if self.seconds is not None
            else (self._entry.seconds if self._entry else None),
            "orchestrator": self.orchestrator.get("kind"),
            "steps": self.record.get("counts"),
            "resumed_from": self.resumed_from,
            "params": self.params,
            "error": (self.record.get("error") or {}).get("message") if self.record else self.error,
        }

    def __repr__(self) -> str:
        return f"Run({self.id!r}, pipeline={self.pipeline!r}, status={self.status!r})"


def _read_cards(store: RunStore, run_id: str) -> dict[str, dict[str, Any]]:
    from mlstack.card import CARDS

    backend = store.backend
    prefix = CARDS.format(run=run_id)
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(backend.list_keys(prefix)):
        if not key.endswith(".json"):
            continue
        leaf = key[len(prefix) : -len(".json")]
        name, _, branch = leaf.partition("@")
        lbl = name if not branch else f"{name}[{branch}]"
        try:
            got = backend.read_doc(key)
            doc = json.loads(got[0]) if got else None
            if not isinstance(doc, dict) or not isinstance(doc.get("items"), builtins.list):
                raise ValueError("not a card document")
        except Exception as exc:  # one bad card must not hide the run or the other cards
            out[lbl] = {"error": f"{type(exc).__name__}: {exc}", "items": []}
            continue
        out[lbl] = doc
    return out


def _aggregate(statuses: builtins.list[str], missing: str, count: Any) -> str:
    if not statuses:
        return "succeeded" if count == 0 else missing
    for s in ("failed", "timed_out", "interrupted", "running", "pending", "skipped"):
        if s in statuses:
            return s
    if all(s == "reused" for s in statuses):
        return "reused"
    return "succeeded"


# ---------------------------------------------------------------------- listing and lookup
def list_runs(
    pipeline: str | None = None,
    status: str | None = None,
    limit: int | None = 20,
    *,
    manifest: Any = None,
    store: RunStore | None = None,
) -> builtins.list[Run]:
    """The newest runs first (``limit`` None or 0: all), optionally of one pipeline and/or one status.

    The index is read newest first and only as far as needed; records are read only for runs returned."""
    if status is not None and status not in LIST_STATUSES:
        raise UsageError(
            f"--status {status!r} is not a run status", fix=f"use one of: {', '.join(LIST_STATUSES)}"
        )
    if limit is not None and limit < 0:
        raise UsageError(f"--limit {limit} is negative", fix="give a number of runs >= 0 (0: all)")
    st = store or run_store(manifest)
    cap = limit or None
    bad: builtins.list[str] = []
    out: builtins.list[Run] = []
    window: builtins.list[IndexEntry] = []

    def candidate(e: IndexEntry) -> bool:
        if pipeline is not None and e.pipeline != pipeline:
            return False
        if status in ("succeeded", "failed"):
            return e.status == status
        if status in ("running", "interrupted"):
            return e.status in ("running", status)  # running/interrupted: the lease decides
        return status != "unreadable"

    def flush() -> None:
        recs = st.read_records([e.run_id for e in window])
        for e in window:
            got = recs.get(e.run_id)
            if isinstance(got, Exception):
                run = Run(st, None, entry=e, error=f"record unreadable: {got}")
            elif got is None:
                run = Run(st, None, entry=e, error="index names it but its record is missing")
            else:
                run = Run(st, got, entry=e)
            if status is None or run.status == status:
                out.append(run)
        window.clear()

    for e in st.scan(bad):
        if cap is not None and len(out) >= cap:
            break
        if not candidate(e):
            continue
        window.append(e)
        # read records in batches: exactly what is still missing, or a batch ahead when the lease decides
        want = (cap - len(out)) if cap is not None else 64
        if len(window) >= (max(16, want) if status in ("running", "interrupted") else want):
            flush()
    if window and (cap is None or len(out) < cap):
        flush()
    if status == "unreadable" or (status is None and pipeline is None):
        out.extend(Run(st, None, run_id=k.rsplit("/", 1)[-1], error="index key does not parse") for k in bad)
    return out[:cap] if cap else out


def _newest(store: RunStore, pipeline: str | None, n: int) -> builtins.list[IndexEntry]:
    out: builtins.list[IndexEntry] = []
    for e in store.scan([]):
        if pipeline in (None, e.pipeline):
            out.append(e)
            if len(out) >= n:
                break
    return out


def newest_ids(store: RunStore, n: int = 5, pipeline: str | None = None) -> builtins.list[str]:
    return [f"{e.run_id} ({e.pipeline}, {e.status})" for e in _newest(store, pipeline, n)]


def get_run(
    run_id: str, pipeline: str | None = None, *, manifest: Any = None, store: RunStore | None = None
) -> Run:
    """A run by id, or ``"latest"`` (the newest, of ``pipeline`` when given). RunNotFound lists the newest."""
    st = store or run_store(manifest)
    if run_id == "latest":
        rows = _newest(st, pipeline, 1)
        if not rows:
            scope = f" of pipeline {pipeline!r}" if pipeline else ""
            raise RunNotFound(
                f"no runs{scope} in {st.location}",
                fix="run a pipeline first: `mlstack run PATH` (or check --manifest names the right stack)",
            )
        run_id = rows[0].run_id
    check_run_id(run_id)
    try:
        rec = st.read_run(run_id)
    except IntegrityError as exc:
        return Run(st, None, run_id=run_id, error=f"record unreadable: {exc.message}")
    if rec is None:
        newest = newest_ids(st, 5, pipeline)
        raise RunNotFound(
            f"no run {run_id!r} in {st.location}"
            + (f"; the newest runs: {', '.join(newest)}" if newest else "; it holds no runs"),
            fix="`mlstack runs ls` lists the runs (with --pipeline NAME to narrow them)",
        )
    if pipeline is not None and rec.get("pipeline") != pipeline:
        raise RunNotFound(
            f"run {run_id!r} belongs to pipeline {rec.get('pipeline')!r}, not {pipeline!r}",
            fix="drop --pipeline, or give a run of that pipeline",
        )
    return Run(st, rec)
