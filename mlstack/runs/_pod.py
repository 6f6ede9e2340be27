"""Records written from inside an Argo pod: the step entry records its own step, the exit handler the run's end.

A step pod (``python -m mlstack.pipeline.entry SOURCE STEP --argo``):
- creates the run record if nobody has yet (create-once: the CLI that submitted, or the first pod),
- renews the run's lease while it runs,
- copies its own stdout/stderr (file-descriptor level, so subprocesses are included) into its log blob,
- on a resume (``MLSTACK_RESUME``) or for ``@step(cache=True)``, reuses a matching earlier result instead of
  calling the step function,
- writes its step record (``<step>@<branch>.json`` for a fan-out item: the branch is the item's position in
  the list it fans out over).
The workflow's exit handler (``--argo-exit``) sets the run's end status from ``{{workflow.status}}``.

Record writes never fail a step: a store that cannot be reached is reported on stderr and the step goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any

from mlstack.runs._store import RunStore, digest_of, now_iso, parse_iso

ARGO_LEASE = (
    1800.0  # pods wait for nodes (a GPU node may take minutes): a long lease, closed by the exit handler
)
RESERVED_PARAMS = ("mlstack-resume", "mlstack-no-cache")


def _env(name: str) -> str | None:
    v = os.environ.get(name)
    return v if v and not v.startswith("{{") else None


def run_started() -> str:
    raw = _env("MLSTACK_RUN_STARTED")
    ts = parse_iso(raw) if raw else None
    return now_iso(ts) if ts is not None else now_iso()


def json_digest(value: Any) -> str:
    """The result digest a step records: SHA-256 of its JSON text (as written to result.json)."""
    return "sha256:" + hashlib.sha256(json.dumps(value, allow_nan=True).encode()).hexdigest()


class Tee:
    """Copy this process's fds 1 and 2 into memory while still writing them out (the pod's log)."""

    LIMIT = 64 << 20

    def __init__(self) -> None:
        self.buf = bytearray()
        self._saved: list[int] = []
        self._thread: threading.Thread | None = None
        self._r = -1
        self._py: tuple[Any, Any] | None = None

    def start(self) -> Tee:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            r, w = os.pipe()
            self._saved = [os.dup(1), os.dup(2)]
            os.dup2(w, 1)
            os.dup2(w, 2)
            os.close(w)
            self._r = r
            self._thread = threading.Thread(target=self._pump, name="mlstack-log-tee", daemon=True)
            self._thread.start()
            # Python's own streams may not write to fds 1/2 (an embedding host, a test runner): point them there
            self._py = (sys.stdout, sys.stderr)
            sys.stdout = open(1, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError:
            self._saved = []
        return self

    def _pump(self) -> None:
        out = self._saved[0]
        while True:
            try:
                chunk = os.read(self._r, 65536)
            except OSError:
                return
            if not chunk:
                return
            try:
                os.write(out, chunk)
            except OSError:
                pass
            if len(self.buf) < self.LIMIT:
                self.buf.extend(chunk)

    def stop(self) -> bytes:
        if not self._saved:
            return bytes(self.buf)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        if self._py is not None:
            sys.stdout, sys.stderr = self._py
            self._py = None
        os.dup2(self._saved[0], 1)  # closes the pipe's write ends: the pump sees EOF
        os.dup2(self._saved[1], 2)
        if self._thread is not None:
            self._thread.join(timeout=10)
        for fd in (*self._saved, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        self._saved = []
        return bytes(self.buf)


class PodRecorder:
    """One step of an Argo run, recording itself."""

    def __init__(self, store: RunStore, pipe: Any, step: Any, run_id: str, params: dict[str, Any]) -> None:
        self.store = store
        self.pipe = pipe
        self.step = step
        self.run_id = run_id
        self.params = params
        self.branch: int | None = None
        self.item: Any = None
        self.started = now_iso()
        self.t0 = time.monotonic()
        self.key: dict[str, Any] | None = None
        self.inputs_digest: str | None = None
        self.cache_key: str | None = None
        self.reused: dict[str, Any] | None = None
        self.why: str | None = None
        self.attempts = 1
        self._stop = threading.Event()
        self._tee = Tee()

    # ------------------------------------------------------------------ start
    @classmethod
    def begin(
        cls, pipe: Any, step: Any, params: dict[str, Any], item: Any, has_item: bool
    ) -> PodRecorder | None:
        run_id = _env("MLSTACK_RUN_ID")
        if not run_id:
            return None
        try:
            from mlstack.runs._client import run_store

            store = run_store()
            self = cls(store, pipe, step, run_id, params)
            self._tee.start()
            self._ensure_run()
            if has_item:
                self.item = item
                self.branch = self._branch_index(item)
            self._prepare_key()
            prior = store.read_json(_step_key(run_id, step.name, self.branch))
            if prior is not None and prior[0].get("status") in ("failed", "timed_out"):
                self.attempts = int(prior[0].get("attempts") or 1) + 1  # an Argo retry of this step
            threading.Thread(target=self._heartbeat, name="mlstack-run-heartbeat", daemon=True).start()
            return self
        except Exception as exc:  # never fail the step for its record
            print(f"[mlstack] warning: cannot record this step in the run store: {exc}", file=sys.stderr)
            return None

    def _ensure_run(self) -> None:
        from mlstack import manifest as _manifest
        from mlstack.runs._recorder import code_info, dag, redact, who

        key = self.store.run_key(self.run_id)
        if self.store.backend.read_doc(key) is not None:
            return
        raw = _env("MLSTACK_RUN_PARAMS")
        params = dict(self.params)
        if raw:
            try:
                params = _argo_params(json.loads(raw), self.pipe)
            except ValueError:
                pass
        m = _manifest.current()
        rec = {
            "schema": 1,
            "kind": "mlstack.run",
            "id": self.run_id,
            "pipeline": self.pipe.name,
            "description": self.pipe.description,
            "params": redact(params),
            "code": code_info(self.pipe),
            "stack": {"project": m.project, "stack": m.stack},
            "orchestrator": {
                "kind": "argo",
                "workflow": _env("MLSTACK_ARGO_WORKFLOW") or self.run_id,
                "namespace": _env("MLSTACK_ARGO_NAMESPACE"),
            },
            "who": {**who(), "pod": _env("MLSTACK_POD")},
            "started": run_started(),
            "ended": None,
            "seconds": None,
            "status": "running",
            "resumed_from": _env("MLSTACK_RESUME"),
            "dag": dag(self.pipe, self.pipe.validate()),
            "lease": {"seconds": ARGO_LEASE, "expires": time.time() + ARGO_LEASE},
        }
        self.store.start_run(rec)  # False: another pod (or the CLI) created it first, which is fine

    def _source_list(self) -> list[Any] | None:
        s = self.step
        if s.foreach in self.pipe.params:
            raw = _env("MLSTACK_RUN_PARAMS")
            if raw:
                try:
                    return list(_argo_params(json.loads(raw), self.pipe)[s.foreach])
                except (ValueError, KeyError, TypeError):
                    pass
            return list(self.params.get(s.foreach) or [])
        got = self.store.read_json(_step_key(self.run_id, s.foreach, None))
        if got and isinstance(got[0].get("result"), list):
            return list(got[0]["result"])
        return None

    def _branch_index(self, item: Any) -> int | None:
        """The item's position in the list the step fans out over (the first match: equal items share one)."""
        items = self._source_list() or []
        want = json.dumps(item, sort_keys=True)
        for i, x in enumerate(items):
            if json.dumps(x, sort_keys=True) == want:
                return i
        return None

    def _upstream_digests(self) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        docs, _ = self.store.read_steps(self.run_id)
        by: dict[str, dict[Any, dict[str, Any]]] = {}
        for d in docs:
            by.setdefault(d.get("name"), {})[d.get("branch")] = d
        for dep in self.pipe.deps(self.step.name):
            got = by.get(dep, {})
            if self.pipe.steps[dep].foreach is not None:
                branches = sorted(b for b in got if b is not None)
                out[dep] = digest_of([got[b].get("result_digest") for b in branches])
            else:
                out[dep] = (got.get(None) or {}).get("result_digest")
        return out

    def _prepare_key(self) -> None:
        from mlstack.runs._recorder import redact, step_code_digest

        s = self.step
        used = {
            a: self.params[a]
            for a in s.arg_names
            if a in self.pipe.params and a != s.foreach and a in self.params
        }
        item: Any = None
        if self.branch is not None and s.foreach in self.pipe.params:
            item = redact({s.foreach: self.item})[s.foreach]
        elif self.branch is not None:
            item = {"from": s.foreach, "index": self.branch}
        self.key = {
            "code": step_code_digest(s.func),
            "params": redact(used),
            "upstream": self._upstream_digests(),
            "item": item,
        }
        self.inputs_digest = digest_of(self.key)
        if getattr(s, "cache", False):
            image = s.resources.image or self.pipe.image or _env("MLSTACK_IMAGE") or "argo"
            self.cache_key = digest_of(
                {"pipeline": self.pipe.name, "step": s.name, "inputs": self.inputs_digest, "image": image}
            )

    def _heartbeat(self) -> None:
        holder = f"{_env('MLSTACK_POD') or 'pod'}:{os.getpid()}"
        while True:
            try:
                self.store.renew_lease(self.run_id, ARGO_LEASE, holder)
            except Exception:
                pass
            if self._stop.wait(60):
                return

    # ------------------------------------------------------------------ reuse
    def reusable(self) -> tuple[bool, Any]:
        """(True, value) when a resumed run or the cache holds this step's result for the same inputs."""
        prior_id = _env("MLSTACK_RESUME")
        if prior_id and prior_id != self.run_id:
            try:
                docs, _ = self.store.read_steps(prior_id)
            except Exception:
                docs = []
            for d in docs:
                if (
                    d.get("name") == self.step.name
                    and d.get("status") in ("succeeded", "reused")
                    and d.get("inputs_digest") == self.inputs_digest
                ):
                    origin = (d.get("reused_from") or {}).get("run") or prior_id
                    label = d["name"] if d.get("branch") is None else f"{d['name']}[{d['branch']}]"
                    return self._reuse(d, {"run": origin, "step": label, "via": "resume"})
            same = next(
                (d for d in docs if d.get("name") == self.step.name and d.get("branch") == self.branch), None
            )
            self.why = "it did not run in " + prior_id if same is None else "its code or inputs changed"
            if same is not None and same.get("status") not in ("succeeded", "reused"):
                self.why = f"it {same.get('status')} in {prior_id}"
        no_cache = (_env("MLSTACK_NO_CACHE") or "").lower() in ("1", "true", "yes")
        if self.cache_key and not no_cache:
            got = self.store.read_json(
                self.store.cache_key_path(self.pipe.name, self.step.name, self.cache_key)
            )
            if got is not None:
                return self._reuse(
                    got[0], {"run": got[0].get("run"), "step": got[0].get("step"), "via": "cache"}
                )
        return False, None

    def _reuse(self, doc: dict[str, Any], origin: dict[str, Any]) -> tuple[bool, Any]:
        try:
            if "result" in doc:
                value = doc["result"]
            else:
                ref = doc.get("result_json_ref") or doc.get("result_ref") or {}
                if ref.get("format") != "json":
                    return False, None  # a local pickle: not a JSON result a pod can pass on
                value = json.loads(self.store.get_blob(ref["blob"]))
        except Exception:
            return False, None
        self.reused = origin
        self._reused_doc = doc
        return True, value

    # ------------------------------------------------------------------ end
    def finish(
        self,
        status: str,
        result: Any = None,
        *,
        error: str | None = None,
        writes: list[Any] | None = None,
        reads: list[Any] | None = None,
    ) -> None:
        self._stop.set()
        log = self._tee.stop()
        try:
            self._write(status, result, error, log, reads or [], writes or [])
        except Exception as exc:
            print(f"[mlstack] warning: cannot write this step's record: {exc}", file=sys.stderr)

    def _write(
        self, status: str, result: Any, error: str | None, log: bytes, reads: list[Any], writes: list[Any]
    ) -> None:
        from mlstack.pipeline.entry import preview

        st = self.store
        doc: dict[str, Any] = {
            "schema": 1,
            "kind": "mlstack.step",
            "run": self.run_id,
            "name": self.step.name,
            "branch": self.branch,
            "status": status,
            "attempts": self.attempts,
            "started": self.started,
            "ended": now_iso(),
            "seconds": round(time.monotonic() - self.t0, 3),
            "exit_code": 0 if status in ("succeeded", "reused") else 1,
            "code": (self.key or {}).get("code"),
            "key": self.key,
            "inputs_digest": self.inputs_digest,
            "cache_key": self.cache_key,
            "why": self.why,
            "reused_from": self.reused,
            "pod": _env("MLSTACK_POD"),
            "tables_read": [i for i in reads if i.get("type") == "table"],
            "artifacts_read": [i for i in reads if i.get("type") == "artifact"],
            "artifacts": [w for w in writes if w.get("type") == "artifact"],
            "aliases": [w for w in writes if w.get("type") == "alias"],
            "tables_written": [w for w in writes if w.get("type") == "table"],
        }
        if self.branch is not None and self.step.foreach in self.pipe.params:
            doc["item"] = (self.key or {}).get("item")
        if status in ("succeeded", "reused"):
            text = json.dumps(result, allow_nan=True)
            doc["result_digest"] = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
            doc["result_preview"] = preview(result)
            doc["result_length"] = len(result) if isinstance(result, list | tuple) else None
            from mlstack.runs._store import INLINE_MAX

            if len(text) <= INLINE_MAX:
                doc["result"] = result
            else:
                doc["result_json_ref"] = {**st.put_blob(text.encode()), "format": "json"}
        if log:
            doc["log"] = st.put_blob(log)
        if status not in ("succeeded", "reused"):
            doc["log_tail"] = "\n".join(log.decode("utf-8", "replace").splitlines()[-30:])
            if error:
                doc["error"] = error
        st.put_step(self.run_id, {k: v for k, v in doc.items() if v is not None})
        if status == "succeeded" and self.cache_key:
            entry = {"run": self.run_id, "step": _label(self.step.name, self.branch), "created": now_iso()}
            entry.update(
                {
                    k: doc[k]
                    for k in ("result", "result_json_ref", "result_digest", "result_preview", "result_length")
                    if k in doc
                }
            )
            st.create(st.cache_key_path(self.pipe.name, self.step.name, self.cache_key), entry)


