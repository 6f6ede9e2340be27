"""The shipped, dated reference prices and quota codes (``mlstack/resources/prices.json``).

Copied from the project's price research (see docs/prices.md for every source and date). Used by the
components to validate GPU instance types and by ``mlstack plan`` / ``mlstack doctor --preflight`` for cost
and quota estimates. Reads only package data: nothing here touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    """The whole price document."""
    with resources.files("mlstack.resources").joinpath("prices.json").open(encoding="utf-8") as fh:
        return json.load(fh)


@dataclass(frozen=True)
class InstanceType:
    name: str
    family: str
    vcpus: int
    memory_gib: float
    gpus: int
    gpu_model: str | None
    gpu_memory_gib: float | None
    hourly_usd: float | None  # us-east-1 on-demand, Linux
    price_valid_as_of: str | None
    hourly_usd_us_west_2: float | None
    quota_on_demand: str | None
    quota_spot: str | None

    def hourly(self, region: str = "us-east-1") -> float | None:
        """On-demand $/h in ``region`` where the table has it (us-east-1, us-west-2), else None."""
        if region == "us-east-1":
            return self.hourly_usd
        if region == "us-west-2":
            return self.hourly_usd_us_west_2
        return None


def family_of(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


@lru_cache(maxsize=1)
def instance_types() -> dict[str, InstanceType]:
    doc = table()
    fam_quota = doc["quotas"]["family_to_quota"]
    out: dict[str, InstanceType] = {}
    for name, spec in doc["ec2"].items():
        fam = family_of(name)
        q = fam_quota.get(fam, {})
        out[name] = InstanceType(
            name=name,
            family=fam,
            vcpus=int(spec["vcpus"]),
            memory_gib=float(spec["memory_gib"]),
            gpus=int(spec.get("gpus") or 0),
            gpu_model=spec.get("gpu_model"),
            gpu_memory_gib=spec.get("gpu_memory_gib"),
            hourly_usd=spec.get("hourly_usd"),
            price_valid_as_of=spec.get("price_valid_as_of"),
            hourly_usd_us_west_2=spec.get("hourly_usd_us_west_2"),
            quota_on_demand=q.get("on_demand"),
            quota_spot=q.get("spot"),
        )
    return out


def gpu_instance_types() -> dict[str, InstanceType]:
    return {k: v for k, v in instance_types().items() if v.gpus > 0}


def instance_type(name: str) -> InstanceType | None:
    return instance_types().get(name)


def quota_codes() -> dict[str, Any]:
    """Quota code -> its description (name, default, unit) as documented by AWS."""
    return dict(table()["quotas"]["codes"])


def eks_hourly(extended_support: bool = False) -> float:
    eks = table()["eks"]
    return float(
        eks[
            "cluster_hourly_usd_extended_support"
            if extended_support
            else "cluster_hourly_usd_standard_support"
        ]
    )


def nat_hourly() -> float:
    return float(table()["nat_gateway"]["hourly_usd"])


_SF_SIZES = {
    "XSMALL": "X-Small",
    "XS": "X-Small",
    "SMALL": "Small",
    "S": "Small",
    "MEDIUM": "Medium",
    "M": "Medium",
    "LARGE": "Large",
    "L": "Large",
    "XLARGE": "X-Large",
    "XL": "X-Large",
    "XXLARGE": "2X-Large",
    "2XLARGE": "2X-Large",
    "2XL": "2X-Large",
    "XXXLARGE": "3X-Large",
    "3XLARGE": "3X-Large",
    "3XL": "3X-Large",
    "X4LARGE": "4X-Large",
    "4XLARGE": "4X-Large",
    "4XL": "4X-Large",
    "X5LARGE": "5X-Large",
    "5XLARGE": "5X-Large",
    "5XL": "5X-Large",
    "X6LARGE": "6X-Large",
    "6XLARGE": "6X-Large",
    "6XL": "6X-Large",
}


def snowflake_size(size: str) -> str | None:
    """Normalise a warehouse size ('XSMALL', 'x-small', 'XS', 'X-Small') to the table's key, or None."""
    return _SF_SIZES.get(size.upper().replace("-", "").replace("_", "").replace(" ", ""))


def snowflake_credits_per_hour(size: str, snowpark_optimized: bool = False) -> float | None:
    """Credits per hour of one running cluster of a Gen1 warehouse of ``size``; None when not in the table."""
    sf = table()["snowflake"]["credits_per_hour"]
    block = sf["snowpark_optimized_default_16x_memory" if snowpark_optimized else "standard_gen1"]
    key = snowflake_size(size)
    v = block.get(key) if key else None
    return float(v) if isinstance(v, int | float) else None
