"""Karpenter in the plan: cost ceilings and vCPU quota needs of NodePools, and the $/h of a shared-GPU slice.

A NodePool has no size: Karpenter launches whatever instance types its ``requirements`` allow, until the
``limits`` (the sum of the capacity of the pool's nodes: ``cpu``, ``memory``, ``nvidia.com/gpu``, ``nodes``)
would be exceeded (Karpenter drops every instance type that would breach them). So, per NodePool:

- **candidates**: the instance types of the shipped price table that satisfy every requirement (instance type,
  family, category, generation, size, CPU, memory, GPU count/name/manufacturer/memory, arch, OS). Types outside
  the table may match too; they are not priced (each line says so when the requirements do not pin types).
- **capacity types**: ``karpenter.sh/capacity-type`` (default ``on-demand``, Karpenter's default). The table has
  no Spot prices: Spot is priced at On-Demand (an upper bound); ``reserved`` (capacity reservations) is priced
  at On-Demand and counts against the On-Demand quota.
- **$/h**: minimum 0 (Karpenter scales a pool to zero; a static pool with ``replicas`` N: N of the cheapest
  candidate); maximum = the most expensive set of candidate nodes whose summed capacity fits every limit
  (an exact integer search; a pool without ``limits`` is unbounded: no maximum, and policy rule KARP-004).
  Karpenter counts node memory as the instance's memory less 7.5% (its ``VM_MEMORY_OVERHEAD_PERCENT``
  default), GPUs as the instance's physical GPUs (time-slicing and MIG do not change what limits count).
- **quota**: for each capacity type the pool allows and each EC2 quota code its candidates fall in, the most
  vCPUs a set of those candidates can have within the limits (the pool could run all-Spot or all-On-Demand).

Shared GPUs are described by labels on the NodePool's ``spec.template.metadata.labels`` (which Karpenter puts on
its nodes) or a managed node group's ``labels``: ``mlstack.dev/gpu-sharing`` = ``time-slicing`` with
``mlstack.dev/gpu-replicas`` = N (each GPU advertised N times, as ``nvidia.com/gpu.shared``), or ``mig`` with
NVIDIA's MIG manager label ``nvidia.com/mig.config`` = ``all-<profile>`` (every GPU cut into one profile) or
``all-balanced``, and ``mlstack.dev/mig-strategy`` = ``single`` (MIG devices advertised as ``nvidia.com/gpu``)
or ``mixed`` (as ``nvidia.com/mig-<profile>``; the default for ``all-balanced``). See docs/compute.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from mlstack import prices
from mlstack.plan.mock_runtime import Recording, unwrap_secrets

NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
EC2_NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
MEMORY_OVERHEAD = 0.075  # Karpenter's default VM_MEMORY_OVERHEAD_PERCENT
SEARCH_BUDGET = 25_000  # nodes of the exact search before falling back to a (looser) LP bound (~1 s)
GPU = "nvidia.com/gpu"
SHARED_GPU = "nvidia.com/gpu.shared"

SHARING_LABEL = "mlstack.dev/gpu-sharing"
REPLICAS_LABEL = "mlstack.dev/gpu-replicas"
MIG_STRATEGY_LABEL = "mlstack.dev/mig-strategy"
MIG_CONFIG_LABEL = "nvidia.com/mig.config"

# requirement keys evaluated against the table; other karpenter.k8s.aws/* keys cannot be (assumed satisfied)
_EVALUATED = {
    "node.kubernetes.io/instance-type",
    "karpenter.k8s.aws/instance-family",
    "karpenter.k8s.aws/instance-category",
    "karpenter.k8s.aws/instance-generation",
    "karpenter.k8s.aws/instance-size",
    "karpenter.k8s.aws/instance-cpu",
    "karpenter.k8s.aws/instance-memory",
    "karpenter.k8s.aws/instance-gpu-count",
    "karpenter.k8s.aws/instance-gpu-name",
    "karpenter.k8s.aws/instance-gpu-manufacturer",
    "karpenter.k8s.aws/instance-gpu-memory",
    "kubernetes.io/arch",
    "kubernetes.io/os",
}
_NOT_INSTANCE = {"karpenter.sh/capacity-type", "topology.kubernetes.io/zone", "karpenter.sh/nodepool"}


@lru_cache(maxsize=1)
def sharing_table() -> dict[str, Any]:
    with resources.files("mlstack.resources").joinpath("gpu_sharing.json").open(encoding="utf-8") as fh:
        return json.load(fh)


# ---------------------------------------------------------------- quantities and labels
_UNITS = {
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
}


def quantity(v: Any) -> float | None:
    """A Kubernetes quantity ('64', '500m', '256Gi', 8.0) as a float; None when it is not one."""
    v = unwrap_secrets(v)
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    s = str(v).strip()
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", s)
    if not m or (m.group(2) and m.group(2) not in _UNITS):
        return None
    try:
        return float(m.group(1)) * _UNITS.get(m.group(2), 1.0)
    except ValueError:
        return None


def instance_labels(t: prices.InstanceType) -> dict[str, str]:
    """The well-known labels Karpenter's AWS provider gives a node of type ``t`` (the ones the table can fill)."""
    fam = t.family
    cat = re.match(r"^[a-z]+", fam)
    gen = re.search(r"\d+", fam)
    doc = prices.table()["ec2"].get(t.name, {})
    out = {
        "node.kubernetes.io/instance-type": t.name,
        "karpenter.k8s.aws/instance-family": fam,
        "karpenter.k8s.aws/instance-category": cat.group(0) if cat else fam,
        "karpenter.k8s.aws/instance-size": t.name.split(".", 1)[1],
        "karpenter.k8s.aws/instance-cpu": str(t.vcpus),
        "karpenter.k8s.aws/instance-memory": str(round(t.memory_gib * 1024)),
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
    }
    if gen:
        out["karpenter.k8s.aws/instance-generation"] = gen.group(0)
    if t.gpus:
        out["karpenter.k8s.aws/instance-gpu-count"] = str(t.gpus)
        out["karpenter.k8s.aws/instance-gpu-manufacturer"] = "nvidia"
        if t.gpu_model:
            out["karpenter.k8s.aws/instance-gpu-name"] = t.gpu_model.lower()
        mib = doc.get("gpu_memory_mib_ec2_api")
        if mib is None and t.gpu_memory_gib:
            mib = round(float(t.gpu_memory_gib) * 1024)
        if mib is not None:
            out["karpenter.k8s.aws/instance-gpu-memory"] = str(int(mib))
    return out


