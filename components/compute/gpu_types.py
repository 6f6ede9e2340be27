"""GPU instance types EksGpuCluster accepts: a thin layer over the shipped, dated price table.

The table (``mlstack/resources/prices.json``, loaded by :mod:`mlstack.prices`) holds, per type, GPUs, GPU model
and memory, vCPUs, memory and the on-demand price with its date and region. Node groups naming a type that
is not in it are refused (with close matches suggested), so a typo fails at ``pulumi preview``, not after a
15-minute EKS create; and every accepted type can be costed by ``mlstack plan``.
"""

import difflib
from typing import Any

from mlstack import prices
from mlstack.prices import InstanceType

GPU_RESOURCE = "nvidia.com/gpu"
"""The extended resource the NVIDIA device plugin advertises and a GPU pod requests."""

# EKS managed node group AMI types with the NVIDIA driver and container toolkit installed, by CPU
# architecture. The table holds x86_64 GPU types only, so the ARM variants are accepted by name but refused
# for every type in the table (the mismatch is reported, not left to a failed node launch).
NVIDIA_AMI_TYPES: dict[str, str] = {
    "AL2023_x86_64_NVIDIA": "x86_64",
    "BOTTLEROCKET_x86_64_NVIDIA": "x86_64",
    "AL2023_ARM_64_NVIDIA": "arm64",
    "BOTTLEROCKET_ARM_64_NVIDIA": "arm64",
}
ARM_GPU_FAMILIES = ("g5g",)


def gpu_type(name: str) -> InstanceType | None:
    """The table's entry for a GPU instance type, or None (unknown, or a CPU-only type)."""
    spec = prices.instance_type(name)
    return spec if spec is not None and spec.gpus > 0 else None


def architecture(name: str) -> str:
    return "arm64" if prices.family_of(name) in ARM_GPU_FAMILIES else "x86_64"


def known_gpu_types() -> list[str]:
    """Every GPU type in the table, ordered by family then size."""
    types = prices.gpu_instance_types()
    return sorted(types, key=lambda n: (types[n].family, types[n].vcpus, types[n].gpus, n))


def suggest(name: str, n: int = 3) -> list[str]:
    return difflib.get_close_matches(name, known_gpu_types(), n=n, cutoff=0.6)


def unknown_reason(name: str) -> str:
    """Why ``name`` is refused, with the fix: close matches, or where the list of accepted types lives."""
    if prices.instance_type(name) is not None:
        return "not a GPU instance type (it has no NVIDIA GPU); GPU node groups need one, e.g. g5.xlarge"
    close = suggest(name)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    families = sorted({prices.family_of(t) for t in known_gpu_types()})
    return (
        f"unknown GPU instance type; {hint}accepted families: {', '.join(families)} "
        "(every size is listed in docs/compute.md)"
    )


def accelerator_label(spec: InstanceType) -> str:
    """Value of the ``k8s.amazonaws.com/accelerator`` node label, e.g. ``nvidia-a10g``."""
    return f"nvidia-{(spec.gpu_model or 'gpu').lower()}"


def describe(name: str, region: str = "us-east-1") -> str:
    """One line, e.g. ``g5.xlarge: 1x A10G 22.35 GiB, 4 vCPU, 16 GiB, $1.006/h on-demand us-east-1 (2026-07-20)``."""
    spec = gpu_type(name)
    if spec is None:
        return f"{name}: not in the GPU table"
    price = spec.hourly(region)
    cost = (
        f"${price:g}/h on-demand {region} ({spec.price_valid_as_of})"
        if price is not None
        else f"no on-demand price for {region} in the table"
    )
    return (
        f"{name}: {spec.gpus}x {spec.gpu_model} {spec.gpu_memory_gib:g} GiB, {spec.vcpus} vCPU, "
        f"{spec.memory_gib:g} GiB, {cost}"
    )


def rows() -> list[dict[str, Any]]:
    """The GPU table as plain rows (for docs and ``--json`` listings)."""
    out = []
    for name in known_gpu_types():
        s = prices.instance_types()[name]
        out.append(
            {
                "instance_type": name,
                "gpus": s.gpus,
                "gpu_model": s.gpu_model,
                "gpu_memory_gib": s.gpu_memory_gib,
                "vcpus": s.vcpus,
                "memory_gib": s.memory_gib,
                "hourly_usd_us_east_1": s.hourly_usd,
                "hourly_usd_us_west_2": s.hourly_usd_us_west_2,
                "price_valid_as_of": s.price_valid_as_of,
            }
        )
    return out


def markdown_table() -> str:
    """The GPU table as Markdown (docs/compute.md embeds it; a test keeps the two identical)."""

    def f(v: float | None) -> str:
        return "—" if v is None else f"{v:g}"

    lines = [
        "| instance type | GPUs | GPU | GPU memory (GiB) | vCPUs | memory (GiB) | $/h us-east-1 | $/h us-west-2 "
        "| price as of |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows():
        lines.append(
            f"| {r['instance_type']} | {r['gpus']} | {r['gpu_model']} | {f(r['gpu_memory_gib'])} | {r['vcpus']} "
            f"| {f(r['memory_gib'])} | {f(r['hourly_usd_us_east_1'])} | {f(r['hourly_usd_us_west_2'])} "
            f"| {r['price_valid_as_of'] or '—'} |"
        )
    return "\n".join(lines) + "\n"
