"""The first hour as a newcomer meets it: the README tour's lines, its sample data, the platform-repo's deploy
lines and requirements, the venvs .gitignore'd, and doctor --preflight without credentials."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from mlstack.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _tour() -> list[tuple[str, list[str]]]:
    """(heading paragraph, command lines) for each block of the README's tour."""
    section = README.split("## A tour", 1)[1].split("\n## ", 1)[0]
    out = []
    for part in section.split("```bash\n")[1:]:
        block, _, _ = part.partition("```")
        out.append([ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")])
    # the paragraph just above each block
    intros = [
        chunk.rsplit("```", 1)[-1].strip().rsplit("\n\n", 1)[-1] for chunk in section.split("```bash\n")[:-1]
    ]
    return list(zip(intros, out, strict=True))


def test_every_tour_block_names_the_extras_it_needs() -> None:
    import tomllib

    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    blocks = _tour()
    assert len(blocks) >= 3 and sum(len(lines) for _, lines in blocks) >= 11
    for intro, lines in blocks:
        named = re.findall(r"\[([a-z0-9,]+)\]", intro)
        assert named, f"the tour block starting {lines[0]!r} does not say which extras it needs"
        for group in named:
            assert set(group.split(",")) <= extras, group


def test_the_tour_loads_a_file_that_ships() -> None:
    loads = [ln for _, lines in _tour() for ln in lines if "data load" in ln]
    assert loads
    for ln in loads:
        path = ln.split("data load", 1)[1].split()[0]
        assert (ROOT / path).is_file(), f"the tour loads {path}, which is not in the checkout"


def test_the_sample_sales_data_loads_and_sums(local_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "load", str(ROOT / "examples" / "data" / "sales.csv"), "sales"]) == 0
    capsys.readouterr()
    assert main(["data", "query", "select count(*) n, sum(amount) s from sales", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["rows"]
    assert row["n"] == 60 and row["s"] == pytest.approx(10447.0)


def test_platform_repo_deploy_lines_copy_the_example_config() -> None:
    text = (ROOT / "examples" / "platform-repo" / "README.md").read_text()
    block = re.search(r"## Plan it offline, then deploy\n\n```console\n(.*?)```", text, re.S)
    assert block
    lines = [ln.lstrip("$ ").split("#")[0].strip() for ln in block.group(1).splitlines()]
    (init,) = [i for i, ln in enumerate(lines) if "pulumi stack init" in ln]
    stack = lines[init].split("pulumi stack init", 1)[1].split()[0]
    (up,) = [i for i, ln in enumerate(lines) if ln.startswith("pulumi up")]
    assert f"cp Pulumi.example.yaml Pulumi.{stack}.yaml" in lines[init + 1 : up]


def test_platform_repo_requirements_say_where_mlstack_comes_from() -> None:
    from packaging.requirements import Requirement

    from mlstack._version import __version__

    text = (ROOT / "examples" / "platform-repo" / "requirements.txt").read_text()
    comments = " ".join(ln for ln in text.splitlines() if ln.startswith("#"))
    assert "package index" in comments and "-e ../..[components]" in comments and "pin" in comments
    (req,) = [Requirement(ln) for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert req.name == "mlstack" and req.extras == {"components"}
    assert req.specifier and __version__ in req.specifier  # pinned, and to the release line of this checkout


def test_readme_says_both_blocks_share_one_venv() -> None:
    setup = README.split("## Set up on a fresh machine", 1)[1].split("## A tour", 1)[0]
    assert setup.count("python3 -m venv .venv && . .venv/bin/activate") == 2 and "same `.venv`" in setup


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout")
def test_the_venvs_and_files_a_newcomer_makes_are_ignored() -> None:
    made = [
        ".venv/bin/python",
        ".venv-docs/bin/python",
        "stacks/aws-snowflake/venv/bin/python",
        "examples/platform-repo/venv/bin/python",
        ".mlstack/mlstack.json",
        "examples/churn/.mlstack/mlstack.json",
        "plan.html",
        "platform.html",
        "report.html",
    ]
    r = subprocess.run(["git", "check-ignore", "--no-index", *made], cwd=ROOT, capture_output=True, text=True)
    assert sorted(r.stdout.split()) == sorted(made)


def test_preflight_without_credentials_prints_the_failing_row_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pulumi_aws")
    folder = tmp_path / "gpu"
    folder.mkdir()
    (folder / "Pulumi.yaml").write_text("name: gpu\nruntime: python\n")
    (folder / "Pulumi.example.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (folder / "__main__.py").write_text(
        textwrap.dedent(
            """
            import pulumi_aws as aws
            c = aws.eks.Cluster("c", role_arn="arn:aws:iam::1:role/c", vpc_config={"subnet_ids": ["s1"]})
            aws.eks.NodeGroup("gpu", cluster_name=c.name, node_role_arn="r", subnet_ids=["s1"],
                instance_types=["g5.xlarge"], scaling_config={"min_size": 0, "max_size": 2, "desired_size": 0})
            """
        )
    )
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["doctor", "--preflight", str(folder), "--timeout", "30"]) == 1
    out = capsys.readouterr().out
    rows = [ln for ln in out.splitlines() if "preflight.credentials" in ln]
    assert len(rows) == 1 and rows[0].startswith("fail"), out
    assert "0 ok, 0 warn, 1 fail" in out


def test_identical_findings_are_reported_once() -> None:
    from mlstack.doctor.core import Check, fail, run_checks

    same = fail("x.credentials", "no credentials", "log in")
    rep = run_checks([Check("a", lambda s, t: s.add(same)), Check("b", lambda s, t: s.add(same))], 5)
    assert rep.findings == [same]


def test_the_local_tour_runs_line_by_line_as_written(tmp_path: Path) -> None:
    """Issue #15's acceptance: the README tour's local block, each line exactly as written through a shell, in a
    fresh folder holding the checkout's examples (so the stack starts empty and nothing lands in the checkout)."""
    import os
    import sys

    lines = next(ls for intro, ls in _tour() if "[local,examples]" in intro)
    assert lines[0].startswith("mlstack demo") and len(lines) >= 8
    work = tmp_path / "checkout"
    for sub in ("examples/churn", "examples/data"):
        shutil.copytree(ROOT / sub, work / sub)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLSTACK_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", COLUMNS="100")
    said: dict[str, str] = {}
    for line in lines:
        cmd = line.split("  #", 1)[0].strip()  # the comment is for the reader
        r = subprocess.run(
            ["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True, timeout=900, check=False
        )
        assert r.returncode == 0, (cmd, r.stdout[-2000:], r.stderr[-2000:])
        assert "Traceback" not in r.stderr, (cmd, r.stderr)
        said[cmd] = r.stdout

    def out(start: str) -> str:
        return next(v for k, v in said.items() if k.startswith(start))

    # what the lines promise: the alias decision, step results in JSON, the report page, the resume, the data
    run = out("mlstack run examples/churn --local -p threshold=0.8")
    assert "churn-model:production NOT moved" in run and "threshold 0.8" in run
    doc = json.loads(out("mlstack runs show latest --json"))
    evaluate = next(s for s in doc["steps"] if s["name"] == "evaluate")
    assert evaluate["result"]["threshold"] == 0.8 and evaluate["cards"]
    assert "<svg" in (work / "report.html").read_text()
    assert "reused" in out("mlstack run examples/churn --local --resume latest")
    assert "production" in out("mlstack artifacts show churn-model:production")
    loaded = out("mlstack data load examples/data/sales.csv sales")
    assert json.loads(loaded[loaded.index("{") :])["rows"][0]["n"] == 60
