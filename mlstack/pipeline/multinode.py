"""Local multi-node: start one step as a group of worker processes on loopback, torchrun style.

A step declared with ``nodes=N`` runs, on the local runner, as ``N`` processes on this machine, one per
"node" (``nproc_per_node`` is 1 locally), all started at once and wired to each other the way ``torchrun``
(``torch.distributed.run``) wires the processes it launches. Each worker gets:

=====================  ==========================================================================
``MASTER_ADDR``        ``127.0.0.1`` (rank 0 listens there; ``init_process_group("gloo")`` uses it)
``MASTER_PORT``        a free loopback port, the same for every worker of the group
``WORLD_SIZE``         ``nodes * nproc_per_node``: every process of the group
``RANK``               this process's global rank, ``NODE_RANK * LOCAL_WORLD_SIZE + LOCAL_RANK``
``NODE_RANK``          the node index, ``0 .. nodes-1`` (torchrun's ``--node-rank``)
``GROUP_RANK``         the same as ``NODE_RANK`` (torchrun's name for it)
``LOCAL_RANK``         the process index on its node, ``0 .. nproc_per_node-1``
``LOCAL_WORLD_SIZE``   ``nproc_per_node``
``ROLE_RANK``,         as torchrun sets them for its single default role: ``RANK`` and
``ROLE_WORLD_SIZE``    ``WORLD_SIZE``
``TORCHELASTIC_RUN_ID``  the group's id (libraries such as Lightning read it to know an external
                       launcher made the processes)
``MLSTACK_NODES``,     mlstack's own copies: the number of nodes and this worker's node rank (the step
``MLSTACK_NODE_RANK``  entry writes the step's result from node rank 0 only)
=====================  ==========================================================================

The group's outcome is the first failure: when a worker exits non-zero the others are stopped at once
(SIGTERM to each worker's process group, SIGKILL after ``grace`` seconds), as torchrun stops a node's
workers when one fails. Every worker's output goes to one log with a ``[rank N]`` prefix per line.

On a cluster the same step runs as one pod per node (a JobSet); the pods get the same variables with
``MASTER_ADDR`` naming rank 0's pod through a headless service (see docs/compute.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO

LOOPBACK = "127.0.0.1"
DEFAULT_GRACE = 5.0
NODES_VAR = "MLSTACK_NODES"
NODE_RANK_VAR = "MLSTACK_NODE_RANK"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nothing listens on at ``host`` now (rank 0 binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def worker_env(
    rank: int,
    nodes: int,
    *,
    nproc_per_node: int = 1,
    master_addr: str = LOOPBACK,
    master_port: int,
    run_id: str = "mlstack",
) -> dict[str, str]:
    """The variables worker ``rank`` (global) of a ``nodes`` x ``nproc_per_node`` group gets."""
    world = nodes * nproc_per_node
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a group of {world}")
    node_rank, local_rank = divmod(rank, nproc_per_node)
    return {
        "MASTER_ADDR": master_addr,
        "MASTER_PORT": str(master_port),
        "WORLD_SIZE": str(world),
        "RANK": str(rank),
        "NODE_RANK": str(node_rank),
        "GROUP_RANK": str(node_rank),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(nproc_per_node),
        "ROLE_RANK": str(rank),
        "ROLE_WORLD_SIZE": str(world),
        "TORCHELASTIC_RUN_ID": run_id,
        NODES_VAR: str(nodes),
        NODE_RANK_VAR: str(node_rank),
    }


@dataclass
class GroupResult:
    """How a group ended: each rank's exit code (negative: killed by that signal), the first failure."""

    exit_codes: list[int | None]
    failed_rank: int | None = None
    timed_out: bool = False
    seconds: float = 0.0

    @property
    def returncode(self) -> int:
        """0 when every worker succeeded; else the first failed worker's code (-SIGKILL after a timeout)."""
        if self.failed_rank is not None:
            code = self.exit_codes[self.failed_rank]
            return code if code is not None else 1
        if self.timed_out:
            return -signal.SIGKILL
        return 0

    @property
    def ok(self) -> bool:
        return self.failed_rank is None and not self.timed_out


