"""Runs: the 11-step fan-out end to end against Metaflow's local ``run``, and ``mlstack runs ls`` over 10,000 runs.

    .venv/bin/python benchmarks/runs.py                            # both parts (Metaflow in its own venv)
    .venv/bin/python benchmarks/runs.py --metaflow-python /tmp/mf/bin/python --repeat 7 --json
    .venv/bin/python benchmarks/runs.py --skip-fanout --runs 2000  # only the listing part, smaller

Part 1, the fan-out: the same flow in both tools — ``start``, 8 branches (a foreach over 8 items), ``join``,
``end`` = 11 tasks — each run from a fresh process as a user runs it (``mlstack run fan.py --local``, which
writes the run record, step records, result and log blobs to the local artifact store; ``python flow.py
run`` with Metaflow's local datastore and metadata). Runs alternate between the two tools, ``--repeat`` times
each; the medians are compared. Target (issue #10): Metaflow / mlstack >= 3.

Metaflow runs from its own virtualenv (``--metaflow-python``; by default the benchmark makes one under
``~/.cache/mlstack-bench/metaflow`` with ``pip install metaflow``), so its dependencies never mix with
mlstack's.

Part 2, the listing: a store holding ``--runs`` (10,000) finished runs — each with its run record and its
index keys, as the runner writes them — on the local backend and on SeaweedFS (loopback, auth enforced);
then ``mlstack runs ls`` (the default 20 newest, process start included) timed ``--repeat`` times, median
kept. Targets: <= 1 s local, <= 2 s SeaweedFS.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MLSTACK_FLOW = """
from mlstack.pipeline import Pipeline

pipeline = Pipeline("fan", params={"xs": list(range(8))})


@pipeline.step
def start():
    return 1


@pipeline.step(foreach="xs")
def branch(start, xs):
    return start + xs


@pipeline.step
def join(branch):
    return sum(branch)


@pipeline.step
def end(join):
    return join
"""

METAFLOW_FLOW = """
from metaflow import FlowSpec, step


class FanFlow(FlowSpec):
    @step
    def start(self):
        self.one = 1
        self.xs = list(range(8))
        self.next(self.branch, foreach="xs")

    @step
    def branch(self):
        self.value = self.one + self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        self.result = self.total


if __name__ == "__main__":
    FanFlow()