def _matches(req: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op = str(req.get("key")), str(req.get("operator"))
    values = [str(v) for v in (req.get("values") or [])]
    have = labels.get(key)
    if op == "In":
        return have is not None and have in values
    if op == "NotIn":
        return have is None or have not in values
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt", "Gte", "Lte"):
        try:
            x, bound = int(have or ""), int(values[0])
        except (ValueError, IndexError):
            return False
        return {"Gt": x > bound, "Lt": x < bound, "Gte": x >= bound, "Lte": x <= bound}[op]
    return True


# ---------------------------------------------------------------- the pool as planned
@dataclass
class Sharing:
    """How a pool's GPUs are shared (from its labels); ``problem`` when the labels do not say it correctly."""

    mode: str  # time-slicing | mig
    replicas: int | None = None
    mig_config: str | None = None
    strategy: str | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def sharing_from_labels(labels: dict[str, Any]) -> Sharing | None:
    mode = labels.get(SHARING_LABEL)
    if not mode or mode == "none":
        return None
    if mode == "time-slicing":
        raw = labels.get(REPLICAS_LABEL)
        try:
            n = int(str(raw))
        except ValueError:
            n = 0
        if n < 2:
            return Sharing(
                "time-slicing",
                problem=f"label {REPLICAS_LABEL}={raw!r}: time-slicing needs a whole number of replicas >= 2",
            )
        return Sharing("time-slicing", replicas=n)
    if mode == "mig":
        cfg = labels.get(MIG_CONFIG_LABEL)
        strategy = labels.get(MIG_STRATEGY_LABEL) or ("mixed" if cfg == "all-balanced" else "single")
        if not cfg or not (str(cfg) == "all-balanced" or str(cfg).startswith("all-")):
            return Sharing(
                "mig",
                mig_config=cfg,
                strategy=strategy,
                problem=f"label {MIG_CONFIG_LABEL}={cfg!r}: use all-<profile> (e.g. all-1g.10gb) or all-balanced",
            )
        if strategy not in ("single", "mixed"):
            return Sharing(
                "mig", mig_config=cfg, problem=f"label {MIG_STRATEGY_LABEL}={strategy!r}: single or mixed"
            )
        if cfg == "all-balanced" and strategy == "single":
            return Sharing(
                "mig",
                mig_config=cfg,
                strategy=strategy,
                problem="all-balanced mixes profiles: it needs strategy mixed",
            )
        return Sharing("mig", mig_config=str(cfg), strategy=strategy)
    return Sharing(str(mode), problem=f"label {SHARING_LABEL}={mode!r}: use time-slicing or mig")


@dataclass
class NodePoolSpec:
    name: str
    urn: str
    node_class: str | None
    requirements: list[dict[str, Any]]
    capacity_types: list[str]
    zones: list[str]
    limits: dict[str, float]
    limits_raw: dict[str, Any]
    replicas: int | None
    labels: dict[str, str]
    candidates: list[prices.InstanceType]
    pinned: bool  # the requirements name the instance types, so the table's candidates are all there are
    not_evaluated: list[str] = field(default_factory=list)
    unknown_limits: list[str] = field(default_factory=list)
    sharing: Sharing | None = None

    @property
    def has_limits(self) -> bool:
        return bool(self.limits)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "urn": self.urn,
            "node_class": self.node_class,
            "capacity_types": self.capacity_types,
            "zones": self.zones,
            "limits": self.limits_raw,
            "replicas": self.replicas,
            "candidates": [t.name for t in self.candidates],
            "candidates_complete": self.pinned,
            "requirements_not_evaluated": self.not_evaluated,
            "sharing": self.sharing.to_dict() if self.sharing else None,
        }


