"""Local multi-node steps: torchrun's environment per worker, first failure stops the group, the runner's
``nodes=`` hook, and a real ``torch.distributed`` all-reduce (gloo, CPU) across the worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlstack.errors import UsageError
from mlstack.pipeline import load, multinode, step
from mlstack.pipeline.local import LocalRunner
from tests.support import torchenv

DUMP_ENV = textwrap.dedent(
    """
    import json, os, sys
    keys = ["MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "NODE_RANK", "GROUP_RANK", "LOCAL_RANK",
            "LOCAL_WORLD_SIZE", "ROLE_RANK", "ROLE_WORLD_SIZE", "TORCHELASTIC_RUN_ID", "MLSTACK_NODES",
            "MLSTACK_NODE_RANK"]
    out = {k: os.environ.get(k) for k in keys}
    with open(os.path.join(sys.argv[1], "rank" + os.environ["RANK"] + ".json"), "w") as fh:
        json.dump(out, fh)
    print("hello from", os.environ["RANK"])
    """
)


@pytest.fixture(scope="module")
def torch_python() -> str:
    python = torchenv.torch_python()
    if python is None:
        msg = (
            f"no Python with torch for the all-reduce test: set {torchenv.PYTHON_VAR}, or "
            f"{torchenv.AUTOCREATE_VAR}=1 to make .venv-torch with {torchenv.REQUIREMENT} (tests/support/torchenv.py)"
        )
        if torchenv.in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return python


def test_worker_env_follows_torchrun() -> None:
    env = multinode.worker_env(5, 2, nproc_per_node=4, master_port=29500, run_id="r1")
    assert env == {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "8",
        "RANK": "5",
        "NODE_RANK": "1",
        "GROUP_RANK": "1",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "ROLE_RANK": "5",
        "ROLE_WORLD_SIZE": "8",
        "TORCHELASTIC_RUN_ID": "r1",
        "MLSTACK_NODES": "2",
        "MLSTACK_NODE_RANK": "1",
    }
    with pytest.raises(ValueError, match="rank 8 outside a group of 8"):
        multinode.worker_env(8, 2, nproc_per_node=4, master_port=1)
    for bad in (0, -1, True, "2"):
        with pytest.raises(ValueError, match="nodes="):
            multinode.Group(["true"], bad)  # type: ignore[arg-type]


def test_each_worker_gets_its_rank_and_one_shared_rendezvous(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    with open(log, "wb") as fh:
        out = multinode.run([sys.executable, "-c", DUMP_ENV, str(tmp_path)], 3, log=fh, timeout=60)
    assert out.ok and out.exit_codes == [0, 0, 0] and out.returncode == 0
    envs = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(3)]
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]
    assert [e["NODE_RANK"] for e in envs] == ["0", "1", "2"] == [e["MLSTACK_NODE_RANK"] for e in envs]
    assert {e["WORLD_SIZE"] for e in envs} == {"3"} and {e["MLSTACK_NODES"] for e in envs} == {"3"}
    assert {e["LOCAL_RANK"] for e in envs} == {"0"} and {e["LOCAL_WORLD_SIZE"] for e in envs} == {"1"}
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1 and len({e["TORCHELASTIC_RUN_ID"] for e in envs}) == 1
    text = log.read_text()
    for r in range(3):
        assert f"[rank {r}] hello from {r}\n" in text


def test_the_first_failure_stops_the_whole_group_and_what_it_started(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        rank = int(os.environ["RANK"])
        if rank == 1:
            time.sleep(0.5)
            sys.exit(3)
        # a grandchild (a data-loader worker, say): it must go with its worker
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open(os.path.join({str(tmp_path)!r}, f"child{{rank}}"), "w").write(str(child.pid))
        time.sleep(120)
        """
    )
    started = time.monotonic()
    with open(tmp_path / "log.txt", "wb") as fh:
        out = multinode.run([sys.executable, "-c", script], 3, log=fh, grace=5)
    assert time.monotonic() - started < 60
    assert out.failed_rank == 1 and out.returncode == 3 and not out.ok
    assert out.exit_codes[1] == 3
    assert all(c is not None and c < 0 for r, c in enumerate(out.exit_codes) if r != 1), out.exit_codes
    assert "rank 1 exited with code 3; stopping the other workers" in (tmp_path / "log.txt").read_text()
    for r in (0, 2):
        pid = int((tmp_path / f"child{r}").read_text())
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), f"rank {r}'s child {pid} outlived the group"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie that nobody reaped counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_a_group_over_its_timeout_is_stopped(tmp_path: Path) -> None:
    out = multinode.run([sys.executable, "-c", "import time; time.sleep(60)"], 2, timeout=1, grace=2)
    assert out.timed_out and not out.ok and out.failed_rank is None
    assert all(c is not None and c < 0 for c in out.exit_codes)


def test_group_is_popen_shaped_for_the_runner() -> None:
    g = multinode.Group([sys.executable, "-c", "import time; time.sleep(60)"], 2, grace=2).start()
    try:
        assert g.poll() is None and g.pid == g.procs[0].pid
        with pytest.raises(subprocess.TimeoutExpired):
            g.wait(timeout=0.2)
    finally:
        g.kill()
    assert g.wait() < 0 and g.returncode is not None and g.returncode < 0


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        (0, "nodes=0: a whole number >= 1"),
        (-2, "nodes=-2: a whole number >= 1"),
        ("4", "nodes='4': a whole number >= 1"),
        (True, "nodes=True: a whole number >= 1"),
        (1.5, "nodes=1.5: a whole number >= 1"),
    ],
)
def test_step_nodes_is_validated_naming_the_key(value: object, needle: str) -> None:
    with pytest.raises(UsageError) as e:
        step(nodes=value, name="train")(lambda: None)
    assert f"step 'train': {needle}" in str(e.value)


