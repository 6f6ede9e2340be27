"""Writing a run's record while it runs: the record at start, a heartbeat, step records, the end.

Used by the local runner (in its process) and, on Argo, by the step entry inside each pod and by the
workflow's exit handler. Nothing here copies the environment: a record holds the params, the code version,
the stack's names, who ran it and where (user, host, pid), never environment variables; params whose names
look like secrets are stored as a digest.
"""

from __future__ import annotations

import getpass
import hashlib
import inspect
import os
import platform
import re
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlstack.runs._store import (
    SCHEMA,
    RunStore,
    digest_of,
    lease_seconds,
    now_iso,
)

_SECRET = re.compile(
    r"(pass(word|wd|phrase)?$|^pwd$|secret|token|private[_-]?key|api[_-]?key|access[_-]?key|credential)",
    re.IGNORECASE,
)


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Params as stored: values of secret-looking names become a digest (still comparable, not readable)."""
    return {k: (digest_of(v) if _SECRET.search(k) else v) for k, v in params.items()}


def step_code_digest(func: Any) -> str:
    """The digest of a step's code: its source text (decorators included), else its bytecode."""
    try:
        text = inspect.getsource(func).encode()
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        text = (code.co_code + repr(code.co_consts).encode()) if code is not None else repr(func).encode()
    return "sha256:" + hashlib.sha256(text).hexdigest()


def who() -> dict[str, Any]:
    from mlstack._version import __version__

    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = None
    return {
        "user": user,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "mlstack": __version__,
    }


def code_info(pipe: Any) -> dict[str, Any]:
    """Git commit (``-dirty`` when the tree has changes) and digests of the pipeline file and each step."""
    from mlstack import run as _run

    src = Path(pipe.source) if pipe.source else None
    info: dict[str, Any] = {"git": _run.code_version(str(src.parent) if src else None)}
    if src is not None:
        try:
            info["source"] = src.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except ValueError:
            info["source"] = str(src)
        try:
            info["source_digest"] = "sha256:" + hashlib.sha256(src.read_bytes()).hexdigest()
        except OSError:
            pass
    info["steps"] = {name: step_code_digest(s.func) for name, s in pipe.steps.items()}
    return info


def dag(pipe: Any, order: list[str]) -> list[dict[str, Any]]:
    out = []
    for name in order:
        s = pipe.steps[name]
        node: dict[str, Any] = {"name": name, "deps": pipe.deps(name)}
        if s.foreach is not None:
            node["foreach"] = s.foreach
        if getattr(s, "cache", False):
            node["cache"] = True
        if s.resources.gpus:
            node["gpus"] = s.resources.gpus
        out.append(node)
    return out


class RunRecorder:
    """The record of one run, kept current by the process that drives it (thread-safe)."""

    def __init__(self, store: RunStore, rec: dict[str, Any], lease: float) -> None:
        self.store = store
        self.rec = rec
        self.id: str = rec["id"]
        self.lease = lease
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self.errors: list[str] = []  # record writes that failed: reported, never fatal to the run

    @classmethod
    def start(
        cls,
        store: RunStore,
        *,
        run_id: str,
        pipe: Any,
        order: list[str],
        params: Mapping[str, Any],
        manifest: Any,
        orchestrator: Mapping[str, Any],
        code: Mapping[str, Any] | None = None,
        resumed_from: str | None = None,
        started: str | None = None,
        heartbeat: bool = True,
        lease: float | None = None,
    ) -> RunRecorder:
        lease = lease or lease_seconds()
        rec: dict[str, Any] = {
            "schema": SCHEMA,
            "kind": "mlstack.run",
            "id": run_id,
            "pipeline": pipe.name,
            "description": pipe.description,
            "params": redact(params),
            "code": dict(code) if code is not None else code_info(pipe),
            "stack": {"project": manifest.project, "stack": manifest.stack},
            "orchestrator": dict(orchestrator),
            "who": who(),
            "started": started or now_iso(),
            "ended": None,
            "seconds": None,
            "status": "running",
            "resumed_from": resumed_from,
            "dag": dag(pipe, order),
            "lease": {"seconds": lease, "expires": time.time() + lease},
        }
        self = cls(store, rec, lease)
        if not store.start_run(rec):
            from mlstack.errors import ConflictError

            raise ConflictError(
                f"a run with id {run_id!r} is already recorded in {store.location}", fix="retry"
            )
        if heartbeat:
            self._beat = threading.Thread(target=self._heartbeat, name="mlstack-run-heartbeat", daemon=True)
            self._beat.start()
        return self

    def _heartbeat(self) -> None:
        holder = f"{socket.gethostname()}:{os.getpid()}"
        while not self._stop.wait(self.lease / 3):
            try:
                self.store.renew_lease(self.id, self.lease, holder)
            except Exception as exc:  # a store hiccup: the next beat retries
                self.errors.append(f"heartbeat: {exc}")

    def step(self, doc: dict[str, Any]) -> None:
        try:
            self.store.put_step(self.id, {"schema": SCHEMA, "kind": "mlstack.step", "run": self.id, **doc})
        except Exception as exc:
            self.errors.append(f"step record {doc.get('name')}: {exc}")

    def finish(
        self,
        status: str,
        *,
        seconds: float,
        counts: Mapping[str, int],
        branches: Mapping[str, int],
        error: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)

        def change(cur: dict[str, Any] | None) -> dict[str, Any]:
            rec = dict(cur or self.rec)
            rec.update(
                status=status,
                ended=now_iso(),
                seconds=round(seconds, 3),
                counts=dict(counts),
                error=dict(error) if error else None,
                reason=reason,
            )
            rec["dag"] = [
                {**n, "branches": branches[n["name"]]} if n["name"] in branches else n
                for n in rec.get("dag") or []
            ]
            return rec

        try:
            self.rec = self.store.finish_run(self.id, change)
        except Exception as exc:
            self.errors.append(f"run record: {exc}")
        return self.rec
