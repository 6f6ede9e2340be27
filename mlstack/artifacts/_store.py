"""The artifact store: named, versioned, aliased artifacts with lineage, over a blob/document backend.

Guarantees (see docs/artifacts.md):
- content is addressed by SHA-256 and written once; putting unchanged content writes nothing;
- a version record is created only after all of its blobs exist, and never changes;
- version numbers are allocated by create-once records, so concurrent writers never share a number;
- an alias moves by compare-and-swap after checking its target exists; no move is lost;
- every read is hashed and compared with the recorded digest.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import pickle as _pickle
import random
import stat
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mlstack.artifacts._base import Backend, Progress
from mlstack.artifacts._model import (
    MIN_PREFIX,
    Ref,
    Version,
    alias_key,
    check_alias,
    check_name,
    human_size,
    now_iso,
    parse_ref,
    version_key,
    version_number_of_key,
    versions_prefix,
)
from mlstack.errors import ArtifactNotFound, ConflictError, IntegrityError, UsageError

WORKERS = 16
PROGRESS_MIN = 64 << 20  # show a progress bar from this many bytes, on a terminal
ALIAS_HISTORY = 100
MAX_ATTEMPTS = 200


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

    def _record(self, name: str, number: int) -> Version | None:
        with self._lock:
            cached = self._records.get((name, number))
        if cached is not None:
            return cached
        doc = self.backend.read_doc(version_key(name, number))
        if doc is None:
            return None
        try:
            v = Version.from_record(doc[0])
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"version record {name}@{number} in {self.location} is unreadable: {exc}",
                fix="restore the record from a backup or bucket versioning",
            ) from None
        with self._lock:
            self._records[(name, number)] = v
        return v

    def _records_of(self, name: str, numbers: Sequence[int]) -> list[Version]:
        got = list(self._pool.map(lambda n: self._record(name, n), numbers))
        return [v for v in got if v is not None]

    def _unknown(self, name: str) -> ArtifactNotFound:
        return ArtifactNotFound(
            f"no artifact named {name!r} in {self.location}",
            fix="`mlstack artifacts ls` lists the names; put one with `mlstack artifacts put NAME PATH`",
        )

    def aliases(self, name: str, *, parallel: bool = True) -> dict[str, int]:
        """Alias -> version number for one artifact name (``parallel=False`` inside pool tasks: no nesting)."""
        prefix = f"artifacts/{check_name(name)}/aliases/"
        keys = [k for k in self.backend.list_keys(prefix) if k.endswith(".json")]

        def read(k: str) -> tuple[str, int] | None:
            doc = self.backend.read_doc(k)
            if doc is None:
                return None
            d = json.loads(doc[0])
            return d["alias"], int(d["version"])

        found = self._pool.map(read, keys) if parallel and len(keys) > 1 else map(read, keys)
        return dict(sorted(x for x in found if x is not None))

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every recorded move of an alias (oldest first; the last ``ALIAS_HISTORY`` are kept)."""
        doc = self.backend.read_doc(alias_key(check_name(name), check_alias(alias)))
        if doc is None:
            return []
        d = json.loads(doc[0])
        return [
            *d.get("history", []),
            {k: d[k] for k in ("version", "digest", "updated", "run_id") if k in d},
        ]

    def resolve(self, ref: str | Ref | Version) -> Version:
        """The version a reference names (latest when it names no version or alias)."""
        if isinstance(ref, Version):
            return ref
        r = parse_ref(ref) if isinstance(ref, str) else ref
        if r.alias:
            doc = self.backend.read_doc(alias_key(r.name, r.alias))
            if doc is None:
                if not self._numbers(r.name):
                    raise self._unknown(r.name)
                known = ", ".join(self.aliases(r.name)) or "none"
                raise ArtifactNotFound(
                    f"artifact {r.name!r} has no alias {r.alias!r} (aliases: {known})",
                    fix=f"set it with `mlstack artifacts alias {r.name} VERSION {r.alias}`",
                )
            number = int(json.loads(doc[0])["version"])
            v = self._record(r.name, number)
            if v is None:
                raise IntegrityError(
                    f"alias {r} points at version {number}, which does not exist",
                    fix=f"move it: `mlstack artifacts alias {r.name} VERSION {r.alias}`",
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
            matches = [v for v in self._records_of(r.name, nums) if v.digest.startswith(r.digest_prefix)]
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
        if v is None:  # pragma: no cover - listed but unreadable
            raise self._unknown(r.name)
        return v

    def show(self, ref: str | Version) -> Version:
        """A version's record with its current aliases filled in."""
        v = self.resolve(ref)
        aliases = [a for a, n in self.aliases(v.name).items() if n == v.version]
        return _with_aliases(v, aliases)

    def ls(self, name: str | None = None) -> list[Version]:
        """All versions of ``name`` (newest first), or the latest version of every artifact (by name)."""
        if name is not None:
            check_name(name)
            nums = self._numbers(name)
            if not nums:
                raise self._unknown(name)
            aliases = self.aliases(name)
            out = self._records_of(name, list(reversed(nums)))
            return [_with_aliases(v, [a for a, n in aliases.items() if n == v.version]) for v in out]

        def latest(n: str) -> Version | None:
            nums = self._numbers(n)
            if not nums:
                return None
            v = self._record(n, nums[-1])
            if v is None:
                return None
            # runs on the pool: read aliases sequentially, since waiting on nested pool tasks can deadlock
            return _with_aliases(v, [f"{a}@{num}" for a, num in self.aliases(n, parallel=False).items()])

        names = self.backend.list_children("artifacts")
        return [v for v in self._pool.map(latest, names) if v is not None]

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
        """Store a file, a directory, bytes or (with ``pickle=True``) a Python object as a new version."""
        check_name(name)
        if alias is not None:
            check_alias(alias)
        meta = _jsonable(metadata or {})
        from mlstack import run as _run

        r = _run.current()
        lineage = self._lineage(r, inputs, name)
        latest = self._latest(name)
        reuse: Callable[[str], bool] = lambda d: latest is not None and d == latest.digest  # noqa: E731
        filename: str | None = None
        files: int | None = None
        if pickle:
            data = _pickle.dumps(obj, protocol=_pickle.HIGHEST_PROTOCOL)
            kind = "object"
            digest, size = self._known(data, reuse)[0], len(data)
        elif isinstance(obj, bytes | bytearray | memoryview):
            data = bytes(obj)
            kind = "bytes"
            digest, size = self._known(data, reuse)[0], len(data)
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
            and latest.digest == digest
            and latest.kind == kind
            and (metadata is None or latest.metadata == meta)
        ):
            v = _with_aliases(latest, [])  # unchanged: no new version, nothing written
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
                latest.version if latest else 0,
            )
        unchanged = v.unchanged
        # the run record lists what each step wrote (mlstack.runs)
        r.record_output(
            "artifact", name, str(v.version), digest=f"sha256:{v.digest}", unchanged=unchanged or None
        )
        out = self.set_alias(name, v.version, alias) if alias is not None else _with_aliases(v, [])
        out.unchanged = unchanged
        return out

    def _known(self, data: bytes, reuse: Callable[[str], bool]) -> tuple[str, bool]:
        d = hashlib.sha256(data).hexdigest()
        return (d, False) if reuse(d) else self.backend.put_bytes(data, d)

    def _latest(self, name: str) -> Version | None:
        nums = self._numbers(name)
        return self._record(name, nums[-1]) if nums else None

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

    def _create_version(self, v: Version, after: int) -> Version:
        """Claim the next free version number with a create-once record; retry on a lost race."""
        number = after + 1
        for _ in range(MAX_ATTEMPTS):
            v.version = number
            if self.backend.create_doc(version_key(v.name, number), v.record()):
                break
            existing = self._record(v.name, number)
            if existing is not None and existing.put_id == v.put_id:
                break  # our own create, retried after its response was lost
            nums = self._numbers(v.name)
            number = max(number, nums[-1] if nums else 0) + 1
        else:  # pragma: no cover - needs 200 lost races in a row
            raise ConflictError(f"could not allocate a version of {v.name!r}", fix="retry")
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
            with contextlib.suppress(IntegrityError):
                known = {e["digest"] for e in json.loads(self.backend.get_bytes(latest.digest))["files"]}
        total = sum(p.stat().st_size for _, p in files)
        with _progress(total, f"put {root.name}/") as prog:

            def one(item: tuple[str, Path]) -> dict[str, Any]:
                rel, p = item
                digest, size, _ = self.backend.put_file(p, skip=known.__contains__, progress=prog)
                mode = 0o755 if os.access(p, os.X_OK) else 0o644
                return {"path": rel, "digest": digest, "size": size, "mode": mode}

            entries = list(self._pool.map(one, files))
        listing = json.dumps({"schema": 1, "files": entries}, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(listing).hexdigest()
        if latest is None or latest.digest != digest:  # an unchanged folder writes nothing at all
            self.backend.put_bytes(listing, digest)
        return digest, sum(e["size"] for e in entries), len(entries)

    def set_alias(self, name: str, version: int | str | Version, alias: str) -> Version:
        """Point ``name:alias`` at a version (a number, "3", "v3", a digest prefix or a Version) by CAS."""
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
                d = json.loads(cur[0])
                previous = d.get("version") if d.get("put_id") != put_id else previous
                if attempt and d.get("put_id") == put_id:
                    break  # our write landed; only its response was lost
                history = [
                    *d.get("history", []),
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
            if self.backend.replace_doc(
                key, json.dumps(doc, sort_keys=True).encode(), cur[1] if cur else None
            ):
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
        aliases = [a for a, n in self.aliases(name).items() if n == target.version]
        return _with_aliases(target, aliases)

    # ------------------------------------------------------------------ reading content
    def _record_read(self, v: Version) -> None:
        from mlstack import run as _run

        _run.record_input(
            "artifact", v.name, str(v.version), source=self.location, digest=f"sha256:{v.digest}"
        )

    def get(self, ref: str | Version, dest: str | os.PathLike[str]) -> Path:
        """Write a version to ``dest`` (verified) and return the path written.

        A file goes to ``dest``, or into it under its original name when ``dest`` is an existing folder;
        a directory is written into ``dest`` (created). Bytes and objects are written as a file.
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
                with _progress(v.size, f"get {v.ref}") as prog:
                    self.backend.get_to_file(v.digest, v.size, tmp, prog)
                os.replace(tmp, out)
            finally:
                tmp.unlink(missing_ok=True)
        self._record_read(v)
        return out

    def _get_dir(self, v: Version, out: Path) -> None:
        listing = json.loads(self.backend.get_bytes(v.digest))["files"]
        out.mkdir(parents=True, exist_ok=True)
        for d in {(out / _safe_relpath(e["path"])).parent for e in listing}:
            d.mkdir(parents=True, exist_ok=True)
        with _progress(v.size, f"get {v.ref}") as prog:

            def one(e: dict[str, Any]) -> None:
                final = out / _safe_relpath(e["path"])
                tmp = final.with_name(f".{final.name}.mlstack-{uuid.uuid4().hex[:8]}")
                try:
                    self.backend.get_to_file(e["digest"], int(e["size"]), tmp, prog)
                    os.chmod(tmp, int(e.get("mode", 0o644)))
                    os.replace(tmp, final)
                finally:
                    tmp.unlink(missing_ok=True)

            list(self._pool.map(one, listing))

    def load(self, ref: str | Version) -> Any:
        """A version's content in memory: bytes, or the object for versions put with ``pickle=True``."""
        v = self.resolve(ref)
        if v.kind == "dir":
            raise UsageError(
                f"{v.ref} is a directory", fix=f"use get({v.ref!r}, dest) to write it to a folder"
            )
        data = self.backend.get_bytes(v.digest)
        self._record_read(v)
        if v.kind == "object":
            return _pickle.loads(data)
        return data

    def verify(self, ref: str | Version) -> Version:
        """Read a version's content end to end and check every digest (IntegrityError on a mismatch)."""
        v = self.resolve(ref)
        data = self.backend.get_bytes(v.digest) if v.kind != "file" or v.size <= (16 << 20) else None
        if v.kind == "file" and data is None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                self.backend.get_to_file(v.digest, v.size, Path(tmp) / "blob")
        if v.kind == "dir" and data is not None:
            for e in json.loads(data)["files"]:
                self.backend.get_bytes(e["digest"])
        return v

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
                with contextlib.suppress(ArtifactNotFound, UsageError, ValueError):
                    parent = self.resolve(f"{i['name']}@{i['version']}")
                    if parent.inputs:
                        self._lineage_lines(parent, lines, indent + "   ", depth - 1, seen)


def _with_aliases(v: Version, aliases: list[str]) -> Version:
    out = Version.from_record(json.loads(v.record()))
    out.aliases = aliases
    return out


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
