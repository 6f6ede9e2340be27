"""Hourly and monthly cost estimate of a recorded stack from the shipped, dated price table.

What is priced: the EKS control plane, NAT gateways, EKS managed node groups at their minimum and at their
maximum size, Karpenter NodePools from $0 up to the most their ``limits`` allow (:mod:`mlstack.plan.karpenter`), Snowflake warehouses (credits) and Databricks SQL warehouses (DBUs). Everything else (EBS,
data transfer, S3 storage and requests, KMS keys, CloudWatch logs, Athena scans) is listed as not included.

Numbers the table does not hold (``null``: $ per Snowflake credit, Databricks DBU rates) come from stack
config keys with documented defaults, and every such line says it rests on an assumption:

``mlstack:snowflakeUsdPerCredit``   default 3.00 (third-party reports for Enterprise, AWS us-east-1)
``mlstack:databricksUsdPerDbu``     default by warehouse type: classic 0.22, pro 0.55, serverless 0.70
                                     (third-party reports, Premium, AWS us-east-1)
``mlstack:warehouseHoursPerMonth``  default 160: hours a month an auto-suspending warehouse is assumed to run
"""

from __future__ import annotations

from typing import Any

from mlstack import prices
from mlstack.errors import ConfigError
from mlstack.plan.inventory import NodeGroupSpec, num
from mlstack.plan.mock_runtime import Recording, Resource, unwrap_secrets

HOURS_PER_MONTH = 730.0
DEFAULT_USD_PER_CREDIT = 3.00
DEFAULT_WAREHOUSE_HOURS = 160.0
DEFAULT_USD_PER_DBU = {"classic": 0.22, "pro": 0.55, "serverless": 0.70}

CONFIG_KEYS = {
    "mlstack:snowflakeUsdPerCredit": f"$ per Snowflake credit (default {DEFAULT_USD_PER_CREDIT:.2f}, assumed)",
    "mlstack:databricksUsdPerDbu": "$ per Databricks DBU (default by warehouse type: classic 0.22, pro 0.55, "
    "serverless 0.70, assumed)",
    "mlstack:warehouseHoursPerMonth": f"hours a month an auto-suspending warehouse runs (default "
    f"{DEFAULT_WAREHOUSE_HOURS:.0f}, assumed)",
}

NOT_INCLUDED = [
    "EBS volumes (node root disks), snapshots",
    "data transfer (internet egress, cross-AZ, NAT per-GB processing at $0.045/GB)",
    "S3 storage and requests, KMS keys and requests, CloudWatch Logs ingestion",
    "Athena scans, Glue catalog requests",
    "Snowflake storage and cloud-services credits above 10% of daily warehouse use",
    "EC2 under Databricks classic/pro SQL warehouses (billed by AWS, not in the DBU rate)",
    "Savings Plans, Reserved Instances, Spot discounts (Spot is priced at On-Demand: an upper bound)",
    "taxes",
]


def _rate(config: dict[str, str], key: str, default: float | None) -> tuple[float | None, bool]:
    """(value, from_config) for a numeric config key; a bad value is a ConfigError naming the key."""
    raw = config.get(key)
    if raw is None:
        return default, False
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}", fix=f"set {key} to e.g. 3.0") from None
    if v < 0:
        raise ConfigError(f"{key} must not be negative, got {raw!r}", fix=f"set {key} to a price >= 0")
    return v, True


def _line(
    item: str,
    resource: str | None,
    hourly_min: float | None,
    hourly_max: float | None,
    hours_min: float,
    hours_max: float,
    basis: str,
    *,
    assumptions: list[str] | None = None,
    source: str | None = None,
    category: str,
) -> dict[str, Any]:
    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 4)

    return {
        "item": item,
        "category": category,
        "resource": resource,
        "hourly_usd_min": r(hourly_min),
        "hourly_usd_max": r(hourly_max),
        "monthly_usd_min": None if hourly_min is None else round(hourly_min * hours_min, 2),
        "monthly_usd_max": None if hourly_max is None else round(hourly_max * hours_max, 2),
        "basis": basis,
        "assumptions": assumptions or [],
        "source": source,
        "priced": hourly_min is not None and hourly_max is not None,
    }


def _by_urn(resources: list[Resource]) -> list[Resource]:
    """Resources in URN order: registration order varies from run to run, and the lines (hence the assumptions
    and the float sums of the totals) must not."""
    return sorted(resources, key=lambda r: r.urn)


