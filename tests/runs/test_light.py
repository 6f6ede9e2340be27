"""``import mlstack.runs`` stays as cheap as ``import mlstack``: the standard library only."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_runs_client_loads_no_heavy_module() -> None:
    code = (
        "import sys, mlstack.runs as r; assert callable(r.list) and callable(r.get); "
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.strip().split(","))
    heavy = {"pydantic", "boto3", "botocore", "rich", "typer", "yaml", "hera", "pyarrow", "pandas", "pulumi"}
    assert not loaded & heavy, loaded & heavy