def node_pools(recording: Recording) -> list[NodePoolSpec]:
    """Every recorded Karpenter NodePool (``kubernetes:karpenter.sh/v1:NodePool``) as planned."""
    out: list[NodePoolSpec] = []
    table = prices.instance_types()
    for r in recording.by_type(NODE_POOL):
        i = unwrap_secrets(r.inputs)
        md = i.get("metadata") or {}
        spec = i.get("spec") or {}
        tmpl = spec.get("template") or {}
        tspec = tmpl.get("spec") or {}
        reqs = [q for q in (tspec.get("requirements") or []) if isinstance(q, dict)]
        cap: list[str] = ["on-demand"]
        zones: list[str] = []
        for q in reqs:
            if q.get("key") == "karpenter.sh/capacity-type" and q.get("operator") == "In":
                cap = [str(v) for v in q.get("values") or []]
            if q.get("key") == "topology.kubernetes.io/zone" and q.get("operator") == "In":
                zones = [str(v) for v in q.get("values") or []]
        inst_reqs = [q for q in reqs if q.get("key") not in _NOT_INSTANCE]
        not_eval = sorted(
            {
                str(q.get("key"))
                for q in inst_reqs
                if str(q.get("key")) not in _EVALUATED
                and str(q.get("key")).startswith(
                    ("karpenter.k8s.aws/", "karpenter.sh/", "node.kubernetes.io/")
                )
            }
        )
        cands = [
            t
            for t in table.values()
            if all(_matches(q, instance_labels(t)) for q in inst_reqs if str(q.get("key")) in _EVALUATED)
        ]
        pinned = any(
            q.get("key") == "node.kubernetes.io/instance-type" and q.get("operator") == "In"
            for q in inst_reqs
        )
        raw_limits = dict(spec.get("limits") or {})
        limits: dict[str, float] = {}
        unknown: list[str] = []
        for k, v in raw_limits.items():
            qv = quantity(v)
            if k in ("cpu", "memory", GPU, "nodes") and qv is not None:
                limits[k] = qv
            else:
                unknown.append(str(k))
        labels = {str(k): str(v) for k, v in ((tmpl.get("metadata") or {}).get("labels") or {}).items()}
        ref = tspec.get("nodeClassRef") or {}
        rep = spec.get("replicas")
        out.append(
            NodePoolSpec(
                name=str(md.get("name") or r.name),
                urn=r.urn,
                node_class=ref.get("name") if isinstance(ref, dict) else None,
                requirements=reqs,
                capacity_types=cap,
                zones=zones,
                limits=limits,
                limits_raw=raw_limits,
                replicas=int(rep) if isinstance(rep, int | float) and not isinstance(rep, bool) else None,
                labels=labels,
                candidates=sorted(cands, key=lambda t: t.name),
                pinned=pinned,
                not_evaluated=not_eval,
                unknown_limits=unknown,
                sharing=sharing_from_labels(labels),
            )
        )
    return out


