"""The local runner: every step a subprocess, in dependency order, independent ones in parallel.

Each run gets a folder ``$MLSTACK_HOME/runs/<run_id>/`` holding the manifest snapshot the steps use, the
params, the shared lineage file (``inputs.jsonl``), and per step (per fan-out branch) its log and pickled
result. Every step receives ``MLSTACK_RUN_ID``, ``MLSTACK_RUN_INPUTS``, ``MLSTACK_STEP``,
``MLSTACK_PIPELINE`` and ``MLSTACK_MANIFEST``, so an artifact a later step writes names the run and every
table an earlier step read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack import run as _run
from mlstack.errors import PipelineError
from mlstack.pipeline import multinode
from mlstack.pipeline.entry import NO_RETRY, read_output, step_dir
from mlstack.pipeline.spec import Pipeline
from mlstack.runs._recorder import RunRecorder
from mlstack.runs._store import INLINE_MAX, digest_of, now_iso

TAIL_LINES = 30


class StepFailed(PipelineError):
    """A step exited non-zero (or timed out); ``result`` is the whole RunResult."""

    def __init__(self, message: str, *, fix: str | None, result: RunResult) -> None:
        super().__init__(message, fix=fix)
        self.result = result


@dataclass
class StepResult:
    """One step (or one fan-out branch): ``status`` is pending, running, succeeded, reused (its result came
    from an earlier run or the cache: ``reused_from``), failed, timed_out or skipped."""

    name: str
    index: int | None = None
    status: str = "skipped"
    exit_code: int | None = None
    seconds: float = 0.0
    attempts: int = 0
    log: str | None = None
    log_tail: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    reused_from: dict[str, Any] | None = None
    why: str | None = None  # on a resume: why this step ran again
    preview: str | None = None
    result: Any = None  # the JSON form of the result (None when it has none)
    has_result: bool = False
    result_digest: str | None = None
    length: int | None = None
    reads: list[dict[str, Any]] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    key: dict[str, Any] | None = None
    inputs_digest: str | None = None
    cache_key: str | None = None
    t0: float = 0.0  # monotonic start, for live elapsed times

    @property
    def label(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "step": self.label,
            "name": self.name,
            "branch": self.index,
            "status": self.status,
            "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3),
            "attempts": self.attempts,
            "log": self.log,
        }
        if self.has_result:
            d["result"] = self.result
        if self.preview is not None:
            d["result_preview"] = self.preview
        if self.reused_from:
            d["reused_from"] = self.reused_from
        if self.why:
            d["why"] = self.why
        if self.writes:
            d["outputs"] = self.writes
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
    resumed_from: str | None = None
    store: str | None = None  # where the run record is (the artifact store's location)
    record_errors: list[str] = field(default_factory=list)

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

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """What the steps wrote: artifact versions, alias moves and gate decisions, tables (with the step)."""
        return [{**w, "step": s.label} for s in self.steps for w in s.writes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "run_dir": str(self.run_dir),
            "params": self.params,
            "resumed_from": self.resumed_from,
            "store": self.store,
            "steps": [s.to_dict() for s in self.steps],
            "outputs": self.outputs,
            **({"record_errors": self.record_errors} if self.record_errors else {}),
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
            fix=f"read the whole log: {first.log}; after a fix, `mlstack run PATH --resume {self.run_id}` "
            "runs only what failed and what depends on it",
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


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class LocalRunner:
    """Runs a Pipeline on this machine (registry kind ``local`` of the orchestrator layer).

    Every run is recorded in the stack's artifact store (:mod:`mlstack.runs`): the run record at start, a
    heartbeat while it runs, one record per step (per branch) with its result and log as it finishes.
    ``resume=RUN`` reuses the results of steps (branches) that succeeded in RUN with the same code and
    inputs; ``@step(cache=True)`` steps reuse a cached result unless ``cache=False``.
    """

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
        self._procs: dict[int, Any] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._fork: Any = None  # the run's fork server (mlstack.pipeline._forkserver), when it runs

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
                proc = self._forked(cmd, step_env, log) if s.nodes == 1 else None
                if proc is None:
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
        res.ended_at = now_iso()
        if res.status != "succeeded":
            res.log_tail = _tail(log)
        self._collect(res, d)
        return res

    def _forked(self, cmd: list[str], env: dict[str, str], log: Path) -> Any:
        """The step forked from the run's fork server when it is up (else None: start a subprocess)."""
        fs = self._fork
        if fs is None or not fs.ready(0):
            return None
        try:
            return fs.start(cmd[3:], env, str(log))
        except OSError:
            return None

    @staticmethod
    def _collect(res: StepResult, d: Path) -> None:
        """Read what the step left in its folder: result preview and JSON, reads and writes."""
        try:
            meta = json.loads((d / "meta.json").read_text())
        except (OSError, ValueError):
            return
        res.reads = list(meta.get("reads") or [])
        res.writes = list(meta.get("writes") or [])
        if res.status != "succeeded":
            return
        res.preview = meta.get("preview")
        res.length = meta.get("length")
        rj = d / "result.json"
        if meta.get("json") and rj.exists():
            res.result_digest = _sha256_file(rj)
            if rj.stat().st_size <= INLINE_MAX:
                with contextlib.suppress(ValueError):
                    res.result = json.loads(rj.read_text())
                    res.has_result = True
        elif (d / "output.pkl").exists():
            res.result_digest = _sha256_file(d / "output.pkl")

    def _reuse(self, res: StepResult, src: dict[str, Any], run_dir: Path, plan: _Plan) -> StepResult:
        """Put an earlier result in this run's folder instead of running the step."""
        t0 = time.monotonic()
        d = step_dir(run_dir, res.name, res.index)
        d.mkdir(parents=True, exist_ok=True)
        doc = src["doc"]
        try:
            value = plan.load_result(doc)
        except Exception as exc:  # the blob is gone or unreadable: run the step after all
            res.why = f"its earlier result could not be read ({type(exc).__name__}: {exc})"
            return self._exec(plan.pipe, res, run_dir, plan.env)
        tmp = d / "output.pkl.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(value, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, d / "output.pkl")
        meta = {
            "length": len(value) if isinstance(value, list | tuple) else None,
            "preview": doc.get("result_preview"),
            "json": "result" in doc or (doc.get("result_json_ref") is not None),
            "reads": [],
            "writes": [],
        }
        if "result" in doc:
            (d / "result.json").write_text(json.dumps(doc["result"]))
        (d / "meta.json").write_text(json.dumps(meta))
        (d / "log.txt").write_text(f"[mlstack] {res.label} reused the result of {src['from']['run']}\n")
        res.log = str(d / "log.txt")
        res.status = "reused"
        res.reused_from = src["from"]
        res.preview = doc.get("result_preview")
        res.length = meta["length"]
        res.result_digest = doc.get("result_digest")
        if "result" in doc:
            res.result, res.has_result = doc["result"], True
        res.seconds = time.monotonic() - t0
        res.ended_at = now_iso()
        res.reused_doc = doc  # type: ignore[attr-defined]
        return res

    def _record_step(
        self, rec: RunRecorder | None, res: StepResult, run_dir: Path, cache: bool, pipe: Pipeline
    ) -> None:
        if rec is None:
            return
        d = step_dir(run_dir, res.name, res.index)
        store = rec.store
        doc: dict[str, Any] = {
            "name": res.name,
            "branch": res.index,
            "status": res.status,
            "attempts": res.attempts,
            "started": res.started_at,
            "ended": res.ended_at,
            "seconds": round(res.seconds, 3),
            "exit_code": res.exit_code,
            "code": (res.key or {}).get("code"),
            "key": res.key,
            "inputs_digest": res.inputs_digest,
            "cache_key": res.cache_key,
            "why": res.why,
            "reused_from": res.reused_from,
            "result_preview": res.preview,
            "result_digest": res.result_digest,
            "result_length": res.length,
            "tables_read": [i for i in res.reads if i.get("type") == "table"],
            "artifacts_read": [i for i in res.reads if i.get("type") == "artifact"],
            "artifacts": [w for w in res.writes if w.get("type") == "artifact"],
            "aliases": [w for w in res.writes if w.get("type") == "alias"],
            "tables_written": [w for w in res.writes if w.get("type") == "table"],
        }
        if res.index is not None and pipe.steps[res.name].foreach in pipe.params:
            doc["item"] = (res.key or {}).get("item")
        try:
            if res.status == "reused":
                old = getattr(res, "reused_doc", {})
                for k in ("result_ref", "result_json_ref"):
                    if old.get(k):
                        doc[k] = old[k]
                if "result" in old:
                    doc["result"] = old["result"]
            elif res.status == "succeeded":
                if (d / "output.pkl").exists():
                    doc["result_ref"] = {**store.put_file(d / "output.pkl"), "format": "pickle"}
                if res.has_result:
                    doc["result"] = res.result
                elif (d / "result.json").exists():
                    doc["result_json_ref"] = {**store.put_file(d / "result.json"), "format": "json"}
            if res.log and Path(res.log).exists() and res.status != "reused":
                doc["log"] = store.put_file(Path(res.log))
            if res.status in ("failed", "timed_out"):
                doc["log_tail"] = res.log_tail
        except Exception as exc:
            rec.errors.append(f"blobs of {res.label}: {exc}")
        rec.step({k: v for k, v in doc.items() if v is not None})
        if cache and res.status == "succeeded" and res.cache_key and "result_ref" in doc:
            entry = {
                "run": rec.id,
                "step": res.label,
                "created": now_iso(),
                **{
                    k: doc[k]
                    for k in (
                        "result_ref",
                        "result_json_ref",
                        "result",
                        "result_preview",
                        "result_digest",
                        "result_length",
                    )
                    if k in doc
                },
            }
            try:
                store.create(store.cache_key_path(pipe.name, res.name, res.cache_key), entry)
            except Exception as exc:
                rec.errors.append(f"cache entry of {res.label}: {exc}")

    # ------------------------------------------------------------ the run
    def run(
        self,
        pipe: Pipeline,
        params: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        resume: str | None = None,
        cache: bool = True,
        record: bool = True,
        on_event: Callable[[str, StepResult], None] | None = None,
    ) -> RunResult:
        """Run ``pipe``; ``resume`` names an earlier run whose results to reuse where nothing changed;
        ``cache=False`` runs ``@step(cache=True)`` steps even when a cached result matches; ``on_event`` is
        called (from this thread) as ``(event, step)`` when a step starts, is reused or ends."""
        order = pipe.validate()
        if pipe.source is None:
            raise PipelineError(
                f"pipeline {pipe.name!r} was not loaded from a file, so its steps cannot run in subprocesses",
                fix="define it in a .py file and load it with mlstack.pipeline.load(path) or `mlstack run PATH`",
            )
        values = pipe.resolve_params(params)
        store = None
        prior = None
        if record or resume:
            from mlstack.runs._client import run_store

            store = run_store(self.manifest)
        if resume:
            prior = _load_prior(store, resume, pipe)
        rid = run_id or _run.new_run_id()
        run_dir = self.home / "runs" / rid
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "params.json").write_text(json.dumps(values, indent=2, default=str))
        (run_dir / "manifest.json").write_text(self.manifest.to_json())
        result = RunResult(rid, pipe.name, run_dir, values, resumed_from=prior.id if prior else None)
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
        from mlstack.pipeline import _forkserver

        if _forkserver.available() and any(st.nodes == 1 for st in pipe.steps.values()):
            try:  # boots while the first steps start as subprocesses; later steps fork from it
                self._fork = _forkserver.ForkServer(str(pipe.source), env)
            except OSError:
                self._fork = None
        plan = _Plan(pipe, values, prior, store, cache, env)
        rec: RunRecorder | None = None
        if record and store is not None:
            rec = RunRecorder.start(
                store,
                run_id=rid,
                pipe=pipe,
                order=order,
                params=values,
                manifest=self.manifest,
                orchestrator={"kind": "local", "run_dir": str(run_dir)},
                code={**plan.code_info(), "steps": plan.code},
                resumed_from=result.resumed_from,
            )
            result.store = store.location
        self._write_state(result)
        emit = on_event or (lambda _e, _s: None)

        done: set[str] = set()  # steps whose every branch succeeded
        launched: set[str] = set()
        branches: dict[str, list[StepResult]] = {}
        ready: list[StepResult] = []
        running: dict[Future[StepResult], StepResult] = {}
        failed = False
        reason = None
        pool = ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="mlstack-step")
        recorders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="mlstack-record")
        pending_records: list[Future[None]] = []
        try:
            for name in order:
                emit("pending", StepResult(name, status="pending"))
            while True:
                if not failed:
                    for name in order:
                        if name in launched or not all(d in done for d in pipe.deps(name)):
                            continue
                        launched.add(name)
                        items = self._fanout_count(pipe, name, values, run_dir)
                        if items is None:
                            branches[name] = [StepResult(name, status="pending")]
                        else:
                            d = run_dir / "steps" / name
                            d.mkdir(parents=True, exist_ok=True)
                            (d / "fanout.json").write_text(json.dumps({"count": items}))
                            branches[name] = [StepResult(name, i, status="pending") for i in range(items)]
                            if items == 0:
                                done.add(name)
                        for b in branches[name]:
                            plan.prepare(b, branches)
                        ready.extend(branches[name])
                while ready and len(running) < self.max_parallel and not failed:
                    r = ready.pop(0)
                    r.started_at = now_iso()
                    r.t0 = time.monotonic()
                    src = plan.reusable(r)
                    if src is not None:
                        r.status = "reusing"
                        running[pool.submit(self._reuse, r, src, run_dir, plan)] = r
                    else:
                        r.status = "running"
                        running[pool.submit(self._exec, pipe, r, run_dir, env)] = r
                    emit(r.status, r)
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
                    emit(r.status, r)
                    pending_records.append(
                        recorders.submit(self._record_step, rec, r, run_dir, plan.cache_on, pipe)
                    )
                    if r.status not in ("succeeded", "reused"):
                        failed = True
                    elif all(b.status in ("succeeded", "reused") for b in branches[r.name]):
                        done.add(r.name)
        except BaseException as exc:
            self._stopping.set()
            self._kill_all()
            result.status = "interrupted"
            reason = "stopped (Ctrl-C)" if isinstance(exc, KeyboardInterrupt) else f"the runner failed: {exc}"
            raise
        finally:
            pool.shutdown(wait=True)
            if self._fork is not None:
                self._fork.close()
                self._fork = None
            for name in order:
                result.steps.extend(branches.get(name, [StepResult(name)]))
            for r in result.steps:
                if r.status in ("running", "skipped", "pending", "reusing") and r.exit_code is None:
                    r.status = (
                        "interrupted"
                        if result.status == "interrupted" and r.status == "running"
                        else "skipped"
                    )
            if result.status == "running":
                result.status = "failed" if failed else "succeeded"
            result.seconds = time.monotonic() - started
            for f in pending_records:
                with contextlib.suppress(Exception):
                    f.result()
            recorders.shutdown(wait=True)
            if rec is not None:
                counts: dict[str, int] = {}
                for r in result.steps:
                    counts[r.status] = counts.get(r.status, 0) + 1
                first = result.failed[0] if result.failed else None
                error = None
                if first is not None:
                    error = {
                        "step": first.label,
                        "message": f"step {first.label} "
                        + (
                            "timed out"
                            if first.status == "timed_out"
                            else f"failed with exit code {first.exit_code}"
                        ),
                    }
                rec.finish(
                    result.status,
                    seconds=result.seconds,
                    counts=counts,
                    branches={n: len(b) for n, b in branches.items() if pipe.steps[n].foreach is not None},
                    error=error,
                    reason=reason,
                )
                result.record_errors = list(rec.errors)
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


