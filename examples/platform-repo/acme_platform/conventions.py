"""What the platform team standardises on top of mlstack: the GPU pools teams may ask for, and tags.

A pool is picked by name in stack config; its instance types, capacity type and labels are fixed here, so
every team's stack gets the same reviewed node groups (and `mlstack plan` prices and quota-checks them).
"""

from typing import Any

from mlstack.components.stack import StackConfig

# name -> node group settings (EksGpuCluster's GpuNodeGroupArgs)
GPU_POOLS: dict[str, dict[str, Any]] = {
    # interactive work and small fine-tunes: one A10G, on demand, fast to get
    "a10g": {
        "instance_types": ["g5.2xlarge"],
        "capacity_type": "ON_DEMAND",
        "labels": {"acme.io/pool": "a10g"},
    },
    # batch training on 4 x L40S, on Spot (checkpointing required), several sizes to find capacity
    "l40s-spot": {
        "instance_types": ["g6e.12xlarge", "g6e.24xlarge"],
        "capacity_type": "SPOT",
        "labels": {"acme.io/pool": "l40s-spot"},
    },
    # large jobs on 8 x H100, on demand; usually kept at zero
    "h100": {
        "instance_types": ["p5.48xlarge"],
        "capacity_type": "ON_DEMAND",
        "labels": {"acme.io/pool": "h100"},
    },
}


def team_tags(team: str, cost_center: str) -> dict[str, str]:
    return {"acme:team": team, "acme:cost-center": cost_center, "acme:managed-by": "pulumi/mlstack"}


class PlatformConfig(StackConfig):
    """StackConfig plus the platform's own keys (a pool list validated against GPU_POOLS)."""

    def pools(self, key: str = "gpuPools") -> list[dict[str, Any]]:
        raw = self.raw(key)
        if raw is None:
            self.problems.append((self.full_key(key), None, "required: a list of {pool, maxSize[, minSize]}"))
            return []
        import json

        try:
            items = json.loads(raw)
        except ValueError:
            items = None
        if not isinstance(items, list) or not items:
            self.problems.append((self.full_key(key), raw, "a non-empty list of {pool, maxSize[, minSize]}"))
            return []
        groups = []
        for n, item in enumerate(items):
            where = f"{self.full_key(key)}[{n}]"
            pool = item.get("pool") if isinstance(item, dict) else None
            if pool not in GPU_POOLS:
                self.problems.append((f"{where}.pool", pool, "one of: " + ", ".join(GPU_POOLS)))
                continue
            lo, hi = item.get("minSize", 0), item.get("maxSize")
            if not isinstance(hi, int) or not isinstance(lo, int) or not 0 <= lo <= hi:
                self.problems.append((f"{where}.maxSize", hi, "integers with 0 <= minSize <= maxSize"))
                continue
            groups.append(
                {"name": pool, **GPU_POOLS[pool], "min_size": lo, "desired_size": lo, "max_size": hi}
            )
        return groups
