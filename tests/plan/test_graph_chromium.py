"""The HTML drawing of a shipped stack, opened in headless Chromium: every component drawn, a screenshot taken.

Marked ``chromium``: skipped when Debian's chromium is missing, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from mlstack.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.chromium


def _chromium() -> str:
    exe = next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )
    if exe is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("chromium is not installed (apt-get install -y chromium); CI must run this test")
        pytest.skip("chromium is not installed")
    return exe


def _run(exe: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    cmd = [
        exe,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-sync",
        "--metrics-recording-only",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=3000",
        *args,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)}
    )


def test_aws_snowflake_plan_html_in_headless_chromium(tmp_path: Path, capsys) -> None:
    exe = _chromium()
    page = tmp_path / "plan.html"
    assert (
        main(
            ["plan", str(ROOT / "stacks" / "aws-snowflake"), "--graph", "html", "--out", str(page), "--json"]
        )
        == 0
    )
    import json

    plan = json.loads(capsys.readouterr().out)
    components = [r for r in plan["resources"] if r["component"]]
    assert {c["type"] for c in components} >= {
        "mlstack:stack:MLStack",
        "mlstack:artifacts:S3ArtifactStore",
        "mlstack:data:SnowflakeDataLayer",
        "mlstack:compute:EksGpuCluster",
        "mlstack:orchestrator:ArgoWorkflows",
    }

    dom = _run(exe, tmp_path, "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert 'data-ready="1"' in html, "the page's script did not run"
    drawn = set(re.findall(r'<g class="component" data-urn="([^"]+)"', html))
    missing = [c["urn"] for c in components if c["urn"].replace("&", "&amp;") not in drawn]
    assert not missing, f"components not drawn: {missing}"
    assert f'data-components-drawn="{len(drawn)}"' in html

    shot = tmp_path / "plan.png"
    res = _run(exe, tmp_path, f"--screenshot={shot}", "--window-size=1600,1200", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    keep = os.environ.get("MLSTACK_PLAN_SCREENSHOT")
    if keep:  # CI can keep the picture as an artifact
        shutil.copy(shot, keep)
