"""Run one step of a pipeline in this process: ``python -m mlstack.pipeline.entry SOURCE STEP ...``.

The same entry runs a step locally (the local runner) and in a pod (the Argo WorkflowTemplate):

- local (``--run-dir DIR [--index I]``): params from ``DIR/params.json``, upstream results from the pickles
  of earlier steps under ``DIR/steps/``; the result is pickled to this step's folder, so any Python object
  can pass between steps.
- Argo (``--argo``): params as ``--param k=v``, upstream results as ``--input dep=JSON``, upstream lineage
  as ``--lineage JSON``, the fan-out item as ``--item``; the result (JSON) and the run's inputs so far are
  written under ``--out`` for Argo's output parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from mlstack.errors import ConfigError, MissingExtraError, MlstackError, UsageError

ARGO_OUT = "/tmp/mlstack"
NO_RETRY = "no-retry"


def step_dir(run_dir: Path, name: str, index: int | None) -> Path:
    d = run_dir / "steps" / name
    return d if index is None else d / str(index)


def read_output(run_dir: Path, name: str) -> Any:
    """A finished step's result; for a fan-out step, the list of its results in item order."""
    base = run_dir / "steps" / name
    fan = base / "fanout.json"
    if fan.exists():
        count = json.loads(fan.read_text())["count"]
        return [_unpickle(base / str(i) / "output.pkl") for i in range(count)]
    return _unpickle(base / "output.pkl")


def _unpickle(path: Path) -> Any:
    with open(path, "rb") as fh:
        return pickle.load(fh)


def _parse_item(raw: str) -> Any:
    # Argo substitutes {{item}} raw: JSON for objects and numbers, bare text for strings
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _maybe_json(x: Any) -> Any:
    if isinstance(x, str) and x[:1] in ("{", "["):
        try:
            return json.loads(x)
        except ValueError:
            return x
    return x


def _unb64(text: str) -> str:
    import base64

    return base64.b64decode(text.encode(), validate=True).decode("utf-8")


def _unb64_value(pair: str) -> str:
    k, _, v = pair.partition("=")
    return f"{k}={_unb64(v)}"


def _from_run(steps: list[str]) -> dict[str, Any]:
    """Results of upstream multi-node steps: node rank 0 recorded them in this run's store (a JobSet has no
    pod outputs Argo can pass on). What those steps read seeds this step's lineage."""
    if not steps:
        return {}
    from mlstack import run
    from mlstack.runs._client import run_store
    from mlstack.runs._store import step_key

    run_id = os.environ.get("MLSTACK_RUN_ID", "")
    if not run_id or run_id.startswith("{{"):
        raise ConfigError(
            f"step inputs {steps} come from the run store, but this pod has no MLSTACK_RUN_ID",
            fix="run the pipeline's WorkflowTemplate as rendered by mlstack (it sets MLSTACK_RUN_ID)",
        )
    store = run_store()
    out: dict[str, Any] = {}
    for name in steps:
        got = store.read_json(step_key(run_id, name, None))
        doc = got[0] if got else None
        if doc is None or doc.get("status") not in ("succeeded", "reused"):
            raise ConfigError(
                f"the multi-node step {name!r} left no successful record in run {run_id!r}",
                fix="its node rank 0 records its result in the artifact store: check that the stack has one "
                "and that the step's pods can write to it (`mlstack runs show " + run_id + "`)",
            )
        if "result" in doc:
            out[name] = doc["result"]
        elif doc.get("result_json_ref"):
            out[name] = json.loads(store.get_blob(doc["result_json_ref"]["blob"]))
        else:
            out[name] = None
        r = run.current()
        for i in [*(doc.get("tables_read") or []), *(doc.get("artifacts_read") or [])]:
            if isinstance(i, dict) and "type" in i and "name" in i:
                r.seed_input(i["type"], i["name"], i.get("version"), source=i.get("source"))
    return out


def _kv(pairs: list[str]) -> dict[str, str]:
    out = {}
    for p in pairs:
        k, _, v = p.partition("=")
        out[k] = v
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mlstack.pipeline.entry")
    ap.add_argument("source")
    ap.add_argument("step", nargs="?")
    ap.add_argument(
        "--argo-exit", action="store_true", help="the workflow's exit handler: record the run's end"
    )
    ap.add_argument("--run-dir")
    ap.add_argument("--index", type=int)
    ap.add_argument("--argo", action="store_true")
    ap.add_argument("--param", action="append", default=[])
    ap.add_argument("--input", action="append", default=[])
    ap.add_argument("--lineage", action="append", default=[])
    ap.add_argument("--item")
    ap.add_argument("--out", default=ARGO_OUT)
    ap.add_argument(
        "--b64", action="store_true", help="--param/--input values and --lineage are base64 (a JobSet's pods)"
    )
    ap.add_argument(
        "--from-run",
        action="append",
        default=[],
        help="an upstream multi-node step whose result and reads come from the run store",
    )
    ns = ap.parse_args(argv)
    if ns.b64:
        ns.param = [_unb64_value(p) for p in ns.param]
        ns.input = [_unb64_value(p) for p in ns.input]
        ns.lineage = [_unb64(x) for x in ns.lineage]

    from mlstack.pipeline.spec import load

    started = time.time()
    if ns.argo_exit:
        from mlstack.runs._pod import finish_workflow

        return finish_workflow(load(ns.source))
    if ns.step is None:
        ap.error("the step to run is missing")
    pod = None
    try:
        pipe = load(ns.source)
        if ns.step not in pipe.steps:
            raise MlstackError(f"pipeline {pipe.name!r} has no step {ns.step!r}", fix="check the step name")
        s = pipe.steps[ns.step]
        if ns.argo and s.nodes > 1 and "MLSTACK_NODES" not in os.environ:
            # one pod alone would train on one node while the step asked for several: refuse
            raise ConfigError(
                f"step {s.name!r} asks for nodes={s.nodes} but runs as a single pod",
                fix="run the WorkflowTemplate `mlstack render --argo` makes (it starts the step as a JobSet whose "
                "pods set MLSTACK_NODES and the ranks), or run it locally (`mlstack run PATH --local`)",
            )
        deps = pipe.deps(s.name)
        kwargs: dict[str, Any] = {}
        if ns.argo:
            params = pipe.resolve_params(_kv(ns.param))
            inputs = {k: json.loads(v) for k, v in _kv(ns.input).items()}
            inputs.update(_from_run(ns.from_run))
            for k, v in inputs.items():
                # Argo aggregates a fan-out step's results into a list, JSON values possibly still as text
                if k in pipe.steps and pipe.steps[k].foreach is not None and isinstance(v, list):
                    inputs[k] = [_maybe_json(x) for x in v]
            out = Path(ns.out)
            out.mkdir(parents=True, exist_ok=True)
            inputs_file = out / "inputs.jsonl"
            os.environ.setdefault("MLSTACK_RUN_INPUTS", str(inputs_file))
            _seed_lineage(ns.lineage)
            item = _parse_item(ns.item) if ns.item is not None else None
        else:
            run_dir = Path(ns.run_dir)
            params = json.loads((run_dir / "params.json").read_text())
            inputs = {d: read_output(run_dir, d) for d in deps}
            item = None
            if s.foreach is not None:
                source = inputs[s.foreach] if s.foreach in pipe.steps else params[s.foreach]
                item = list(source)[ns.index]
        for a in s.arg_names:
            if a == s.foreach:
                kwargs[a] = item
            elif a in pipe.steps:
                kwargs[a] = inputs[a]
            elif a in params:
                kwargs[a] = params[a]
        reused = False
        if ns.argo:
            from mlstack.runs._pod import PodRecorder

            pod = PodRecorder.begin(pipe, s, params, item, ns.item is not None)
            if pod is not None:
                # the pod learns its branch here: the step's card (mlstack.card) is that branch's
                if pod.branch is not None:
                    os.environ["MLSTACK_STEP"] = f"{s.name}[{pod.branch}]"
                reused, result = pod.reusable()
        print(
            f"[mlstack] step {s.name}" + (f"[{ns.index}]" if ns.index is not None else "") + " starting",
            flush=True,
        )
        if reused and pod is not None:
            print(f"[mlstack] reusing the result of {pod.reused}", flush=True)
        else:
            result = s.func(**kwargs)
    except MlstackError as exc:
        print(f"error: {exc.message}" + (f"\nfix: {exc.fix}" if exc.fix else ""), file=sys.stderr, flush=True)
        if ns.run_dir and isinstance(exc, ConfigError | UsageError | MissingExtraError):
            # a missing package or a bad setting does not fix itself: tell the runner not to retry
            d = step_dir(Path(ns.run_dir), ns.step, ns.index)
            d.mkdir(parents=True, exist_ok=True)
            (d / NO_RETRY).write_text(type(exc).__name__)
        _failed_meta(ns)
        _pod_end(pod, "failed", error=exc.message)
        return 1
    except Exception as exc:
        traceback.print_exc()
        _failed_meta(ns)
        _pod_end(pod, "failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    except (SystemExit, KeyboardInterrupt) as exc:
        # not Exceptions, but the step failed all the same (user code calling sys.exit(), Ctrl-C): the
        # record still says so and keeps the artifacts, aliases and tables it wrote before
        rc, error = _exit_of(exc)
        print(f"error: {error}", file=sys.stderr, flush=True)
        _failed_meta(ns)
        _pod_end(pod, "failed", error=error)
        return rc
    if os.environ.get("MLSTACK_NODE_RANK", "0") != "0":
        pass  # a multi-node step's result is node rank 0's; the other workers only took part
    elif ns.argo:
        try:
            _write_argo_outputs(Path(ns.out), result)
        except SystemExit as exc:
            _pod_end(pod, "failed", error=str(exc))
            raise
        print(f"[mlstack] step {s.name} done in {time.time() - started:.2f}s", flush=True)
        _pod_end(pod, "reused" if reused else "succeeded", result)
        return 0
    else:
        d = step_dir(Path(ns.run_dir), s.name, ns.index)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / "output.pkl.tmp"
        with open(tmp, "wb") as fh:
            pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, d / "output.pkl")
        write_meta(d, result)
    print(f"[mlstack] step {s.name} done in {time.time() - started:.2f}s", flush=True)
    return 0


