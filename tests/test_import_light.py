from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "pulumi",
    "boto3",
    "botocore",
    "pyarrow",
    "pandas",
    "duckdb",
    "snowflake",
    "databricks",
    "kubernetes",
    "hera",
    "pydantic",
    "numpy",
    "requests",
)


def test_import_mlstack_imports_no_heavy_module() -> None:
    code = f"import sys, json, mlstack; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_submodules_load_on_first_use() -> None:
    code = (
        "import sys, mlstack; assert 'mlstack.manifest' not in sys.modules; "
        "mlstack.manifest; assert 'mlstack.manifest' in sys.modules; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