# ---------------------------------------------------------------- the ceiling: an exact integer search
def capacity(t: prices.InstanceType) -> dict[str, float]:
    """What Karpenter counts against a NodePool's limits for one node of type ``t``."""
    return {
        "cpu": float(t.vcpus),
        "memory": t.memory_gib * 2.0**30 * (1 - MEMORY_OVERHEAD),
        GPU: float(t.gpus),
        "nodes": 1.0,
    }


@dataclass
class Fleet:
    value: float | None  # None: unbounded
    counts: dict[str, int]
    exact: bool = True


def max_fleet(types: list[prices.InstanceType], limits: dict[str, float], value: dict[str, float]) -> Fleet:
    """The set of nodes (any number of each type) of greatest total ``value`` whose summed capacity stays
    within every limit. Unbounded (value None) when a type with value > 0 is bounded by no limit."""
    items = [(t, value[t.name], capacity(t)) for t in types if value.get(t.name, 0) > 0]
    if not items:
        return Fleet(0.0, {})
    keys = [k for k in limits if k in ("cpu", "memory", GPU, "nodes")]
    for _t, _v, c in items:
        if not any(c[k] > 0 for k in keys):
            return Fleet(None, {})
    # most valuable per unit of the scarcest limit first: good solutions early, tighter pruning
    items.sort(key=lambda x: -x[1] / max(x[2][k] / limits[k] if limits[k] else 1.0 for k in keys))
    caps = [limits[k] for k in keys]
    best: list[Any] = [0.0, {}]
    budget = [SEARCH_BUDGET]

    def bound(i: int, rem: list[float]) -> float:
        # LP bound: for each limit, remaining capacity x the best value per unit among the remaining types
        b = float("inf")
        for j, k in enumerate(keys):
            dens = max((v / c[k] if c[k] > 0 else float("inf")) for _t, v, c in items[i:])
            b = min(b, rem[j] * dens)
        return b

    def dfs(i: int, rem: list[float], acc: float, counts: dict[str, int]) -> None:
        budget[0] -= 1
        if acc > best[0] + 1e-9:
            best[0], best[1] = acc, dict(counts)
        if i >= len(items) or budget[0] <= 0:
            return
        if acc + bound(i, rem) <= best[0] + 1e-9:
            return
        t, v, c = items[i]
        most = min(int((rem[j] + 1e-6) // c[k]) for j, k in enumerate(keys) if c[k] > 0)
        for n in range(most, -1, -1):
            if n:
                counts[t.name] = n
            else:
                counts.pop(t.name, None)
            dfs(i + 1, [rem[j] - n * c[k] for j, k in enumerate(keys)], acc + n * v, counts)
            if budget[0] <= 0:
                break
        counts.pop(t.name, None)

    dfs(0, caps, 0.0, {})
    if budget[0] <= 0:  # too large to search exactly here: report the LP bound (an upper bound)
        return Fleet(max(best[0], bound(0, caps)), best[1], exact=False)
    return Fleet(best[0], best[1])


# ---------------------------------------------------------------- cost
def _fmt_limits(raw: dict[str, Any]) -> str:
    return ", ".join(
        f"{k}={v if not isinstance(v, float) or not v.is_integer() else int(v)}" for k, v in raw.items()
    )


def cost_lines(pools: list[NodePoolSpec], region: str, line: Any, hours: float) -> list[dict[str, Any]]:
    """One cost line per NodePool (``line`` is :func:`mlstack.plan.cost._line`)."""
    out: list[dict[str, Any]] = []
    for p in pools:
        priced: dict[str, float] = {t.name: h for t in p.candidates if (h := t.hourly(region)) is not None}
        names = "/".join(t.name for t in p.candidates[:6]) + (
            f" (+{len(p.candidates) - 6} more)" if len(p.candidates) > 6 else ""
        )
        item = (
            f"Karpenter NodePool {p.name}: {names or 'no table instance type'} "
            f"({', '.join(p.capacity_types)}), limits {_fmt_limits(p.limits_raw) or 'none'}"
        )
        asm: list[str] = []
        if "spot" in p.capacity_types:
            asm.append("Spot priced at On-Demand (the price table has no Spot prices): an upper bound")
        if "reserved" in p.capacity_types:
            asm.append("reserved capacity priced at On-Demand")
        if not p.pinned:
            asm.append(
                f"NodePool {p.name}: instance types outside the shipped table may also match its requirements; "
                "only table types are priced"
            )
        if p.not_evaluated:
            asm.append(
                f"NodePool {p.name}: requirements not evaluated offline (assumed met): {', '.join(p.not_evaluated)}"
            )
        if p.unknown_limits:
            asm.append(f"NodePool {p.name}: limits not counted: {', '.join(p.unknown_limits)}")
        if "memory" in p.limits:
            asm.append(
                "node memory counted as Karpenter does: instance memory less 7.5% (VM_MEMORY_OVERHEAD_PERCENT)"
            )
        if not priced:
            why = f"no candidate instance type with a price in the table for {region}"
            out.append(line(item, p.urn, None, None, hours, hours, why, category="compute"))
            continue
        cheapest = min(priced.values())
        lo = 0.0
        if p.replicas is not None:
            lo = cheapest * p.replicas
            limits = {**p.limits, "nodes": min(p.limits.get("nodes", p.replicas), float(p.replicas))}
        else:
            asm.append("scales to zero: $0 while idle")
            limits = p.limits
        if not limits:
            l_ = line(
                item,
                p.urn,
                lo,
                None,
                hours,
                hours,
                "no limits: the pool's cost has no ceiling",
                category="compute",
            )
            l_["basis"] = "no limits: Karpenter may launch nodes without bound (policy KARP-004); no maximum"
            l_["assumptions"] = asm
            out.append(l_)
            continue
        fleet = max_fleet([t for t in p.candidates if t.name in priced], limits, priced)
        if fleet.value is None:
            l_ = line(item, p.urn, lo, None, hours, hours, "unbounded", category="compute")
            l_["basis"] = (
                "its limits do not bound every candidate type (e.g. only nvidia.com/gpu limited while CPU-only "
                "types match): no maximum"
            )
            l_["assumptions"] = asm
            out.append(l_)
            continue
        at_max = " + ".join(f"{n} x {k} (${priced[k]}/h)" for k, n in sorted(fleet.counts.items()))
        basis = f"at its limits: {at_max or 'no node fits the limits'}" + (
            "" if fleet.exact else " (search cut short: LP upper bound)"
        )
        if p.replicas is not None:
            basis = f"{p.replicas} static node(s): min {p.replicas} x ${cheapest}/h; max {basis}"
        out.append(
            line(
                item,
                p.urn,
                lo,
                fleet.value,
                hours,
                hours,
                basis,
                category="compute",
                assumptions=asm,
                source=f"prices.json ec2, {region} (see docs/prices.md)",
            )
        )
        out[-1]["fleet_at_max"] = fleet.counts
    return out


# ---------------------------------------------------------------- quota
def quota_needs(pools: list[NodePoolSpec], region: str) -> list[dict[str, Any]]:
    """Per quota code: the vCPUs each pool could hold in it within its limits, summed over pools."""
    codes = prices.quota_codes()
    needs: dict[str, dict[str, Any]] = {}
    for p in pools:
        buckets: dict[tuple[str, str], list[prices.InstanceType]] = {}
        for cap in p.capacity_types:
            purchase = "spot" if cap == "spot" else "on-demand"
            for t in p.candidates:
                code = t.quota_spot if purchase == "spot" else t.quota_on_demand
                if code:
                    buckets.setdefault((code, purchase), []).append(t)
        for (code, purchase), types in sorted(buckets.items()):
            types = list({t.name: t for t in types}.values())
            fleet = (
                max_fleet(types, p.limits, {t.name: float(t.vcpus) for t in types})
                if p.limits
                else Fleet(None, {})
            )
            info = codes.get(code, {})
            e = needs.setdefault(
                code,
                {
                    "quota_code": code,
                    "name": info.get("name", code),
                    "purchase_option": purchase,
                    "region": region,
                    "vcpus_needed": 0,
                    "instance_types": [],
                    "node_groups": [],
                    "node_pools": [],
                    "aws_default_vcpus": info.get("default_vcpus"),
                },
            )
            if fleet.value is None:
                e["vcpus_needed"] = None
            elif e["vcpus_needed"] is not None:
                e["vcpus_needed"] += int(fleet.value)
            for t in types:
                if t.name not in e["instance_types"]:
                    e["instance_types"].append(t.name)
            nodes = sum(fleet.counts.values())
            e["node_groups"].append(
                {"name": f"nodepool/{p.name}", "max_size": nodes if fleet.value is not None else None}
            )
            e["node_pools"].append(
                {
                    "name": p.name,
                    "vcpus": None if fleet.value is None else int(fleet.value),
                    "fleet": fleet.counts,
                }
            )
    out = sorted(needs.values(), key=lambda e: e["quota_code"])
    for e in out:
        d = e["aws_default_vcpus"]
        e["exceeds_aws_default"] = d is not None and (e["vcpus_needed"] is None or e["vcpus_needed"] > d)
    return out


def merge_quota(base: list[dict[str, Any]], extra: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Node-group quota needs plus NodePool ones, one entry per code (unknown-family entries kept last)."""
    by = {e["quota_code"]: e for e in base if e.get("quota_code")}
    unknown = [e for e in base if not e.get("quota_code")]
    for e in extra:
        cur = by.get(e["quota_code"])
        if cur is None:
            by[e["quota_code"]] = e
            continue
        if cur["vcpus_needed"] is None or e["vcpus_needed"] is None:
            cur["vcpus_needed"] = None
        else:
            cur["vcpus_needed"] += e["vcpus_needed"]
        cur["instance_types"] += [t for t in e["instance_types"] if t not in cur["instance_types"]]
        cur["node_groups"] += e["node_groups"]
        cur.setdefault("node_pools", []).extend(e.get("node_pools", []))
        d = cur["aws_default_vcpus"]
        cur["exceeds_aws_default"] = d is not None and (
            cur["vcpus_needed"] is None or cur["vcpus_needed"] > d
        )
    return sorted(by.values(), key=lambda e: e["quota_code"]) + unknown


def gpu_instance_types(pools: list[NodePoolSpec], region: str) -> list[dict[str, Any]]:
    """The GPU types the pools may launch (for the preflight's zone-offering check)."""
    out: dict[str, dict[str, Any]] = {}
    for p in pools:
        for t in p.candidates:
            if not t.gpus:
                continue
            e = out.setdefault(
                t.name,
                {
                    "instance_type": t.name,
                    "region": region,
                    "zones": [],
                    "gpus": t.gpus,
                    "gpu_model": t.gpu_model,
                    "node_groups": [],
                    "purchase_options": [],
                },
            )
            e["zones"] = sorted(set(e["zones"]) | set(p.zones))
            e["node_groups"].append(f"nodepool/{p.name}")
            for cap in p.capacity_types:
                po = "spot" if cap == "spot" else "on-demand"
                if po not in e["purchase_options"]:
                    e["purchase_options"].append(po)
    return list(out.values())


# ---------------------------------------------------------------- shared GPUs: $/h per slice
def mig_class(t: prices.InstanceType) -> str | None:
    return sharing_table()["mig_gpu_class_by_family"].get(t.family)


def slices(t: prices.InstanceType, s: Sharing, region: str) -> list[dict[str, Any]]:
    """The slices one node of type ``t`` offers under ``s``, each with its effective $/h when the node is full."""
    price = t.hourly(region)
    base = {"instance_type": t.name, "gpus": t.gpus, "gpu_model": t.gpu_model, "node_usd_per_hour": price}
    if not t.gpus:
        return [{**base, "problem": f"{t.name} has no GPU to share"}]
    if s.problem:
        return [{**base, "problem": s.problem}]
    if s.mode == "time-slicing":
        assert s.replicas is not None
        n = t.gpus * s.replicas
        return [
            {
                **base,
                "resource": SHARED_GPU,
                "slice": f"1/{s.replicas} of a {t.gpu_model} (time-sliced: shared compute and memory, no isolation)",
                "slices_per_node": n,
                "usd_per_slice_hour": None if price is None else round(price / n, 4),
            }
        ]
    cls = mig_class(t)
    if cls is None:
        return [
            {
                **base,
                "problem": f"{t.name} ({t.gpu_model}) is not MIG-capable: MIG needs A100, H100 or H200 (p4d, p4de, p5, p5e, p5en)",
            }
        ]
    layouts = sharing_table()["mig_layouts"][cls]
    assert s.mig_config is not None
    if s.mig_config == "all-balanced":
        layout = dict(layouts["balanced"])
    else:
        profile = s.mig_config[len("all-") :]
        if profile not in layouts["all"]:
            return [
                {
                    **base,
                    "problem": f"MIG profile {profile} does not exist on {cls} ({t.name}); profiles: "
                    + ", ".join(layouts["all"]),
                }
            ]
        layout = {profile: layouts["all"][profile]}
    # a GPU's price is split over its slices by compute slices (the g in 3g.40gb) of the layout used
    used = sum(int(p.split("g", 1)[0]) * n for p, n in layout.items())
    out = []
    for profile, per_gpu in layout.items():
        g = int(profile.split("g", 1)[0])
        gpu_price = None if price is None else price / t.gpus
        out.append(
            {
                **base,
                "resource": GPU if s.strategy == "single" else f"nvidia.com/mig-{profile}",
                "slice": f"MIG {profile} on {cls}",
                "mig_profile": profile,
                "slices_per_node": per_gpu * t.gpus,
                "usd_per_slice_hour": None if gpu_price is None else round(gpu_price * g / used, 4),
            }
        )
    return out


def gpu_slices(pools: list[NodePoolSpec], groups: list[Any], region: str) -> list[dict[str, Any]]:
    """Effective $/h per GPU slice for every shared pool (NodePools and managed node groups)."""
    out: list[dict[str, Any]] = []
    for p in pools:
        if p.sharing is None:
            continue
        for t in p.candidates:
            if t.gpus:
                for sl in slices(t, p.sharing, region):
                    out.append({"pool": p.name, "kind": "nodepool", "sharing": p.sharing.to_dict(), **sl})
    for g in groups:
        s = sharing_from_labels(dict(g.labels or {}))
        if s is None:
            continue
        for name in g.instance_types:
            spec = prices.instance_type(name)
            if spec is not None and spec.gpus:
                for sl in slices(spec, s, region):
                    out.append({"pool": g.name, "kind": "node_group", "sharing": s.to_dict(), **sl})
    return out