class Group:
    """``nodes`` x ``nproc_per_node`` copies of ``cmd`` with torchrun's environment, started together.

    It behaves like one :class:`subprocess.Popen` (``pid``, ``poll``, ``wait``, ``terminate``, ``kill``,
    ``returncode``), so a runner that supervises a step's process supervises a group the same way; ``wait``
    stops the group at the first failed worker and returns that worker's exit code.

    ``log`` is a binary file every worker's output is written to, each line prefixed ``[rank N] ``
    (None: the workers inherit this process's stdout/stderr). ``env`` is the base environment (default:
    this process's); ``grace`` the seconds between SIGTERM and SIGKILL when the group is stopped.
    """

    def __init__(
        self,
        cmd: Sequence[str],
        nodes: int,
        *,
        nproc_per_node: int = 1,
        env: Mapping[str, str] | None = None,
        log: IO[bytes] | None = None,
        master_addr: str = LOOPBACK,
        master_port: int | None = None,
        grace: float = DEFAULT_GRACE,
        cwd: str | None = None,
    ) -> None:
        for key, v in (("nodes", nodes), ("nproc_per_node", nproc_per_node)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key}={v!r}: a whole number >= 1")
        self.cmd = list(cmd)
        self.nodes = nodes
        self.nproc_per_node = nproc_per_node
        self.env = env
        self.log = log
        self.master_addr = master_addr
        self.master_port = master_port
        self.grace = grace
        self.cwd = cwd
        self.run_id = f"mlstack-{uuid.uuid4().hex[:12]}"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.failed_rank: int | None = None
        self.returncode: int | None = None
        self._pumps: list[threading.Thread] = []
        self._log_lock = threading.Lock()
        self._killed = False

    @property
    def world_size(self) -> int:
        return self.nodes * self.nproc_per_node

    @property
    def pid(self) -> int:
        """Rank 0's process id (the group is known by it)."""
        if not self.procs:
            raise RuntimeError("the group is not started")
        return self.procs[0].pid

    def start(self) -> Group:
        """Start every worker, rank 0 first; if one cannot start, stop those started and raise."""
        port = self.master_port or free_port(self.master_addr)
        self.master_port = port
        base = dict(os.environ if self.env is None else self.env)
        try:
            for rank in range(self.world_size):
                env = {
                    **base,
                    **worker_env(
                        rank,
                        self.nodes,
                        nproc_per_node=self.nproc_per_node,
                        master_addr=self.master_addr,
                        master_port=port,
                        run_id=self.run_id,
                    ),
                }
                piped = self.log is not None
                p = subprocess.Popen(
                    self.cmd,
                    env=env,
                    cwd=self.cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE if piped else None,
                    stderr=subprocess.STDOUT if piped else None,
                    # its own process group: stopping a worker stops what it started (data loaders, ...)
                    start_new_session=True,
                )
                self.procs.append(p)
                if p.stdout is not None:
                    t = threading.Thread(
                        target=self._pump, args=(rank, p.stdout), daemon=True, name=f"mlstack-rank{rank}"
                    )
                    t.start()
                    self._pumps.append(t)
        except BaseException:
            self.kill()
            raise
        return self

    def _pump(self, rank: int, stream: IO[bytes]) -> None:
        prefix = f"[rank {rank}] ".encode()
        with contextlib.suppress(ValueError, OSError):
            for line in iter(stream.readline, b""):
                if not line.endswith(b"\n"):
                    line += b"\n"
                with self._log_lock:
                    assert self.log is not None
                    self.log.write(prefix + line)
                    self.log.flush()
        with contextlib.suppress(OSError):
            stream.close()

    def note(self, text: str) -> None:
        """A line of the launcher's own in the group's log."""
        if self.log is None:
            return
        with self._log_lock:
            self.log.write(f"[mlstack] {text}\n".encode())
            self.log.flush()

    # ------------------------------------------------------------ Popen's surface
    def poll(self) -> int | None:
        """None while a worker runs and none has failed; else stop the group and return its code."""
        if self.returncode is not None:
            return self.returncode
        codes = [p.poll() for p in self.procs]
        bad = [r for r, c in enumerate(codes) if c not in (None, 0)]
        if bad:
            self.failed_rank = bad[0]
            if not self._killed:
                self.note(f"rank {bad[0]} exited with code {codes[bad[0]]}; stopping the other workers")
            self.terminate()
            self._finish()
            return self.returncode
        if all(c == 0 for c in codes):
            self._finish()
            return self.returncode
        return None

    def wait(self, timeout: float | None = None, poll: float = 0.05) -> int:
        """Wait until every worker exited 0 or one failed (the rest are then stopped); the group's code.

        Raises :class:`subprocess.TimeoutExpired` after ``timeout`` seconds with the workers still running,
        as ``Popen.wait`` does (the caller then kills the group).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            rc = self.poll()
            if rc is not None:
                return rc
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.cmd, timeout or 0.0)
            time.sleep(poll)

    def _finish(self) -> None:
        for p in self.procs:
            p.wait()
        for t in self._pumps:
            t.join(timeout=5)
        if self.failed_rank is not None:
            code = self.procs[self.failed_rank].returncode
            self.returncode = code if code is not None else 1
        else:
            bad = [p.returncode for p in self.procs if p.returncode != 0]
            self.returncode = bad[0] if bad else 0

    def send_signal(self, sig: int) -> None:
        """``sig`` to every live worker's process group."""
        for p in self.procs:
            if p.poll() is None:
                _signal_group(p, sig)

    def terminate(self) -> None:
        """SIGTERM every live worker's process group; SIGKILL what is left after ``grace`` seconds."""
        live = [p for p in self.procs if p.poll() is None]
        for p in live:
            _signal_group(p, signal.SIGTERM)
        end = time.monotonic() + self.grace
        for p in live:
            try:
                p.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(p, signal.SIGKILL)
                p.wait()

    def kill(self) -> None:
        """SIGKILL every live worker's process group."""
        self._killed = True
        self.send_signal(signal.SIGKILL)
        for p in self.procs:
            p.wait()

    def result(self, *, timed_out: bool = False, seconds: float = 0.0) -> GroupResult:
        return GroupResult(
            exit_codes=[p.returncode for p in self.procs],
            failed_rank=self.failed_rank,
            timed_out=timed_out,
            seconds=seconds,
        )


def _signal_group(p: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(sig)


def run(
    cmd: Sequence[str],
    nodes: int,
    *,
    nproc_per_node: int = 1,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
    timeout: float | None = None,
    grace: float = DEFAULT_GRACE,
    cwd: str | None = None,
) -> GroupResult:
    """Start a group, wait for it (stopping it at the first failure or at the timeout), return the outcome."""
    group = Group(cmd, nodes, nproc_per_node=nproc_per_node, env=env, log=log, grace=grace, cwd=cwd)
    started = time.monotonic()
    group.start()
    timed_out = False
    try:
        group.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        group.note(f"timed out after {timeout:g}s; stopping every worker")
        group.terminate()
        group._finish()
    except BaseException:
        group.kill()
        raise
    return group.result(timed_out=timed_out, seconds=time.monotonic() - started)
