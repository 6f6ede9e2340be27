"""Reliability: a put killed with SIGKILL, 8 concurrent processes, injected 503s and connection resets.

Each runs on every tier (local folder, moto, SeaweedFS). Child processes are plain ``python -c`` scripts
that use the public API with MLSTACK_MANIFEST pointing at the test's store; where a test needs a put to be
slow enough to kill mid-way, the *child* slows itself down (a botocore event hook, or a throttled reader):
the product has no test hooks.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import mlstack
from mlstack import errors
from tests.artifacts.conftest import StoreEnv
from tests.artifacts.faultproxy import FaultProxy, every, only

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120.0


def _env(art: StoreEnv) -> dict[str, str]:
    env = {**os.environ, **art.env, "PYTHONPATH": str(REPO), "MLSTACK_NO_PROGRESS": "1"}
    env.pop("MLSTACK_RUN_ID", None)
    return env


def _big(path: Path, size: int) -> Path:
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for i in range(size >> 20):
            fh.write(i.to_bytes(4, "big") + block[4:])
    return path


SLOW_CHILD = """
import sys, time
import mlstack
import mlstack.artifacts.local as local, mlstack.artifacts._base as base
import mlstack.artifacts.s3 as s3

# slow this child down so the parent can kill it mid-put (test harness only)
orig = base.copy_hashing
class Slow:
    def __init__(self, f): self.f = f
    def readinto(self, b):
        time.sleep(0.02)
        return self.f.readinto(b)
def slow_copy(src, dst, progress=None):
    with open(src, "rb", buffering=0) as s, open(dst, "wb", buffering=0) as d:
        return orig(Slow(s), d, progress)
local.copy_file_hashing = slow_copy
s3.PART_SIZE = 5 << 20
s3.TRANSFER_THREADS = 2
st = mlstack.artifacts.store()
if st.backend.kind == "s3":
    st.backend.client.meta.events.register("before-send.s3.UploadPart", lambda **kw: time.sleep(0.3))
print("started", flush=True)
mlstack.artifacts.put("big", sys.argv[1])
print("finished", flush=True)
"""


def _in_flight(art: StoreEnv) -> bool:
    """True once the child is part-way through the blob upload."""
    if art.raw is None:
        tmp = Path(art.manifest["artifacts"]["root"]) / "tmp"
        return any(p.stat().st_size > (20 << 20) for p in tmp.glob("*")) if tmp.is_dir() else False
    ups = art.raw.list_multipart_uploads(Bucket=art.bucket).get("Uploads", [])
    for u in ups:
        parts = art.raw.list_parts(Bucket=art.bucket, Key=u["Key"], UploadId=u["UploadId"]).get("Parts", [])
        if len(parts) >= 2:
            return True
    return False


@pytest.mark.slow
def test_sigkill_mid_put_leaves_nothing_visible_and_the_retry_succeeds(art: StoreEnv, tmp_path: Path) -> None:
    src = _big(tmp_path / "big.bin", 60 << 20)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHILD, str(src)],
        env=_env(art),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + DEADLINE
        while not _in_flight(art):
            assert proc.poll() is None, f"child ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < end, "the put never got under way"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL

    st = art.store()
    import hashlib

    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    with pytest.raises(errors.ArtifactNotFound):
        mlstack.artifacts.show("big")
    assert mlstack.artifacts.ls() == []
    if st.backend.has_blob(digest):  # a blob is only ever complete under its content address
        st.backend.get_to_file(digest, src.stat().st_size, tmp_path / "check.bin")
    assert not [k for k in art.object_keys() if "/versions/" in k]

    v = mlstack.artifacts.put("big", src)
    assert v.version == 1 and v.digest == digest
    out = mlstack.artifacts.get("big", tmp_path / "out.bin")
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    st.verify("big")


CONCURRENT_CHILD = """
import json, sys, time
from pathlib import Path
import mlstack
i = int(sys.argv[1]); go = Path(sys.argv[2])
st = mlstack.artifacts.store()
while not go.exists():
    time.sleep(0.005)
