"""Artifacts in a folder: blobs land by atomic rename, documents by link (create-once) or locked replace.

A process killed mid-put leaves at most a file under ``tmp/``; nothing partial is ever visible under
``blobs/`` or ``artifacts/``. Alias moves hold an ``fcntl`` lock (released by the kernel if the holder dies).
A blob that exists is replaced atomically (``rename``) by a verified copy when a put brings its content
again, so a torn or altered blob is repaired by putting the same content.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mlstack.artifacts._base import (
    Backend,
    BlobMissing,
    Progress,
    copy_file_hashing,
    mismatch,
    sha256_file,
)
from mlstack.artifacts._model import blob_key


class LocalBackend(Backend):
    kind = "local"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self._tmp = self.root / "tmp"

    @classmethod
    def from_section(cls, section: Any) -> LocalBackend:
        return cls(section.root)

    @property
    def location(self) -> str:
        return str(self.root)

    # ---- helpers
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    def _tmpfile(self) -> Path:
        self._tmp.mkdir(parents=True, exist_ok=True)
        return self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}"

    def _publish(self, tmp: Path, final: Path) -> bool:
        """Make ``tmp`` visible at ``final`` only if nothing is there (hard link is atomic and create-once)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(tmp, final)
            return True
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    # ---- blobs
    def has_blob(self, digest: str) -> bool:
        return self._path(blob_key(digest)).is_file()

    def put_file(
        self, path: Path, *, skip: Callable[[str], bool] | None = None, progress: Progress | None = None
    ) -> tuple[str, int, bool]:
        tmp = self._tmpfile()
        try:
            digest, size = copy_file_hashing(path, tmp, progress)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        os.chmod(tmp, 0o444)
        final = self._path(blob_key(digest))
        final.parent.mkdir(parents=True, exist_ok=True)
        existed = final.is_file()
        # the copy just written hashed right: renaming it into place (over a blob already there, too) repairs a
        # corrupted blob and costs no more than deleting the copy would; readers see the old or the new file
        os.replace(tmp, final)
        return digest, size, not existed

    def put_bytes(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        digest = digest or hashlib.sha256(data).hexdigest()
        final = self._path(blob_key(digest))
        if final.is_file() and self.check_blob(digest) == "ok":
            return digest, False
        tmp = self._tmpfile()
        tmp.write_bytes(data)
        os.chmod(tmp, 0o444)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)  # absent, or corrupted: replaced atomically
        return digest, True

    def check_blob(self, digest: str, size: int | None = None) -> str:
        path = self._path(blob_key(digest))
        try:
            actual, _ = sha256_file(path)
        except (FileNotFoundError, NotADirectoryError):
            return "missing"
        return "ok" if actual == digest else "corrupt"

    def _open_blob(self, digest: str) -> Any:
        try:
            return open(self._path(blob_key(digest)), "rb", buffering=0)
        except FileNotFoundError:
            raise BlobMissing(
                f"blob sha256:{digest[:16]}… is missing from {self.root}",
                fix="the store lost content a version refers to; restore it from a backup or put it again",
            ) from None

    def get_to_file(self, digest: str, size: int, dest: Path, progress: Progress | None = None) -> None:
        self._open_blob(digest).close()  # a clear error when the blob is missing
        actual, _ = copy_file_hashing(self._path(blob_key(digest)), dest, progress)
        if actual != digest:
            dest.unlink(missing_ok=True)
            raise mismatch(f"blob {self._path(blob_key(digest))}", digest, actual)

    def get_bytes(self, digest: str) -> bytes:
        with self._open_blob(digest) as src:
            data: bytes = src.read()
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise mismatch(f"blob {self._path(blob_key(digest))}", digest, actual)
        return data

    # ---- documents
    def _write_tmp(self, data: bytes) -> Path:
        tmp = self._tmpfile()
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())  # records are small: make them durable before they become visible
        return tmp

    def create_doc(self, key: str, data: bytes) -> bool:
        return self._publish(self._write_tmp(data), self._path(key))

    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data, hashlib.sha256(data).hexdigest()

    @contextlib.contextmanager
    def _locked(self, key: str) -> Iterator[None]:
        lock = self._path(key + ".lock")
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def replace_doc(self, key: str, data: bytes, etag: str | None) -> bool:
        final = self._path(key)
        with self._locked(key):
            cur = self.read_doc(key)
            if (cur is None) != (etag is None) or (cur is not None and cur[1] != etag):
                return False
            tmp = self._write_tmp(data)
            os.replace(tmp, final)
            return True

    def list_keys(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        out: list[str] = []
        for dirpath, _dirs, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            out.extend(f"{rel}/{f}" for f in files if not f.endswith(".lock"))
        return sorted(out)

    def list_children(self, prefix: str) -> list[str]:
        base = self._path(prefix.rstrip("/"))
        try:
            return sorted(e.name for e in os.scandir(base) if e.is_dir())
        except FileNotFoundError:
            return []
