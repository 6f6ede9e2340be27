"""``mlstack plan PATH``: run a stack's Pulumi program offline and report resources, cost, quota, findings.

This is an offline estimate, not a Pulumi preview: the program runs under Pulumi's mock runtime (no
credentials, no Pulumi CLI, no provider plugins). Heavy imports (pulumi, the providers) happen inside the
command.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from mlstack.cli._common import JsonOpt, console, emit_json, print_table


class GraphFormat(StrEnum):
    mermaid = "mermaid"
    dot = "dot"
    html = "html"


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def plan(
    path: Annotated[
        Path, typer.Argument(help="Pulumi project folder (holding Pulumi.yaml), e.g. stacks/aws-snowflake")
    ],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="Stack config YAML. Default: Pulumi.example.yaml in the folder.",
            dir_okay=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    graph: Annotated[
        GraphFormat | None,
        typer.Option("--graph", help="Also draw the stack: mermaid, dot or html (needs --out)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File the --graph drawing is written to.", dir_okay=False),
    ] = None,
    no_fail: Annotated[
        bool, typer.Option("--no-fail", help="Exit 0 even with high-severity findings.")
    ] = False,
    tree: Annotated[bool, typer.Option("--tree", help="Print every resource, nested by component.")] = False,
    skip: Annotated[
        list[str] | None, typer.Option("--skip", help="Rule id to skip (repeatable), e.g. --skip KMS-003.")
    ] = None,
) -> int:
    """Plan a stack offline: resource tree, cost estimate, GPU quota needs, policy findings, a drawing.

    An offline estimate, not a Pulumi preview. Exit 1 on a high-severity finding unless --no-fail.
    """
    from mlstack.errors import UsageError, require

    require("pulumi", "components", "mlstack plan")  # before anything imports it
    if graph is not None and out is None:
        raise UsageError(
            "--graph needs --out FILE",
            fix=f"add --out plan.{'mmd' if graph.value == 'mermaid' else graph.value}",
        )
    if out is not None and graph is None:
        raise UsageError("--out is only used with --graph", fix="add --graph mermaid|dot|html")
    from mlstack.plan import run_plan
    from mlstack.plan.graph import render
    from mlstack.plan.policy import RULES
    from mlstack.plan.policy.engine import load_rules

    load_rules()
    unknown = [s for s in skip or [] if s not in RULES]
    if unknown:
        raise UsageError(
            f"--skip {', '.join(unknown)}: no such rule", fix="see docs/policy.md for the rule ids"
        )
    result = run_plan(path, config, skip_rules=list(skip or []))
    d = result.to_dict()
    if graph is not None and out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(result, graph.value), encoding="utf-8")
        d["graph"] = {"format": graph.value, "file": str(out)}
    failed = bool(result.high_findings) and not no_fail
    if json_out:
        d["exit_code"] = 1 if failed else 0
        emit_json(d)
        return 1 if failed else 0
    _print_text(d, full_tree=tree)
    if graph is not None:
        console.print(f"drawing ({graph.value}) written to {out}")
    if failed:
        console.print(
            f"[bold red]{len(result.high_findings)} high-severity finding(s)[/]: exit 1 (--no-fail to report only)"
        )
    return 1 if failed else 0


def _tree_rows(nodes: list[dict], depth: int = 0) -> list[tuple[str, str, str]]:
    rows: list[tuple[str, str, str]] = []
    for n in nodes:
        if n.get("children") or n["component"]:
            rows.append(("  " * depth + n["name"], n["type"], str(n.get("resource_count", 0))))
            rows.extend(
                _tree_rows(
                    [c for c in n.get("children", []) if c.get("children") or c["component"]], depth + 1
                )
            )
    return rows


def _rich_tree(nodes: list[dict], parent) -> None:  # type: ignore[no-untyped-def]
    from rich.markup import escape

    for n in nodes:
        label = f"[bold]{escape(n['name'])}[/] [dim]{escape(n['type'])}[/]"
        branch = parent.add(label)
        _rich_tree(n.get("children", []), branch)


def _print_text(d: dict, *, full_tree: bool = False) -> None:
    from rich.markup import escape

    s = d["summary"]
    console.print(f"[bold]mlstack plan[/] {escape(d['project'])} ({escape(d['path'])})")
    console.print(
        f"[bold yellow]{d['notice']}[/]: the program ran under Pulumi's mock runtime; nothing was "
        f"sent to a cloud. Config: {escape(str(d['config_file']))}; region {d['region']}."
    )
    console.print(f"{s['resources']} resources in {s['components']} components")
    if full_tree:
        from rich.tree import Tree

        root = Tree(f"[bold]{escape(d['project'])}[/]")
        _rich_tree(d["tree"], root)
        console.print(root)
    else:
        print_table("Components", ["component", "type", "resources"], _tree_rows(d["tree"]))
    print_table("Resources by type", ["type", "count"], list(d["counts_by_type"].items()))
    c = d["cost"]
    print_table(
        f"Cost estimate (USD, {c['region']}, price table as of {c['price_table_as_of']}, {c['hours_per_month']:.0f} h/month)",
        ["item", "$/h min", "$/h max", "$/month min", "$/month max"],
        [
            (
                x["item"],
                _money(x["hourly_usd_min"]),
                _money(x["hourly_usd_max"]),
                _money(x["monthly_usd_min"]),
                _money(x["monthly_usd_max"]),
            )
            for x in c["lines"]
        ]
        + [
            (
                "TOTAL",
                _money(c["totals"]["hourly_usd_min"]),
                _money(c["totals"]["hourly_usd_max"]),
                _money(c["totals"]["monthly_usd_min"]),
                _money(c["totals"]["monthly_usd_max"]),
            )
        ],
    )
    console.print("[bold]Assumptions[/]")
    for a in c["assumptions"]:
        console.print(f"  - {escape(a)}")
    for u in c["unpriced"]:
        console.print(f"  - not priced: {escape(u['item'])}: {escape(u['why'])}")
    console.print("[bold]Not included[/]: " + escape("; ".join(c["not_included"])))
    print_table(
        "EC2 vCPU quota needs (node groups at maximum size, NodePools at their limits)",
        ["quota code", "name", "purchase", "vCPUs needed", "AWS default", "instance types"],
        [
            (
                q["quota_code"],
                q["name"],
                q["purchase_option"],
                q["vcpus_needed"],
                q["aws_default_vcpus"],
                ", ".join(q["instance_types"]),
            )
            for q in d["quota_needs"]
        ],
    )
    if d.get("gpu_slices"):
        print_table(
            "Shared GPUs: effective $/h per slice (node full, On-Demand)",
            ["pool", "instance type", "slice", "resource", "slices/node", "$/h per slice"],
            [
                (
                    x["pool"],
                    x["instance_type"],
                    x.get("slice") or x.get("problem", ""),
                    x.get("resource", ""),
                    x.get("slices_per_node", ""),
                    "n/a" if x.get("usd_per_slice_hour") is None else f"${x['usd_per_slice_hour']:.4f}",
                )
                for x in d["gpu_slices"]
            ],
        )
    if any(q.get("exceeds_aws_default") for q in d["quota_needs"]):
        console.print(
            "  quota needs above AWS's default values: check your account's applied quotas "
            "(`mlstack doctor --preflight`) and request increases before deploying"
        )
    if d["findings"]:
        console.print(f"[bold]Policy findings ({len(d['findings'])})[/]")
        colors = {"high": "red", "medium": "yellow", "low": "cyan"}
        for f in d["findings"]:
            res = f["resource"]
            where = f"{res['type']} {res['name']}" if res["type"] else "stack"
            console.print(
                f"  [{colors[f['severity']]}]{f['severity'].upper():6}[/] {f['rule_id']:8} {escape(where)}: "
                f"{escape(f['message'])}"
            )
            console.print(f"         fix: {escape(f['fix'])}")
    else:
        console.print("[green]Policy: no findings[/]")


def register(app: typer.Typer) -> None:
    """Add ``mlstack plan`` to the root app."""
    app.command("plan")(plan)