def test_multi_node_step_cannot_fan_out() -> None:
    with pytest.raises(UsageError, match="cannot also fan out"):
        step(nodes=2, foreach="xs", name="t")(lambda xs: xs)
    assert step(nodes=4, gpus=8, name="t")(lambda: None).nodes == 4
    assert step(name="t")(lambda: None).nodes == 1


PIPELINE_ENV = """
import os
pipeline = Pipeline("multi")

@pipeline.step(nodes=3)
def train():
    return {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_PORT", "MLSTACK_STEP")}

@pipeline.step
def report(train):
    return train["RANK"] + "/" + train["WORLD_SIZE"]
"""


def test_runner_starts_nodes_workers_and_keeps_rank_zeros_result(write_pipeline, local_home) -> None:
    result = LocalRunner().run(load(write_pipeline(PIPELINE_ENV)))
    assert result.ok, result.to_dict()
    out = result.output("train")
    assert out["RANK"] == "0" and out["WORLD_SIZE"] == "3" and out["MLSTACK_STEP"] == "train"
    assert result.output("report") == "0/3"
    log = Path(result.step("train").log or "").read_text()
    for r in range(3):
        assert f"[rank {r}] [mlstack] step train starting" in log


def test_runner_fails_the_step_when_one_worker_fails(write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
import os, sys, time
pipeline = Pipeline("multi-fail")

@pipeline.step(nodes=2, retries=1)
def train():
    if os.environ["RANK"] == "1":
        print("rank one gives up")
        sys.exit(9)
    time.sleep(120)
"""
    )
    started = time.monotonic()
    result = LocalRunner().run(load(f))
    assert time.monotonic() - started < 90
    s = result.step("train")
    assert s.status == "failed" and s.exit_code == 9 and s.attempts == 2
    assert "[rank 1] rank one gives up" in s.log_tail
    assert "rank 1 exited with code 9; stopping the other workers" in s.log_tail


def test_argo_entry_refuses_a_multi_node_step_in_one_pod(
    write_pipeline, tmp_path, capsys, monkeypatch
) -> None:
    from mlstack.pipeline import entry

    monkeypatch.delenv("MLSTACK_NODES", raising=False)
    f = write_pipeline(PIPELINE_ENV)
    rc = entry.main([str(f), "train", "--argo", "--out", str(tmp_path / "out")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "asks for nodes=3 but runs as a single pod" in err and "fix:" in err


ALLREDUCE = textwrap.dedent(
    """
    import json, os, sys
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")  # env:// from MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE
    rank, world = dist.get_rank(), dist.get_world_size()
    t = torch.tensor([float(rank + 1), float(10 * (rank + 1))])
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    gathered = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(gathered, torch.tensor([float(rank)]))
    dist.barrier()
    dist.destroy_process_group()
    with open(os.path.join(sys.argv[1], f"rank{rank}.json"), "w") as fh:
        json.dump({"rank": rank, "world": world, "sum": t.tolist(), "ranks": [int(g.item()) for g in gathered]}, fh)
    """
)


@pytest.mark.slow
def test_real_allreduce_across_the_worker_processes(torch_python: str, tmp_path: Path) -> None:
    nodes = 3
    with open(tmp_path / "log.txt", "wb") as fh:
        out = multinode.run([torch_python, "-c", ALLREDUCE, str(tmp_path)], nodes, log=fh, timeout=240)
    assert out.ok, (tmp_path / "log.txt").read_text()[-3000:]
    # sum over ranks of (r+1) and 10*(r+1): 1+2+3 = 6 and 60, computed by gloo across three processes
    for r in range(nodes):
        got = json.loads((tmp_path / f"rank{r}.json").read_text())
        assert got == {"rank": r, "world": nodes, "sum": [6.0, 60.0], "ranks": [0, 1, 2]}


@pytest.mark.slow
def test_real_allreduce_in_a_pipeline_step(torch_python: str, write_pipeline, local_home) -> None:
    f = write_pipeline(
        """
pipeline = Pipeline("ddp")

@pipeline.step(nodes=2)
def allreduce():
    import os
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    t = torch.ones(4) * (dist.get_rank() + 1)
    dist.all_reduce(t)
    dist.destroy_process_group()
    return {"rank": int(os.environ["RANK"]), "sum": t.tolist()}
"""
    )
    # the runner runs in the torch interpreter so its workers (sys.executable) have torch too
    code = (
        "import json, sys; from mlstack.pipeline import load; from mlstack.pipeline.local import LocalRunner; "
        "r = LocalRunner().run(load(sys.argv[1])); "
        "print(json.dumps({'ok': r.ok, 'out': r.output('allreduce') if r.ok else None, "
        "'tail': [s.log_tail for s in r.steps]}))"
    )
    proc = subprocess.run(
        [torch_python, "-c", code, str(f)], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ok"], got["tail"]
    assert got["out"] == {"rank": 0, "sum": [3.0, 3.0, 3.0, 3.0]}
