"""The artifact store: named, versioned, aliased artifacts with lineage, over a blob/document backend.

Guarantees (see docs/artifacts.md):
- content is addressed by SHA-256; putting unchanged content writes nothing new, but checks the stored copy
  and rewrites it if it is corrupted (so corruption is repaired by putting the content again);
- a version record is created only after all of its blobs exist, and never changes;
- version numbers are allocated by create-once records, so concurrent writers never share a number;
- an alias moves by compare-and-swap after checking its target exists; no move is lost;
- nothing is trusted unchecked: records and aliases are sealed and cross-checked (an alias's digest against
  its version's, a record's digest, size and kind against the bytes read), and every read is hashed;
- a folder ``get`` is all or nothing: a failure leaves the destination as it was and no writer running.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import pickle as _pickle
import random
import shutil
import stat
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from mlstack.artifacts._base import Backend, BlobCorrupt, BlobMissing, Progress
from mlstack.artifacts._model import (
    DIGEST_RE,
    MIN_PREFIX,
    OBJECT_MAGIC,
    AliasDoc,
    IntegrityWarning,
    Problem,
    RecordError,
    Ref,
    Version,
    alias_key,
    check_alias,
    check_name,
    human_size,
    now_iso,
    parse_doc,
    parse_ref,
    seal_doc,
    version_key,
    version_number_of_key,
    versions_prefix,
)
from mlstack.errors import (
    ArtifactNotFound,
    BackendError,
    ConflictError,
    CredentialsError,
    IntegrityError,
    MlstackError,
    NotFoundError,
    UsageError,
)

WORKERS = 16
PROGRESS_MIN = 64 << 20  # show a progress bar from this many bytes, on a terminal
ALIAS_HISTORY = 100
MAX_ATTEMPTS = 200
DOC_READS = 4  # reads of a document that fails its checks before it is called corrupt (a flip in transit)
LEGACY_PICKLE_ENV = "MLSTACK_ALLOW_LEGACY_PICKLE"


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Progress | None]:
    """A rich progress bar on stderr for large transfers when stderr is a terminal; else nothing."""
    if total < PROGRESS_MIN or not sys.stderr.isatty() or os.environ.get("MLSTACK_NO_PROGRESS"):
        yield None
        return
    from rich.progress import BarColumn, DownloadColumn, TransferSpeedColumn
    from rich.progress import Progress as RichProgress

    from mlstack.cli._common import err_console

    with RichProgress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        lock = threading.Lock()

        def advance(n: int) -> None:
            with lock:
                bar.advance(task, n)

        yield advance


def _safe_relpath(rel: str) -> PurePosixPath:
    p = PurePosixPath(rel)
    if p.is_absolute() or not p.parts or any(part in ("..", "") for part in p.parts):
        raise IntegrityError(
            f"directory listing holds an unsafe path {rel!r}",
            fix="the listing was tampered with; do not use it",
        )
    return p


def _jsonable(meta: Mapping[str, Any]) -> dict[str, Any]:
    try:
        out: dict[str, Any] = json.loads(json.dumps(dict(meta)))
        return out
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"artifact metadata must be JSON-serialisable: {exc}",
            fix="pass strings, numbers, lists and dicts",
        ) from None


class ArtifactStore:
    """Named artifacts over one backend. Thread-safe; share one per process (see :func:`mlstack.artifacts.store`)."""

    def __init__(self, backend: Backend, *, workers: int = WORKERS) -> None:
        self.backend = backend
        self._pool = cf.ThreadPoolExecutor(workers, thread_name_prefix="mlstack-artifacts")
        self._records: dict[tuple[str, int], Version] = {}  # immutable: safe to cache
        self._lock = threading.Lock()

    @property
    def location(self) -> str:
        return self.backend.location

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.backend.close()

    def __repr__(self) -> str:
        return f"ArtifactStore({self.backend.kind}: {self.location})"

    # ------------------------------------------------------------------ reading records
    def _numbers(self, name: str) -> list[int]:
        nums = (version_number_of_key(k) for k in self.backend.list_keys(versions_prefix(name)))
        return sorted(n for n in nums if n is not None)

    def _where(self, key: str) -> str:
        return f"{self.location}/{key}"

    def _repair_cmd(self, name: str) -> str:
        return f"mlstack artifacts verify {name} --repair"

    def _corrupt_record(self, name: str, number: int, why: str) -> IntegrityError:
        key = version_key(name, number)
        restore = (
            f"`{self._repair_cmd(name)}` restores an intact copy from bucket versioning if there is one; "
            if self.backend.kind == "s3"
            else ""
        )
        exc = IntegrityError(
            f"version record {name}@{number} ({self._where(key)}) cannot be trusted: {why}",
            fix=f"{restore}otherwise restore {key} from a backup. New versions of {name!r} can still be put",
        )
        exc.reason = f"cannot be trusted: {why}"  # type: ignore[attr-defined]
        return exc

    def _record(self, name: str, number: int, *, fresh: bool = False) -> Version | None:
        """Version ``number`` of ``name``, checked (seal, fields, key); None when it does not exist.

        A record that fails its checks is read again (up to DOC_READS times) before it is called corrupt: a
        bit flipped on the wire is not a corrupted record.
        """
        if not fresh:
            with self._lock:
                cached = self._records.get((name, number))
            if cached is not None:
                return cached
        key = version_key(name, number)
        why = ""
        for _ in range(DOC_READS):
            doc = self.backend.read_doc(key)
            if doc is None:
                return None
            try:
                v = Version.from_record(doc[0], key=key)
            except RecordError as exc:
                why = str(exc)
                continue
            with self._lock:
                self._records[(name, number)] = v
            return v
        raise self._corrupt_record(name, number, why)

    def _records_of(
        self, name: str, numbers: Sequence[int], problems: list[Problem] | None = None
    ) -> list[Version]:
        """The readable records among ``numbers``; unreadable ones go to ``problems`` (raised if None)."""

        def one(n: int) -> Version | IntegrityError | None:
            try:
                return self._record(name, n)
            except IntegrityError as exc:
                return exc

        out: list[Version] = []
        for n, got in zip(numbers, self._pool.map(one, numbers), strict=True):
            if isinstance(got, IntegrityError):
                if problems is None:
                    raise got
                problems.append(
                    Problem("record", f"{name}@{n}", version_key(name, n), got.message, got.fix or "")
                )
            elif got is not None:
                out.append(got)
        return out

    def _unknown(self, name: str) -> ArtifactNotFound:
        return ArtifactNotFound(
            f"no artifact named {name!r} in {self.location}",
            fix="`mlstack artifacts ls` lists the names; put one with `mlstack artifacts put NAME PATH`",
        )

    def _corrupt_alias(self, name: str, alias: str, why: str) -> IntegrityError:
        key = alias_key(name, alias)
        exc = IntegrityError(
            f"alias {name}:{alias} ({self._where(key)}) cannot be trusted: {why}",
            fix=f"point it again: `mlstack artifacts alias {name} VERSION {alias}` "
            f"(or `{self._repair_cmd(name)}`)",
        )
        exc.reason = f"cannot be trusted: {why}"  # type: ignore[attr-defined]
        return exc

    def _alias_doc(self, name: str, alias: str) -> tuple[AliasDoc, str] | None:
        """The alias document and its etag (None when absent); IntegrityError when it cannot be parsed."""
        key = alias_key(name, alias)
        why = ""
        for _ in range(DOC_READS):
            doc = self.backend.read_doc(key)
            if doc is None:
                return None
            try:
                return AliasDoc.parse(doc[0], name, alias), doc[1]
            except RecordError as exc:
                why = str(exc)
        raise self._corrupt_alias(name, alias, why)

    def _alias_target(self, name: str, alias: str) -> Version | None:
        """The version an alias points at, checked: the alias's digest must be that version's digest."""
        why = ""
        for attempt in range(DOC_READS):
            got = self._alias_doc(name, alias)
            if got is None:
                return None
            doc = got[0]
            v = self._record(name, doc.version, fresh=attempt > 0)
            if v is None:
                raise IntegrityError(
                    f"alias {name}:{alias} points at version {doc.version}, which does not exist",
                    fix=f"move it: `mlstack artifacts alias {name} VERSION {alias}`",
                )
            if v.digest == doc.digest:
                return v
            why = (
                f"it says version {doc.version} holds sha256:{doc.digest[:16]}…, but that version's record "
                f"says sha256:{v.digest[:16]}…"
            )
        raise self._corrupt_alias(name, alias, why)

    def aliases(
        self, name: str, *, parallel: bool = True, problems: list[Problem] | None = None
    ) -> dict[str, int]:
        """Alias -> version number for one artifact name (``parallel=False`` inside pool tasks: no nesting).

        An alias document that cannot be read is left out and reported in ``problems`` (a warning if None).
        """
        prefix = f"artifacts/{check_name(name)}/aliases/"
        keys = [k for k in self.backend.list_keys(prefix) if k.endswith(".json")]

        def read(k: str) -> tuple[str, int] | Problem | None:
            alias = k[len(prefix) : -len(".json")]
            try:
                check_alias(alias)
                got = self._alias_doc(name, alias)
            except (IntegrityError, UsageError) as exc:
                return Problem("alias", f"{name}:{alias}", k, reason_of(exc), exc.fix or "")
            return None if got is None else (alias, got[0].version)

        found = list(self._pool.map(read, keys) if parallel and len(keys) > 1 else map(read, keys))
        _report([p for p in found if isinstance(p, Problem)], problems)
        return dict(sorted(x for x in found if isinstance(x, tuple)))

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of an alias (oldest first; the last ``ALIAS_HISTORY`` are kept)."""
        got = self._alias_doc(check_name(name), check_alias(alias))
        if got is None:
            return []
        d = got[0].raw
        history = d.get("history", [])
        return [
            *(history if isinstance(history, list) else []),
            {k: d[k] for k in ("version", "digest", "updated", "run_id") if k in d},
        ]

    def resolve(self, ref: str | Ref | Version) -> Version:
        """The version a reference names (latest when it names no version or alias), checked."""
        if isinstance(ref, Version):
            return ref
        r = parse_ref(ref) if isinstance(ref, str) else ref
        if r.alias:
            v = self._alias_target(r.name, r.alias)
            if v is None:
                if not self._numbers(r.name):
                    raise self._unknown(r.name)
                known = ", ".join(self.aliases(r.name, problems=[])) or "none"
                raise ArtifactNotFound(
                    f"artifact {r.name!r} has no alias {r.alias!r} (aliases: {known})",
                    fix=f"set it with `mlstack artifacts alias {r.name} VERSION {r.alias}`",
                )
            return v
        if r.number is not None:
            v = self._record(r.name, r.number)
            if v is None:
                nums = self._numbers(r.name)
                if not nums:
                    raise self._unknown(r.name)
                raise ArtifactNotFound(
                    f"artifact {r.name!r} has no version {r.number} (versions 1-{nums[-1]})",
                    fix=f"`mlstack artifacts ls {r.name}` lists its versions",
                )
            return v
        nums = self._numbers(r.name)
        if not nums:
            raise self._unknown(r.name)
        if r.digest_prefix:
            skipped: list[Problem] = []
            matches = [
                v for v in self._records_of(r.name, nums, skipped) if v.digest.startswith(r.digest_prefix)
            ]
            _report(skipped, None)
            distinct = {v.digest for v in matches}
            if not matches:
                raise ArtifactNotFound(
                    f"no version of {r.name!r} has a digest starting with {r.digest_prefix!r}",
                    fix=f"`mlstack artifacts ls {r.name}` lists versions and digests",
                )
            if len(distinct) > 1:
                shown = ", ".join(f"{v.version} (sha256:{v.digest[:12]})" for v in matches[:6])
                raise UsageError(
                    f"digest prefix {r.digest_prefix!r} of {r.name!r} is ambiguous: versions {shown}",
                    fix="give more hex characters, or a version number (NAME@3)",
                )
            return matches[-1]  # the same content put twice: the newest version holding it
        v = self._record(r.name, nums[-1])
        if v is None:  # pragma: no cover - listed but gone
            raise self._unknown(r.name)
        return v

    def show(self, ref: str | Version, problems: list[Problem] | None = None) -> Version:
        """A version's record with its current aliases filled in."""
        v = self.resolve(ref)
        aliases = [a for a, n in self.aliases(v.name, problems=problems).items() if n == v.version]
        return _with_aliases(v, aliases)

    def ls(self, name: str | None = None, *, problems: list[Problem] | None = None) -> list[Version]:
        """All versions of ``name`` (newest first), or the latest version of every artifact (by name).

        Records and aliases that cannot be trusted are skipped and reported in ``problems`` (as an
        :class:`IntegrityWarning` when ``problems`` is None): one broken document never hides the rest.
        """
        found: list[Problem] = []
        try:
            if name is not None:
                check_name(name)
                nums = self._numbers(name)
                if not nums:
                    raise self._unknown(name)
                aliases = self.aliases(name, problems=found)
                out = self._records_of(name, list(reversed(nums)), found)
                return [_with_aliases(v, [a for a, n in aliases.items() if n == v.version]) for v in out]

            def latest(n: str) -> Version | list[Problem] | None:
                mine: list[Problem] = []
                try:
                    check_name(n)
                except UsageError:
                    mine.append(
                        Problem(
                            "name",
                            repr(n),
                            f"artifacts/{n}/",
                            f"the artifact folder {n!r} has a name this release refuses (written by a release "
                            "that accepted a trailing newline)",
                            "copy what you need out of it with the aws CLI or a file manager, then delete it",
                        )
                    )
                    return mine
                nums = self._numbers(n)
                for num in reversed(nums):  # the newest readable version; unreadable ones are reported
                    try:
                        v = self._record(n, num)
                    except IntegrityError as exc:
                        mine.append(
                            Problem(
                                "record", f"{n}@{num}", version_key(n, num), reason_of(exc), exc.fix or ""
                            )
                        )
                        continue
                    if v is None:
                        continue
                    # runs on the pool: read aliases sequentially, since waiting on nested pool tasks can deadlock
                    al = self.aliases(n, parallel=False, problems=mine)
                    return [_with_aliases(v, [f"{a}@{x}" for a, x in al.items()]), *mine]  # type: ignore[list-item]
                return mine or None

            out2: list[Version] = []
            for got in self._pool.map(latest, self.backend.list_children("artifacts")):
                if isinstance(got, list):
                    for item in got:
                        if isinstance(item, Version):
                            out2.append(item)
                        else:
                            found.append(item)
            return out2
        finally:
            _report(found, problems)

    # ------------------------------------------------------------------ writing
    def put(
        self,
        name: str,
        obj: Any,
        *,
        alias: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        pickle: bool = False,
        inputs: Sequence[Any] | None = None,
    ) -> Version:
        """Store a file, a directory, bytes or (with ``pickle=True``) a Python object as a new version.

        Content whose address already exists is not sent again, but the stored copy is checked and rewritten
        if it is corrupted: putting the same content again is how a damaged blob is repaired.
        """
        check_name(name)
        if alias is not None:
            check_alias(alias)
        meta = _jsonable(metadata or {})
        from mlstack import run as _run

        r = _run.current()
        lineage = self._lineage(r, inputs, name)
        top, latest = self._latest(name)
        reuse: Callable[[str], bool] = lambda d: latest is not None and d == latest.digest  # noqa: E731
        filename: str | None = None
        files: int | None = None
        if pickle:
            # the header makes "this is a pickle" part of the content address (see load())
            data = OBJECT_MAGIC + _pickle.dumps(obj, protocol=_pickle.HIGHEST_PROTOCOL)
            kind = "object"
            digest, size = self.backend.put_bytes(data)[0], len(data)
        elif isinstance(obj, bytes | bytearray | memoryview):
            data = bytes(obj)
            kind = "bytes"
            digest, size = self.backend.put_bytes(data)[0], len(data)
        elif isinstance(obj, str | os.PathLike):
            path = Path(obj)
            if path.is_dir():
                kind = "dir"
                digest, size, files = self._put_dir(path, latest)
            elif path.is_file():
                kind = "file"
                filename = path.name
                with _progress(path.stat().st_size, f"put {name}") as prog:
                    digest, size, _w = self.backend.put_file(path, skip=reuse, progress=prog)
            else:
                raise UsageError(
                    f"cannot put {str(path)!r}: no such file or directory",
                    fix="pass an existing file or folder, bytes, or an object with pickle=True",
                )
        else:
            raise UsageError(
                f"cannot put a {type(obj).__name__} as artifact {name!r} without pickle=True",
                fix="pass a path or bytes, or put(..., pickle=True) to store the object with pickle "
                "(only load pickles you trust)",
            )
        if (
            latest is not None
            and latest.version == top
            and latest.digest == digest
            and latest.kind == kind
            and latest.size == size
            and (metadata is None or latest.metadata == meta)
        ):
            v = _with_aliases(latest, [])  # unchanged: no new version (the blob was checked above)
            v.unchanged = True
        else:
            v = self._create_version(
                Version(
                    name=name,
                    version=0,
                    digest=digest,
                    size=size,
                    kind=kind,
                    created=now_iso(),
                    run_id=r.id,
                    code_version=_code_version(),
                    metadata=meta,
                    inputs=lineage,
                    filename=filename,
                    files=files,
                    run={k: v for k, v in (("pipeline", r.pipeline), ("step", r.step)) if v},
                    put_id=uuid.uuid4().hex,
                ),
                top,
            )
        unchanged = v.unchanged
        # the run record lists what each step wrote (mlstack.runs)
        r.record_output(
            "artifact", name, str(v.version), digest=f"sha256:{v.digest}", unchanged=unchanged or None
        )
        out = self.set_alias(name, v.version, alias) if alias is not None else _with_aliases(v, [])
        out.unchanged = unchanged
        return out

    def _latest(self, name: str) -> tuple[int, Version | None]:
        """``(highest version number, newest readable record)``: a corrupt newest record does not block puts."""
        nums = self._numbers(name)
        for n in reversed(nums):
            try:
                v = self._record(name, n)
            except IntegrityError:
                continue
            if v is not None:
                return nums[-1], v
        return (nums[-1] if nums else 0), None

    def _lineage(self, r: Any, inputs: Sequence[Any] | None, name: str) -> list[dict[str, Any]]:
        out: dict[tuple[str, str, str | None], dict[str, Any]] = {}
        for i in r.inputs():
            d = i.to_dict()
            out[(d["type"], d["name"], d.get("version"))] = d
        for item in inputs or ():
            if isinstance(item, Version):
                d = {"type": "artifact", "name": item.name, "version": str(item.version)}
            elif isinstance(item, str):
                v = self.resolve(item)
                d = {"type": "artifact", "name": v.name, "version": str(v.version)}
            elif isinstance(item, Mapping) and "type" in item and "name" in item:
                d = {k: val for k, val in item.items()}
                d["version"] = None if d.get("version") is None else str(d["version"])
            else:
                raise UsageError(
                    f"put({name!r}, inputs=...) got {item!r}",
                    fix='pass Versions, "name@version" strings, or dicts {"type": "table", "name": ...}',
                )
            out[(d["type"], d["name"], d.get("version"))] = d
        return list(out.values())

    def _own_record(self, v: Version, number: int) -> bool:
        """Whether version ``number`` is the record this put created (its create answered with an error)."""
        try:
            existing = self._record(v.name, number, fresh=True)
        except IntegrityError:
            return False
        return existing is not None and existing.put_id == v.put_id

    def _create_version(self, v: Version, after: int) -> Version:
        """Claim the next free version number with a create-once record; retry on a lost race."""
        number = after + 1
        for _ in range(MAX_ATTEMPTS):
            v.version = number
            try:
                created = self.backend.create_doc(version_key(v.name, number), v.record())
            except BackendError as exc:
                # the create may have landed although its answer was lost: the record there decides
                if isinstance(exc, CredentialsError | NotFoundError) or not self._own_record(v, number):
                    raise
                created = True
            if created or self._own_record(v, number):
                break  # ours (a retried create that landed the first time is recognised by its put id)
            nums = self._numbers(v.name)
            number = max(number, nums[-1] if nums else 0) + 1
        else:  # pragma: no cover - needs 200 lost races in a row
            raise ConflictError(f"could not allocate a version of {v.name!r}", fix="retry")
        v.sealed = True
        with self._lock:
            self._records[(v.name, v.version)] = v
        return v

    def _put_dir(self, root: Path, latest: Version | None) -> tuple[str, int, int]:
        files: list[tuple[str, Path]] = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for f in sorted(filenames):
                p = Path(dirpath) / f
                st = p.stat()
                if not stat.S_ISREG(st.st_mode):
                    continue  # sockets, fifos: not content
                files.append((p.relative_to(root).as_posix(), p))
        known: set[str] = set()
        if latest is not None and latest.kind == "dir":
            with contextlib.suppress(IntegrityError, ValueError, KeyError, TypeError):
                known = {e["digest"] for e in json.loads(self.backend.get_bytes(latest.digest))["files"]}
        total = sum(p.stat().st_size for _, p in files)
        with _progress(total, f"put {root.name}/") as prog:

            def one(item: tuple[str, Path]) -> dict[str, Any]:
                rel, p = item
                # known files are checked where they are stored, not sent again (a corrupted one is rewritten)
                digest, size, _ = self.backend.put_file(p, skip=known.__contains__, progress=prog)
                mode = 0o755 if os.access(p, os.X_OK) else 0o644
                return {"path": rel, "digest": digest, "size": size, "mode": mode}

            entries = _run_all(self._pool, one, files)
        listing = json.dumps({"schema": 1, "files": entries}, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(listing).hexdigest()
        self.backend.put_bytes(listing, digest)  # an unchanged listing is checked, not written again
        return digest, sum(e["size"] for e in entries), len(entries)

    def set_alias(self, name: str, version: int | str | Version, alias: str) -> Version:
        """Point ``name:alias`` at a version (a number, "3", "v3", a digest prefix or a Version) by CAS.

        An alias document that cannot be read (corrupted) is replaced; its history is lost with it, and the
        new document says so.
        """
        check_name(name)
        check_alias(alias)
        if isinstance(version, Version):
            target = self.resolve(version.ref)
        elif isinstance(version, int):
            target = self.resolve(Ref(name, number=version))
        else:
            target = self.resolve(f"{name}@{version}")
        key = alias_key(name, alias)
        from mlstack import run as _run

        put_id = uuid.uuid4().hex
        previous: int | None = None
        for attempt in range(MAX_ATTEMPTS):
            cur = self.backend.read_doc(key)
            history: list[dict[str, Any]] = []
            if cur is not None:
                try:
                    d = parse_doc(cur[0])
                    AliasDoc.parse(cur[0], name, alias)
                except RecordError as exc:
                    d = {}
                    history = [{"replaced": f"an unreadable alias document ({exc})", "updated": now_iso()}]
                previous = d.get("version") if d and d.get("put_id") != put_id else previous
                if attempt and d.get("put_id") == put_id:
                    break  # our write landed; only its response was lost
                old = d.get("history", [])
                if d:
                    history = [
                        *(old if isinstance(old, list) else []),
                        {k: d.get(k) for k in ("version", "digest", "updated", "run_id")},
                    ]
            doc = {
                "alias": alias,
                "name": name,
                "version": target.version,
                "digest": f"sha256:{target.digest}",
                "updated": now_iso(),
                "run_id": _run.current().id,
                "put_id": put_id,
                "history": history[-ALIAS_HISTORY:],
            }
            try:
                moved = self.backend.replace_doc(key, seal_doc(doc), cur[1] if cur else None)
            except BackendError as exc:
                if isinstance(exc, CredentialsError | NotFoundError):
                    raise
                # the move may have landed although its answer was lost: the document there decides
                now = self.backend.read_doc(key)
                with contextlib.suppress(RecordError):
                    if now is not None and parse_doc(now[0]).get("put_id") == put_id:
                        break
                raise
            if moved:
                break
            time.sleep(random.uniform(0, min(0.5, 0.01 * 2 ** min(attempt, 6))))
        else:
            raise ConflictError(
                f"could not move alias {name}:{alias} after {MAX_ATTEMPTS} attempts (heavy contention)",
                fix="retry the alias move",
            )
        _run.record_output(
            "alias",
            name,
            str(target.version),
            alias=alias,
            moved=True,
            previous=None if previous is None else str(previous),
        )
        aliases = [a for a, n in self.aliases(name, problems=[]).items() if n == target.version]
        return _with_aliases(target, aliases)

    # ------------------------------------------------------------------ reading content
    def _record_read(self, v: Version) -> None:
        from mlstack import run as _run

        _run.record_input(
            "artifact", v.name, str(v.version), source=self.location, digest=f"sha256:{v.digest}"
        )

    def _inconsistent(self, v: Version, why: str) -> IntegrityError:
        return IntegrityError(
            f"version record {v.ref} does not match its content: {why}",
            fix=f"the record was changed; `{self._repair_cmd(v.name)}` restores an intact copy where bucket "
            f"versioning keeps one, else restore {version_key(v.name, v.version)} from a backup",
        )

    def _check_size(self, v: Version, actual: int) -> None:
        if actual != v.size:
            raise self._inconsistent(v, f"it says {v.size} bytes, the content (hash verified) has {actual}")

    def _unpickle_ok(self, v: Version, data: bytes, allow_legacy_pickle: bool | None) -> bytes:
        """The pickle inside an object blob, or IntegrityError when the blob was not stored as a pickle."""
        if data.startswith(OBJECT_MAGIC):
            return data[len(OBJECT_MAGIC) :]
        if v.sealed:
            raise self._inconsistent(
                v,
                "it says the content is a pickled object, but the content was not stored as one (it lacks "
                "mlstack's object header), so it is not unpickled",
            )
        if allow_legacy_pickle is None:
            allow_legacy_pickle = os.environ.get(LEGACY_PICKLE_ENV, "") == "1"
        if not allow_legacy_pickle:
            raise IntegrityError(
                f"{v.ref} is a pickled object written by mlstack 0.1 (an unsealed record): its kind cannot be "
                "checked, so it is not unpickled by default",
                fix=f"if you trust this store, load it with load({v.ref!r}, allow_legacy_pickle=True) (or "
                f"{LEGACY_PICKLE_ENV}=1) and put it again with pickle=True to make a sealed version",
            )
        return data

    def get(self, ref: str | Version, dest: str | os.PathLike[str]) -> Path:
        """Write a version to ``dest`` (verified) and return the path written.

        A file goes to ``dest``, or into it under its original name when ``dest`` is an existing folder;
        a directory is written into ``dest`` (created) all or nothing. Bytes and objects are written as a
        file (an object as its pickle).
        """
        v = self.resolve(ref)
        out = Path(dest)
        if v.kind == "dir":
            self._get_dir(v, out)
        else:
            if out.is_dir():
                out = out / (v.filename or v.name)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.mlstack-{uuid.uuid4().hex[:8]}")
            try:
                if v.kind == "object":
                    data = self.backend.get_bytes(v.digest)
                    self._check_size(v, len(data))
                    tmp.write_bytes(self._unpickle_ok(v, data, True))
                else:
                    with _progress(v.size, f"get {v.ref}") as prog:
                        self.backend.get_to_file(v.digest, v.size, tmp, prog)
                    self._check_size(v, tmp.stat().st_size)
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
        self._record_read(v)
        return out

    def _listing(self, v: Version) -> list[dict[str, Any]]:
        """A directory version's file list, checked against its record (sizes, count, safe paths)."""
        data = self.backend.get_bytes(v.digest)
        try:
            entries = json.loads(data)["files"]
            out: list[dict[str, Any]] = []
            for e in entries:
                digest, size = str(e["digest"]), int(e["size"])
                if not DIGEST_RE.fullmatch(digest) or size < 0:
                    raise ValueError(f"entry {e.get('path')!r} has digest {digest!r} and size {size}")
                out.append(
                    {
                        "path": str(e["path"]),
                        "digest": digest,
                        "size": size,
                        "mode": int(e.get("mode", 0o644)),
                    }
                )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self._inconsistent(v, f"its content is not a directory listing ({exc})") from None
        for e in out:
            _safe_relpath(e["path"])
        total = sum(e["size"] for e in out)
        if total != v.size or (v.files is not None and v.files != len(out)):
            raise self._inconsistent(
                v, f"it says {v.files} files and {v.size} bytes, the listing has {len(out)} and {total}"
            )
        return out

    def _get_dir(self, v: Version, out: Path) -> None:
        """All or nothing: every file is downloaded and verified into a temporary sibling of ``out``, which
        then takes its place; a failure leaves ``out`` as it was, with no download still running."""
        listing = self._listing(v)
        if out.is_symlink():
            out = out.resolve()  # write where the link points; never replace the link itself
        if out.exists() and not out.is_dir():
            raise UsageError(
                f"cannot get folder artifact {v.ref} into {out}: it is a file",
                fix="pass a folder (new or existing) as the destination",
            )
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = out.parent / f".{out.name}.mlstack-get-{uuid.uuid4().hex[:8]}"
        stage.mkdir()
        try:
            for d in {(stage / _safe_relpath(e["path"])).parent for e in listing}:
                d.mkdir(parents=True, exist_ok=True)
            with _progress(v.size, f"get {v.ref}") as prog:

                def one(e: dict[str, Any]) -> None:
                    final = stage / _safe_relpath(e["path"])
                    self.backend.get_to_file(e["digest"], e["size"], final, prog)
                    if final.stat().st_size != e["size"]:
                        raise self._inconsistent(v, f"{e['path']} has a different size than its listing says")
                    os.chmod(final, e["mode"] & 0o777)

                _run_all(self._pool, one, listing)  # waits for every download before raising
            _commit_tree(stage, out, [_safe_relpath(e["path"]) for e in listing])
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def load(self, ref: str | Version, *, allow_legacy_pickle: bool | None = None) -> Any:
        """A version's content in memory: bytes, or the object for versions put with ``pickle=True``.

        Only content stored as a pickle is ever unpickled: its blob starts with mlstack's object header, so a
        record whose kind was changed cannot steer this into unpickling other bytes. Pickled objects written
        by mlstack 0.1 (unsealed records, no header) load only with ``allow_legacy_pickle=True`` or
        ``MLSTACK_ALLOW_LEGACY_PICKLE=1``. Only load pickles you trust.
        """
        v = self.resolve(ref)
        if v.kind == "dir":
            raise UsageError(
                f"{v.ref} is a directory", fix=f"use get({v.ref!r}, dest) to write it to a folder"
            )
        data = self.backend.get_bytes(v.digest)
        self._check_size(v, len(data))
        if v.kind == "object":
            payload = self._unpickle_ok(v, data, allow_legacy_pickle)
            self._record_read(v)
            return _pickle.loads(payload)
        self._record_read(v)
        return data

    def verify(self, ref: str | Version) -> Version:
        """Check a version end to end: its alias (when named by one), its record, and every byte of its
        content against the digests and sizes recorded (IntegrityError on any mismatch)."""
        v = self.resolve(ref)
        if v.kind == "dir":
            listing = self._listing(v)
            bad = [e for e in listing if self.backend.check_blob(e["digest"], e["size"]) != "ok"]
            if bad:
                raise BlobCorrupt(
                    f"{v.ref}: {len(bad)} of {len(listing)} files are missing or corrupted "
                    f"(first: {bad[0]['path']}, sha256:{bad[0]['digest'][:16]}…)",
                    fix=f"put the folder again from its source (`mlstack artifacts put {v.name} PATH`), or "
                    f"`{self._repair_cmd(v.name)}` where bucket versioning keeps intact copies",
                )
            return v
        fix = (
            f"put it again from its source (`mlstack artifacts put {v.name} PATH` repairs the stored copy), "
            f"or `{self._repair_cmd(v.name)}` where bucket versioning keeps an intact copy"
        )
        try:
            if v.kind == "file" and v.size > (16 << 20):
                import tempfile

                with tempfile.TemporaryDirectory(prefix="mlstack-verify-") as tmp:
                    blob = Path(tmp) / "blob"
                    self.backend.get_to_file(v.digest, v.size, blob)
                    self._check_size(v, blob.stat().st_size)
            else:
                data = self.backend.get_bytes(v.digest)
                self._check_size(v, len(data))
                if v.kind == "object":
                    self._unpickle_ok(v, data, True)
        except (BlobMissing, BlobCorrupt) as exc:
            raise type(exc)(f"{v.ref}: {exc.message}", fix=fix) from None
        return v

    def scan(
        self,
        names: list[str] | None = None,
        *,
        sample: int | None = None,
        repair: bool = False,
        deadline: float | None = None,
    ) -> Any:
        """Check every record, alias and blob of ``names`` (default: the whole store); see ``_scan.scan``."""
        from mlstack.artifacts._scan import scan

        return scan(self, names=names, sample=sample, repair=repair, deadline=deadline)

    # ------------------------------------------------------------------ lineage
    def lineage_text(self, ref: str | Version, depth: int = 3) -> str:
        """A readable lineage tree: the version, its run and code, and what it was made from."""
        v = self.show(ref)
        lines = [_describe(v)]
        self._lineage_lines(v, lines, "  ", depth, {(v.name, v.version)})
        return "\n".join(lines)

    def _lineage_lines(self, v: Version, lines: list[str], indent: str, depth: int, seen: set[Any]) -> None:
        if not v.inputs:
            lines.append(f"{indent}(no recorded inputs)")
            return
        for i in v.inputs:
            label = f"{i.get('type')} {i.get('name')}" + (f"@{i['version']}" if i.get("version") else "")
            if i.get("source"):
                label += f"  [{i['source']}]"
            lines.append(f"{indent}<- {label}")
            if i.get("type") == "artifact" and i.get("version") and depth > 1:
                key = (i["name"], int(i["version"]))
                if key in seen:
                    continue
                seen.add(key)
                with contextlib.suppress(ArtifactNotFound, UsageError, ValueError, IntegrityError):
                    parent = self.resolve(f"{i['name']}@{i['version']}")
                    if parent.inputs:
                        self._lineage_lines(parent, lines, indent + "   ", depth - 1, seen)


def _with_aliases(v: Version, aliases: list[str]) -> Version:
    return replace(
        v,
        metadata=dict(v.metadata),
        inputs=[dict(i) for i in v.inputs],
        run=dict(v.run),
        aliases=list(aliases),
        unchanged=False,
    )


def reason_of(exc: MlstackError) -> str:
    """The short reason of an error about a document (its ref and key are said elsewhere)."""
    return str(getattr(exc, "reason", None) or exc.message)


def _report(found: list[Problem], problems: list[Problem] | None) -> None:
    """Hand skipped documents to the caller's list, or warn when the caller did not ask for one."""
    if problems is not None:
        problems.extend(found)
        return
    for p in found:
        warnings.warn(f"skipped {p.ref}: {p.message} (fix: {p.fix})", IntegrityWarning, stacklevel=3)


def _run_all(pool: cf.ThreadPoolExecutor, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(x) for x in items]`` on ``pool``; on the first failure the tasks not yet started are cancelled
    and the running ones are waited for, so nothing is still writing when the error is raised."""
    stop = threading.Event()

    def guarded(x: Any) -> Any:
        if stop.is_set():
            return None  # a task that started after a failure: do nothing
        try:
            return fn(x)
        except BaseException:
            stop.set()
            raise

    futures = [pool.submit(guarded, x) for x in items]
    cf.wait(futures, return_when=cf.FIRST_EXCEPTION)
    if stop.is_set():
        for f in futures:
            f.cancel()
    cf.wait(futures)  # whatever was running has finished
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            raise f.exception()  # type: ignore[misc]
    return [f.result() for f in futures]


def _commit_tree(stage: Path, out: Path, files: list[PurePosixPath]) -> None:
    """Move a verified tree from ``stage`` into ``out``.

    A new or empty ``out`` is replaced by ``stage`` in one rename. Into an existing folder the files are
    merged: every conflict (a file where a folder must go, or the reverse) is found before anything moves,
    files already there are set aside inside ``stage`` and put back if a later move fails, so the folder
    ends up with the whole version or as it was. Files in ``out`` that the version does not have are kept.
    """
    try:
        os.rename(stage, out)  # rename(2) replaces a missing or empty directory atomically
        return
    except OSError:
        pass  # a non-empty folder: merge
    for rel in files:
        for i in range(1, len(rel.parts)):
            p = out.joinpath(*rel.parts[:i])
            if p.exists() and not p.is_dir():
                raise UsageError(
                    f"cannot write {rel} into {out}: {p} is a file where the artifact has a folder",
                    fix="move it away, or get the artifact into a new folder",
                )
        target = out / rel
        if target.is_dir():
            raise UsageError(
                f"cannot write {rel} into {out}: {target} is a folder where the artifact has a file",
                fix="move it away, or get the artifact into a new folder",
            )
    aside = stage / f".mlstack-replaced-{uuid.uuid4().hex[:8]}"
    aside.mkdir()
    done: list[tuple[Path, Path | None]] = []  # (target, its previous file set aside, if any)
    made: list[Path] = []
    try:
        for i, rel in enumerate(files):
            target = out / rel
            for j in range(1, len(rel.parts)):
                p = out.joinpath(*rel.parts[:j])
                if not p.exists():
                    p.mkdir()
                    made.append(p)
            old: Path | None = None
            if target.exists() or target.is_symlink():
                old = aside / str(i)
                os.rename(target, old)
            done.append((target, old))
            os.rename(stage / rel, target)
    except BaseException:
        for target, old in reversed(done):
            with contextlib.suppress(OSError):
                if old is not None:
                    os.replace(old, target)
                else:
                    target.unlink(missing_ok=True)
        for p in reversed(made):
            with contextlib.suppress(OSError):
                p.rmdir()
        raise


def _describe(v: Version) -> str:
    parts = [f"{v.ref}", v.kind, human_size(v.size), f"sha256:{v.short_digest}"]
    if v.aliases:
        parts.append("aliases: " + ", ".join(v.aliases))
    head = "  ".join(parts)
    who = f"created {v.created} by run {v.run_id or '?'}"
    if v.code_version:
        who += f" at code {v.code_version}"
    if v.run.get("pipeline"):
        who += f" (pipeline {v.run['pipeline']}" + (f", step {v.run['step']})" if v.run.get("step") else ")")
    return f"{head}\n  {who}"


def _code_version() -> str | None:
    from mlstack import run as _run

    return _run.code_version()


__all__ = ["MIN_PREFIX", "ArtifactStore"]
