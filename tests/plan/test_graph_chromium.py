"""The HTML drawing of a shipped stack, opened in headless Chromium: every component drawn as a box of a
layered graph, every dependency as a labelled arrow, nothing overlapping or cut off, a screenshot taken.

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


def _body(html: str) -> dict[str, str]:
    body = re.search(r"<body([^>]*)>", html)
    assert body, "no <body> in the dumped DOM"
    return dict(re.findall(r'([\w-]+)="([^"]*)"', body.group(1)))


# a program with no components: resources are the boxes; one has a long name and a long type to wrap
BARE = """
import pulumi_aws as aws
key = aws.kms.Key("data-key", enable_key_rotation=True)
b = aws.s3.Bucket("data-bucket-with-a-long-name-for-wrapping")
aws.s3.BucketVersioning("data-versioning", bucket=b.id, versioning_configuration={"status": "Enabled"})
aws.s3.BucketServerSideEncryptionConfiguration("data-sse", bucket=b.id, rules=[{
    "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": key.arn}}])
r = aws.iam.Role("reader", assume_role_policy="{}")
aws.iam.RolePolicy("reader-policy", role=r.name, policy=b.arn.apply(lambda a: "{}"))
"""


def _bare(tmp_path: Path) -> Path:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: bare\nruntime: python\n")
    (folder / "Pulumi.example.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (folder / "__main__.py").write_text(BARE)
    return folder


@pytest.mark.parametrize("stack", ["aws-snowflake", "aws-databricks", "bare"])
def test_plan_html_in_headless_chromium(stack: str, tmp_path: Path, capsys) -> None:
    """The page as a person sees it: a layered graph whose boxes and edge labels overlap nothing and cut
    nothing off, at a wide and a narrow window; the cost table as the CLI prints it; then a screenshot."""
    exe = _chromium()
    page = tmp_path / "plan.html"
    folder = _bare(tmp_path) if stack == "bare" else ROOT / "stacks" / stack
    main(["plan", str(folder), "--graph", "html", "--out", str(page), "--json", "--no-fail"])
    import json

    plan = json.loads(capsys.readouterr().out)
    components = [r for r in plan["resources"] if r["component"]]
    if stack != "bare":
        assert {c["type"] for c in components} >= {
            "mlstack:index:MLStack",
            "mlstack:index:S3ArtifactStore",
            "mlstack:index:EksGpuCluster",
            "mlstack:index:ArgoWorkflows",
        }
    from mlstack.plan import run_plan
    from mlstack.plan.graph import component_edges

    n_edges = len(component_edges(run_plan(folder).recording))
    assert n_edges >= 3

    for width in (1600, 900):
        dom = _run(exe, tmp_path, f"--window-size={width},1200", "--dump-dom", page.as_uri())
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        body = _body(html)
        assert body.get("data-ready") == "1", "the page's script did not run"
        drawn = set(re.findall(r'<div class="node component[^"]*" id="g\d+" data-urn="([^"]+)"', html))
        missing = [c["urn"] for c in components if c["urn"].replace("&", "&amp;") not in drawn]
        assert not missing, f"components not drawn: {missing}"
        assert body["data-components-drawn"] == str(len(drawn))
        # every dependency drawn as an arrow with a label, and the layout holds at this width
        assert body["data-edges-drawn"] == body["data-labels-drawn"] == str(n_edges), body
        assert body["data-overlaps"] == "0", f"boxes or edge labels overlap at {width}px"
        assert body["data-clipped"] == "0", f"a name or label is cut off at {width}px"
        labels = re.findall(r'<div class="elabel"[^>]*>([^<]+)</div>', html)
        assert len(labels) == n_edges and all(t.startswith("uses ") for t in labels)
        for c in components:
            assert f'<div class="nname">{c["name"]}</div>' in html
        if stack == "bare":  # resources outside any component are boxes of their own
            assert html.count('class="node resource"') == 6
            assert '<div class="nname">data-bucket-with-a-long-name-for-wrapping</div>' in html

    # the cost table ends in the TOTAL the CLI prints, and says what is not included
    c = plan["cost"]
    total = re.search(r'<tr class="total"><td>TOTAL</td>(.*?)</tr>', html)
    assert total, "no TOTAL row"
    money = re.findall(r">(\$[\d,.]+|n/a)<", total.group(1))
    want = [
        c["totals"][k] for k in ("hourly_usd_min", "hourly_usd_max", "monthly_usd_min", "monthly_usd_max")
    ]
    assert money == [f"${v:,.2f}" for v in want]
    not_included = re.search(
        r'<details open="" id="not-included"><summary>Not included</summary><ul>(.*?)</ul>', html
    )
    assert not_included and not_included.group(1).count("<li>") == len(c["not_included"]) > 0

    shot = tmp_path / "plan.png"
    res = _run(exe, tmp_path, f"--screenshot={shot}", "--window-size=1600,1200", page.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1600, 1200)
    keep = os.environ.get("MLSTACK_PLAN_SCREENSHOT")
    if keep:  # CI can keep the picture as an artifact
        shutil.copy(shot, keep.replace(".png", f"-{stack}.png") if keep.endswith(".png") else keep)