def _label(name: str, branch: int | None) -> str:
    return name if branch is None else f"{name}[{branch}]"


def _step_key(run_id: str, name: str, branch: int | None) -> str:
    from mlstack.runs._store import step_key

    return step_key(run_id, name, branch)


def _argo_params(raw: Any, pipe: Any) -> dict[str, Any]:
    """``{{workflow.parameters.json}}`` (a list of {name, value}, or a mapping) typed like the defaults."""
    from mlstack.pipeline.spec import coerce

    pairs: Mapping[str, Any]
    if isinstance(raw, list):
        pairs = {p.get("name"): p.get("value") for p in raw if isinstance(p, dict)}
    elif isinstance(raw, dict):
        pairs = raw
    else:
        return {}
    out = dict(pipe.params)
    for k, v in pairs.items():
        if k in RESERVED_PARAMS or k not in pipe.params:
            continue
        try:
            out[k] = coerce(v, pipe.params[k])
        except ValueError:
            out[k] = v
    return out


def finish_workflow(pipe: Any) -> int:
    """The exit handler: the run's end status from ``MLSTACK_WORKFLOW_STATUS`` (Succeeded/Failed/Error)."""
    from mlstack.runs._client import run_store

    run_id = _env("MLSTACK_RUN_ID")
    if not run_id:
        print("[mlstack] exit handler: no MLSTACK_RUN_ID; nothing to record", file=sys.stderr)
        return 0
    wf_status = (_env("MLSTACK_WORKFLOW_STATUS") or "").lower()
    status = {"succeeded": "succeeded", "failed": "failed", "error": "failed"}.get(wf_status, "failed")
    failures: Any = None
    raw = _env("MLSTACK_WORKFLOW_FAILURES")
    if raw:
        try:
            failures = json.loads(raw)
        except ValueError:
            failures = raw
    try:
        store = run_store()
        if store.backend.read_doc(store.run_key(run_id)) is None:
            rec = PodRecorder(store, pipe, next(iter(pipe.steps.values())), run_id, dict(pipe.params))
            rec._ensure_run()
        docs, _ = store.read_steps(run_id)
        counts: dict[str, int] = {}
        branches: dict[str, int] = {}
        for d in docs:
            counts[d.get("status", "?")] = counts.get(d.get("status", "?"), 0) + 1
            if d.get("branch") is not None:
                branches[d["name"]] = max(branches.get(d["name"], 0), int(d["branch"]) + 1)

        def change(cur: dict[str, Any] | None) -> dict[str, Any]:
            rec = dict(cur or {})
            started = parse_iso(rec.get("started"))
            rec.update(
                status=status,
                ended=now_iso(),
                seconds=round(time.time() - started, 3) if started else None,
                counts=counts,
                reason=None if status == "succeeded" else f"Argo workflow {wf_status or 'ended'}",
            )
            if status != "succeeded":
                first = failures[0] if isinstance(failures, list) and failures else None
                msg = (first or {}).get("message") if isinstance(first, dict) else None
                rec["error"] = {
                    "step": (first or {}).get("displayName") if isinstance(first, dict) else None,
                    "message": msg or f"the workflow {wf_status or 'failed'}",
                    "failures": failures,
                }
            rec["dag"] = [
                {**n, "branches": branches[n["name"]]} if n.get("name") in branches else n
                for n in rec.get("dag") or []
            ]
            return rec

        store.finish_run(run_id, change)
    except Exception as exc:  # the workflow's outcome must not depend on its record
        print(f"[mlstack] warning: cannot record the run's end: {exc}", file=sys.stderr)
    return 0
