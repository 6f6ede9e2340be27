"""The current run: its id, the code version, and what it read (the lineage of what it writes).

A run id comes from ``MLSTACK_RUN_ID`` (set by the pipeline runners for every step) or is made on first
use. Reads are recorded in memory and, when ``MLSTACK_RUN_INPUTS`` names a file, appended to it as JSON
lines, so the steps of one pipeline run (separate processes) share one lineage.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

RUN_ID_VAR = "MLSTACK_RUN_ID"
RUN_INPUTS_VAR = "MLSTACK_RUN_INPUTS"
STEP_VAR = "MLSTACK_STEP"
PIPELINE_VAR = "MLSTACK_PIPELINE"


def new_run_id() -> str:
    """Sortable, unique run id: UTC time then 8 random hex digits."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


@lru_cache(maxsize=8)
def _git_commit(cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    commit = out.stdout.strip()
    try:
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty = ""
    return commit + ("-dirty" if dirty else "")


def code_version(cwd: str | None = None) -> str | None:
    """``MLSTACK_CODE_VERSION`` if set (images built from a commit), else the git commit here, else None."""
    return os.environ.get("MLSTACK_CODE_VERSION") or _git_commit(cwd or os.getcwd())


@dataclass
class Input:
    """One thing a run read: an artifact version or a table (at a version, when the warehouse has one)."""

    type: str  # "artifact" | "table"
    name: str
    version: str | None = None
    source: str | None = None  # e.g. the data layer kind, or the artifact store
    extra: dict[str, Any] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str | None]:
        return (self.type, self.name, self.version)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "name": self.name, "version": self.version}
        if self.source:
            d["source"] = self.source
        if self.extra:
            d["extra"] = self.extra
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Input:
        return cls(d["type"], d["name"], d.get("version"), d.get("source"), dict(d.get("extra") or {}))


class Run:
    """What one run read and who it is. Thread-safe; one per process via :func:`current`."""

    def __init__(self, run_id: str | None = None, inputs_file: str | None = None) -> None:
        self.id = run_id or os.environ.get(RUN_ID_VAR) or new_run_id()
        self.inputs_file = inputs_file if inputs_file is not None else os.environ.get(RUN_INPUTS_VAR)
        self.step = os.environ.get(STEP_VAR)
        self.pipeline = os.environ.get(PIPELINE_VAR)
        self._inputs: dict[tuple[str, str, str | None], Input] = {}
        self._seeded: set[tuple[str, str, str | None]] = set()  # upstream reads handed down, not this step's
        self._outputs: dict[tuple[str, ...], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def record_input(
        self, type: str, name: str, version: str | None = None, *, source: str | None = None, **extra: Any
    ) -> None:
        item = Input(type, name, None if version is None else str(version), source, extra)
        with self._lock:
            if item.key() in self._inputs:
                return
            self._inputs[item.key()] = item
            if self.inputs_file:
                Path(self.inputs_file).parent.mkdir(parents=True, exist_ok=True)
                # O_APPEND writes of one short line are atomic between the steps of a run
                with open(self.inputs_file, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(item.to_dict(), sort_keys=True) + "\n")

    def seed_input(
        self, type: str, name: str, version: str | None = None, *, source: str | None = None
    ) -> None:
        """Record a read an upstream step made (lineage handed down), not counted as this step's own read."""
        self.record_input(type, name, version, source=source)
        with self._lock:
            self._seeded.add((type, name, None if version is None else str(version)))

    def own_inputs(self) -> list[Input]:
        """What this process itself read (not what upstream steps handed down)."""
        with self._lock:
            return [v for k, v in self._inputs.items() if k not in self._seeded]

    def record_output(self, type: str, name: str, version: str | None = None, **fields: Any) -> None:
        """Record something this process wrote or decided: an artifact version, a table write, an alias move
        (or a gate's decision not to move one). The run record lists them under the step."""
        entry = {"type": type, "name": name, "version": None if version is None else str(version)}
        entry.update({k: v for k, v in fields.items() if v is not None})
        key: tuple[str, ...] = (type, name, str(entry.get("alias", "")), str(entry["version"]))
        with self._lock:
            if type == "table":  # several writes of one table: one entry, the last version and the row total
                key = (type, name)
                prev = self._outputs.get(key)
                if (
                    prev is not None
                    and isinstance(prev.get("rows"), int)
                    and isinstance(entry.get("rows"), int)
                ):
                    entry["rows"] = prev["rows"] + entry["rows"]
            self._outputs[key] = {**self._outputs.get(key, {}), **entry}

    def outputs(self) -> list[dict[str, Any]]:
        """Everything recorded with :meth:`record_output`, in order."""
        with self._lock:
            return [dict(v) for v in self._outputs.values()]

    def inputs(self) -> list[Input]:
        """Everything this run read so far, including other steps' reads when they share the inputs file."""
        seen: dict[tuple[str, str, str | None], Input] = {}
        if self.inputs_file and os.path.exists(self.inputs_file):
            with open(self.inputs_file, encoding="utf-8") as fh:
                for line in fh:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        item = Input.from_dict(json.loads(line))
                    except (ValueError, KeyError):
                        continue  # a torn line from a killed step: skip it, keep the rest
                    seen.setdefault(item.key(), item)
        with self._lock:
            for k, v in self._inputs.items():
                seen.setdefault(k, v)
        return list(seen.values())

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"run_id": self.id, "code_version": code_version()}
        if self.pipeline:
            d["pipeline"] = self.pipeline
        if self.step:
            d["step"] = self.step
        return d


_current: Run | None = None
_current_lock = threading.Lock()


def current() -> Run:
    """The run of this process (made on first use from the environment)."""
    global _current
    with _current_lock:
        env_id = os.environ.get(RUN_ID_VAR)
        if _current is None or (env_id and env_id != _current.id):
            _current = Run()
        return _current


def start(run_id: str | None = None, inputs_file: str | None = None) -> Run:
    """Begin a new run in this process (replacing the current one)."""
    global _current
    with _current_lock:
        _current = Run(run_id or new_run_id(), inputs_file)
        return _current


def record_input(type: str, name: str, version: str | None = None, **kw: Any) -> None:
    current().record_input(type, name, version, **kw)


def record_output(type: str, name: str, version: str | None = None, **fields: Any) -> None:
    current().record_output(type, name, version, **fields)
