"""Draw a recorded stack: Mermaid, Graphviz DOT, or a self-contained HTML page (no network).

Mermaid and DOT draw components as boxes (subgraphs, clusters) holding their resources. The HTML page draws
the stack as a layered graph a person can follow: one card per component (its resource kinds, its resources'
names on demand), dependents above what they use, arrows labelled with the kinds of resource used; the page's
script routes the arrows once the browser has laid the cards out. Arrows join components that depend on one
another (a resource in one uses an output of a resource in the other).
"""

from __future__ import annotations

import html
import itertools
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
    """'aws:s3/bucket:Bucket' -> 'aws s3 Bucket'; 'mlstack:index:EksGpuCluster' -> 'EksGpuCluster'."""
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
    details = edge_details(rec)
    for a, b in component_edges(rec):
        label = _mm(edge_label(rec, details.get((a, b), []))).replace("|", "/")
        lines.append(f"  {ids[a]} -->|{label}| {ids[b]}")
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
    details = edge_details(rec)
    for a, b in component_edges(rec):
        attrs = [f'label="{_dq(edge_label(rec, details.get((a, b), [])))}"']
        ra, rb = rec.by_urn(a), rec.by_urn(b)
        if ra is not None and (ra.is_component or anchor[a] != ids[a]):
            attrs.append(f"ltail=cluster_{ids[a]}")
        if rb is not None and (rb.is_component or anchor[b] != ids[b]):
            attrs.append(f"lhead=cluster_{ids[b]}")
        out.append(f"  {anchor[a]} -> {anchor[b]}" + (f" [{', '.join(attrs)}];" if attrs else ";"))
    out.append("}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------ edges, with what they carry
def edge_details(rec: Recording) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """(from, to) of :func:`component_edges` -> the (resource in from, resource in to it uses) pairs."""
    owner = _owner(rec)
    out: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in rec.resources:
        a = owner.get(r.urn)
        for dep in r.options.get("dependencies") or []:
            b = owner.get(dep)
            if a and b and a != b and (r.urn, dep) not in out.get((a, b), []):
                out.setdefault((a, b), []).append((r.urn, dep))
    return out


def _kind(type_token: str) -> str:
    """'aws:eks/cluster:Cluster' -> 'Cluster'; 'pulumi:providers:kubernetes' -> 'kubernetes provider'."""
    if type_token.startswith("pulumi:providers:"):
        return type_token.rsplit(":", 1)[-1] + " provider"
    return type_token.rsplit(":", 1)[-1]


def edge_label(rec: Recording, pairs: list[tuple[str, str]], most: int = 2) -> str:
    """A short label for an edge: the kinds of resource the dependent uses, most used first."""
    counts: dict[str, int] = {}
    for _, dep in pairs:
        r = rec.by_urn(dep)
        if r is not None:
            k = _kind(r.type)
            counts[k] = counts.get(k, 0) + 1
    kinds = sorted(counts, key=lambda k: (-counts[k], k))
    more = len(kinds) - most
    return "uses " + ", ".join(kinds[:most]) + (f" +{more} more" if more > 0 else "")


def edge_title(rec: Recording, pairs: list[tuple[str, str]]) -> str:
    """Every reference behind an edge, one per line: 'argo-release -> gpu-jobs (ServiceAccount)'."""
    lines = []
    for src, dep in pairs:
        a, b = rec.by_urn(src), rec.by_urn(dep)
        if a is not None and b is not None:
            lines.append(f"{a.name} -> {b.name} ({_kind(b.type)})")
    return "\n".join(lines)


# ------------------------------------------------------------------ a layered layout (Sugiyama, small)
@dataclass
class Layout:
    """Top-level boxes in layers: dependents above what they use. ``layers`` holds node ids in drawing order;
    ids starting with ``~`` are waypoints of an edge that spans more than one layer (``edges[i]["via"]``)."""

    layers: list[list[str]]
    edges: list[dict[str, Any]]


def layout(rec: Recording, sweeps: int = 4) -> Layout:
    """Longest-path layering (cycles broken at the edge that closes them), waypoints for long edges, then
    barycentre sweeps to keep edges short and uncrossed."""
    tops = [n.res.urn for n in _forest(rec) if n.res is not None]
    index = {u: i for i, u in enumerate(tops)}
    edges = [(a, b) for a, b in component_edges(rec) if a in index and b in index]
    uses: dict[str, list[str]] = {u: [] for u in tops}
    for a, b in edges:
        uses[a].append(b)
    # drop the edges that close a cycle (depth-first, in registration order): the rest is acyclic
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()

    def visit(u: str) -> None:
        state[u] = 1
        for v in uses[u]:
            if state.get(v) == 1:
                back.add((u, v))
            elif v not in state:
                visit(v)
        state[u] = 2

    for u in tops:
        if u not in state:
            visit(u)
    depth: dict[str, int] = {}

    def level(u: str) -> int:  # 0: uses nothing; else one above the highest thing it uses
        if u not in depth:
            depth[u] = 0
            depth[u] = 1 + max((level(v) for v in uses[u] if (u, v) not in back), default=-1)
        return depth[u]

    for u in tops:
        level(u)
    height = max(depth.values(), default=0)
    rank = {u: height - depth[u] for u in tops}  # row 0 at the top: the stack's entry points
    rows: list[list[str]] = [[] for _ in range(height + 1)]
    for u in tops:
        rows[rank[u]].append(u)
    out_edges: list[dict[str, Any]] = []
    way = 0
    for a, b in edges:
        ra, rb = rank[a], rank[b]
        step = 1 if rb > ra else -1
        via = []
        for r in range(ra + step, rb, step):
            wid = f"~{way}"
            way += 1
            rows[r].append(wid)
            rank[wid] = r
            via.append(wid)
        out_edges.append({"from": a, "to": b, "via": via, "back": (a, b) in back or rb < ra})
    # neighbours of each slot, for the barycentre of the rows above and below
    up: dict[str, list[str]] = {}
    down: dict[str, list[str]] = {}
    for e in out_edges:
        chain = [e["from"], *e["via"], e["to"]]
        for x, y in itertools.pairwise(chain):
            hi, lo = (x, y) if rank[x] < rank[y] else (y, x)
            down.setdefault(hi, []).append(lo)
            up.setdefault(lo, []).append(hi)

    def bary(row: list[str], nb: dict[str, list[str]], ref: list[str]) -> list[str]:
        pos = {u: i for i, u in enumerate(ref)}
        keyed = []
        for i, u in enumerate(row):
            ns = [pos[n] for n in nb.get(u, []) if n in pos]
            keyed.append((sum(ns) / len(ns) if ns else float(i), i, u))
        return [u for _, _, u in sorted(keyed)]

    for _ in range(sweeps):
        for r in range(1, len(rows)):
            rows[r] = bary(rows[r], up, rows[r - 1])
        for r in range(len(rows) - 2, -1, -1):
            rows[r] = bary(rows[r], down, rows[r + 1])
    return Layout(rows, out_edges)


# ------------------------------------------------------------------ HTML: cards in layers, edges drawn by JS
def _provider_mix(node: _Node) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}

    def walk(n: _Node) -> None:
        for c in n.children:
            if c.res is not None and not c.children:
                counts[c.res.package] = counts.get(c.res.package, 0) + 1
            walk(c)

    walk(node)
    return sorted(counts.items(), key=lambda kv: -kv[1])


