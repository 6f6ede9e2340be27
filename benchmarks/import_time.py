"""Import cost of ``import mlstack`` against ``import metaflow`` (the runtime library jobs import).

Runs ``python -X importtime -c "import X"`` 7 times per module in one run, alternating, and compares the
median cumulative microseconds of the top-level module. Target: mlstack / metaflow <= 0.5.
Needs metaflow installed (pip install 'mlstack[bench]').
"""

from __future__ import annotations

import statistics
import subprocess
import sys

RUNS = 7


def cumulative_us(module: str) -> int:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in out.stderr.splitlines():
        # "import time: self [us] | cumulative | imported package"
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no importtime line for {module}")


def main() -> int:
    samples: dict[str, list[int]] = {"mlstack": [], "metaflow": []}
    for _ in range(RUNS):
        for mod in samples:
            samples[mod].append(cumulative_us(mod))
    med = {m: statistics.median(v) for m, v in samples.items()}
    ratio = med["mlstack"] / med["metaflow"]
    print(f"{'module':<10} {'median cumulative import (ms)':>30}")
    for m, v in med.items():
        print(f"{m:<10} {v / 1000:>30.1f}")
    print(f"ratio mlstack/metaflow = {ratio:.3f} (target <= 0.5): {'PASS' if ratio <= 0.5 else 'FAIL'}")
    return 0 if ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
