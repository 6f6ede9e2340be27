"""Versioned, content-addressed artifacts with aliases and lineage, on the store the manifest names.

    import mlstack
    v = mlstack.artifacts.put("churn-model", "model.pkl", alias="staging", metadata={"auc": 0.91})
    mlstack.artifacts.get("churn-model:production", "out/")          # verified; recorded as an input
    model = mlstack.artifacts.load("churn-model@3")                   # bytes, or the object if pickled
    print(mlstack.artifacts.lineage_text(v))

References: ``NAME`` (latest), ``NAME@3`` / ``NAME@v3`` (a version number), ``NAME@<hex>`` or
``NAME@sha256:<hex>`` (a digest prefix of 4+ characters, when unambiguous), ``NAME:ALIAS``.
The backend (``local`` folder or ``s3`` bucket) comes from the manifest's ``artifacts`` section; backend
modules (boto3) load on first use, so importing this package stays light.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlstack.artifacts._model import IntegrityWarning, Problem, Ref, Version, parse_ref

if TYPE_CHECKING:  # pragma: no cover
    from mlstack.artifacts._store import ArtifactStore
    from mlstack.manifest import Manifest

__all__ = [
    "ArtifactStore",
    "IntegrityWarning",
    "Problem",
    "Ref",
    "Version",
    "get",
    "lineage_text",
    "load",
    "ls",
    "parse_ref",
    "promote",
    "put",
    "set_alias",
    "show",
    "store",
]

_stores: dict[str, ArtifactStore] = {}
_stores_lock = threading.Lock()


def store(manifest: Manifest | str | None = None) -> ArtifactStore:
    """The artifact store of ``manifest`` (a Manifest, a path, or None for the manifest in force).

    Stores are cached per artifacts section, so every call in a process shares one client and thread pool.
    """
    from mlstack import manifest as _manifest
    from mlstack.registry import load_backend

    m = manifest if isinstance(manifest, _manifest.Manifest) else _manifest.current(manifest)
    section = m.artifacts
    key = json.dumps(section.model_dump(mode="json"), sort_keys=True)
    with _stores_lock:
        if key not in _stores:
            from mlstack.artifacts._store import ArtifactStore

            backend_cls = load_backend("artifacts", section.kind)
            _stores[key] = ArtifactStore(backend_cls.from_section(section))
        return _stores[key]


def put(
    name: str,
    obj: Any,
    *,
    alias: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    pickle: bool = False,
    inputs: Sequence[Any] | None = None,
) -> Version:
    """Store a file, folder, bytes or (``pickle=True``) object as the next version of ``name``.

    Lineage comes from the current run (:func:`mlstack.run.current`): its id, the code version and what it
    read, plus ``inputs`` (Versions, "name@version" strings or ``{"type": "table", "name": ...}`` dicts).
    Unchanged content (same digest as the latest version, same metadata) makes no new version.
    """
    return store().put(name, obj, alias=alias, metadata=metadata, pickle=pickle, inputs=inputs)


def get(ref: str | Version, dest: str | Path) -> Path:
    """Write a version to ``dest`` after verifying its digest; returns the path written."""
    return store().get(ref, dest)


def load(ref: str | Version) -> Any:
    """A version's bytes, or its object when it was stored with ``pickle=True``."""
    return store().load(ref)


def show(ref: str | Version) -> Version:
    """A version's record: digest, size, run, code version, metadata, inputs and aliases."""
    return store().show(ref)


def ls(name: str | None = None) -> list[Version]:
    """Every version of ``name`` (newest first), or the latest version of each artifact."""
    return store().ls(name)


def set_alias(name: str, version: int | str | Version, alias: str) -> Version:
    """Move ``name:alias`` to ``version`` (compare-and-swap; never onto a missing version)."""
    return store().set_alias(name, version, alias)


def promote(
    name: str, version: int | str | Version, alias: str, *, when: bool = True, reason: str | None = None
) -> Version | None:
    """A gate: move ``name:alias`` to ``version`` only ``when`` it holds; either way the run's record (and the
    end of ``mlstack run``) says what was decided, and ``reason`` says why. Returns the Version, or None when
    the gate kept the alias where it was.

        artifacts.promote("churn-model", best, "production", when=auc >= threshold,
                          reason=f"AUC {auc:.3f} vs threshold {threshold}")
    """
    from mlstack import run as _run

    number = version.version if isinstance(version, Version) else version
    if when:
        v = set_alias(name, number, alias)
        _run.record_output("alias", name, str(v.version), alias=alias, moved=True, reason=reason)
        return v
    current = None
    try:
        current = store().resolve(f"{name}:{alias}").version
    except Exception:  # no such alias (or artifact) yet: nothing to keep
        current = None
    _run.record_output(
        "alias",
        name,
        str(number),
        alias=alias,
        moved=False,
        reason=reason,
        current=None if current is None else str(current),
    )
    return None


def lineage_text(version: str | Version, depth: int = 3) -> str:
    """A readable lineage tree of a version (what it was made from, recursively for artifact inputs)."""
    return store().lineage_text(version, depth)


def __getattr__(name: str) -> Any:
    if name == "ArtifactStore":
        from mlstack.artifacts._store import ArtifactStore

        return ArtifactStore
    raise AttributeError(f"module 'mlstack.artifacts' has no attribute {name!r}")