def _leaves(node: _Node) -> list[Resource]:
    out: list[Resource] = []
    for c in node.children:
        if c.res is None:
            continue
        if c.children:
            out.extend(_leaves(c))
        else:
            out.append(c.res)
    return out


CHIPS = 6  # resource kinds shown on a card; the rest are a count (every name is under "names")


def _card(node: _Node, nid: str) -> str:
    r = node.res
    assert r is not None
    e = html.escape
    leaves = _leaves(node)
    mix = _provider_mix(node)
    accent = COLORS.get(mix[0][0], "#64748b") if mix else color(r)
    kinds: dict[str, int] = {}
    for x in leaves:
        kinds[short_type(x.type)] = kinds.get(short_type(x.type), 0) + 1
    ranked = sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))
    chips = "".join(
        f'<span class="chip" style="border-color:{COLORS.get(k.split()[0], "#94a3b8")}">{e(k)}'
        + (f" <b>&times;{n}</b>" if n > 1 else "")
        + "</span>"
        for k, n in ranked[:CHIPS]
    ) + (f'<span class="chip more">+{len(ranked) - CHIPS} more kinds</span>' if len(ranked) > CHIPS else "")
    items = "".join(
        f'<li data-name="{e(x.name)}" data-type="{e(x.type)}"><span class="rn">{e(x.name)}</span> '
        f'<span class="rt">{e(short_type(x.type))}</span></li>'
        for x in leaves
    )
    kind = "component" if (r.is_component or node.children) else "resource"
    count = f"{len(leaves)} resource{'s' if len(leaves) != 1 else ''}" if kind == "component" else ""
    body = (
        f'<div class="chips">{chips}</div><details class="members"><summary>{count}: names</summary>'
        f"<ul>{items}</ul></details>"
        if kind == "component" and leaves
        else ""
    )
    return (
        f'<div class="node {kind}" id="{nid}" data-urn="{e(r.urn, quote=True)}" data-name="{e(r.name)}" '
        f'data-type="{e(r.type)}" style="border-top-color:{accent}" title="{e(r.urn, quote=True)}">'
        f'<div class="nname">{e(r.name)}</div><div class="ntype">{e(short_type(r.type))}'
        + (f' &middot; <span class="ncount">{count}</span>' if count else "")
        + f"</div>{body}</div>"
    )