"""


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - t
    if res.returncode != 0:
        raise SystemExit(
            f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
        )
    return took


def metaflow_python(given: str | None) -> tuple[str, str]:
    """A python with metaflow installed, in a venv of its own; returns (python, metaflow version)."""
    py = given
    if py is None:
        venv = (
            Path(os.environ.get("MLSTACK_BENCH_CACHE", Path.home() / ".cache" / "mlstack-bench")) / "metaflow"
        )
        py = str(venv / "bin" / "python")
        if not Path(py).exists():
            print(f"making a venv for Metaflow at {venv} ...", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([py, "-m", "pip", "install", "-q", "metaflow"], check=True)
    ver = subprocess.run(
        [py, "-c", "import metaflow.metaflow_version as v; print(v.get_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return py, ver


def fanout(repeat: int, mf_python: str, work: Path) -> dict[str, Any]:
    folder = work / "fanout"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "fan.py").write_text(MLSTACK_FLOW)
    (folder / "fanflow.py").write_text(METAFLOW_FLOW)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLSTACK_", "METAFLOW_"))}
    ml_env = {**base, "MLSTACK_HOME": str(folder / ".mlstack")}
    mf_env = {
        **base,
        "USERNAME": "bench",
        "METAFLOW_DEFAULT_DATASTORE": "local",
        "METAFLOW_DEFAULT_METADATA": "local",
    }
    ml_cmd = [sys.executable, "-m", "mlstack.cli.main", "run", "fan.py", "--local"]
    mf_cmd = [mf_python, "fanflow.py", "--quiet", "run"]
    # one warm-up each: first-run caches (bytecode, the store's folders) count for neither
    _run(ml_cmd, folder, ml_env)
    _run(mf_cmd, folder, mf_env)
    ml, mf = [], []
    for _ in range(repeat):
        ml.append(_run(ml_cmd, folder, ml_env))
        mf.append(_run(mf_cmd, folder, mf_env))
    # the records were written: the newest run lists with every step succeeded
    check = subprocess.run(
        [sys.executable, "-m", "mlstack.cli.main", "runs", "show", "latest", "--json"],
        cwd=folder,
        env=ml_env,
        capture_output=True,
        text=True,
        check=True,
    )
    doc = json.loads(check.stdout)
    assert doc["status"] == "succeeded" and len(doc["steps"]) == 11, doc
    assert next(s for s in doc["steps"] if s["name"] == "end")["result"] == 36
    return {
        "mlstack_s": ml,
        "metaflow_s": mf,
        "mlstack_median": statistics.median(ml),
        "metaflow_median": statistics.median(mf),
        "ratio": statistics.median(mf) / statistics.median(ml),
    }


# ---------------------------------------------------------------------- listing
def _records(n: int) -> list[tuple[str, bytes]]:
    """(key, body) of ``n`` finished runs as the runner writes them: run record, start and end index keys."""
    from mlstack.runs._store import RunStore, now_iso

    st = RunStore(None)  # only for its key layout
    t0 = time.time() - n
    out = []
    for i in range(n):
        rec = {
            "schema": 1,
            "kind": "mlstack.run",
            "id": f"20260101T000000Z-{i:08x}",
            "pipeline": ("churn", "fan", "etl")[i % 3],
            "params": {"i": i, "C": [0.05, 0.5, 5.0]},
            "started": now_iso(t0 + i),
            "ended": now_iso(t0 + i + 2),
            "seconds": 2.0,
            "status": "failed" if i % 17 == 0 else "succeeded",
            "orchestrator": {"kind": "local"},
            "counts": {"succeeded": 11},
            "dag": [{"name": "start", "deps": []}],
        }
        body = json.dumps(rec).encode()
        out.append((f"runs/records/{rec['id']}/run.json", body))
        out.append((st.index_key(rec), b"{}"))
        out.append((st.index_key(rec, rec["status"]), b"{}"))
    return out


def _ls(cwd: Path, env: dict[str, str], repeat: int) -> list[float]:
    cmd = [sys.executable, "-m", "mlstack.cli.main", "runs", "ls"]
    _run(cmd, cwd, env)  # warm-up
    return [_run(cmd, cwd, env) for _ in range(repeat)]


def listing(n: int, repeat: int, work: Path, seaweed: bool) -> dict[str, Any]:
    objects = _records(n)
    base = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    results: dict[str, Any] = {"runs": n}
    # local backend: files written as the backend lays them out
    root = work / "local-store"
    for key, body in objects:
        p = root.joinpath(*key.split("/"))
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(body)
    manifest = {
        "version": 1,
        "project": "bench",
        "stack": "bench",
        "artifacts": {"kind": "local", "root": str(root)},
        "data": {"kind": "local", "path": str(work / "x.duckdb")},
        "compute": {"kind": "local"},
        "orchestrator": {"kind": "local"},
    }
    (work / "local.json").write_text(json.dumps(manifest))
    times = _ls(work, {**base, "MLSTACK_MANIFEST": str(work / "local.json")}, repeat)
    results["local_s"] = times
    results["local_median"] = statistics.median(times)
    if seaweed:
        from tests.support.seaweedfs import start_seaweedfs

        sw = start_seaweedfs(work / "seaweedfs")
        try:
            bucket = sw.create_bucket()
            client = sw.client()
            with cf.ThreadPoolExecutor(32) as pool:
                list(
                    pool.map(
                        lambda kb: client.put_object(Bucket=bucket, Key=f"ml/{kb[0]}", Body=kb[1]), objects
                    )
                )
            manifest["artifacts"] = {
                "kind": "s3",
                "bucket": bucket,
                "prefix": "ml",
                "region": sw.region,
                "endpoint_url": sw.endpoint_url,
            }
            (work / "s3.json").write_text(json.dumps(manifest))
            env = {**base, **{k: v for k, v in sw.env().items() if k != "AWS_ENDPOINT_URL_S3"}}
            env["MLSTACK_MANIFEST"] = str(work / "s3.json")
            # the S3 transfer engine (the default) and the boto3 client (its fallback), alternating
            boto = {**env, "MLSTACK_S3_ENGINE": "boto3"}
            cmd = [sys.executable, "-m", "mlstack.cli.main", "runs", "ls"]
            _run(cmd, work, env)
            _run(cmd, work, boto)
            times, boto_times = [], []
            for _ in range(repeat):
                times.append(_run(cmd, work, env))
                boto_times.append(_run(cmd, work, boto))
            results["seaweedfs_s"] = times
            results["seaweedfs_median"] = statistics.median(times)
            results["seaweedfs_boto3_s"] = boto_times
            results["seaweedfs_boto3_median"] = statistics.median(boto_times)
        finally:
            sw.stop()
    return results


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs of each command (medians compared)")
    ap.add_argument("--runs", type=int, default=10_000, help="runs in the store for the listing part")
    ap.add_argument("--metaflow-python", help="python of a venv with metaflow (default: make one)")
    ap.add_argument("--skip-fanout", action="store_true")
    ap.add_argument("--skip-listing", action="store_true")
    ap.add_argument("--no-seaweedfs", action="store_true", help="list on the local backend only")
    ap.add_argument("--workdir", help="where to work (default: a fresh temporary folder)")
    ap.add_argument("--json", action="store_true", help="print the raw results as JSON too")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mlstack-bench-runs-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load": os.getloadavg()[0],
            "when": time.strftime("%Y-%m-%d"),
        }
    }
    ok = True
    if not args.skip_fanout:
        py, ver = metaflow_python(args.metaflow_python)
        results["machine"]["metaflow"] = ver
        f = results["fanout"] = fanout(args.repeat, py, work)
        met = f["ratio"] >= 3
        ok &= met
        print(
            textwrap.dedent(
                f"""\
                fan-out (11 tasks), median of {args.repeat}:
                  mlstack run --local (records written)  {f["mlstack_median"]:.3f} s
                  metaflow {ver} run                      {f["metaflow_median"]:.3f} s
                  metaflow / mlstack = {f["ratio"]:.2f}x (target >= 3): {"PASS" if met else "FAIL"}"""
            )
        )
    if not args.skip_listing:
        lst = results["listing"] = listing(args.runs, args.repeat, work, not args.no_seaweedfs)
        met_local = lst["local_median"] <= 1.0
        ok &= met_local
        print(f"mlstack runs ls over {args.runs} runs, median of {args.repeat} (process start included):")
        print(
            f"  local backend  {lst['local_median']:.3f} s (target <= 1 s): {'PASS' if met_local else 'FAIL'}"
        )
        if "seaweedfs_median" in lst:
            met_sw = lst["seaweedfs_median"] <= 2.0
            ok &= met_sw
            print(
                f"  SeaweedFS      {lst['seaweedfs_median']:.3f} s (target <= 2 s): {'PASS' if met_sw else 'FAIL'}"
            )
            print(
                f"  SeaweedFS, boto3 client (MLSTACK_S3_ENGINE=boto3)  {lst['seaweedfs_boto3_median']:.3f} s"
            )
    results["machine"]["load_after"] = os.getloadavg()[0]
    print(json.dumps(results["machine"]))
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
