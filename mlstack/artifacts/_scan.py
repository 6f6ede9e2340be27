"""Scan a store for damage: every version record, alias and blob (or a bounded sample of the blobs), each
problem with the command that fixes it, and optionally repair what can be repaired from the store itself.

Used by ``mlstack artifacts verify [NAME] [--repair] [--sample N]`` and ``mlstack doctor --deep``.

What ``repair`` can do without the original files:
- an alias whose digest is held by one of its artifact's versions is moved back onto that version;
- on S3 with bucket versioning, a corrupted blob, record or alias document is replaced by its newest intact
  noncurrent version (a conditional copy keyed on the damaged object's ETag).
Everything else is reported with its fix: ``mlstack artifacts put NAME PATH`` with the original content
rewrites a damaged blob (a put checks the stored copy of content that already exists), and a damaged record
is restored from a backup.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlstack.artifacts._model import (
    OBJECT_MAGIC,
    AliasDoc,
    Problem,
    RecordError,
    Version,
    alias_key,
    blob_key,
    check_alias,
    check_name,
    version_key,
)
from mlstack.artifacts._store import reason_of
from mlstack.errors import IntegrityError, MlstackError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from mlstack.artifacts._store import ArtifactStore


@dataclass
class ScanReport:
    """What a scan checked and found."""

    location: str
    problems: list[Problem] = field(default_factory=list)
    names: int = 0
    versions: int = 0
    aliases: int = 0
    blobs_total: int = 0
    blobs_checked: int = 0
    complete: bool = True  # False: a sample, or the deadline stopped it
    elapsed_s: float = 0.0

    @property
    def unrepaired(self) -> list[Problem]:
        return [p for p in self.problems if not p.repaired]

    @property
    def ok(self) -> bool:
        return not self.unrepaired

    def summary(self) -> str:
        part = "" if self.complete else " (not all: a sample or the time limit)"
        fixed = sum(p.repaired for p in self.problems)
        return (
            f"checked {self.names} names, {self.versions} versions, {self.aliases} aliases and "
            f"{self.blobs_checked} of {self.blobs_total} blobs{part} in {self.location}: "
            f"{len(self.problems)} problems" + (f", {fixed} repaired" if fixed else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "location": self.location,
            "ok": self.ok,
            "complete": self.complete,
            "checked": {
                "names": self.names,
                "versions": self.versions,
                "aliases": self.aliases,
                "blobs": self.blobs_checked,
                "blobs_total": self.blobs_total,
            },
            "problems": [p.to_dict() for p in self.problems],
            "repaired": sum(p.repaired for p in self.problems),
            "elapsed_s": round(self.elapsed_s, 3),
        }


@dataclass
class _Use:
    """A version (and, for folders, a file in it) that refers to a blob."""

    ref: str
    name: str
    path: str | None  # file name (kind file) or path inside a folder
    in_folder: bool = False


def scan(
    st: ArtifactStore,
    *,
    names: list[str] | None = None,
    sample: int | None = None,
    repair: bool = False,
    deadline: float | None = None,
    seed: int | None = None,
) -> ScanReport:
    """Check ``names`` (default: every artifact and every blob in the store).

    ``sample``: check at most this many blobs, chosen at random (records and aliases are all checked: they
    are small). ``deadline`` (``time.monotonic()``): stop checking blobs then, and say so.
    """
    start = time.monotonic()
    rep = ScanReport(st.location)
    backend = st.backend
    s3 = backend.kind == "s3"
    whole = names is None
    if names is None:
        names = backend.list_children("artifacts")
    uses: dict[str, list[_Use]] = {}
    objects: list[Version] = []

    def use(digest: str, u: _Use) -> None:
        uses.setdefault(digest, []).append(u)

    for name in names:
        try:
            check_name(name)
        except UsageError:
            rep.problems.append(
                Problem(
                    "name",
                    repr(name),
                    f"artifacts/{name}/",
                    f"the artifact folder {name!r} has a name this release refuses",
                    "copy what you need out of it, then delete the folder",
                )
            )
            continue
        rep.names += 1
        numbers = st._numbers(name)
        versions: dict[int, Version] = {}
        found: list[Problem] = []
        one = functools.partial(_check_record, st, name, found=found, repair=repair, s3=s3)
        checked = list(st._pool.map(one, numbers))
        rep.problems.extend(sorted(found, key=lambda p: p.key))
        for n, v in zip(numbers, checked, strict=True):
            if v is None:
                continue
            rep.versions += 1
            versions[n] = v
            if v.kind == "dir":
                use(v.digest, _Use(v.ref, name, None))
                try:
                    for e in st._listing(v):
                        use(e["digest"], _Use(v.ref, name, e["path"], in_folder=True))
                except IntegrityError as exc:
                    if not any(p.key == blob_key(v.digest) for p in rep.problems):
                        rep.problems.append(
                            Problem("record", v.ref, version_key(name, n), exc.message, exc.fix or "")
                        )
            else:
                use(v.digest, _Use(v.ref, name, v.filename))
                if v.kind == "object":
                    objects.append(v)
        prefix = f"artifacts/{name}/aliases/"
        for key in [k for k in backend.list_keys(prefix) if k.endswith(".json")]:
            rep.aliases += 1
            _check_alias(st, name, key[len(prefix) : -len(".json")], numbers, versions, rep, repair, s3)

    # blobs: every one referenced, plus (for a whole-store scan) every other blob under blobs/
    digests = sorted(uses)
    if whole:
        digests = sorted(set(digests) | set(backend.blob_digests()))
    rep.blobs_total = len(digests)
    if sample is not None and sample < len(digests):
        digests = random.Random(seed).sample(digests, sample)
        rep.complete = False

    def check(d: str) -> tuple[str, str] | None:
        if deadline is not None and time.monotonic() > deadline:
            return None
        return d, backend.check_blob(d)

    bad: list[tuple[str, str]] = []
    for got in st._pool.map(check, digests):
        if got is None:
            rep.complete = False
            continue
        rep.blobs_checked += 1
        if got[1] != "ok":
            bad.append(got)
    for d, state in bad:
        repaired = False
        if repair and state == "corrupt" and backend.restore_blob(d):
            repaired = backend.check_blob(d) == "ok"
        rep.problems.append(_blob_problem(st, d, state, uses.get(d, []), repaired, repair, s3))
    bad_digests = {d for d, _ in bad}
    for v in objects:  # kind bound to content: an object's blob must carry the pickle header
        if v.digest in bad_digests or (deadline is not None and time.monotonic() > deadline):
            continue
        try:
            data = backend.get_bytes(v.digest)
            st._check_size(v, len(data))
            if v.sealed and not data.startswith(OBJECT_MAGIC):
                raise st._inconsistent(v, "it says pickled object, but the content was not stored as one")
        except IntegrityError as exc:
            rep.problems.append(
                Problem("record", v.ref, version_key(v.name, v.version), exc.message, exc.fix or "")
            )
    rep.elapsed_s = time.monotonic() - start
    return rep


def _check_record(
    st: ArtifactStore, name: str, n: int, found: list[Problem], repair: bool, s3: bool
) -> Version | None:
    """Read and check one record (on the store's pool: list.append is atomic, so ``found`` is shared)."""
    key = version_key(name, n)
    try:
        return st._record(name, n, fresh=True)
    except IntegrityError as exc:
        problem = Problem("record", f"{name}@{n}", key, reason_of(exc), exc.fix or "")
    if repair and st.backend.restore_doc(key, _valid(lambda b: Version.from_record(b, key=key))):
        try:
            v = st._record(name, n, fresh=True)
        except IntegrityError:
            v = None
        if v is not None:
            problem.repaired = True
            problem.fix = "restored the newest intact copy from bucket versioning"
            found.append(problem)
            return v
    if repair and not problem.repaired:
        problem.fix = ("no intact earlier copy in bucket versioning; " if s3 else "") + problem.fix
    found.append(problem)
    return None


def _check_alias(
    st: ArtifactStore,
    name: str,
    alias: str,
    numbers: list[int],
    versions: dict[int, Version],
    rep: ScanReport,
    repair: bool,
    s3: bool,
) -> None:
    key = alias_key(name, alias)
    ref = f"{name}:{alias}"
    move = f"mlstack artifacts alias {name} VERSION {alias}"
    try:
        check_alias(alias)
    except UsageError as exc:
        rep.problems.append(Problem("alias", ref, key, exc.message, "delete the document; set a valid alias"))
        return
    doc: AliasDoc | None = None
    try:
        got = st._alias_doc(name, alias)
        doc = got[0] if got else None
        why = "" if doc is None else None
    except IntegrityError as exc:
        why = reason_of(exc)
    if doc is not None:
        target = versions.get(doc.version)
        if target is not None and target.digest == doc.digest:
            return
        holders = [v for v in versions.values() if v.digest == doc.digest]
        if doc.version not in numbers:
            why = f"alias {ref} points at version {doc.version}, which does not exist"
        elif target is None:
            why = f"alias {ref} points at version {doc.version}, whose record cannot be trusted"
        else:
            why = (
                f"alias {ref} says version {doc.version} holds sha256:{doc.digest[:16]}…, but that version "
                f"holds sha256:{target.digest[:16]}…"
            )
        if holders:
            right = max(holders, key=lambda v: v.version)
            if repair:
                st.set_alias(name, right.version, alias)
                rep.problems.append(
                    Problem(
                        "alias", ref, key, why, f"moved back to {right.ref}, which holds its digest", True
                    )
                )
                return
            rep.problems.append(
                Problem(
                    "alias",
                    ref,
                    key,
                    why,
                    f"`mlstack artifacts verify {name} --repair` moves it back to "
                    f"{right.ref} (which holds that digest), or `{move}`",
                )
            )
            return
    if why is None:  # pragma: no cover - absent between list and read
        return
    if repair and s3:

        def good(b: bytes) -> bool:
            d = AliasDoc.parse(b, name, alias)
            v = versions.get(d.version)
            return v is not None and v.digest == d.digest

        if st.backend.restore_doc(key, _valid(good)):
            rep.problems.append(
                Problem(
                    "alias", ref, key, why, "restored the newest intact copy from bucket versioning", True
                )
            )
            return
    prefix = "no intact earlier copy in bucket versioning; " if repair and s3 else ""
    rep.problems.append(Problem("alias", ref, key, why, f"{prefix}point it again: `{move}`"))


def _valid(parse: Callable[[bytes], Any]) -> Callable[[bytes], bool]:
    def ok(data: bytes) -> bool:
        try:
            return parse(data) is not False
        except (RecordError, MlstackError, ValueError):
            return False

    return ok


def _blob_problem(
    st: ArtifactStore, digest: str, state: str, users: list[_Use], repaired: bool, tried: bool, s3: bool
) -> Problem:
    short = f"sha256:{digest[:12]}"
    used = ", ".join(u.ref + (f" ({u.path})" if u.path else "") for u in users[:5]) or "no version (unused)"
    if len(users) > 5:
        used += f" and {len(users) - 5} more"
    message = f"blob {short} is {state}; used by {used}"
    if repaired:
        return Problem(
            "blob", short, blob_key(digest), message, "restored an intact copy from bucket versioning", True
        )
    if users:
        u = users[0]
        what = (
            f"the folder holding {u.path}: `mlstack artifacts put {u.name} FOLDER`"
            if u.in_folder
            else f"`mlstack artifacts put {u.name} {u.path or 'PATH'}`"
        )
        fix = f"put the original content again, {what} (a put of content that exists rewrites a damaged copy)"
    else:
        fix = "nothing uses it; a put of the same content rewrites it"
    if s3 and not tried:
        fix += "; or `mlstack artifacts verify --repair` restores it where bucket versioning keeps a copy"
    elif s3:
        fix = "no intact earlier copy in bucket versioning; " + fix
    return Problem("blob", short, blob_key(digest), message, fix)