def graph_html(rec: Recording) -> tuple[str, list[dict[str, Any]]]:
    """The stack as layered cards (HTML) and its edges (ids, waypoints, label, title) for the page's JS."""
    lay = layout(rec)
    forest = {n.res.urn: n for n in _forest(rec) if n.res is not None}
    ids = {u: f"g{i}" for i, u in enumerate(forest)}
    details = edge_details(rec)
    rows = []
    for i, row in enumerate(lay.layers):
        cells = []
        for u in row:
            if u.startswith("~"):
                cells.append(f'<div class="way" id="w{u[1:]}"></div>')
            else:
                cells.append(_card(forest[u], ids[u]))
        last = " last" if i == len(lay.layers) - 1 else ""
        rows.append(f'<div class="layer{last}" data-layer="{i}">{"".join(cells)}</div>')
    edges = [
        {
            "from": ids[e["from"]],
            "to": ids[e["to"]],
            "via": [f"w{w[1:]}" for w in e["via"]],
            "label": edge_label(rec, details.get((e["from"], e["to"]), [])),
            "title": f"{rec.by_urn(e['from']).name} depends on {rec.by_urn(e['to']).name}:\n"  # type: ignore[union-attr]
            + edge_title(rec, details.get((e["from"], e["to"]), [])),
        }
        for e in lay.edges
    ]
    body = (
        '<div id="graph"><div id="canvas"><svg id="edges" xmlns="http://www.w3.org/2000/svg" aria-hidden="true">'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#334155"/></marker></defs></svg>'
        f'{"".join(rows)}<div id="labels"></div></div></div>'
    )
    return body, edges


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
header{padding:16px 24px;background:#0f172a;color:#f8fafc}
header h1{margin:0 0 4px;font-size:20px} header .notice{color:#fbbf24;font-weight:600}
main{padding:16px 24px;max-width:1500px} .cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:12px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:18px} #filter{padding:6px 10px;width:320px;border:1px solid #cbd5e1;border-radius:6px}
.legend{color:#475569;font-size:13px;margin:6px 0}
#graph{background:#fff;border:1px solid #e2e8f0;border-radius:8px;margin-top:10px;overflow-x:auto}
#canvas{position:relative;width:max-content;min-width:100%;box-sizing:border-box;padding:24px 24px 8px}
#edges{position:absolute;left:0;top:0;overflow:visible;pointer-events:none}
.layer{display:flex;flex-wrap:nowrap;justify-content:center;align-items:flex-start;gap:56px;margin-bottom:120px;position:relative}
.layer.last{margin-bottom:16px}
.node{position:relative;z-index:1;background:#fff;border:1px solid #cbd5e1;border-top:5px solid #7c3aed;border-radius:8px;
padding:8px 10px;width:264px;flex-shrink:0;box-sizing:border-box;box-shadow:0 1px 2px rgba(15,23,42,.06)}
.node.resource{width:auto;min-width:200px;max-width:340px}
.nname{font-weight:700;font-size:15px;overflow-wrap:anywhere} .ntype{color:#64748b;font-size:12px;margin-top:2px;overflow-wrap:anywhere}
.chips{display:flex;flex-wrap:wrap;gap:4px;margin-top:6px}
.chip{font-size:11px;border:1px solid #94a3b8;border-left-width:4px;border-radius:4px;padding:1px 5px;color:#334155;background:#f8fafc}
.members{margin-top:6px;font-size:12px} .members summary{cursor:pointer;color:#334155}
.members ul{margin:4px 0 0;padding-left:16px;max-height:none} .members li{overflow-wrap:anywhere}
.rn{font-weight:600} .rt{color:#64748b}
.way{width:16px;align-self:stretch;min-height:40px}
.edge{fill:none;stroke:#334155;stroke-width:1.6;opacity:.75}
.edge.back{stroke-dasharray:6 4}
.elabel{position:absolute;z-index:2;background:#fff;border:1px solid #cbd5e1;border-radius:10px;padding:1px 8px;
font-size:12px;color:#0f172a;white-space:nowrap;cursor:help}
#graph.focus .node:not(.on),#graph.focus .elabel:not(.on){opacity:.25} #graph.focus .edge:not(.on){opacity:.12}
.edge.on{stroke:#7c3aed;stroke-width:2.4;opacity:1} .elabel.on{border-color:#7c3aed}
.node.hit{outline:3px solid #f59e0b} li.hit{background:#fef3c7}
table{border-collapse:collapse;background:#fff;margin:8px 0 16px} td,th{border:1px solid #e2e8f0;padding:4px 8px;
font-size:13px;text-align:left} th{background:#f1f5f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:700;border-top:2px solid #94a3b8}
.high{color:#b91c1c;font-weight:700} .medium{color:#b45309;font-weight:600} .low{color:#475569}
"""

_JS = """
(function(){
  var graph=document.getElementById('canvas'), svg=document.getElementById('edges');
  var labels=document.getElementById('labels');
  var edges=JSON.parse(document.getElementById('plan-edges').textContent);
  var NS='http://www.w3.org/2000/svg';
  function box(el){var g=graph.getBoundingClientRect(),r=el.getBoundingClientRect();
    return {x:r.left-g.left,y:r.top-g.top,w:r.width,h:r.height};}
  function hits(a,b,m){m=m||0;return a.x<b.x+b.w+m&&b.x<a.x+a.w+m&&a.y<b.y+b.h+m&&b.y<a.y+a.h+m;}
  function draw(){
    while(svg.lastChild&&svg.lastChild.nodeName!=='defs')svg.removeChild(svg.lastChild);
    labels.innerHTML='';
    svg.setAttribute('width',graph.scrollWidth);svg.setAttribute('height',graph.scrollHeight);
    // where each edge leaves and enters: spread over the card's bottom and top edges
    var outs={},ins={};
    function cx(id){var b=box(document.getElementById(id));return b.x+b.w/2;}
    edges.forEach(function(e,i){(outs[e.from]=outs[e.from]||[]).push(i);(ins[e.to]=ins[e.to]||[]).push(i);});
    // ports in the order of where their edges head, so edges leaving one box do not cross at once
    Object.keys(outs).forEach(function(k){outs[k].sort(function(i,j){
      var a=edges[i],b=edges[j];return cx(a.via[0]||a.to)-cx(b.via[0]||b.to);});});
    Object.keys(ins).forEach(function(k){ins[k].sort(function(i,j){
      var a=edges[i],b=edges[j];return cx(a.via[a.via.length-1]||a.from)-cx(b.via[b.via.length-1]||b.from);});});
    var nodes=[].slice.call(graph.querySelectorAll('.node')).map(box), placed=[];
    edges.forEach(function(e,i){
      var a=box(document.getElementById(e.from)), b=box(document.getElementById(e.to));
      var up=b.y<a.y, ko=outs[e.from].indexOf(i), ki=ins[e.to].indexOf(i);
      var sx=a.x+a.w*(ko+1)/(outs[e.from].length+1), tx=b.x+b.w*(ki+1)/(ins[e.to].length+1);
      var pts=[[sx,up?a.y:a.y+a.h]];
      e.via.forEach(function(w){var c=box(document.getElementById(w));
        pts.push([c.x+c.w/2,up?c.y+c.h:c.y]);pts.push([c.x+c.w/2,up?c.y:c.y+c.h]);});
      pts.push([tx,up?b.y+b.h:b.y]);
      var d='M '+pts[0][0]+' '+pts[0][1];
      for(var k=1;k<pts.length;k++){var p=pts[k-1],q=pts[k],my=(p[1]+q[1])/2;
        d+=' C '+p[0]+' '+my+', '+q[0]+' '+my+', '+q[0]+' '+q[1];}
      var path=document.createElementNS(NS,'path');path.setAttribute('d',d);
      path.setAttribute('class','edge'+(e.back?' back':''));path.setAttribute('marker-end','url(#arrow)');
      path.dataset.from=e.from;path.dataset.to=e.to;
      var t=document.createElementNS(NS,'title');t.textContent=e.title;path.appendChild(t);svg.appendChild(path);
      // the label goes on the edge itself: the point nearest its middle where it covers no box and no label
      var lab=document.createElement('div');lab.className='elabel';lab.textContent=e.label;lab.title=e.title;
      lab.dataset.from=e.from;lab.dataset.to=e.to;labels.appendChild(lab);
      var w=lab.offsetWidth,h=lab.offsetHeight,len=path.getTotalLength(),best=null;
      var W=graph.clientWidth;
      function free(r){return r.x>=0&&r.y>=0&&r.x+r.w<=W&&!nodes.some(function(n){return hits(r,n,4);})&&
        !placed.some(function(o){return hits(r,o,3);});}
      // centred on the line first, anywhere along it; then beside it
      [0,-(w/2+10),w/2+10].forEach(function(dx){
        for(var s=0;s<=17&&!best;s++){
          for(var sign=-1;sign<=1&&!best;sign+=2){
            var f=0.5+sign*s*0.025;if(f<0.07||f>0.93)continue;
            var pt=path.getPointAtLength(len*f),r={x:pt.x-w/2+dx,y:pt.y-h/2,w:w,h:h};
            if(free(r))best=r;
          }
        }
      });
      if(!best){var mid=path.getPointAtLength(len/2);best={x:mid.x-w/2,y:mid.y-h/2,w:w,h:h};}
      lab.style.left=best.x+'px';lab.style.top=best.y+'px';placed.push(best);
    });
    // what the tests read: nothing overlaps, nothing is cut off
    var over=0,all=nodes.concat(placed);
    for(var i=0;i<all.length;i++)for(var j=i+1;j<all.length;j++)if(hits(all[i],all[j]))over++;
    var clipped=[].slice.call(graph.querySelectorAll('.nname,.ntype,.elabel,.chip')).filter(function(el){
      return el.scrollWidth>el.clientWidth+1;}).length;
    document.body.setAttribute('data-edges-drawn',String(svg.querySelectorAll('path.edge').length));
    document.body.setAttribute('data-labels-drawn',String(labels.children.length));
    document.body.setAttribute('data-overlaps',String(over));
    document.body.setAttribute('data-clipped',String(clipped));
  }
  function focus(id){
    graph.classList.toggle('focus',!!id);
    graph.querySelectorAll('.on').forEach(function(x){x.classList.remove('on');});
    if(!id)return;
    document.getElementById(id).classList.add('on');
    graph.querySelectorAll('[data-from="'+id+'"],[data-to="'+id+'"]').forEach(function(x){
      x.classList.add('on');
      var other=x.dataset.from===id?x.dataset.to:x.dataset.from;document.getElementById(other).classList.add('on');});
  }
  graph.querySelectorAll('.node').forEach(function(n){
    n.addEventListener('mouseenter',function(){focus(n.id);});
    n.addEventListener('mouseleave',function(){focus(null);});
  });
  graph.querySelectorAll('details').forEach(function(d){d.addEventListener('toggle',draw);});
  window.addEventListener('resize',draw);
  var f=document.getElementById('filter');
  f.addEventListener('input',function(){
    var q=f.value.toLowerCase();
    graph.querySelectorAll('.node').forEach(function(n){
      var any=false;
      n.querySelectorAll('li').forEach(function(li){
        var hit=!!q&&(li.dataset.name+' '+li.dataset.type).toLowerCase().indexOf(q)>=0;
        li.classList.toggle('hit',hit);any=any||hit;});
      var self=!!q&&(n.dataset.name+' '+n.dataset.type).toLowerCase().indexOf(q)>=0;
      n.classList.toggle('hit',any||self);
      var det=n.querySelector('details');if(det&&any&&!det.open)det.open=true;
    });
    draw();
  });
  draw();
  document.body.setAttribute('data-components-drawn',String(graph.querySelectorAll('.node.component').length));
  document.body.setAttribute('data-ready','1');
})();
"""


def _money(v: float | None) -> str:
    return "n/a" if v is None else f"${v:,.2f}"


def _cost_rows(c: dict[str, Any]) -> str:
    e = html.escape

    def cells(x: dict[str, Any]) -> str:
        return "".join(
            f'<td class="num">{_money(x[k])}</td>'
            for k in ("hourly_usd_min", "hourly_usd_max", "monthly_usd_min", "monthly_usd_max")
        )

    rows = "".join(f"<tr><td>{e(x['item'])}</td>{cells(x)}</tr>" for x in c["lines"])
    return rows + f'<tr class="total"><td>TOTAL</td>{cells(c["totals"])}</tr>'


def html_page(result: PlanResult) -> str:
    """A single HTML file: summary cards, the stack as a layered graph, cost (with TOTAL and what is not
    included), quota needs and findings. No external fetch."""
    d = result.to_dict()
    s = d["summary"]
    c = d["cost"]
    e = html.escape
    graph, edges = graph_html(result.recording)
    rows_q = "".join(
        f"<tr><td>{e(str(q['quota_code']))}</td><td>{e(q['name'])}</td><td>{e(str(q.get('purchase_option', '')))}</td>"
        f"<td class='num'>{q['vcpus_needed']}</td><td class='num'>{q['aws_default_vcpus']}</td>"
        f"<td>{e(', '.join(q['instance_types']))}</td></tr>"
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
    assumptions = "".join(f"<li>{e(a)}</li>" for a in c["assumptions"])
    unpriced = "".join(f"<li>{e(u['item'])}: {e(u['why'])}</li>" for u in c.get("unpriced", []))
    not_included = "".join(f"<li>{e(x)}</li>" for x in c["not_included"])
    comps = [r for r in d["resources"] if r["component"]]
    data = json.dumps({"components": [x["urn"] for x in comps], "summary": s}).replace("</", "<\\/")
    edges_json = json.dumps(edges).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>mlstack plan: {e(d["project"])}</title><style>{_CSS}</style></head>
<body>
<header><h1>mlstack plan: {e(d["project"])}</h1>
<div class="notice">{e(d["notice"])}: run under Pulumi's mock runtime, no cloud was contacted.</div>
<div>region {e(d["region"])} &middot; prices as of {e(c["price_table_as_of"])}</div></header>
<main>
<div class="cards">
<div class="card">resources<b>{s["resources"]}</b></div>
<div class="card">components<b>{s["components"]}</b></div>
<div class="card">$/hour (min..max)<b>{_money(s["hourly_usd_min"])} .. {_money(s["hourly_usd_max"])}</b></div>
<div class="card">$/month (min..max)<b>{_money(s["monthly_usd_min"])} .. {_money(s["monthly_usd_max"])}</b></div>
<div class="card">findings (high/medium/low)<b>{s["findings"]["high"]} / {s["findings"]["medium"]} / {s["findings"]["low"]}</b></div>
</div>
<h2>The stack</h2>
<div class="legend">Each box is a component (or a resource outside any); an arrow points from a box to one whose
outputs it uses, labelled with the kinds of resource it uses (hover a label for every reference). Boxes
higher up depend on boxes below them. Hover a box to follow its arrows; open "names" for its resources.</div>
<input id="filter" placeholder="highlight resources by name or type" aria-label="filter">
{graph}
<h2>Cost estimate</h2>
<div class="legend">USD, {e(c["region"])}, price table as of {e(c["price_table_as_of"])}, {c["hours_per_month"]:.0f} h/month.</div>
<table id="cost"><tr><th>item</th><th>$/h min</th><th>$/h max</th><th>$/month min</th><th>$/month max</th></tr>{_cost_rows(c)}</table>
<details open><summary>Assumptions</summary><ul>{assumptions}{unpriced}</ul></details>
<details open id="not-included"><summary>Not included</summary><ul>{not_included}</ul></details>
<h2>EC2 vCPU quota needs (node groups at maximum size)</h2>
<table><tr><th>quota code</th><th>name</th><th>purchase</th><th>vCPUs needed</th><th>AWS default</th><th>instance types</th></tr>{rows_q}</table>
<h2>Policy findings</h2>
<table><tr><th>severity</th><th>rule</th><th>resource</th><th>message</th><th>fix</th></tr>{rows_f}</table>
</main>
<script type="application/json" id="plan-data">{data}</script>
<script type="application/json" id="plan-edges">{edges_json}</script>
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
