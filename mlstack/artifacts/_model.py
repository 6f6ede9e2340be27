"""What an artifact version is, how references are written, and the key layout (stdlib only: stays light).

Layout under the store's root (a folder, or ``s3://bucket/prefix``)::

    blobs/sha256/<d[:2]>/<digest>                   content, written once, never changed
    artifacts/<name>/versions/v<0000000001>.json    one version record each, written once
    artifacts/<name>/aliases/<alias>.json           where an alias points, moved by compare-and-swap

A directory's digest is the SHA-256 of its listing (a canonical JSON blob of relative path -> file digest).

Records and alias documents written by this release are *sealed*: they carry ``check``, the SHA-256 of their
own canonical JSON, so a changed field (by hand, by a bad disk or by a bit flipped in transit) is caught on
read. A pickled object's blob starts with :data:`OBJECT_MAGIC`, so the content address itself says "this was
stored as a pickle": a record whose ``kind`` was changed to ``object`` cannot make ``load()`` unpickle bytes
that were put as bytes or a file. Records of the first release (schema 1) carry no seal; see
``docs/artifacts.md`` for how they are checked.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlstack.errors import UsageError

SCHEMA = 2  # 1: the first release (no seal); 2: sealed records and alias documents
KINDS = ("file", "dir", "bytes", "object")
# full-match patterns (``fullmatch``, and no ``$``, which also matches before a trailing newline)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
HEX_RE = re.compile(r"[0-9a-f]{4,64}")
DIGEST_RE = re.compile(r"[0-9a-f]{64}")
VERSION_RE = re.compile(r"v?([0-9]{1,9})")
VERSION_KEY_RE = re.compile(r"v(\d{10})\.json")
MIN_PREFIX = 4
# the first bytes of every blob holding a pickled object (part of its content address); see load()
OBJECT_MAGIC = b"mlstack-object/pickle\n"


class RecordError(ValueError):
    """A version record or alias document that cannot be trusted (unparsable, inconsistent, seal broken)."""


def seal_of(d: dict[str, Any]) -> str:
    """The seal of a document: SHA-256 of its canonical JSON without the ``check`` field."""
    body = {k: v for k, v in d.items() if k != "check"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def seal_doc(d: dict[str, Any]) -> bytes:
    """``d`` as stored: canonical JSON with its seal."""
    out = {**{k: v for k, v in d.items() if k != "check"}, "check": f"sha256:{seal_of(d)}"}
    return json.dumps(out, sort_keys=True, separators=(",", ":")).encode()


def parse_doc(data: bytes | str) -> dict[str, Any]:
    """A stored JSON document, its seal checked when it has one (RecordError if not trustworthy)."""
    try:
        d = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not valid JSON ({exc})") from None
    if not isinstance(d, dict):
        raise RecordError(f"not a JSON object (a {type(d).__name__})")
    if "check" in d:
        check = d["check"]
        if not isinstance(check, str) or check != f"sha256:{seal_of(d)}":
            raise RecordError("its seal (check) does not match its content: a field was changed")
    return d


def _field(d: dict[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise RecordError(f"field {key!r} is missing")
    v = d[key]
    if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
        raise RecordError(f"field {key!r} is {v!r}, not a {getattr(kind, '__name__', kind)}")
    return v


def _digest_field(d: dict[str, Any], key: str = "digest") -> str:
    raw = _field(d, key, str)
    hexd = raw.split(":", 1)[1] if raw.startswith("sha256:") else raw
    if not DIGEST_RE.fullmatch(hexd):
        raise RecordError(f"field {key!r} is {raw!r}, not a SHA-256 digest")
    return hexd


@dataclass(frozen=True)
class AliasDoc:
    """Where an alias points: the version number and the digest it held when the alias was moved there."""

    alias: str
    name: str
    version: int
    digest: str
    raw: dict[str, Any]
    sealed: bool

    @classmethod
    def parse(cls, data: bytes, name: str, alias: str) -> AliasDoc:
        d = parse_doc(data)
        number = _field(d, "version", int)
        if number < 1:
            raise RecordError(f"field 'version' is {number}, not a version number")
        doc = cls(
            alias=_field(d, "alias", str),
            name=_field(d, "name", str),
            version=number,
            digest=_digest_field(d),
            raw=d,
            sealed="check" in d,
        )
        if doc.name != name or doc.alias != alias:
            raise RecordError(f"it is the document of {doc.name}:{doc.alias}, stored under {name}:{alias}")
        return doc


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise UsageError(
            f"artifact name {name!r} is not valid",
            fix="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise UsageError(
            f"alias {alias!r} is not valid",
            fix="use 1-64 letters, digits, '.', '_' or '-', starting with a letter (e.g. production, staging)",
        )
    return alias


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest[:2]}/{digest}"


def versions_prefix(name: str) -> str:
    return f"artifacts/{name}/versions/"


def version_key(name: str, number: int) -> str:
    return f"{versions_prefix(name)}v{number:010d}.json"


def version_number_of_key(key: str) -> int | None:
    base = key.rsplit("/", 1)[-1]
    m = VERSION_KEY_RE.fullmatch(base)
    return int(m.group(1)) if m else None


def alias_key(name: str, alias: str) -> str:
    return f"artifacts/{name}/aliases/{alias}.json"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Ref:
    """A parsed reference: ``name``, ``name@3`` / ``name@v3``, ``name@<digest prefix>``, ``name:alias``."""

    name: str
    number: int | None = None
    digest_prefix: str | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.number is not None:
            return f"{self.name}@{self.number}"
        if self.digest_prefix:
            return f"{self.name}@{self.digest_prefix}"
        if self.alias:
            return f"{self.name}:{self.alias}"
        return self.name


def parse_ref(ref: str) -> Ref:
    """Parse a reference string; every malformed form is a UsageError naming the value and the forms."""
    forms = "write NAME, NAME@VERSION (e.g. model@3), NAME@<digest prefix, 4+ hex chars> or NAME:ALIAS"
    if not isinstance(ref, str) or not ref:
        raise UsageError(f"artifact reference {ref!r} is empty or not a string", fix=forms)
    if "@" in ref:
        name, _, ver = ref.partition("@")
        check_name(name)
        if ver.startswith("sha256:"):
            ver = ver[len("sha256:") :]
            if not HEX_RE.fullmatch(ver.lower()):
                raise UsageError(f"{ref!r}: {ver!r} is not a digest prefix of 4+ hex characters", fix=forms)
            return Ref(name, digest_prefix=ver.lower())
        m = VERSION_RE.fullmatch(ver)
        if m:
            return Ref(name, number=int(m.group(1)))
        if HEX_RE.fullmatch(ver.lower()):
            return Ref(name, digest_prefix=ver.lower())
        raise UsageError(f"{ref!r}: {ver!r} is neither a version number nor a digest prefix", fix=forms)
    if ":" in ref:
        name, _, alias = ref.partition(":")
        check_name(name)
        return Ref(name, alias=check_alias(alias))
    return Ref(check_name(ref))


@dataclass
class Version:
    """One immutable version of a named artifact, with its lineage."""

    name: str
    version: int
    digest: str
    size: int
    kind: str
    created: str
    run_id: str | None = None
    code_version: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    filename: str | None = None  # the original file name (kind "file")
    files: int | None = None  # number of files (kind "dir")
    run: dict[str, Any] = field(default_factory=dict)  # pipeline / step, when the run had them
    aliases: list[str] = field(default_factory=list)  # filled in by show/ls; not stored in the record
    put_id: str = ""  # identifies the writer, so a retried create recognises its own record
    unchanged: bool = False  # set by put when the content matched the latest version (no new version)
    sealed: bool = True  # False for records of the first release (schema 1), which carry no seal

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def short_digest(self) -> str:
        return self.digest[:12]

    def __str__(self) -> str:
        return self.ref

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "ref": self.ref,
            "kind": self.kind,
            "digest": f"sha256:{self.digest}",
            "size": self.size,
            "created": self.created,
            "run_id": self.run_id,
            "code_version": self.code_version,
            "metadata": dict(self.metadata),
            "inputs": [dict(i) for i in self.inputs],
            "aliases": list(self.aliases),
        }
        if self.filename is not None:
            d["filename"] = self.filename
        if self.files is not None:
            d["files"] = self.files
        if self.run:
            d["run"] = dict(self.run)
        return d

    def record(self) -> bytes:
        """The stored JSON record, sealed (no aliases: they move, the record does not)."""
        d = self.to_dict()
        d.pop("aliases")
        d.pop("ref")
        d["schema"] = SCHEMA
        d["put_id"] = self.put_id
        return seal_doc(d)

    @classmethod
    def from_record(cls, data: bytes | str | dict[str, Any], key: str | None = None) -> Version:
        """Parse a stored record; RecordError when it is unreadable, inconsistent or its seal is broken.

        ``key``: where it was read from; the record must name the same artifact and version number.
        """
        d = parse_doc(data) if isinstance(data, bytes | bytearray | str) else data
        try:
            v = cls(
                name=_field(d, "name", str),
                version=_field(d, "version", int),
                digest=_digest_field(d),
                size=_field(d, "size", int),
                kind=_field(d, "kind", str),
                created=_field(d, "created", str),
                run_id=d.get("run_id"),
                code_version=d.get("code_version"),
                metadata=dict(d.get("metadata") or {}),
                inputs=list(d.get("inputs") or []),
                filename=d.get("filename"),
                files=d.get("files"),
                run=dict(d.get("run") or {}),
                put_id=d.get("put_id", "") or "",
                sealed="check" in d,
            )
        except (TypeError, ValueError) as exc:
            if isinstance(exc, RecordError):
                raise
            raise RecordError(str(exc)) from None
        if v.kind not in KINDS:
            raise RecordError(f"field 'kind' is {v.kind!r}, not one of {', '.join(KINDS)}")
        if v.size < 0 or v.version < 1:
            raise RecordError(f"size {v.size} or version {v.version} is out of range")
        if v.kind == "dir" and not isinstance(v.files, int):
            raise RecordError("a directory record without a file count")
        if key is not None:
            name_part = key.split("/")[1] if key.count("/") >= 3 else None
            if version_number_of_key(key) != v.version or (name_part is not None and name_part != v.name):
                raise RecordError(f"it describes {v.name}@{v.version}, but is stored as {key}")
        return v


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


class IntegrityWarning(UserWarning):
    """A stored record or alias was skipped because it cannot be trusted (``ls`` goes on without it)."""


@dataclass
class Problem:
    """One broken thing in a store: a blob, a version record, an alias or a name; with the command that fixes it."""

    what: str  # blob | record | alias | name
    ref: str  # model@3, model:production, sha256:<12 hex>, or the name
    key: str  # where it is stored, relative to the store's root
    message: str
    fix: str
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "ref": self.ref,
            "key": self.key,
            "message": self.message,
            "fix": self.fix,
            "repaired": self.repaired,
        }

    def __str__(self) -> str:
        return f"{self.ref}: {self.message}"
