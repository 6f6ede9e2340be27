"""S3Lakehouse's args validated once into frozen config: a pure function, no Pulumi calls.

:func:`resolve_lakehouse` reads the arguments exactly once, collects every problem (each naming the key, the
value and the fix) and either raises one :class:`InputPropertiesError` or returns a :class:`LakehouseConfig`
with every default filled. The component builds only from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

from .._args import Problems, is_whole
from .._s3 import BucketConfig, check_prefix, check_tags, normalize_prefix, resolve_bucket

if TYPE_CHECKING:
    from ..artifacts.s3 import S3ArtifactStore
    from .lakehouse import S3LakehouseArgs

DEFAULT_PREFIX = "lakehouse"
DEFAULT_SCAN_CUTOFF = 1024**4  # 1 TiB: about 5 USD per query at Athena's list price
DEFAULT_RESULTS_EXPIRATION_DAYS = 30
_GLUE_NAME_RE = re.compile(r"^[a-z0-9_]{1,255}$")
_WORKGROUP_RE = re.compile(r"^[A-Za-z0-9._\-]{1,128}$")
OWN_BUCKET_ONLY = (
    "bucket_name",
    "kms_key_arn",
    "noncurrent_version_expiration_days",
    "abort_incomplete_multipart_days",
    "access_log_bucket",
    "access_log_prefix",
    "region",
    "results_expiration_days",
)


@dataclass(frozen=True)
class LakehouseConfig:
    """S3Lakehouse's args, validated, every default filled. Exactly one of ``artifact_store`` (share its bucket)
    and ``bucket`` (the lakehouse's own) is set."""

    prefix: str
    """Normalized, never empty."""
    artifact_store: S3ArtifactStore | None
    bucket: BucketConfig | None
    results_expiration_days: int
    """Own bucket only (0: results are kept)."""
    database_name: str
    workgroup_name: str
    bytes_scanned_cutoff_per_query: int
    """0: no limit."""
    engine_version: str
    retain_on_delete: bool
    force_destroy: bool
    tags: Mapping[str, str] | pulumi.Output[Any] | None


def default_database_name(name: str) -> str:
    return re.sub(r"[-.]", "_", name.lower())


def resolve_lakehouse(name: str, args: S3LakehouseArgs | Mapping[str, Any] | None) -> LakehouseConfig:
    """S3Lakehouse's args as a frozen :class:`LakehouseConfig`; every problem reported in one error."""
    from ..artifacts.s3 import S3ArtifactStore
    from .lakehouse import S3LakehouseArgs

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"S3Lakehouse {name!r}")
    p.unknown_keys(a, S3LakehouseArgs)
    store = a.get("artifact_store")
    prefix = a.get("prefix", DEFAULT_PREFIX)
    check_prefix(p, "prefix", prefix)
    if isinstance(prefix, str) and not normalize_prefix(prefix):
        p.add("prefix", prefix, "a non-empty prefix: the lakehouse never owns a whole bucket's keys")
    retain = a.get("retain_on_delete", True)
    force = a.get("force_destroy", False)
    bucket: BucketConfig | None = None
    if store is not None:
        if not isinstance(store, S3ArtifactStore):
            p.add("artifact_store", type(store).__name__, "an S3ArtifactStore component")
        for k in OWN_BUCKET_ONLY:
            if k in a:
                p.add(k, a[k], "only for the lakehouse's own bucket; drop it or drop artifact_store")
        for path, value in (("retain_on_delete", retain), ("force_destroy", force)):
            if not isinstance(value, bool):
                p.add(path, value, "True or False")
        tags = check_tags(p, a.get("tags"))
    else:
        bucket = resolve_bucket(p, name, a)
        tags = bucket.tags
    results_days = a.get("results_expiration_days", DEFAULT_RESULTS_EXPIRATION_DAYS)
    if not is_whole(results_days) or not 0 <= results_days <= 3650:
        p.add("results_expiration_days", results_days, "a whole number of days from 0 to 3650")
    db_name = a.get("database_name", default_database_name(name))
    if not isinstance(db_name, str) or not _GLUE_NAME_RE.match(db_name):
        p.add(
            "database_name",
            db_name,
            "1-255 lowercase letters, digits and underscores (Athena cannot query other names)"
            + ("" if "database_name" in a else "; the default comes from the component name: pass one"),
        )
    wg_name = a.get("workgroup_name", name)
    if not isinstance(wg_name, str) or not _WORKGROUP_RE.match(wg_name):
        p.add("workgroup_name", wg_name, "1-128 letters, digits, '.', '_' and '-'")
    cutoff = a.get("bytes_scanned_cutoff_per_query", DEFAULT_SCAN_CUTOFF)
    if not is_whole(cutoff) or (cutoff != 0 and cutoff < 10 * 1024**2):
        p.add("bytes_scanned_cutoff_per_query", cutoff, "0 (no limit) or a byte count of at least 10485760")
    engine = a.get("engine_version", "AUTO")
    if not isinstance(engine, str) or not engine:
        p.add("engine_version", engine, "'AUTO' or an engine name like 'Athena engine version 3'")
    p.raise_if_any()
    return LakehouseConfig(
        prefix=normalize_prefix(prefix),
        artifact_store=store,
        bucket=bucket,
        results_expiration_days=results_days,
        database_name=db_name,
        workgroup_name=wg_name,
        bytes_scanned_cutoff_per_query=cutoff,
        engine_version=engine,
        retain_on_delete=retain,
        force_destroy=force,
        tags=tags,
    )
