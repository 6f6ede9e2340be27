"""The Athena lakehouse data source: not yet supported at run time.

The ``S3Lakehouse`` component provisions a Glue database and an Athena workgroup and exports a
``lakehouse`` data section, but reading it through ``mlstack.data`` is not implemented yet. Rather than a
half-working adapter that could not be tested here (no Athena emulator runs offline), this says so clearly.
"""

from __future__ import annotations

from typing import Any

from mlstack.errors import ConfigError


class LakehouseSource:
    """Placeholder for the Athena adapter: constructing it raises a ConfigError with the workaround."""

    kind = "lakehouse"

    def __init__(self, section: Any) -> None:
        raise ConfigError(
            f"the lakehouse data source (Athena workgroup {getattr(section, 'workgroup', '?')!r}, "
            f"Glue database {getattr(section, 'database', '?')!r}) is not yet supported by mlstack.data",
            fix="query it with Athena directly (boto3 athena start_query_execution, or awswrangler) for now, "
            "or point the stack's data section at the local, snowflake or databricks kind",
        )