out = []
for r in range(3):
    data = f"same-{r}".encode() if i % 2 == 0 else f"proc-{i}-round-{r}".encode()
    v = mlstack.artifacts.put("shared", data)
    own = mlstack.artifacts.put(f"own-{i}", f"own {i} {r}".encode(), metadata={"r": r})
    a = mlstack.artifacts.set_alias("shared", v.version, "production")
    out.append({"version": v.version, "digest": v.digest, "unchanged": v.unchanged, "own": own.version,
                "alias_to": a.version})
print(json.dumps(out))
"""


@pytest.mark.slow
def test_eight_processes_putting_and_moving_one_alias(art: StoreEnv, tmp_path: Path) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CHILD, str(i), str(go)],
            env=_env(art),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    time.sleep(1.0)
    go.write_text("go")
    results = []
    for p in procs:
        out, err = p.communicate(timeout=DEADLINE)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))

    st = art.store()
    versions = st.ls("shared")
    numbers = sorted(v.version for v in versions)
    assert numbers == list(range(1, len(numbers) + 1))  # no gaps, no duplicates
    created = [r for res in results for r in res if not r["unchanged"]]
    assert len({r["version"] for r in created}) == len(created)  # no two writers got one number
    by_number = {v.version: v for v in versions}
    for res in results:
        for r in res:
            assert by_number[r["version"]].digest == r["digest"]
    for v in versions:  # every version readable and hash-verified
        st.verify(v)
    for i in range(8):
        assert [v.version for v in st.ls(f"own-{i}")] == [3, 2, 1]
    prod = st.resolve("shared:production")
    assert prod.version in by_number
    history = st.alias_history("shared", "production")
    assert len(history) == 24  # every one of the 8 x 3 moves is recorded: none lost
    assert prod.version == history[-1]["version"]


@pytest.fixture(params=["moto", pytest.param("seaweedfs", marks=pytest.mark.seaweedfs)])
def s3art(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreEnv:
    from tests.artifacts.conftest import make_env

    return make_env(request.param, tmp_path, monkeypatch, request)


@pytest.mark.slow
def test_503s_and_connection_resets_are_retried_without_duplicate_versions(
    s3art: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack import manifest

    endpoint = s3art.manifest["artifacts"]["endpoint_url"]
    with FaultProxy(endpoint, every(4)) as proxy:
        m = json.loads(json.dumps(s3art.manifest))
        m["artifacts"]["endpoint_url"] = proxy.url
        st = mlstack.artifacts.store(manifest.from_dict(m))
        small = [st.put("flaky", f"payload {i}".encode()) for i in range(6)]
        big_src = _big(tmp_path / "big.bin", 40 << 20)
        big = st.put("flaky-big", big_src)
        d = tmp_path / "d"
        d.mkdir()
        for i in range(25):
            (d / f"f{i}.txt").write_text(f"file {i}\n" * 50)
        dv = st.put("flaky-dir", d)
        for v in small:
            st.set_alias("flaky", v.version, "production")
        got = [st.load(f"flaky@{v.version}") for v in small]
        out = st.get("flaky-big", tmp_path / "big-out.bin")
        st.get("flaky-dir", tmp_path / "d-out")
        listing = st.ls("flaky")
        history = st.alias_history("flaky", "production")
    assert {"503", "reset-before", "reset-after"} <= set(proxy.counts), proxy.counts
    assert sum(proxy.counts.values()) >= 10
    assert got == [f"payload {i}".encode() for i in range(6)]
    assert [v.version for v in small] == [1, 2, 3, 4, 5, 6]
    assert sorted(v.version for v in listing) == [1, 2, 3, 4, 5, 6]  # no duplicate versions
    assert [h["version"] for h in history] == [1, 2, 3, 4, 5, 6]  # no duplicate or lost alias moves
    assert big.version == 1 and out.read_bytes() == big_src.read_bytes()
    assert dv.files == 25 and (tmp_path / "d-out" / "f7.txt").read_text() == "file 7\n" * 50
    # and the store behind the proxy holds exactly one version record per put
    assert sum("/flaky/versions/" in k for k in s3art.object_keys()) == 6


def test_403_for_missing_keys_is_told_apart_from_a_real_denial(s3art: StoreEnv, tmp_path: Path) -> None:
    """AWS answers 403, not 404, for a missing key when the role's ListBucket grant is prefix-scoped."""
    from mlstack import manifest

    with FaultProxy(
        s3art.manifest["artifacts"]["endpoint_url"], lambda n, m, p: None, deny_missing=True
    ) as proxy:
        m = json.loads(json.dumps(s3art.manifest))
        m["artifacts"]["endpoint_url"] = proxy.url
        st = mlstack.artifacts.store(manifest.from_dict(m))
        with pytest.raises(errors.ArtifactNotFound):
            st.show("model:production")
        big = _big(tmp_path / "big.bin", 20 << 20)  # multipart: asks whether the blob exists first
        v = st.put("model", big, alias="production")
        assert st.resolve("model:production").version == v.version == 1
        assert st.get("model", tmp_path / "out.bin").read_bytes() == big.read_bytes()
        with pytest.raises(errors.ArtifactNotFound, match="no alias 'staging'"):
            st.show("model:staging")
    assert proxy.counts["denied"] >= 2


