"""The small object-store interface the artifact store is built on, and the hashing helpers both backends use.

A backend stores two things under one root: content-addressed blobs (written once, read with verification)
and small JSON documents (version records, created once; alias documents, replaced by compare-and-swap).
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO

from mlstack.errors import IntegrityError

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

    Hashing runs on this thread while a writer thread writes the previous chunk: both release the GIL,
    so on two cores a copy costs about as much as hashing alone.
    """
    h = hashlib.sha256()
    size = 0
    first = src.read(CHUNK)
    if len(first) < CHUNK:  # small: no thread
        h.update(first)
        dst.write(first)
        if progress and first:
            progress(len(first))
        return h.hexdigest(), len(first)
    q: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []

    def writer() -> None:
        try:
            while True:
                item = q.get()
                if item is None:
                    return
                dst.write(item)
        except BaseException as exc:
            failure.append(exc)
            while q.get() is not None:  # drain so the producer never blocks forever
                pass

    t = threading.Thread(target=writer, name="mlstack-copy-writer", daemon=True)
    t.start()
    chunk = first
    try:
        while chunk:
            q.put(chunk)
            h.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
            if failure:
                break
            chunk = src.read(CHUNK)
    finally:
        q.put(None)
        t.join()
    if failure:
        raise failure[0]
    return h.hexdigest(), size


def mismatch(what: str, expected: str, actual: str) -> IntegrityError:
    return IntegrityError(
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

        ``skip(digest)`` returning True means the caller knows that blob exists: write nothing.
        """

    @abstractmethod
    def put_bytes(self, data: bytes, digest: str | None = None) -> tuple[str, bool]:
        """Store bytes as a blob: returns ``(digest, written)``."""

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

    def close(self) -> None:  # noqa: B027 - optional
        """Release pools and connections."""