def _exit_of(exc: BaseException) -> tuple[int, str]:
    """The exit code and the record's error for a step left by SystemExit or KeyboardInterrupt. A step that
    exits, even with code 0, returned no result: it failed (exit code 1 unless it named another)."""
    if isinstance(exc, KeyboardInterrupt):
        return 130, "the step was interrupted (KeyboardInterrupt)"
    code = exc.code if isinstance(exc, SystemExit) else None
    if isinstance(code, int) and not isinstance(code, bool):
        return (code if code != 0 else 1), f"the step called sys.exit({code}) before returning a result"
    if code is None:
        return 1, "the step called sys.exit() before returning a result"
    return 1, f"the step exited: {code}"


PREVIEW = 160


def preview(value: Any) -> str:
    """A short one-line rendering of a result, for tables and summaries."""
    try:
        text = json.dumps(_rounded(value), default=repr)
    except (TypeError, ValueError):
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _rounded(v: Any, depth: int = 0) -> Any:
    """Floats to 4 significant digits, for previews only."""
    if isinstance(v, float):
        return float(f"{v:.4g}")
    if depth > 4:
        return v
    if isinstance(v, dict):
        return {k: _rounded(x, depth + 1) for k, x in list(v.items())[:50]}
    if isinstance(v, list | tuple):
        return [_rounded(x, depth + 1) for x in list(v)[:50]]
    return v


def write_meta(d: Path, result: Any, *, failed: bool = False) -> None:
    """``meta.json`` for the runner: the result's length (fan-out), preview and JSON form (``result.json``,
    when it has one), and what this step read and wrote (for the run record)."""
    from mlstack import run

    r = run.current()
    meta: dict[str, Any] = {
        "reads": [i.to_dict() for i in r.own_inputs()],
        "writes": r.outputs(),
    }
    if not failed:
        meta["length"] = len(result) if isinstance(result, list | tuple) else None
        meta["preview"] = preview(result)
        try:
            text = json.dumps(result, allow_nan=True)
        except (TypeError, ValueError):
            text = None
        if text is not None:
            (d / "result.json").write_text(text)
        meta["json"] = text is not None
    tmp = d / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, default=str))
    os.replace(tmp, d / "meta.json")


def _pod_end(pod: Any, status: str, result: Any = None, *, error: str | None = None) -> None:
    """On Argo: the step writes its own record (result, log, what it read and wrote)."""
    if pod is None:
        return
    from mlstack import run

    r = run.current()
    reads = [i.to_dict() for i in r.own_inputs()]
    pod.finish(status, result, error=error, reads=reads, writes=r.outputs())


def _failed_meta(ns: argparse.Namespace) -> None:
    """A failed step may have written artifacts or tables before it failed: keep them in the record."""
    if ns.argo or not ns.run_dir:
        return
    try:
        d = step_dir(Path(ns.run_dir), ns.step, ns.index)
        d.mkdir(parents=True, exist_ok=True)
        write_meta(d, None, failed=True)
    except Exception:  # never mask the step's own error
        pass


def _seed_lineage(entries: list[str]) -> None:
    """Record what upstream pods read, so this step's artifacts carry the whole run's lineage."""
    from mlstack import run

    r = run.current()
    for raw in entries:
        try:
            data = json.loads(raw) if raw else []
        except ValueError:
            continue
        # a fan-out upstream gives a list of JSON texts (one per pod); flatten
        stack = [data]
        while stack:
            x = stack.pop()
            if isinstance(x, str):
                try:
                    stack.append(json.loads(x))
                except ValueError:
                    pass
            elif isinstance(x, list):
                stack.extend(x)
            elif isinstance(x, dict) and "type" in x and "name" in x:
                r.seed_input(x["type"], x["name"], x.get("version"), source=x.get("source"))


def _write_argo_outputs(out: Path, result: Any) -> None:
    from mlstack import run

    try:
        text = json.dumps(result)
    except TypeError as exc:
        raise SystemExit(
            f"error: on Argo a step's return value must be JSON (got {type(result).__name__}: {exc}); "
            "return small values and put large ones in mlstack.artifacts or mlstack.data"
        ) from None
    (out / "result.json").write_text(text)
    (out / "inputs.json").write_text(json.dumps([i.to_dict() for i in run.current().inputs()]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
