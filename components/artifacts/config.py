"""The artifact store's args validated once into frozen config: pure functions, no Pulumi calls.

:func:`resolve_store` (``S3ArtifactStore``) and :func:`resolve_existing_store`
(``S3ArtifactStore.from_bucket_name``) read the arguments exactly once, collect every problem (each naming the
key, the value and the fix) and either raise one :class:`InputPropertiesError` or return a frozen config with
every default filled. The components build only from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

from .._args import Problems
from .._s3 import BucketConfig, check_bucket_args, check_prefix, normalize_prefix, resolve_bucket

if TYPE_CHECKING:
    from .s3 import S3ArtifactStoreArgs

DEFAULT_PREFIX = "artifacts"


@dataclass(frozen=True)
class StoreConfig:
    """S3ArtifactStore's args, validated, every default filled."""

    prefix: str
    """Normalized (no leading or trailing ``/``); ``""`` is the whole bucket."""
    bucket: BucketConfig


@dataclass(frozen=True)
class ExistingStoreConfig:
    """``S3ArtifactStore.from_bucket_name``'s arguments, validated, the region resolved."""

    bucket_name: pulumi.Input[str]
    prefix: str
    region: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str] | None


def resolve_store(name: str, args: S3ArtifactStoreArgs | Mapping[str, Any] | None) -> StoreConfig:
    """S3ArtifactStore's args as a frozen :class:`StoreConfig`; every problem reported in one error."""
    from .s3 import S3ArtifactStoreArgs  # the Args live with the component (the package schema reads them)

    a: Mapping[str, Any] = dict(args or {})
    p = Problems(f"S3ArtifactStore {name!r}")
    p.unknown_keys(a, S3ArtifactStoreArgs)
    prefix = a.get("prefix", DEFAULT_PREFIX)
    check_prefix(p, "prefix", prefix)
    bucket = resolve_bucket(p, name, a)
    p.raise_if_any()
    return StoreConfig(prefix=normalize_prefix(prefix), bucket=bucket)


def resolve_existing_store(
    name: str,
    bucket_name: pulumi.Input[str],
    *,
    prefix: Any = "",
    region: pulumi.Input[str] | None = None,
    kms_key_arn: pulumi.Input[str] | None = None,
    default_region: str | None = None,
) -> ExistingStoreConfig:
    """A store in an existing bucket; ``default_region`` is the ``aws:region`` config, used when ``region`` is
    not passed. Every problem reported in one error."""
    p = Problems(f"S3ArtifactStore.from_bucket_name {name!r}")
    check_prefix(p, "prefix", prefix)
    check_bucket_args(p, name, bucket_name=bucket_name, kms_key_arn=kms_key_arn)
    resolved = region if region is not None else default_region
    if resolved is None:
        p.add("region", None, "required when the aws:region config is not set; pass region=")
    p.raise_if_any()
    assert resolved is not None
    return ExistingStoreConfig(
        bucket_name=bucket_name, prefix=normalize_prefix(prefix), region=resolved, kms_key_arn=kms_key_arn
    )
