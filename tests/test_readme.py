"""The README's component example is real code: it runs under the mock runtime and exports a manifest."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_component_example_builds_a_stack(pulumi_run) -> None:
    code = re.search(r"```python\n(from mlstack.components.*?)```", README.read_text(), re.S)
    assert code, "the README lost its component example"
    rec = pulumi_run(lambda: exec(code.group(1), {}), project="readme", stack="dev")
    kinds = {r.type for r in rec.components()}
    assert {"mlstack:index:S3ArtifactStore", "mlstack:index:SnowflakeDataLayer", "mlstack:index:EksGpuCluster",
            "mlstack:index:ArgoWorkflows", "mlstack:index:MLStack"} <= kinds
    manifest = rec.stack_outputs["manifest"]
    from mlstack import manifest as m

    assert m.from_dict(manifest).compute.kind == "kubernetes"


def test_readme_shows_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    text = README.read_text()
    assert "pip install -e '.[local,examples]' && mlstack demo" in text
    test_cmd = "pip install -e '.[all,dev]' && pytest -n 2"
    assert test_cmd in text
    assert test_cmd in (README.parent / ".ci" / "run").read_text()
