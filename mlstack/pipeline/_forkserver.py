"""A fork server for the local runner: one process imports the step entry and the pipeline once, then forks a
child per step (per branch, per attempt), so a step starts in milliseconds instead of a fresh interpreter's
~0.1-0.3 s. Each child is what ``python -m mlstack.pipeline.entry ...`` would be: its own environment, its log
file as stdout and stderr, /dev/null as stdin, its own exit code.

POSIX only (not macOS, where forking a process that may have touched system frameworks is unsafe); off with
``MLSTACK_LOCAL_FORK=0``. Multi-node steps still start their worker group from a fresh interpreter. When the
server cannot start or dies, the runner starts steps as subprocesses, as before.

Protocol (JSON lines over a socket pair): runner -> server ``{"id", "argv", "env", "log"}``; server -> runner
``{"id", "pid"}`` once forked, ``{"id", "rc"}`` when the child exits.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from typing import Any

ENV = "MLSTACK_LOCAL_FORK"


def available() -> bool:
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return hasattr(os, "fork") and sys.platform.startswith("linux")


class Child:
    """A forked step, shaped like ``subprocess.Popen`` for what the runner uses."""

    def __init__(self, cid: int, args: list[str]) -> None:
        self.id = cid
        self.args = args
        self.pid: int = 0
        self.returncode: int | None = None
        self._started = threading.Event()
        self._done = threading.Event()

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def poll(self) -> int | None:
        return self.returncode

    def _signal(self, sig: int) -> None:
        if self.pid and self.returncode is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)


class ForkServer:
    """The runner's side: start the server, ask it for children, hear when they end."""

    def __init__(self, source: str, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair()
        self._sock = ours
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlstack.pipeline._forkserver", source, str(theirs.fileno())],
            env=env,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        theirs.close()
        self._lock = threading.Lock()
        self._children: dict[int, Child] = {}
        self._next = 0
        self.alive = True
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="mlstack-forkserver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self._sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    if msg.get("ready"):
                        self._ready.set()
                        continue
                    with self._lock:
                        child = self._children.get(msg["id"])
                    if child is None:
                        continue
                    if "pid" in msg:
                        child.pid = int(msg["pid"])
                        child._started.set()
                    if "rc" in msg:
                        child.returncode = int(msg["rc"])
                        with self._lock:
                            self._children.pop(child.id, None)
                        child._done.set()
        except (OSError, ValueError):
            pass
        # the server is gone: every child it did not report ends as failed (their pids may still be alive)
        self.alive = False
        self._ready.set()
        with self._lock:
            left = list(self._children.values())
            self._children.clear()
        for c in left:
            if c.returncode is None:
                c.returncode = -1
            c._started.set()
            c._done.set()

    def ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout) and self.alive

    def start(self, argv: list[str], env: dict[str, str], log: str) -> Child:
        """Fork a step: ``argv`` as ``python -m mlstack.pipeline.entry`` would get it. Raises OSError when the
        server cannot take it (the caller starts a subprocess instead)."""
        if not self.alive:
            raise OSError("the fork server is not running")
        with self._lock:
            self._next += 1
            child = Child(self._next, argv)
            self._children[child.id] = child
        msg = json.dumps({"id": child.id, "argv": argv, "env": env, "log": log}).encode() + b"\n"
        self._sock.sendall(msg)
        if not child._started.wait(30) or child.pid <= 0:
            raise OSError("the fork server did not start the step")
        return child

    def close(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------- the server process
def _child(msg: dict[str, Any], sock: socket.socket) -> None:
    """In the forked child: become the step process, run the entry, exit with its code."""
    rc = 1
    try:
        sock.close()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        fd = os.open(msg["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(msg["env"])
        from mlstack.pipeline import entry

        rc = entry.main(msg["argv"])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)
    except BaseException:
        import traceback

        traceback.print_exc()
        rc = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def serve(source: str, fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the steps; the runner stops this server
    sock = socket.socket(fileno=fd)
    # what every step imports, once: the entry, mlstack's runtime, the pipeline module (and its imports)
    from mlstack.pipeline import entry  # noqa: F401
    from mlstack.pipeline.spec import load

    try:
        load(source)
    except BaseException:  # each step reports the error in its own log when it loads the file itself
        pass
    sock.sendall(b'{"ready": true}\n')
    children: dict[int, int] = {}
    buf = b""
    open_ = True
    while open_ or children:
        if open_:
            r, _, _ = select.select([sock], [], [], 0.002 if children else 1.0)
            if r:
                data = sock.recv(1 << 20)
                if not data:
                    open_ = False
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    msg = json.loads(line)
                    pid = os.fork()
                    if pid == 0:
                        _child(msg, sock)
                    children[pid] = msg["id"]
                    _send(sock, {"id": msg["id"], "pid": pid})
        else:
            select.select([], [], [], 0.01)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                break
            if pid == 0:
                break
            cid = children.pop(pid, None)
            if cid is not None and open_:
                _send(sock, {"id": cid, "rc": os.waitstatus_to_exitcode(status)})
    return 0


def _send(sock: socket.socket, msg: dict[str, Any]) -> None:
    try:
        sock.sendall(json.dumps(msg).encode() + b"\n")
    except OSError:
        pass


if __name__ == "__main__":  # pragma: no cover - run as the server process
    sys.exit(serve(sys.argv[1], int(sys.argv[2])))
