"""Backends by kind, as dotted paths imported on first use.

``import mlstack`` must stay light: nothing here imports boto3, pyarrow, duckdb, snowflake, databricks or
kubernetes. A backend module is imported the first time a manifest asks for its kind, and a missing
optional dependency becomes a MissingExtraError naming the extra to install.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlstack.errors import ConfigError, MissingExtraError

# layer -> kind -> ("module:Class", extra that provides its dependencies)
BACKENDS: dict[str, dict[str, tuple[str, str]]] = {
    "artifacts": {
        "local": ("mlstack.artifacts.local:LocalBackend", "local"),
        "s3": ("mlstack.artifacts.s3:S3Backend", "aws"),
    },
    "data": {
        "local": ("mlstack.data.local:LocalSource", "local"),
        "snowflake": ("mlstack.data.snowflake:SnowflakeSource", "snowflake"),
        "databricks": ("mlstack.data.databricks:DatabricksSource", "databricks"),
        "lakehouse": ("mlstack.data.lakehouse:LakehouseSource", "lakehouse"),
    },
    "orchestrator": {
        "local": ("mlstack.pipeline.local:LocalRunner", "local"),
        "argo": ("mlstack.pipeline.argo:ArgoRunner", "k8s"),
    },
}

# the Python modules each extra brings; used by `mlstack doctor` to compare installed extras with a manifest
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "aws": ("boto3",),
    "lakehouse": ("boto3", "pyarrow"),
    "k8s": ("kubernetes", "hera"),
    "snowflake": ("snowflake.connector", "pyarrow"),
    "databricks": ("databricks.sdk", "pyarrow"),
    "local": ("duckdb", "deltalake", "pyarrow"),
    "components": ("pulumi", "pulumi_aws", "pulumi_kubernetes"),
}


def known_kinds(layer: str) -> list[str]:
    return sorted(BACKENDS.get(layer, {}))


def load_backend(layer: str, kind: str) -> Any:
    """Return the backend class registered for ``layer``/``kind``, importing its module now."""
    try:
        target, extra = BACKENDS[layer][kind]
    except KeyError:
        raise ConfigError(
            f"no {layer} backend for kind {kind!r}",
            fix=f"use one of: {', '.join(known_kinds(layer)) or '(none)'}",
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing and not missing.startswith("mlstack"):
            raise MissingExtraError(missing, extra, f"the {kind} {layer} backend") from exc
        raise
    return getattr(module, attr)
