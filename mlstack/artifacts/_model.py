"""What an artifact version is, how references are written, and the key layout (stdlib only: stays light).

Layout under the store's root (a folder, or ``s3://bucket/prefix``)::

    blobs/sha256/<d[:2]>/<digest>                   content, written once, never changed
    artifacts/<name>/versions/v<0000000001>.json    one version record each, written once
    artifacts/<name>/aliases/<alias>.json           where an alias points, moved by compare-and-swap

A directory's digest is the SHA-256 of its listing (a canonical JSON blob of relative path -> file digest).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlstack.errors import UsageError

SCHEMA = 1
KINDS = ("file", "dir", "bytes", "object")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{0,63}$")
HEX_RE = re.compile(r"^[0-9a-f]{4,64}$")
VERSION_RE = re.compile(r"^v?([0-9]{1,9})$")
MIN_PREFIX = 4


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise UsageError(
            f"artifact name {name!r} is not valid",
            fix="use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
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
    m = re.match(r"^v(\d{10})\.json$", base)
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
        ver = ver.strip()
        if ver.startswith("sha256:"):
            ver = ver[len("sha256:") :]
            if not HEX_RE.match(ver.lower()):
                raise UsageError(f"{ref!r}: {ver!r} is not a digest prefix of 4+ hex characters", fix=forms)
            return Ref(name, digest_prefix=ver.lower())
        m = VERSION_RE.match(ver)
        if m:
            return Ref(name, number=int(m.group(1)))
        if HEX_RE.match(ver.lower()):
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
    unchanged: bool = False  # set by put when the content matched the latest version (nothing written)

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
        """The stored JSON record (no aliases: they move, the record does not)."""
        d = self.to_dict()
        d.pop("aliases")
        d.pop("ref")
        d["schema"] = SCHEMA
        d["put_id"] = self.put_id
        return json.dumps(d, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_record(cls, data: bytes | dict[str, Any]) -> Version:
        d = json.loads(data) if isinstance(data, bytes | bytearray | str) else data
        digest = str(d["digest"])
        return cls(
            name=d["name"],
            version=int(d["version"]),
            digest=digest.split(":", 1)[1] if digest.startswith("sha256:") else digest,
            size=int(d["size"]),
            kind=d["kind"],
            created=d["created"],
            run_id=d.get("run_id"),
            code_version=d.get("code_version"),
            metadata=dict(d.get("metadata") or {}),
            inputs=list(d.get("inputs") or []),
            filename=d.get("filename"),
            files=d.get("files"),
            run=dict(d.get("run") or {}),
            put_id=d.get("put_id", ""),
        )


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover
