"""Draw a recorded stack: Mermaid, Graphviz DOT, or a self-contained HTML page (inline SVG, no network).

Components are drawn as boxes (Mermaid subgraphs, DOT clusters, nested SVG groups) holding their resources;
arrows join components that depend on one another (a resource in one uses an output of a resource in the
other).
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlstack.plan.mock_runtime import Recording, Resource

if TYPE_CHECKING:  # pragma: no cover
    from mlstack.plan.result import PlanResult

FORMATS = ("mermaid", "dot", "html")
COLORS = {
    "aws": "#ff9900",
    "kubernetes": "#326ce5",
    "snowflake": "#29b5e8",
    "databricks": "#ff3621",
    "tls": "#6b7280",
    "mlstack": "#7c3aed",
    "pulumi": "#8a3391",
}


def short_type(t: str) -> str:
    """'aws:s3/bucket:Bucket' -> 'aws s3 Bucket'; 'mlstack:compute:EksGpuCluster' -> 'EksGpuCluster'."""
    parts = t.split(":")
    if len(parts) == 3:
        mod = parts[1].split("/")[0]
        if parts[0] == "mlstack":
            return parts[2]
        return f"{parts[0]} {mod} {parts[2]}" if mod not in ("index", "") else f"{parts[0]} {parts[2]}"
    return t


def color(r: Resource) -> str:
    return COLORS.get(r.package, "#64748b")


@dataclass
class _Node:
    res: Resource | None
    children: list[_Node] = field(default_factory=list)


def _forest(rec: Recording) -> list[_Node]:
    urns = {r.urn for r in rec.resources}
    nodes = {r.urn: _Node(r) for r in rec.resources}
    top: list[_Node] = []
    for r in rec.resources:
        if r.parent in urns:
            nodes[r.parent].children.append(nodes[r.urn])
        else:
            top.append(nodes[r.urn])
    return top


def _owner(rec: Recording) -> dict[str, str | None]:
    """resource urn -> urn of the top-level box it is drawn in."""
    by = {r.urn: r for r in rec.resources}
    out: dict[str, str | None] = {}
    for r in rec.resources:
        cur = r
        while cur.parent in by:
            cur = by[cur.parent]
        out[r.urn] = cur.urn
    return out


def component_edges(rec: Recording) -> list[tuple[str, str]]:
    """(from, to) pairs of top-level components/resources where ``from`` depends on ``to``."""
    owner = _owner(rec)
    edges: set[tuple[str, str]] = set()
    for r in rec.resources:
        a = owner.get(r.urn)
        for dep in r.options.get("dependencies") or []:
            b = owner.get(dep)
            if a and b and a != b:
                edges.add((a, b))
    order = {r.urn: n for n, r in enumerate(rec.resources)}
    return sorted(edges, key=lambda e: (order.get(e[0], 0), order.get(e[1], 0)))


def _ids(rec: Recording) -> dict[str, str]:
    return {r.urn: f"n{n}" for n, r in enumerate(rec.resources)}


def _mm(text: str) -> str:
    return re.sub(r'["<>]', "'", text)


def mermaid(rec: Recording) -> str:
    ids = _ids(rec)
    lines = ["flowchart LR"]

    def walk(node: _Node, depth: int) -> None:
        r = node.res
        assert r is not None
        pad = "  " * depth
        label = f"{_mm(r.name)}<br/><small>{_mm(short_type(r.type))}</small>"
        if r.is_component or node.children:
            lines.append(f'{pad}subgraph {ids[r.urn]}["{label}"]')
            for c in node.children:
                walk(c, depth + 1)
            lines.append(f"{pad}end")
        else:
            lines.append(f'{pad}{ids[r.urn]}["{label}"]')

    for n in _forest(rec):
        walk(n, 1)
    for a, b in component_edges(rec):
        lines.append(f"  {ids[a]} --> {ids[b]}")
    for r in rec.resources:
        if not (r.is_component or any(x.parent == r.urn for x in rec.resources)):
            lines.append(f"  style {ids[r.urn]} stroke:{color(r)},stroke-width:2px")
    return "\n".join(lines) + "\n"


def _dq(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(rec: Recording) -> str:
    ids = _ids(rec)
    anchor: dict[str, str] = {}
    out = [
        "digraph mlstack {",
        "  compound=true; rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor=white, fontname="Helvetica", fontsize=10];',
        '  graph [fontname="Helvetica", fontsize=12, style=rounded];',
    ]

    def walk(node: _Node, depth: int) -> str:
        r = node.res
        assert r is not None
        pad = "  " * depth
        if r.is_component or node.children:
            out.append(f"{pad}subgraph cluster_{ids[r.urn]} {{")
            out.append(f'{pad}  label="{_dq(r.name)}\\n{_dq(short_type(r.type))}"; color="{color(r)}";')
            first = None
            for c in node.children:
                a = walk(c, depth + 1)
                first = first or a
            if first is None:  # an empty component still gets drawn
                first = ids[r.urn] + "_empty"
                out.append(f'{pad}  {first} [label="(no resources)", style=dashed];')
            out.append(f"{pad}}}")
            anchor[r.urn] = first
            return first
        out.append(
            f'{pad}{ids[r.urn]} [label="{_dq(r.name)}\\n{_dq(short_type(r.type))}", color="{color(r)}"];'
        )
        anchor[r.urn] = ids[r.urn]
        return ids[r.urn]

    for n in _forest(rec):
        walk(n, 1)
    for a, b in component_edges(rec):
        attrs = []
        ra, rb = rec.by_urn(a), rec.by_urn(b)
        if ra is not None and (ra.is_component or anchor[a] != ids[a]):
            attrs.append(f"ltail=cluster_{ids[a]}")
        if rb is not None and (rb.is_component or anchor[b] != ids[b]):
            attrs.append(f"lhead=cluster_{ids[b]}")
        out.append(f"  {anchor[a]} -> {anchor[b]}" + (f" [{', '.join(attrs)}];" if attrs else ";"))
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ HTML (inline SVG + a little JS)
CHIP_W, CHIP_H, GAP, HEAD, PAD, MAX_W = 230, 40, 12, 34, 12, 1500


@dataclass
class _Box:
    node: _Node
    w: float = 0
    h: float = 0
    x: float = 0
    y: float = 0
    kids: list[_Box] = field(default_factory=list)


def _measure(node: _Node, max_w: float) -> _Box:
    b = _Box(node)
    if not node.children:
        b.w, b.h = CHIP_W, CHIP_H
        return b
    b.kids = [_measure(c, max_w - 2 * PAD) for c in node.children]
    # flow layout: chips first, then boxes, wrapping rows at max_w
    b.kids.sort(key=lambda k: (bool(k.kids), 0))
    x, y, row_h, width = float(PAD), float(HEAD), 0.0, 0.0
    for k in b.kids:
        if x > PAD and x + k.w > max_w - PAD:
            x, y = PAD, y + row_h + GAP
            row_h = 0.0
        k.x, k.y = x, y
        x += k.w + GAP
        row_h = max(row_h, k.h)
        width = max(width, x - GAP + PAD)
    b.w = max(width, CHIP_W + 2 * PAD, 8.0 * len(node.res.name if node.res else "") + 2 * PAD)
    b.h = y + row_h + PAD
    return b


def _svg_box(b: _Box, ox: float, oy: float, out: list[str]) -> None:
    r = b.node.res
    assert r is not None
    x, y = ox + b.x, oy + b.y
    name, typ = html.escape(r.name), html.escape(short_type(r.type))
    urn = html.escape(r.urn, quote=True)
    if b.kids or r.is_component:
        out.append(
            f'<g class="component" data-urn="{urn}" data-type="{html.escape(r.type)}" data-name="{name}">'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{b.w:.0f}" height="{b.h:.0f}" rx="10" fill="{color(r)}" '
            f'fill-opacity="0.06" stroke="{color(r)}" stroke-width="2"/>'
            f'<text x="{x + PAD:.0f}" y="{y + 22:.0f}" class="ctitle">{name} '
            f'<tspan class="ctype">{typ}</tspan></text><title>{urn}</title></g>'
        )
        for k in b.kids:
            _svg_box(k, x, y, out)
    else:
        out.append(
            f'<g class="resource" data-urn="{urn}" data-type="{html.escape(r.type)}" data-name="{name}">'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{b.w:.0f}" height="{b.h:.0f}" rx="6" fill="#fff" '
            f'stroke="{color(r)}" stroke-width="1.5"/>'
            f'<text x="{x + 8:.0f}" y="{y + 16:.0f}" class="rname">{html.escape(_clip(r.name, 30))}</text>'
            f'<text x="{x + 8:.0f}" y="{y + 31:.0f}" class="rtype">{html.escape(_clip(short_type(r.type), 34))}</text>'
            f"<title>{urn}</title></g>"
        )


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def svg(rec: Recording) -> str:
    tops = [_measure(n, MAX_W) for n in _forest(rec)]
    tops.sort(key=lambda k: (not bool(k.kids),))
    left = 70.0  # room for the dependency curves
    x, y, row_h, width = left, float(GAP), 0.0, 0.0
    for k in tops:
        if x > left and x + k.w > MAX_W:
            x, y = left, y + row_h + 3 * GAP
            row_h = 0.0
        k.x, k.y = x, y
        x += k.w + 3 * GAP
        row_h = max(row_h, k.h)
        width = max(width, x)
    height = y + row_h + GAP
    body: list[str] = []
    centers: dict[str, tuple[float, float, float, float]] = {}
    for k in tops:
        _svg_box(k, 0, 0, body)
        assert k.node.res is not None
        centers[k.node.res.urn] = (k.x, k.y, k.w, k.h)
    edges = []
    for n, (a, b) in enumerate(component_edges(rec)):
        if a in centers and b in centers:
            # curves in the left margin, from the dependent box's left side to its dependency's
            ax, ay, _, ah = centers[a]
            bx, by, _, bh = centers[b]
            y1, y2 = ay + min(24.0, ah / 2), by + min(24.0, bh / 2) + 6
            bend = max(8.0, min(ax, bx) - 10 - 6 * (n % 8))
            edges.append(
                f'<path class="edge" d="M {ax:.0f} {y1:.0f} C {bend:.0f} {y1:.0f}, {bend:.0f} {y2:.0f}, '
                f'{bx:.0f} {y2:.0f}" fill="none" marker-end="url(#arrow)"><title>{html.escape(a)} depends on '
                f"{html.escape(b)}</title></path>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="stack" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#475569"/></marker></defs>'
        + "".join(body)
        + '<g class="edges">'
        + "".join(edges)
        + "</g></svg>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
header{padding:16px 24px;background:#0f172a;color:#f8fafc}
header h1{margin:0 0 4px;font-size:20px} header .notice{color:#fbbf24;font-weight:600}
main{padding:16px 24px} .cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:12px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:18px} #filter{padding:6px 10px;width:320px;border:1px solid #cbd5e1;border-radius:6px}
#canvas{overflow:auto;background:#fff;border:1px solid #e2e8f0;border-radius:8px;margin-top:10px}
.ctitle{font-size:13px;font-weight:700;fill:#0f172a} .ctype{font-weight:400;fill:#64748b;font-size:11px}
.rname{font-size:11px;font-weight:600;fill:#0f172a} .rtype{font-size:10px;fill:#64748b}
.edge{stroke:#475569;stroke-width:1.5;stroke-dasharray:5 4;opacity:.55}
g.dim{opacity:.15} g.hit rect{stroke-width:4}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px} td,th{border:1px solid #e2e8f0;padding:4px 8px;
font-size:13px;text-align:left} th{background:#f1f5f9} .high{color:#b91c1c;font-weight:700}
.medium{color:#b45309;font-weight:600} .low{color:#475569}
#tip{position:fixed;pointer-events:none;background:#0f172a;color:#fff;font-size:12px;padding:6px 8px;border-radius:6px;
display:none;max-width:520px;word-break:break-all}
"""

_JS = """
(function(){
  var tip=document.getElementById('tip');
  document.querySelectorAll('#stack g.resource, #stack g.component').forEach(function(g){
    g.addEventListener('mousemove',function(e){tip.style.display='block';tip.style.left=(e.clientX+12)+'px';
      tip.style.top=(e.clientY+12)+'px';tip.textContent=g.dataset.name+'  ['+g.dataset.type+']';e.stopPropagation();});
    g.addEventListener('mouseleave',function(){tip.style.display='none';});
  });
  var f=document.getElementById('filter');
  f.addEventListener('input',function(){
    var q=f.value.toLowerCase();
    document.querySelectorAll('#stack g.resource').forEach(function(g){
      var hit=q&&(g.dataset.name+' '+g.dataset.type).toLowerCase().indexOf(q)>=0;
      g.classList.toggle('hit',!!hit); g.classList.toggle('dim',!!q&&!hit);
    });
  });
  var drawn=document.querySelectorAll('#stack g.component').length;
  document.body.setAttribute('data-components-drawn', String(drawn));
  document.body.setAttribute('data-ready','1');
})();
"""


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def html_page(result: PlanResult) -> str:
    """A single HTML file: summary cards, the stack drawing, cost, quota and findings. No external fetch."""
    d = result.to_dict()
    s = d["summary"]
    e = html.escape
    rows_cost = "".join(
        f"<tr><td>{e(x['item'])}</td><td>{_money(x['hourly_usd_min'])}</td><td>{_money(x['hourly_usd_max'])}</td>"
        f"<td>{_money(x['monthly_usd_min'])}</td><td>{_money(x['monthly_usd_max'])}</td></tr>"
        for x in d["cost"]["lines"]
    )
    rows_q = "".join(
        f"<tr><td>{e(str(q['quota_code']))}</td><td>{e(q['name'])}</td><td>{q['vcpus_needed']}</td>"
        f"<td>{e(', '.join(q['instance_types']))}</td><td>{q['aws_default_vcpus']}</td></tr>"
        for q in d["quota_needs"]
    )
    rows_f = (
        "".join(
            f"<tr><td class='{f['severity']}'>{e(f['severity'])}</td><td>{e(f['rule_id'])}</td>"
            f"<td>{e(str(f['resource']['name']))}</td><td>{e(f['message'])}</td><td>{e(f['fix'])}</td></tr>"
            for f in d["findings"]
        )
        or "<tr><td colspan=5>No findings.</td></tr>"
    )
    assumptions = "".join(f"<li>{e(a)}</li>" for a in d["cost"]["assumptions"])
    comps = [r for r in d["resources"] if r["component"]]
    data = json.dumps({"components": [c["urn"] for c in comps], "summary": s}).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>mlstack plan: {e(d["project"])}</title><style>{_CSS}</style></head>
<body>
<header><h1>mlstack plan: {e(d["project"])}</h1>
<div class="notice">{e(d["notice"])}: run under Pulumi's mock runtime, no cloud was contacted.</div>
<div>region {e(d["region"])} &middot; prices as of {e(d["cost"]["price_table_as_of"])}</div></header>
<main>
<div class="cards">
<div class="card">resources<b>{s["resources"]}</b></div>
<div class="card">components<b>{s["components"]}</b></div>
<div class="card">$/hour (min..max)<b>{_money(s["hourly_usd_min"])} .. {_money(s["hourly_usd_max"])}</b></div>
<div class="card">$/month (min..max)<b>{_money(s["monthly_usd_min"])} .. {_money(s["monthly_usd_max"])}</b></div>
<div class="card">findings (high/medium/low)<b>{s["findings"]["high"]} / {s["findings"]["medium"]} / {s["findings"]["low"]}</b></div>
</div>
<input id="filter" placeholder="highlight resources by name or type" aria-label="filter">
<div id="canvas">{svg(result.recording)}</div>
<h2>Cost estimate</h2>
<table><tr><th>item</th><th>$/h min</th><th>$/h max</th><th>$/month min</th><th>$/month max</th></tr>{rows_cost}</table>
<details open><summary>Assumptions</summary><ul>{assumptions}</ul></details>
<h2>EC2 vCPU quota needs (at maximum size)</h2>
<table><tr><th>quota code</th><th>name</th><th>vCPUs needed</th><th>instance types</th><th>AWS default</th></tr>{rows_q}</table>
<h2>Policy findings</h2>
<table><tr><th>severity</th><th>rule</th><th>resource</th><th>message</th><th>fix</th></tr>{rows_f}</table>
</main>
<div id="tip"></div>
<script type="application/json" id="plan-data">{data}</script>
<script>{_JS}</script>
</body></html>
"""


def render(result: PlanResult, fmt: str) -> str:
    if fmt == "mermaid":
        return mermaid(result.recording)
    if fmt == "dot":
        return dot(result.recording)
    if fmt == "html":
        return html_page(result)
    from mlstack.errors import UsageError

    raise UsageError(f"--graph {fmt!r} is not a graph format", fix=f"use one of: {', '.join(FORMATS)}")


def to_dict_graph(rec: Recording) -> dict[str, Any]:
    """Nodes and component edges as data (for tools that draw their own)."""
    return {
        "nodes": [{"urn": r.urn, "type": r.type, "name": r.name, "parent": r.parent} for r in rec.resources],
        "edges": [{"from": a, "to": b} for a, b in component_edges(rec)],
    }