def estimate(
    recording: Recording, groups: list[NodeGroupSpec], region: str, config: dict[str, str]
) -> dict[str, Any]:
    """The cost estimate: one line per priced item, totals, assumptions and what is not included."""
    doc = prices.table()
    lines: list[dict[str, Any]] = []
    assumptions: list[str] = [
        f"{HOURS_PER_MONTH:.0f} hours per month for always-on resources",
        "On-Demand Linux list prices; Spot capacity priced at On-Demand (an upper bound)",
    ]
    h = HOURS_PER_MONTH

    for r in _by_urn(recording.by_type("aws:eks/cluster:Cluster")):
        rate = prices.eks_hourly()
        lines.append(
            _line(
                "EKS control plane (standard support)",
                r.urn,
                rate,
                rate,
                h,
                h,
                f"${rate}/h per cluster",
                category="eks",
                source=f"prices.json eks ({doc['data_as_of']['eks']})",
                assumptions=["Kubernetes version in standard support (extended support: $0.60/h)"],
            )
        )

    nats = _by_urn(recording.by_type("aws:ec2/natGateway:NatGateway"))
    for r in nats:
        rate = prices.nat_hourly()
        extra = (
            []
            if region == "us-east-1"
            else [f"us-east-1 NAT rate used for {region} (no other region in table)"]
        )
        lines.append(
            _line(
                "NAT gateway",
                r.urn,
                rate,
                rate,
                h,
                h,
                f"${rate}/h per gateway (per-GB processing not included)",
                category="network",
                source=f"prices.json nat_gateway ({doc['data_as_of']['nat_gateway']})",
                assumptions=extra,
            )
        )

    for g in groups:
        specs = [prices.instance_type(t) for t in g.instance_types]
        rates = [s.hourly(region) if s is not None else None for s in specs]
        known = [x for x in rates if x is not None]
        item = f"node group {g.name}: {'/'.join(g.instance_types)} x {g.min_size}..{g.max_size} ({g.purchase_option})"
        if not known:
            why = (
                f"no price in table for {', '.join(g.instance_types)} in {region}"
                if any(s is not None for s in specs)
                else f"instance type {', '.join(g.instance_types)} not in the shipped table"
            )
            line = _line(item, g.urn, None, None, h, h, why, category="compute")
            line["basis"] = why
            lines.append(line)
            continue
        lo, hi = min(known), max(known)
        asm = []
        if len(known) < len(rates):
            asm.append("some listed instance types have no price in table; priced from those that have one")
        if g.purchase_option == "spot":
            asm.append("Spot group priced at On-Demand rates (upper bound)")
        if g.min_size == 0:
            asm.append("scales to zero: $0 while idle")
        spec0 = next(s for s in specs if s is not None)
        lines.append(
            _line(
                item,
                g.urn,
                lo * g.min_size,
                hi * g.max_size,
                h,
                h,
                f"${lo}/h x {g.min_size} node(s) at minimum, ${hi}/h x {g.max_size} at maximum",
                category="compute",
                assumptions=asm,
                source=f"prices.json ec2, {region}, valid as of {spec0.price_valid_as_of if region == 'us-east-1' else 'snapshot (see docs/prices.md)'}",
            )
        )

    # Karpenter NodePools: $0 at rest, the most their limits allow at most (mlstack.plan.karpenter)
    from mlstack.plan import karpenter

    lines += karpenter.cost_lines(karpenter.node_pools(recording), region, _line, h)

    wh_hours, wh_from_cfg = _rate(config, "mlstack:warehouseHoursPerMonth", DEFAULT_WAREHOUSE_HOURS)
    assert wh_hours is not None
    for r in _by_urn(recording.by_type("snowflake:index/warehouse:Warehouse")):
        i = unwrap_secrets(r.inputs)
        size = str(i.get("warehouseSize") or "XSMALL")
        optimized = str(i.get("warehouseType") or "").upper() == "SNOWPARK-OPTIMIZED"
        credits = prices.snowflake_credits_per_hour(size, snowpark_optimized=optimized)
        usd, usd_cfg = _rate(config, "mlstack:snowflakeUsdPerCredit", DEFAULT_USD_PER_CREDIT)
        assert usd is not None
        n_min = int(num(i.get("minClusterCount"), 1) or 1)
        n_max = int(num(i.get("maxClusterCount"), n_min) or n_min)
        suspend = num(i.get("autoSuspend"), 600)
        always_on = suspend is not None and suspend <= 0
        hours = h if always_on else wh_hours
        asm = [
            f"${usd:.2f} per credit "
            + (
                "(from config mlstack:snowflakeUsdPerCredit)"
                if usd_cfg
                else "(ASSUMED default: prices.json has null; set mlstack:snowflakeUsdPerCredit to your contract rate)"
            ),
            "never suspends: runs 730 h/month"
            if always_on
            else f"auto-suspends after {int(suspend or 0)} s: minimum $0 (suspended), maximum assumes {hours:.0f} running "
            f"hours/month{' (from config)' if wh_from_cfg else ' (ASSUMED default; set mlstack:warehouseHoursPerMonth)'}",
        ]
        if credits is None:
            lines.append(
                _line(
                    f"Snowflake warehouse {i.get('name') or r.name} ({size})",
                    r.urn,
                    None,
                    None,
                    h,
                    h,
                    f"no credit rate in table for size {size}",
                    category="snowflake",
                )
            )
            continue
        item = f"Snowflake warehouse {i.get('name') or r.name} ({size}, {n_min}..{n_max} cluster(s))"
        lo = 0.0 if not always_on else credits * n_min * usd
        lines.append(
            _line(
                item,
                r.urn,
                lo,
                credits * n_max * usd,
                h if always_on else 0.0,
                hours,
                f"{credits:g} credits/h per cluster x ${usd:.2f}/credit",
                category="snowflake",
                assumptions=asm,
                source="prices.json snowflake.credits_per_hour (Snowflake docs)",
            )
        )
        lines[-1]["hourly_usd_while_running"] = round(credits * n_min * usd, 4)

    dbu_table = doc["databricks"]["unverified_third_party_reports"][
        "sql_warehouse_dbu_per_hour_commonly_cited"
    ]
    for r in _by_urn(recording.by_type("databricks:index/sqlEndpoint:SqlEndpoint")):
        i = unwrap_secrets(r.inputs)
        size = str(i.get("clusterSize") or "2X-Small")
        kind = (
            "serverless"
            if i.get("enableServerlessCompute")
            else ("classic" if str(i.get("warehouseType") or "PRO").upper() == "CLASSIC" else "pro")
        )
        usd, usd_cfg = _rate(config, "mlstack:databricksUsdPerDbu", DEFAULT_USD_PER_DBU[kind])
        assert usd is not None
        dbu = dbu_table.get(size)
        n_min = int(num(i.get("minNumClusters"), 1) or 1)
        n_max = int(num(i.get("maxNumClusters"), n_min) or n_min)
        stop = num(i.get("autoStopMins"), 120)
        always_on = stop is not None and stop <= 0
        hours = h if always_on else wh_hours
        asm = [
            f"{dbu} DBU/h for size {size} (ASSUMED: prices.json has null; third-party reports)",
            f"${usd:.2f} per DBU ({kind}) "
            + (
                "(from config mlstack:databricksUsdPerDbu)"
                if usd_cfg
                else "(ASSUMED default from third-party reports; set mlstack:databricksUsdPerDbu)"
            ),
            "never stops: runs 730 h/month"
            if always_on
            else f"auto-stops after {int(stop or 0)} min: minimum $0, maximum assumes {hours:.0f} running hours/month",
        ]
        if kind != "serverless":
            asm.append("classic/pro DBU rate excludes the EC2 instances AWS bills for the warehouse")
        name = i.get("name") or r.name
        if dbu is None:
            lines.append(
                _line(
                    f"Databricks SQL warehouse {name} ({size})",
                    r.urn,
                    None,
                    None,
                    h,
                    h,
                    f"no DBU rate for size {size}",
                    category="databricks",
                )
            )
            continue
        lo = 0.0 if not always_on else dbu * n_min * usd
        lines.append(
            _line(
                f"Databricks SQL warehouse {name} ({size}, {kind}, {n_min}..{n_max} cluster(s))",
                r.urn,
                lo,
                dbu * n_max * usd,
                h if always_on else 0.0,
                hours,
                f"{dbu} DBU/h per cluster x ${usd:.2f}/DBU",
                category="databricks",
                assumptions=asm,
                source="prices.json databricks.unverified_third_party_reports (NOT first-party)",
            )
        )
        lines[-1]["hourly_usd_while_running"] = round(dbu * n_min * usd, 4)

    priced = [x for x in lines if x["priced"]]
    totals = {
        "hourly_usd_min": round(sum(x["hourly_usd_min"] for x in priced), 4),
        "hourly_usd_max": round(sum(x["hourly_usd_max"] for x in priced), 4),
        "monthly_usd_min": round(sum(x["monthly_usd_min"] for x in priced), 2),
        "monthly_usd_max": round(sum(x["monthly_usd_max"] for x in priced), 2),
    }
    for x in lines:
        for a in x["assumptions"]:
            if a not in assumptions:
                assumptions.append(a)
    return {
        "currency": "USD",
        "region": region,
        "hours_per_month": HOURS_PER_MONTH,
        "price_table_as_of": doc["as_of"],
        "price_data_as_of": doc["data_as_of"],
        "lines": lines,
        "totals": totals,
        "unpriced": [
            {"item": x["item"], "resource": x["resource"], "why": x["basis"]}
            for x in lines
            if not x["priced"]
        ],
        "assumptions": assumptions,
        "not_included": NOT_INCLUDED,
        "config_keys": CONFIG_KEYS,
    }