def test_a_file_changed_during_a_multipart_put_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    from tests.artifacts.conftest import make_env

    art = make_env("moto", tmp_path, monkeypatch, request)
    src = _big(tmp_path / "growing.bin", 24 << 20)
    st = art.store()
    touched: list[bool] = []

    def append(**kw: object) -> None:
        if not touched:
            touched.append(True)
            with open(src, "ab") as fh:
                fh.write(b"late bytes")

    st.backend.client.meta.events.register("before-send.s3.UploadPart", append)
    try:
        with pytest.raises(errors.IntegrityError, match="changed while it was being put"):
            st.put("growing", src)
    finally:
        st.backend.client.meta.events.unregister("before-send.s3.UploadPart", append)
    assert touched
    with pytest.raises(errors.ArtifactNotFound):
        st.show("growing")
    assert not [k for k in art.object_keys() if "/blobs/" in k]
    assert not art.raw.list_multipart_uploads(Bucket=art.bucket).get("Uploads")
    assert st.put("growing", src).size == (24 << 20) + len(b"late bytes")  # the retry stores the new bytes


# ---------------------------------------------------------------- issue #12: truncated, flipped and lost answers
def _through(proxy: FaultProxy, art: StoreEnv) -> object:
    """A store on ``art``'s bucket whose requests go through ``proxy``."""
    from mlstack import manifest

    m = json.loads(json.dumps(art.manifest))
    m["artifacts"]["endpoint_url"] = proxy.url
    return mlstack.artifacts.store(manifest.from_dict(m))


