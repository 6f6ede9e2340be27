"""The local runner: every step a subprocess, in dependency order, independent ones in parallel.

Each run gets a folder ``$MLSTACK_HOME/runs/<run_id>/`` holding the manifest snapshot the steps use, the
params, the shared lineage file (``inputs.jsonl``), and per step (per fan-out branch) its log and pickled
result. Every step receives ``MLSTACK_RUN_ID``, ``MLSTACK_RUN_INPUTS``, ``MLSTACK_STEP``,
``MLSTACK_PIPELINE`` and ``MLSTACK_MANIFEST``, so an artifact a later step writes names the run and every
table an earlier step read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack import run as _run
from mlstack.errors import PipelineError
from mlstack.pipeline import multinode
from mlstack.pipeline.entry import NO_RETRY, read_output, step_dir
from mlstack.pipeline.spec import Pipeline

TAIL_LINES = 30


class StepFailed(PipelineError):
    """A step exited non-zero (or timed out); ``result`` is the whole RunResult."""

    def __init__(self, message: str, *, fix: str | None, result: RunResult) -> None:
        super().__init__(message, fix=fix)
        self.result = result


@dataclass
class StepResult:
    """One step (or one fan-out branch): ``status`` is succeeded, failed, timed_out or skipped."""

    name: str
    index: int | None = None
    status: str = "skipped"
    exit_code: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    log: str | None = None
    log_tail: str = ""

    @property
    def label(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        d = {
            "step": self.label,
            "status": self.status,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "log": self.log,
        }
        if self.status in ("failed", "timed_out"):
            d["log_tail"] = self.log_tail
        return d


@dataclass
class RunResult:
    run_id: str
    pipeline: str
    run_dir: Path
    params: dict[str, Any]
    status: str = "running"
    steps: list[StepResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if s.status in ("failed", "timed_out")]

    def step(self, label: str) -> StepResult:
        for s in self.steps:
            if s.label == label:
                return s
        raise KeyError(label)

    def output(self, name: str) -> Any:
        """A step's result (the list of results for a fan-out step), read from the run folder."""
        return read_output(self.run_dir, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "run_dir": str(self.run_dir),
            "params": self.params,
            "steps": [s.to_dict() for s in self.steps],
        }

    def raise_for_status(self) -> None:
        if self.ok:
            return
        first = self.failed[0] if self.failed else None
        if first is None:
            raise StepFailed(
                f"pipeline {self.pipeline!r} run {self.run_id} {self.status}", fix=None, result=self
            )
        how = "timed out" if first.status == "timed_out" else f"failed with exit code {first.exit_code}"
        raise StepFailed(
            f"step {first.label} of pipeline {self.pipeline!r} {how} (run {self.run_id}); "
            f"last lines of its log:\n{first.log_tail}",
            fix=f"read the whole log: {first.log}",
            result=self,
        )


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class LocalRunner:
    """Runs a Pipeline on this machine (registry kind ``local`` of the orchestrator layer)."""

    def __init__(
        self, manifest: Any = None, *, max_parallel: int | None = None, home: str | None = None
    ) -> None:
        from mlstack import manifest as _manifest

        if manifest is None or isinstance(manifest, str | os.PathLike):
            self.manifest = _manifest.resolve(manifest).manifest
        elif isinstance(manifest, _manifest.Manifest):
            self.manifest = manifest
        else:  # an orchestrator section handed over by the registry: use the manifest in force
            self.manifest = _manifest.current()
        compute_max = getattr(self.manifest.compute, "max_parallel", None)
        self.max_parallel = max(1, max_parallel or compute_max or os.cpu_count() or 1)
        self.home = _manifest.home(home)
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    # ------------------------------------------------------------ one task
    def _exec(self, pipe: Pipeline, res: StepResult, run_dir: Path, env: dict[str, str]) -> StepResult:
        s = pipe.steps[res.name]
        d = step_dir(run_dir, res.name, res.index)
        d.mkdir(parents=True, exist_ok=True)
        log = d / "log.txt"
        res.log = str(log)
        cmd = [
            sys.executable,
            "-m",
            "mlstack.pipeline.entry",
            str(pipe.source),
            s.name,
            "--run-dir",
            str(run_dir),
        ]
        if res.index is not None:
            cmd += ["--index", str(res.index)]
        step_env = {**env, **s.env, _run.STEP_VAR: res.label}
        started = time.monotonic()
        for attempt in range(1, s.retries + 2):
            if self._stopping.is_set():
                break
            res.attempts = attempt
            with open(log, "ab") as fh:
                if attempt > 1:
                    fh.write(f"\n[mlstack] attempt {attempt} of {s.retries + 1}\n".encode())
                    fh.flush()
                proc = (
                    subprocess.Popen(
                        cmd, stdout=fh, stderr=subprocess.STDOUT, env=step_env, stdin=subprocess.DEVNULL
                    )
                    if s.nodes == 1
                    else multinode.Group(cmd, s.nodes, env=step_env, log=fh).start()
                )
                with self._lock:
                    self._procs[proc.pid] = proc
                try:
                    rc = proc.wait(timeout=s.timeout)
                    res.status = "succeeded" if rc == 0 else "failed"
                except subprocess.TimeoutExpired:
                    proc.kill()
                    rc = proc.wait()
                    res.status = "timed_out"
                    fh.write(f"\n[mlstack] timed out after {s.timeout}s\n".encode())
                finally:
                    with self._lock:
                        self._procs.pop(proc.pid, None)
            res.exit_code = rc
            if res.status == "succeeded" or (d / NO_RETRY).exists():
                break
        res.seconds = time.monotonic() - started
        if res.status != "succeeded":
            res.log_tail = _tail(log)
        return res

    # ------------------------------------------------------------ the run
    def run(
        self, pipe: Pipeline, params: Mapping[str, Any] | None = None, *, run_id: str | None = None
    ) -> RunResult:
        order = pipe.validate()
        if pipe.source is None:
            raise PipelineError(
                f"pipeline {pipe.name!r} was not loaded from a file, so its steps cannot run in subprocesses",
                fix="define it in a .py file and load it with mlstack.pipeline.load(path) or `mlstack run PATH`",
            )
        values = pipe.resolve_params(params)
        rid = run_id or _run.new_run_id()
        run_dir = self.home / "runs" / rid
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "params.json").write_text(json.dumps(values, indent=2, default=str))
        (run_dir / "manifest.json").write_text(self.manifest.to_json())
        result = RunResult(rid, pipe.name, run_dir, values)
        env = dict(os.environ)
        env.update(
            {
                _run.RUN_ID_VAR: rid,
                _run.RUN_INPUTS_VAR: str(run_dir / "inputs.jsonl"),
                _run.PIPELINE_VAR: pipe.name,
                "MLSTACK_MANIFEST": str(run_dir / "manifest.json"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        # parallel steps each starting a full-size BLAS/OpenMP pool oversubscribe the cores
        threads = str(max(1, (os.cpu_count() or 1) // self.max_parallel))
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, threads)
        folder = str(Path(pipe.source).parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (folder, env.get("PYTHONPATH", "")) if p)
        started = time.monotonic()
        self._write_state(result)

        done: set[str] = set()  # steps whose every branch succeeded
        launched: set[str] = set()
        branches: dict[str, list[StepResult]] = {}
        ready: list[StepResult] = []
        running: dict[Future[StepResult], StepResult] = {}
        failed = False
        pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="mlstack-step")
        try:
            while True:
                if not failed:
                    for name in order:
                        if name in launched or not all(d in done for d in pipe.deps(name)):
                            continue
                        launched.add(name)
                        items = self._fanout_count(pipe, name, values, run_dir)
                        if items is None:
                            branches[name] = [StepResult(name)]
                        else:
                            d = run_dir / "steps" / name
                            d.mkdir(parents=True, exist_ok=True)
                            (d / "fanout.json").write_text(json.dumps({"count": items}))
                            branches[name] = [StepResult(name, i) for i in range(items)]
                            if items == 0:
                                done.add(name)
                        ready.extend(branches[name])
                while ready and len(running) < self.max_parallel and not failed:
                    r = ready.pop(0)
                    r.status = "running"
                    running[pool.submit(self._exec, pipe, r, run_dir, env)] = r
                if not running:
                    if not failed and len(done) < len(order) and not ready:
                        # nothing runs and nothing can start: cannot happen with a validated graph
                        raise PipelineError(
                            f"pipeline {pipe.name!r}: no step can start", fix="report this bug"
                        )
                    if not ready or failed:
                        break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in finished:
                    r = running.pop(fut)
                    fut.result()
                    if r.status != "succeeded":
                        failed = True
                    elif all(b.status == "succeeded" for b in branches[r.name]):
                        done.add(r.name)
        except BaseException:
            self._stopping.set()
            self._kill_all()
            result.status = "interrupted"
            raise
        finally:
            pool.shutdown(wait=True)
            for name in order:
                result.steps.extend(branches.get(name, [StepResult(name)]))
            for r in result.steps:
                if r.status in ("running", "skipped") and r.exit_code is None:
                    r.status = "skipped"
            if result.status == "running":
                result.status = "failed" if failed else "succeeded"
            result.seconds = time.monotonic() - started
            self._write_state(result)
        return result

    def _fanout_count(self, pipe: Pipeline, name: str, values: dict[str, Any], run_dir: Path) -> int | None:
        s = pipe.steps[name]
        if s.foreach is None:
            return None
        if s.foreach in pipe.steps:
            meta = step_dir(run_dir, s.foreach, None) / "meta.json"
            if (run_dir / "steps" / s.foreach / "fanout.json").exists():
                return len(read_output(run_dir, s.foreach))
            length = json.loads(meta.read_text()).get("length")
            if length is None:
                raise PipelineError(
                    f"step {name!r} fans out over {s.foreach!r}, whose result is not a list",
                    fix=f"make step {s.foreach!r} return a list",
                )
            return int(length)
        seq = values[s.foreach]
        if not isinstance(seq, list | tuple):
            raise PipelineError(
                f"step {name!r} fans out over param {s.foreach!r}={seq!r}, which is not a list",
                fix=f"pass a JSON list: -p {s.foreach}='[1, 2]'",
            )
        return len(seq)

    def _kill_all(self) -> None:
        with self._lock:
            procs = list(self._procs.values())
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()

    @staticmethod
    def _write_state(result: RunResult) -> None:
        tmp = result.run_dir / "run.json.tmp"
        tmp.write_text(json.dumps(result.to_dict(), indent=2, default=str))
        os.replace(tmp, result.run_dir / "run.json")
