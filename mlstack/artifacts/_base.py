"""The small object-store interface the artifact store is built on, and the hashing helpers both backends use.

A backend stores two things under one root: content-addressed blobs (written once, read with verification)
and small JSON documents (version records, created once; alias documents, replaced by compare-and-swap).

A blob that already exists is never trusted blindly: a put of content whose address exists checks the stored
copy and rewrites it when it fails verification (see :meth:`Backend.put_file`), so corruption is repairable
by putting the content again.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from mlstack.errors import IntegrityError

RING = 4  # buffers in flight while copying
FILE_CHUNK = 16 << 20  # kernel copy step when copying file to file
_NO_SENDFILE = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSOCK, errno.EXDEV}
CHUNK = 4 << 20  # read size when hashing or copying: large enough that hashlib and write() drop the GIL
Progress = Callable[[int], None]


def sha256_file(path: str | os.PathLike[str], progress: Progress | None = None) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file, in one sequential read."""
    h = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while True:
            n = fh.readinto(view)
            if not n:
                break
            h.update(view[:n])
            size += n
            if progress:
                progress(n)
    return h.hexdigest(), size


def copy_hashing(src: IO[bytes], dst: IO[bytes], progress: Progress | None = None) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` and hash the bytes in the same pass.

    This thread reads into a small ring of reusable buffers and hashes each one while a writer thread
    writes it: hashlib and write() both release the GIL, so on two cores a copy costs about as much as
    hashing alone, and reusing buffers avoids page-faulting a fresh 4 MiB allocation per chunk.
    """
    h = hashlib.sha256()
    bufs = [bytearray(CHUNK)]
    n = src.readinto(bufs[0])  # type: ignore[attr-defined]
    if n is None or n < CHUNK:  # small: no thread
        first = memoryview(bufs[0])[: n or 0]
        h.update(first)
        dst.write(first)
        if progress and n:
            progress(n)
        return h.hexdigest(), n or 0
    bufs += [bytearray(CHUNK) for _ in range(RING - 1)]
    free: queue.Queue[int] = queue.Queue()
    for i in range(1, RING):
        free.put(i)
    todo: queue.Queue[tuple[int, int] | None] = queue.Queue()
    failure: list[BaseException] = []

    def writer() -> None:
        while True:
            item = todo.get()
            if item is None:
                return
            idx, length = item
            if not failure:
                try:
                    dst.write(memoryview(bufs[idx])[:length])
                except BaseException as exc:
                    failure.append(exc)
            free.put(idx)  # always hand the buffer back, so the reader never waits forever

    t = threading.Thread(target=writer, name="mlstack-copy-writer", daemon=True)
    t.start()
    idx, size = 0, 0
    try:
        while n and not failure:
            todo.put((idx, n))
            h.update(memoryview(bufs[idx])[:n])
            size += n
            if progress:
                progress(n)
            idx = free.get()
            n = src.readinto(bufs[idx])  # type: ignore[attr-defined]
    finally:
        todo.put(None)
        t.join()
    if failure:
        raise failure[0]
    return h.hexdigest(), size


def copy_file_hashing(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], progress: Progress | None = None
) -> tuple[str, int]:
    """Copy file ``src`` to a new file ``dst`` and return the SHA-256 and size of the bytes *written*.

    A copier thread moves the bytes in the kernel (``sendfile``: no user-space copy) while this thread hashes
    each finished chunk read back from ``dst`` (hot in the page cache). Hashing what was written means the
    digest always describes the destination, even if the source changes meanwhile. Measured on the build
    machine: about 2x faster than copying through user space. Where ``sendfile`` cannot write files (not
    Linux), it falls back to :func:`copy_hashing`.
    """
    with open(src, "rb", buffering=0) as s, open(dst, "w+b", buffering=0) as d:
        sfd, dfd = s.fileno(), d.fileno()
        try:
            first = os.sendfile(dfd, sfd, 0, FILE_CHUNK)
        except (OSError, AttributeError) as exc:
            if isinstance(exc, OSError) and exc.errno not in _NO_SENDFILE:
                raise
            d.seek(0)
            d.truncate()
            return copy_hashing(s, d, progress)  # type: ignore[arg-type]
        h = hashlib.sha256()
        buf = bytearray(FILE_CHUNK)
        view = memoryview(buf)
        done: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue()

        def copier(off: int) -> None:
            try:
                while True:
                    n = os.sendfile(dfd, sfd, off, FILE_CHUNK)
                    if n <= 0:
                        break
                    done.put((off, n))
                    off += n
            except BaseException as exc:
                done.put(exc)
            done.put(None)

        if first:
            done.put((0, first))
            t = threading.Thread(target=copier, args=(first,), name="mlstack-copy", daemon=True)
            t.start()
        else:
            done.put(None)
            t = None
        size = 0
        try:
            while (item := done.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                off, n = item
                got = 0
                while got < n:  # read back what was just written, and hash it
                    r = os.preadv(dfd, [view[got:n]], off + got)
                    if r <= 0:
                        raise OSError(f"short read of {dst} at {off + got}")
                    got += r
                h.update(view[:n])
                size += n
                if progress:
                    progress(n)
        finally:
            if t is not None:
                t.join()
    return h.hexdigest(), size


class BlobMissing(IntegrityError):
    """A blob a version refers to is not in the store at all."""


class BlobCorrupt(IntegrityError):
    """A stored blob's bytes do not hash to its name."""


def mismatch(what: str, expected: str, actual: str) -> IntegrityError:
    return BlobCorrupt(
        f"{what}: content hashes to sha256:{actual[:16]}… but sha256:{expected[:16]}… was recorded; "
        "the stored copy is corrupted or was changed",
        fix="restore the blob from a backup or bucket versioning, or put the artifact again from its source",
    )


class Backend(ABC):
    """Blob and document storage under one root. Implementations must be safe to use from many threads."""

    kind: str = ""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages and lineage (a folder, or ``s3://bucket/prefix``)."""

    # ---- blobs
    @abstractmethod
    def put_file(
        self, path: Path, *, skip: Callable[[str], bool] | None = None, progress: Progress | None = None
    ) -> tuple[str, int, bool]:
        """Store a file as a blob: returns ``(digest, size, written)``.

        ``skip(digest)`` returning True means the caller expects that blob to exist already: the backend checks
        the stored copy (cheaply where it can) instead of sending the bytes, and rewrites it only when it fails
        verification. Whatever ``skip`` says, a blob that exists but is corrupted is rewritten from ``path``.
        """

    @abstractmethod
    def put_bytes(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        """Store bytes as a blob: returns ``(digest, written)``; a corrupted stored copy is rewritten."""

    @abstractmethod
    def get_to_file(self, digest: str, size: int, dest: Path, progress: Progress | None = None) -> None:
        """Write a blob to ``dest`` (a fresh path the caller renames), verifying it; IntegrityError if not."""

    @abstractmethod
    def get_bytes(self, digest: str) -> bytes:
        """A blob's bytes, verified against the digest."""

    @abstractmethod
    def has_blob(self, digest: str) -> bool: ...

    # ---- documents
    @abstractmethod
    def create_doc(self, key: str, data: bytes) -> bool:
        """Create a document only if the key does not exist. False when it already does."""

    @abstractmethod
    def read_doc(self, key: str) -> tuple[bytes, str] | None:
        """``(data, etag)``, or None when missing."""

    @abstractmethod
    def replace_doc(self, key: str, data: bytes, etag: str | None) -> bool:
        """Compare-and-swap: write if the current etag is ``etag`` (None: if the key is absent). False if not."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (relative to the root), sorted."""

    @abstractmethod
    def list_children(self, prefix: str) -> list[str]:
        """Names of the immediate sub-folders of ``prefix``, sorted."""

    # ---- integrity: optional, with defaults that work on any backend through the methods above
    def check_blob(self, digest: str, size: int | None = None) -> str:
        """Read a blob end to end and hash it: ``"ok"``, ``"missing"`` or ``"corrupt"`` (never a shortcut)."""
        import tempfile

        try:
            if size is not None and size > (16 << 20):
                with tempfile.TemporaryDirectory(prefix="mlstack-check-") as tmp:
                    self.get_to_file(digest, size, Path(tmp) / "blob")
            else:
                self.get_bytes(digest)
        except BlobMissing:
            return "missing"
        except IntegrityError:
            return "corrupt"
        return "ok"

    def restore_blob(self, digest: str) -> bool:
        """Put back an intact earlier copy of a corrupted blob (S3 bucket versioning). False: there is none."""
        return False

    def restore_doc(self, key: str, valid: Callable[[bytes], bool]) -> bool:
        """Put back the newest earlier copy of a document for which ``valid`` holds. False: there is none."""
        return False

    def blob_digests(self) -> list[str]:
        """The digest of every blob in the store (from the key layout), sorted."""
        out = []
        for k in self.list_keys("blobs/sha256/"):
            d = k.rsplit("/", 1)[-1]
            if len(d) == 64 and all(c in "0123456789abcdef" for c in d):
                out.append(d)
        return sorted(out)

    def iter_keys(self, prefix: str) -> Iterator[str]:
        """The keys under ``prefix`` in sorted order, fetched lazily where the store lists in pages, so a
        caller that needs only the first few (the newest runs of an index) stops early."""
        yield from self.list_keys(prefix)

    def close(self) -> None:  # noqa: B027 - optional
        """Release pools and connections."""
