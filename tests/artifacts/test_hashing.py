"""The one-pass copy-and-hash and the S3 part sizing, at their edges."""

from __future__ import annotations

import hashlib
import io

import pytest

from mlstack.artifacts import _base
from mlstack.artifacts._base import CHUNK, FILE_CHUNK, copy_file_hashing, copy_hashing, sha256_file


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 9 * CHUNK])
def test_copy_hashing_copies_and_hashes_every_byte(size: int) -> None:
    data = (bytes(range(251)) * (size // 251 + 1))[:size]  # period 251: chunk boundaries never align
    dst = io.BytesIO()
    digest, n = copy_hashing(io.BytesIO(data), dst)
    assert n == size
    assert dst.getvalue() == data
    assert digest == hashlib.sha256(data).hexdigest()


def test_copy_hashing_reports_progress_and_a_writer_failure() -> None:
    seen: list[int] = []
    data = b"x" * (2 * CHUNK + 5)
    copy_hashing(io.BytesIO(data), io.BytesIO(), seen.append)
    assert sum(seen) == len(data)

    class Full(io.BytesIO):
        def write(self, b: object) -> int:
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        copy_hashing(io.BytesIO(b"y" * (5 * CHUNK)), Full())


def test_sha256_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 100_000)
    assert sha256_file(p) == (hashlib.sha256(b"abc" * 100_000).hexdigest(), 300_000)
    assert _base.RING >= 2


def test_s3_part_size_grows_for_big_files() -> None:
    s3 = pytest.importorskip("mlstack.artifacts.s3")
    assert s3.part_size(100 << 20) == s3.PART_SIZE
    huge = 5 << 40  # 5 TiB, the S3 object limit
    assert s3.part_size(huge) * s3.MAX_PARTS >= huge
    assert -(-huge // s3.part_size(huge)) <= 10_000


def test_importing_the_artifacts_package_stays_light() -> None:
    import json
    import subprocess
    import sys

    code = (
        "import sys, json, mlstack.artifacts, mlstack.cli.artifacts_cmd; "
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore', 'pydantic', 'mlstack.artifacts._store') "
        "if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("size", [0, 1, FILE_CHUNK - 1, FILE_CHUNK, 2 * FILE_CHUNK + 3])
@pytest.mark.parametrize("sendfile", [True, False])
def test_copy_file_hashing_hashes_what_it_wrote(
    size: int,
    sendfile: bool,
    tmp_path,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    import errno
    import os

    if not sendfile:  # the portable fallback, as on a system whose sendfile cannot write files

        def refuse(*a: object) -> int:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(os, "sendfile", refuse)
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    seen: list[int] = []
    digest, n = copy_file_hashing(src, dst, seen.append)
    assert (digest, n) == (hashlib.sha256(data).hexdigest(), size)
    assert dst.read_bytes() == data and sum(seen) == size


def test_progress_bar_only_on_a_terminal_and_for_large_transfers(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from mlstack.artifacts import _store

    with _store._progress(1 << 40, "x") as cb:
        assert cb is None  # pytest's stderr is not a terminal
    import io

    class _Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    # replace the stream itself: under xdist, sys.stderr's own isatty cannot always be patched
    monkeypatch.setattr(sys, "stderr", _Terminal())
    with _store._progress(1 << 10, "small") as cb:
        assert cb is None
    with _store._progress(_store.PROGRESS_MIN, "big") as cb:
        assert cb is not None
        cb(_store.PROGRESS_MIN)
    monkeypatch.setenv("MLSTACK_NO_PROGRESS", "1")
    with _store._progress(_store.PROGRESS_MIN, "off") as cb:
        assert cb is None