def _gets(k: int, kinds: tuple[str, ...]) -> Callable[[int, str, str], str | None]:
    """Fault every k-th GET, cycling through ``kinds``."""
    state = {"n": 0}

    def plan(n: int, method: str, path: str) -> str | None:
        if method != "GET" or "list-type" in path:
            return None
        state["n"] += 1
        return kinds[(state["n"] // k) % len(kinds)] if state["n"] % k == 0 else None

    return plan


def test_truncated_and_flipped_get_bodies_are_fetched_again(s3art: StoreEnv, tmp_path: Path) -> None:
    st = s3art.store()
    small = [st.put("doc", f"payload {i}".encode() * 50, alias="prod") for i in range(4)]
    big_src = _big(tmp_path / "big.bin", 20 << 20)
    st.put("big", big_src)
    d = tmp_path / "d"
    d.mkdir()
    for i in range(12):
        (d / f"f{i}.txt").write_text(f"file {i}\n" * 40)
    st.put("dir", d)
    with FaultProxy(s3art.manifest["artifacts"]["endpoint_url"], _gets(3, ("truncate", "flip"))) as proxy:
        flaky = _through(proxy, s3art)
        got = [flaky.load(f"doc@{v.version}") for v in small]
        prod = flaky.load("doc:prod")
        listing = flaky.ls("doc")
        flaky.get("dir", tmp_path / "d-out")
    with FaultProxy(s3art.manifest["artifacts"]["endpoint_url"], _gets(2, ("truncate",))) as cut:
        out = _through(cut, s3art).get("big", tmp_path / "big-out.bin")  # ranged parts cut short
    with FaultProxy(s3art.manifest["artifacts"]["endpoint_url"], only("/blobs/", "flip", times=1)) as once:
        out2 = _through(once, s3art).get("big", tmp_path / "big-out2.bin")  # one part flipped
    assert proxy.counts["truncate"] >= 3 and proxy.counts["flip"] >= 3, proxy.counts
    assert cut.counts["truncate"] >= 1 and once.counts["flip"] == 1
    assert got == [f"payload {i}".encode() * 50 for i in range(4)]
    assert prod == got[-1] and [v.version for v in listing] == [4, 3, 2, 1]
    assert _tree(tmp_path / "d-out") == _tree(d)
    assert out.read_bytes() == big_src.read_bytes() == out2.read_bytes()


def test_a_range_cut_short_resumes_and_every_hashed_byte_is_the_byte_written(
    s3art: StoreEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A big get hashes each range as it lands. A range cut short is resumed where it stopped, never fetched
    again from its start: were it, the retry's bytes (here one flipped early in the range) would replace
    bytes already hashed, and a file that does not match its digest would pass the check."""
    import mlstack.artifacts.s3 as s3mod

    st = s3art.store()
    src = _big(tmp_path / "big.bin", 20 << 20)
    st.put("big", src)
    monkeypatch.setattr(s3mod, "TRANSFER_THREADS", 1)  # one range at a time: the plan below hits part 1
    faults = iter(
        ["truncate", "flip"]
    )  # part 1 cut in half; then its next request flipped in its first quarter

    def plan(n: int, method: str, path: str) -> str | None:
        return next(faults, None) if method == "GET" and "/blobs/" in path else None

    endpoint = s3art.manifest["artifacts"]["endpoint_url"]
    with FaultProxy(endpoint, plan, flip_at=lambda body: len(body) // 4 * 8) as p:
        out = _through(p, s3art).get("big", tmp_path / "out.bin")
    assert p.counts["truncate"] == 1 and p.counts["flip"] == 1
    assert out.read_bytes() == src.read_bytes()


def _tree(p: Path) -> dict[str, bytes]:
    return {q.relative_to(p).as_posix(): q.read_bytes() for q in sorted(p.rglob("*")) if q.is_file()}


@pytest.mark.slow
def test_a_flipped_alias_never_resolves_to_another_version(s3art: StoreEnv) -> None:
    st = s3art.store()
    for data in (b"one", b"two", b"three"):
        st.put("m", data)
    st.set_alias("m", 1, "prod")
    endpoint = s3art.manifest["artifacts"]["endpoint_url"]
    raw = s3art.read_raw("artifacts/m/aliases/prod.json")

    def version_digit(body: bytes) -> int:
        # '1' (0x31) -> '3' (0x33): the alias would name version 3, which exists
        return (body.index(b'"version":1') + len(b'"version":')) * 8 + 1

    with (
        FaultProxy(endpoint, only("aliases/prod.json", "flip"), flip_at=version_digit) as always,
        pytest.raises(errors.IntegrityError, match="m:prod"),
    ):
        _through(always, s3art).load("m:prod")
    with FaultProxy(endpoint, only("aliases/prod.json", "flip", times=1), flip_at=version_digit) as once:
        assert _through(once, s3art).load("m:prod") == b"one"
    for seed in range(6):  # any single bit, anywhere in the document
        with FaultProxy(endpoint, only("aliases/prod.json", "flip", times=1), seed=seed) as p:
            assert _through(p, s3art).load("m:prod") == b"one"
    # a 0.1 alias document has no seal: the digest it holds still decides
    legacy = {k: v for k, v in json.loads(raw).items() if k != "check"}
    s3art.tamper("artifacts/m/aliases/prod.json", json.dumps(legacy, separators=(",", ":")).encode())
    with (
        FaultProxy(endpoint, only("aliases/prod.json", "flip"), flip_at=version_digit) as always,
        pytest.raises(errors.IntegrityError, match="holds sha256"),
    ):
        _through(always, s3art).load("m:prod")
    assert always.counts["flip"] >= 3


@pytest.mark.slow
def test_a_write_whose_answer_was_lost_resolves_to_what_exists(s3art: StoreEnv, tmp_path: Path) -> None:
    """The server acted, but every one of botocore's attempts (all MAX_ATTEMPTS of them) lost its answer:
    reset after the request was forwarded, or the answer's head cut in half."""
    from mlstack.artifacts.s3 import MAX_ATTEMPTS as n

    endpoint = s3art.manifest["artifacts"]["endpoint_url"]
    with FaultProxy(endpoint, only("/versions/", "reset-after", times=n, method="PUT")) as p:
        v = _through(p, s3art).put("m", b"first")
    assert p.counts["reset-after"] == n and v.version == 1
    with FaultProxy(endpoint, only("/aliases/", "truncate", times=n, method="PUT")) as p:
        a = _through(p, s3art).set_alias("m", 1, "prod")
    assert p.counts["truncate"] == n and a.aliases == ["prod"]
    with FaultProxy(endpoint, only("/blobs/", "reset-after", times=n, method="PUT")) as p:
        b = _through(p, s3art).put("m", b"second")
    assert p.counts["reset-after"] == n and b.version == 2
    st = s3art.store()
    assert [v.version for v in st.ls("m")] == [2, 1]
    assert [h["version"] for h in st.alias_history("m", "prod")] == [1]
    assert st.load("m:prod") == b"first" and st.load("m") == b"second"
    assert sum("/m/versions/" in k for k in s3art.object_keys()) == 2


@pytest.mark.seaweedfs
def test_uploads_corrupted_in_transit_are_refused_and_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """SeaweedFS checks every body against its SHA-256 (moto does not): one flipped bit per upload."""
    from tests.artifacts.conftest import make_env

    art = make_env("seaweedfs", tmp_path, monkeypatch, request)
    endpoint = art.manifest["artifacts"]["endpoint_url"]
    src = _big(tmp_path / "big.bin", 20 << 20)

    def first_of_each(n: int, method: str, path: str) -> str | None:
        if method != "PUT":
            return None
        kind = next((k for k in ("partNumber", "/versions/", "/aliases/", "/blobs/") if k in path), path)
        if kind in seen:
            return None
        seen.add(kind)
        return "flip-request"

    seen: set[str] = set()
    with FaultProxy(endpoint, first_of_each) as p:
        st = _through(p, art)
        v = st.put("big", src, alias="prod")
        small = st.put("small", b"small payload" * 10)
    assert seen == {"partNumber", "/versions/", "/aliases/", "/blobs/"} and p.counts["flip-request"] == 4
    st = art.store()
    assert st.get(v.ref, tmp_path / "out.bin").read_bytes() == src.read_bytes()
    assert st.load(small.ref) == b"small payload" * 10
    assert st.resolve("big:prod").version == 1
    assert st.scan().ok