def _load_prior(store: Any, run_id: str, pipe: Pipeline) -> Any:
    """The run to resume, with its step records; RunNotFound lists the newest runs."""
    from mlstack.runs._client import get_run

    prior = get_run(run_id, pipe.name if run_id == "latest" else None, store=store)
    if prior.status == "unreadable":
        from mlstack.errors import IntegrityError

        raise IntegrityError(
            f"cannot resume run {prior.id}: its {prior.reason}",
            fix="resume another run (`mlstack runs ls`), or run without --resume",
        )
    if prior.pipeline != pipe.name:
        from mlstack.errors import UsageError

        raise UsageError(
            f"run {prior.id} is of pipeline {prior.pipeline!r}, not {pipe.name!r}",
            fix=f"`mlstack runs ls {pipe.name}` lists this pipeline's runs",
        )
    if prior.status == "running":
        from mlstack.errors import UsageError

        raise UsageError(
            f"run {prior.id} is still running (its heartbeat is current)",
            fix="wait for it to end, or stop it; a run whose runner died reads `interrupted` once its lease lapses",
        )
    prior.steps  # noqa: B018 - load the step records now, before anything runs
    return prior


class _Plan:
    """Decides, per step and branch, whether a result can be reused (resume, cache) and says why not."""

    def __init__(
        self, pipe: Pipeline, values: dict[str, Any], prior: Any, store: Any, cache: bool, env: dict[str, str]
    ) -> None:
        from mlstack.runs._recorder import step_code_digest

        self.pipe = pipe
        self.values = values
        self.prior = prior
        self.store = store
        self.cache_on = cache
        self.env = env
        self.code = {n: step_code_digest(s.func) for n, s in pipe.steps.items()}
        # the prior run's reusable results per step, by the digest of their inputs (a branch whose item
        # moved to another index still matches), and every record by (step, branch) to explain misses
        self.by_digest: dict[str, dict[str, dict[str, Any]]] = {}
        self.by_label: dict[tuple[str, int | None], dict[str, Any]] = {}
        if prior is not None:
            for sr in prior.steps.flat():
                if not sr.doc:
                    continue
                self.by_label[(sr.name, sr.branch)] = sr.doc
                if sr.doc.get("status") in ("succeeded", "reused") and sr.doc.get("inputs_digest"):
                    self.by_digest.setdefault(sr.name, {})[sr.doc["inputs_digest"]] = sr.doc

    def code_info(self) -> dict[str, Any]:
        from mlstack.runs._recorder import code_info

        info = code_info(self.pipe)
        info.pop("steps", None)
        return info

    def _dep_digest(self, dep: str, branches: dict[str, list[StepResult]]) -> str | None:
        got = branches.get(dep) or []
        if self.pipe.steps[dep].foreach is not None:
            return digest_of([b.result_digest for b in got])
        return got[0].result_digest if got else None

    def prepare(self, r: StepResult, branches: dict[str, list[StepResult]]) -> None:
        """The key of this step's inputs: its code, the params it takes, its upstream results, its item."""
        s = self.pipe.steps[r.name]
        from mlstack.runs._recorder import redact

        params = {a: self.values[a] for a in s.arg_names if a in self.pipe.params and a != s.foreach}
        item: Any = None
        if r.index is not None and s.foreach in self.pipe.params:
            item = redact({s.foreach: list(self.values[s.foreach])[r.index]})[s.foreach]
        elif r.index is not None:
            item = {"from": s.foreach, "index": r.index}
        key = {
            "code": self.code[r.name],
            "params": redact(params),
            "upstream": {d: self._dep_digest(d, branches) for d in self.pipe.deps(r.name)},
            "item": item,
        }
        r.key = key
        r.inputs_digest = digest_of(key)
        if getattr(s, "cache", False):
            image = s.resources.image or self.pipe.image or "local"
            r.cache_key = digest_of(
                {"pipeline": self.pipe.name, "step": r.name, "inputs": r.inputs_digest, "image": image}
            )

    def reusable(self, r: StepResult) -> dict[str, Any] | None:
        """Where this step's result can come from instead of running it, else None (with ``r.why`` set)."""
        if self.prior is not None:
            doc = self.by_digest.get(r.name, {}).get(r.inputs_digest or "")
            if doc is not None:
                origin = (doc.get("reused_from") or {}).get("run") or self.prior.id
                return {"doc": doc, "from": {"run": origin, "step": _label(doc), "via": "resume"}}
            r.why = self._why(r)
        if self.cache_on and r.cache_key and self.store is not None:
            try:
                got = self.store.read_json(self.store.cache_key_path(self.pipe.name, r.name, r.cache_key))
            except Exception:
                got = None
            if got is not None:
                entry = got[0]
                return {
                    "doc": entry,
                    "from": {"run": entry.get("run"), "step": entry.get("step"), "via": "cache"},
                }
        return None

    def _why(self, r: StepResult) -> str:
        old = self.by_label.get((r.name, r.index))
        if old is None:
            return f"it did not run in {self.prior.id}" + (" (a new branch)" if r.index is not None else "")
        st = old.get("status")
        if st not in ("succeeded", "reused"):
            return f"it {st} in {self.prior.id}" if st else f"it did not finish in {self.prior.id}"
        okey = old.get("key") or {}
        nkey = r.key or {}
        if okey.get("code") != nkey.get("code"):
            return "its code changed"
        changed = [
            f"param {k} changed ({_short(okey.get('params', {}).get(k))} -> {_short(v)})"
            for k, v in (nkey.get("params") or {}).items()
            if (okey.get("params") or {}).get(k) != v
        ]
        if okey.get("item") != nkey.get("item"):
            changed.append(f"its item changed ({_short(okey.get('item'))} -> {_short(nkey.get('item'))})")
        ups = [d for d, v in (nkey.get("upstream") or {}).items() if (okey.get("upstream") or {}).get(d) != v]
        if ups:
            changed.append("upstream " + ", ".join(ups) + " changed")
        return "; ".join(changed) or "its inputs changed"

    def load_result(self, doc: dict[str, Any]) -> Any:
        if doc.get("result_ref", {}).get("format") == "pickle":
            return pickle.loads(
                self.store.get_blob(doc["result_ref"]["blob"])
            )  # the run store is the stack's own
        if "result" in doc:
            return doc["result"]
        ref = doc.get("result_json_ref") or doc.get("result_ref") or {}
        if ref.get("blob"):
            return json.loads(self.store.get_blob(ref["blob"]))
        raise PipelineError("the earlier result has no stored value", fix="run without --resume")


def _label(doc: dict[str, Any]) -> str:
    b = doc.get("branch")
    return str(doc.get("name")) if b is None else f"{doc.get('name')}[{b}]"


def _short(v: Any) -> str:
    text = json.dumps(v, default=repr) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:39] + "…"
