"""The run report: one self-contained HTML page (``mlstack runs show RUN --html report.html``).

What it shows, from the run's record (:mod:`mlstack.runs`) and its cards (:mod:`mlstack.card`):

- the DAG, each step coloured by its status (a fan-out step with one dot per branch);
- a timeline of every step and branch (start to end, coloured by status, retries counted);
- the params, every step's result (a preview, the whole JSON on demand), and the last lines of the log of
  every step that failed;
- the lineage of the run: tables and artifacts read at their versions -> the steps -> the artifacts written
  (name@version), aliases moved (or kept by a gate, with why) and tables written;
- the cards steps added: Markdown (rendered with raw HTML escaped, links limited to http(s), mailto and
  anchors, no remote images), tables and images (embedded as data: URIs).

No network fetch: styles and the little script are inline, images are data: URIs, and a Content Security
Policy forbids anything else, so a page opened years later, offline, looks the same.
"""

from __future__ import annotations

import base64
import html
import json
import math
from datetime import UTC, datetime
from typing import Any

# status -> (fill, text colour); the DAG, the timeline and the badges share them
COLOURS = {
    "succeeded": ("#15803d", "#ffffff"),
    "reused": ("#0f766e", "#ffffff"),
    "failed": ("#dc2626", "#ffffff"),
    "timed_out": ("#991b1b", "#ffffff"),
    "interrupted": ("#ea580c", "#ffffff"),
    "running": ("#2563eb", "#ffffff"),
    "pending": ("#cbd5e1", "#1e293b"),
    "skipped": ("#e2e8f0", "#475569"),
    "unreadable": ("#7c3aed", "#ffffff"),
}
FAILED = ("failed", "timed_out", "interrupted")
LOG_TAIL_LINES = 40
RESULT_MAX = 20_000  # characters of a result shown in full
_E = html.escape


def _colour(status: str) -> tuple[str, str]:
    return COLOURS.get(status, ("#64748b", "#ffffff"))


def _ts(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _when(iso: str | None) -> str:
    return (iso or "")[:19].replace("T", " ")


def _took(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(round(seconds), 60)
    return f"{m}m{s:02d}s" if m < 60 else f"{m // 60}h{m % 60:02d}m"


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return "" if v is None else str(v)


def _badge(status: str) -> str:
    fill, text = _colour(status)
    return (
        f'<span class="badge" data-status="{_E(status)}" style="background:{fill};color:{text}">'
        f"{_E(status)}</span>"
    )


# ---------------------------------------------------------------- markdown, safely
_md: Any = None


def markdown_html(text: str) -> str:
    """CommonMark (+ tables) to HTML with raw HTML escaped, unsafe link schemes refused and no images."""
    global _md
    if _md is None:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        md.enable("table")
        md.disable("image")  # remote images would be a fetch; card.image() embeds pictures instead

        def validate(url: str) -> bool:
            u = url.strip().lower()
            return u.startswith(("http://", "https://", "mailto:", "#"))

        md.validateLink = validate
        _md = md
    return str(_md.render(text))


# ---------------------------------------------------------------- the DAG
def _levels(dag: list[dict[str, Any]]) -> dict[str, int]:
    """Longest-path layering: a step sits one column right of its deepest dependency."""
    level: dict[str, int] = {}
    names = {n["name"] for n in dag}
    for n in dag:  # the record lists the DAG in dependency order
        deps = [d for d in n.get("deps") or [] if d in names]
        level[n["name"]] = 1 + max((level.get(d, 0) for d in deps), default=-1)
    return level


def dag_svg(dag: list[dict[str, Any]], steps: dict[str, Any]) -> str:
    """The DAG as SVG: one box per step filled with its status colour; branch dots for fan-out steps."""
    if not dag:
        return '<p class="muted">The record holds no DAG.</p>'
    level = _levels(dag)
    cols: dict[int, list[str]] = {}
    for n in dag:
        cols.setdefault(level[n["name"]], []).append(n["name"])
    w, h, gx, gy, pad = 188, 58, 64, 22, 16
    pos: dict[str, tuple[float, float]] = {}
    tallest = max(len(v) for v in cols.values())
    height = pad * 2 + tallest * h + (tallest - 1) * gy
    for c, names in cols.items():
        col_h = len(names) * h + (len(names) - 1) * gy
        y0 = (height - col_h) / 2
        for i, name in enumerate(names):
            pos[name] = (pad + c * (w + gx), y0 + i * (h + gy))
    width = pad * 2 + (max(cols) + 1) * w + max(cols) * gx
    parts = [
        f'<svg id="dag-svg" xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" role="img" aria-label="pipeline steps coloured by status">',
        '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
    ]
    for n in dag:
        x2, y2 = pos[n["name"]]
        for d in n.get("deps") or []:
            if d not in pos:
                continue
            x1, y1 = pos[d]
            ax, ay, bx, by = x1 + w, y1 + h / 2, x2, y2 + h / 2
            mid = (ax + bx) / 2
            parts.append(
                f'<path class="edge" data-from="{_E(d)}" data-to="{_E(n["name"])}" '
                f'd="M{ax:.0f},{ay:.0f} C{mid:.0f},{ay:.0f} {mid:.0f},{by:.0f} {bx - 2:.0f},{by:.0f}" '
                'fill="none" stroke="#94a3b8" stroke-width="1.6" marker-end="url(#arr)"/>'
            )
    for n in dag:
        name = n["name"]
        s = steps.get(name)
        status = s.status if s is not None else "pending"
        fill, text = _colour(status)
        x, y = pos[name]
        branches = list(s.branches) if s is not None else []
        sub = status
        if s is not None and s.seconds is not None:
            sub += f" · {_took(s.seconds)}"
        if s is not None and s.attempts and s.attempts > 1:
            sub += f" · {s.attempts} attempts"
        parts.append(
            f'<g class="node" data-step="{_E(name)}" data-status="{_E(status)}" '
            f'data-branches="{len(branches)}"><title>{_E(name)}: {_E(status)}</title>'
            f'<a href="#step-{_E(name)}"><rect x="{x:.0f}" y="{y:.0f}" width="{w}" height="{h}" rx="8" '
            f'fill="{fill}" stroke="#0f172a" stroke-opacity="0.15"/>'
            f'<text x="{x + 12:.0f}" y="{y + 22:.0f}" fill="{text}" class="nname">{_E(_clip(name, 22))}</text>'
            f'<text x="{x + 12:.0f}" y="{y + 40:.0f}" fill="{text}" class="nsub">{_E(_clip(sub, 30))}</text>'
        )
        if n.get("foreach") is not None or branches:
            shown = branches[:14]
            for i, b in enumerate(shown):
                bf, _ = _colour(b.status)
                parts.append(
                    f'<circle class="branch" data-label="{_E(b.label)}" data-status="{_E(b.status)}" '
                    f'cx="{x + 12 + i * 12:.0f}" cy="{y + h - 8:.0f}" r="4.2" fill="{bf}" stroke="#ffffff" '
                    f'stroke-width="1.2"><title>{_E(b.label)}: {_E(b.status)}</title></circle>'
                )
            if len(branches) > len(shown):
                parts.append(
                    f'<text x="{x + 12 + len(shown) * 12:.0f}" y="{y + h - 4:.0f}" fill="{text}" '
                    f'class="nsub">+{len(branches) - len(shown)}</text>'
                )
        parts.append("</a></g>")
    parts.append("</svg>")
    return "".join(parts)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


# ---------------------------------------------------------------- the timeline
def timeline_svg(run: Any, flat: list[Any]) -> str:
    """One bar per step and branch, from its start to its end, on the run's clock."""
    spans = [(s, _ts(s.doc.get("started")), _ts(s.doc.get("ended"))) for s in flat]
    t0 = _ts(run.started) or min((a for _, a, _ in spans if a is not None), default=None)
    ends = [b for _, _, b in spans if b is not None] + [_ts(run.ended) or 0]
    if t0 is None:
        return '<p class="muted">No step has started.</p>'
    now = datetime.now(UTC).timestamp()
    t1 = max([*ends, *(now for s, a, b in spans if a is not None and b is None and s.status == "running")])
    total = max(t1 - t0, 0.001)
    label_w, bar_w, row_h, top = 150, 720, 22, 26
    height = top + row_h * len(flat) + 8
    width = label_w + bar_w + 90
    parts = [
        f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of steps and branches">'
    ]
    step = _tick(total)
    k = 0
    while k * step <= total + 1e-9:
        x = label_w + bar_w * (k * step) / total
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}" stroke="#e2e8f0"/>'
            f'<text x="{x:.1f}" y="{top - 10}" class="tick" text-anchor="middle">{_E(_took(k * step))}</text>'
        )
        k += 1
    for i, (s, a, b) in enumerate(spans):
        y = top + i * row_h
        fill, _ = _colour(s.status)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" class="tlabel">{_E(_clip(s.label, 20))}</text>'
        )
        if a is None:
            parts.append(
                f'<text x="{label_w + 4}" y="{y + 15}" class="tick">{_E(s.status)} (did not start)</text>'
            )
            continue
        end = b if b is not None else (now if s.status == "running" else a)
        x = label_w + bar_w * (a - t0) / total
        bw = max(2.0, bar_w * (end - a) / total)
        note = f"{_took(end - a)}" + (f", {s.attempts} attempts" if s.attempts > 1 else "")
        parts.append(
            f'<g class="bar" data-label="{_E(s.label)}" data-status="{_E(s.status)}">'
            f"<title>{_E(s.label)}: {_E(s.status)}, {_E(note)}</title>"
            f'<rect x="{x:.1f}" y="{y + 3}" width="{bw:.1f}" height="{row_h - 7}" rx="3" fill="{fill}"/>'
            f'<text x="{x + bw + 4:.1f}" y="{y + 15}" class="tick">{_E(note)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _tick(total: float) -> float:
    for t in (
        0.1,
        0.2,
        0.5,
        1,
        2,
        5,
        10,
        15,
        30,
        60,
        120,
        300,
        600,
        900,
        1800,
        3600,
        7200,
        14400,
        28800,
        86400,
    ):
        if total / t <= 8:
            return float(t)
    return 86400.0 * math.ceil(total / 86400 / 8)


# ---------------------------------------------------------------- lineage
def _ref(o: dict[str, Any]) -> str:
    return str(o.get("name")) + (f"@{o['version']}" if o.get("version") not in (None, "") else "")


def lineage(run: Any) -> dict[str, Any]:
    """Inputs (read at their versions) -> steps -> outputs, as nodes and edges (steps by name)."""
    inputs: list[dict[str, Any]] = []
    edges: list[tuple[str, str]] = []
    for i in run.inputs:
        key = f"in:{i.get('type')}:{_ref(i)}"
        inputs.append({"id": key, "type": i.get("type"), "text": _ref(i), "source": i.get("source")})
        for lbl in i.get("steps") or []:
            edges.append((key, "step:" + lbl.split("[", 1)[0]))
    outputs: dict[str, dict[str, Any]] = {}
    for o in run.outputs:
        kind = o.get("type")
        if kind == "alias":
            if o.get("moved") is False:
                kept = f" (kept at v{o['current']})" if o.get("current") else " (not moved)"
                text = f"{o.get('name')}:{o.get('alias')} not moved to v{o.get('version')}{kept}"
            else:
                text = f"{o.get('name')}:{o.get('alias')} -> v{o.get('version')}"
        elif kind == "table":
            text = _ref(o) + (f" ({o['rows']} rows)" if o.get("rows") is not None else "")
        else:
            text = _ref(o)
        key = f"out:{kind}:{text}"
        node = outputs.setdefault(
            key, {"id": key, "type": kind, "text": text, "reason": o.get("reason"), "moved": o.get("moved")}
        )
        node.setdefault("steps", []).append(o.get("step"))
        edges.append(("step:" + str(o.get("step", "")).split("[", 1)[0], key))
    uniq_inputs = list({i["id"]: i for i in inputs}.values())
    return {"inputs": uniq_inputs, "outputs": list(outputs.values()), "edges": sorted(set(edges))}


def lineage_svg(run: Any, names: list[str]) -> str:
    lin = lineage(run)
    if not lin["inputs"] and not lin["outputs"]:
        return '<p class="muted">The steps recorded no table or artifact read or written.</p>'
    used = {b for a, b in lin["edges"]} | {a for a, b in lin["edges"]}
    steps = [n for n in names if f"step:{n}" in used]
    colx = (16, 380, 650)
    w = (300, 200, 380)
    row = 40
    n_rows = max(len(lin["inputs"]), len(steps), len(lin["outputs"]), 1)
    height = 40 + n_rows * row
    width = colx[2] + w[2] + 16
    pos: dict[str, tuple[float, float, float]] = {}

    def place(items: list[str], c: int) -> None:
        y0 = 40 + (n_rows - len(items)) * row / 2
        for i, key in enumerate(items):
            pos[key] = (colx[c], y0 + i * row, w[c])

    place([i["id"] for i in lin["inputs"]], 0)
    place([f"step:{s}" for s in steps], 1)
    place([o["id"] for o in lin["outputs"]], 2)
    parts = [
        f'<svg id="lineage-svg" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage: read, steps, written">',
        f'<text x="{colx[0]}" y="20" class="colhead">read (at their versions)</text>'
        f'<text x="{colx[1]}" y="20" class="colhead">steps</text>'
        f'<text x="{colx[2]}" y="20" class="colhead">written</text>',
    ]
    for a, b in lin["edges"]:
        if a in pos and b in pos:
            ax, ay, aw = pos[a]
            bx, by, _ = pos[b]
            x1, y1, x2, y2 = ax + aw, ay + 14, bx, by + 14
            mid = (x1 + x2) / 2
            parts.append(
                f'<path class="ledge" d="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                'fill="none" stroke="#94a3b8" stroke-width="1.3"/>'
            )
    for i in lin["inputs"]:
        x, y, ww = pos[i["id"]]
        parts.append(_lnode("input", i["type"], i["text"], x, y, ww, "#eff6ff", "#1d4ed8"))
    for s in steps:
        x, y, ww = pos[f"step:{s}"]
        st = run.steps.get(s) if hasattr(run.steps, "get") else None
        fill, text = _colour(st.status if st is not None else "pending")
        parts.append(
            f'<g class="lnode" data-kind="step" data-name="{_E(s)}"><rect x="{x}" y="{y:.0f}" width="{ww}" '
            f'height="28" rx="6" fill="{fill}"/><text x="{x + 10}" y="{y + 18:.0f}" fill="{text}" '
            f'class="ltext">{_E(_clip(s, 26))}</text></g>'
        )
    for o in lin["outputs"]:
        x, y, ww = pos[o["id"]]
        kept = o["type"] == "alias" and o.get("moved") is False
        parts.append(
            _lnode(
                "output",
                o["type"],
                o["text"],
                x,
                y,
                ww,
                "#fff7ed" if kept else "#f0fdf4",
                "#9a3412" if kept else "#166534",
                o.get("reason"),
            )
        )
    parts.append("</svg>")
    return "".join(parts)


def _lnode(
    kind: str, typ: Any, text: str, x: float, y: float, w: float, fill: str, ink: str, why: Any = None
) -> str:
    title = f"{typ} {text}" + (f": {why}" if why else "")
    return (
        f'<g class="lnode" data-kind="{kind}" data-type="{_E(str(typ))}" data-text="{_E(text)}">'
        f"<title>{_E(title)}</title>"
        f'<rect x="{x}" y="{y:.0f}" width="{w}" height="28" rx="6" fill="{fill}" stroke="{ink}" '
        f'stroke-opacity="0.4"/><text x="{x + 10}" y="{y + 18:.0f}" fill="{ink}" class="ltext">'
        f'<tspan class="ltype">{_E(str(typ))}</tspan> {_E(_clip(text, 48))}</text></g>'
    )


# ---------------------------------------------------------------- cards
def cards_of(run: Any) -> dict[str, dict[str, Any]]:
    """The card documents of a run by step label (``train[1]`` for a branch); unreadable ones say why."""
    return run.cards


def _card_item(run: Any, item: dict[str, Any]) -> str:
    kind = item.get("type")
    if kind == "markdown":
        return f'<div class="md">{markdown_html(str(item.get("text", "")))}</div>'
    if kind == "table":
        return _table_html(
            item.get("columns") or [], item.get("rows") or [], item.get("title"), item.get("truncated")
        )
    if kind == "image":
        title = f"<figcaption>{_E(str(item['title']))}</figcaption>" if item.get("title") else ""
        fmt = str(item.get("format") or "png")
        if fmt not in ("png", "jpeg", "gif", "webp"):
            return '<p class="muted">(an image of an unknown format)</p>'
        try:
            data = run.store.get_blob(str(item["blob"]))
        except Exception as exc:
            return f'<p class="muted">(image {_E(str(item.get("blob")))} unreadable: {_E(str(exc))})</p>'
        b64 = base64.b64encode(data).decode()
        size = ""
        if item.get("width") and item.get("height"):
            size = f' width="{int(item["width"])}" height="{int(item["height"])}"'
        alt = _E(str(item.get("title") or "card image"))
        return (
            f'<figure class="img"><img src="data:image/{fmt};base64,{b64}"{size} alt="{alt}">{title}</figure>'
        )
    return f'<p class="muted">(a card item of unknown type {_E(str(kind))})</p>'


def _table_html(columns: list[Any], rows: list[list[Any]], title: Any = None, truncated: Any = None) -> str:
    head = "".join(f"<th>{_E(str(c))}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for v in r:
            cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{_E(_num(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cap = f"<caption>{_E(str(title))}</caption>" if title else ""
    more = f'<p class="muted">… and {int(truncated)} more rows</p>' if truncated else ""
    return f'<div class="tablewrap"><table class="data">{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>{more}</div>'


# ---------------------------------------------------------------- results and logs
def _result_of(s: Any) -> tuple[str, str | None]:
    """(preview, full JSON or None) of a step's result, from its record (no pickle is loaded)."""
    doc = s.doc
    if s.branches:
        previews = [b.doc.get("result_preview") or "" for b in s.branches]
        return "[" + ", ".join(previews) + "]", None
    preview = doc.get("result_preview") or ""
    if "result" in doc:
        text = json.dumps(doc["result"], indent=2, sort_keys=True, default=str)
        if len(text) > RESULT_MAX:
            text = text[:RESULT_MAX] + "\n… (cut; `mlstack runs show --json` has it all)"
        return preview, text
    return preview, None


def _log_tail(s: Any) -> str:
    tail = s.doc.get("log_tail")
    if not tail:
        try:
            tail = s.log()
        except Exception as exc:
            return f"(log unreadable: {exc})"
    lines = str(tail).rstrip("\n").splitlines()
    return "\n".join(lines[-LOG_TAIL_LINES:])


# ---------------------------------------------------------------- the page
_CSS = """
*{box-sizing:border-box} body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
color:#0f172a;background:#f8fafc} header{background:#0f172a;color:#f8fafc;padding:16px 24px}
header h1{margin:0 0 4px;font-size:20px} header .id{font-family:ui-monospace,Menlo,monospace;color:#cbd5e1}
main{padding:12px 24px 40px;max-width:1400px} section{background:#fff;border:1px solid #e2e8f0;border-radius:10px;
padding:12px 16px;margin:14px 0} h2{font-size:16px;margin:2px 0 10px} .muted{color:#64748b}
.summary{display:flex;gap:10px;flex-wrap:wrap;margin-top:10px} .summary div{background:#1e293b;border-radius:8px;
padding:6px 12px} .summary b{display:block;font-size:15px} .badge{display:inline-block;border-radius:999px;
padding:1px 10px;font-weight:600;font-size:12px} nav a{margin-right:14px;color:#1d4ed8;text-decoration:none}
.scroll{overflow-x:auto} svg text{font-family:system-ui,sans-serif} .nname{font-weight:700;font-size:14px}
.nsub{font-size:11.5px} .tick{font-size:11px;fill:#475569} .tlabel{font-size:12px;fill:#0f172a}
.ltext{font-size:12.5px} .ltype{font-weight:700} .colhead{font-size:12px;font-weight:700;fill:#475569}
table.data{border-collapse:collapse;margin:6px 0} table.data th,table.data td{border:1px solid #e2e8f0;
padding:3px 8px;text-align:left;vertical-align:top} table.data th{background:#f1f5f9} td.num{text-align:right;
font-variant-numeric:tabular-nums} caption{text-align:left;font-weight:600;padding:2px 0}
pre{background:#0f172a;color:#e2e8f0;padding:10px;border-radius:8px;overflow:auto;max-height:420px;font-size:12px}
code{font-family:ui-monospace,Menlo,monospace} .md code{background:#f1f5f9;padding:0 3px;border-radius:3px}
.md pre code{background:none} .card{border-left:4px solid #2563eb;padding:4px 12px;margin:10px 0}
.card h3{margin:4px 0;font-size:14px} figure.img{margin:8px 0} figure.img img{max-width:100%;height:auto;
border:1px solid #e2e8f0} details summary{cursor:pointer;color:#1d4ed8} .tablewrap{overflow-x:auto}
.legend span{margin-right:12px;font-size:12px} .legend i{display:inline-block;width:10px;height:10px;
border-radius:2px;margin-right:4px;vertical-align:middle} tr.hl{background:#fef9c3}
"""

_JS = """
(function(){
  document.querySelectorAll('#dag-svg .node a').forEach(function(a){
    a.addEventListener('click', function(){
      var row = document.getElementById(a.getAttribute('href').slice(1));
      document.querySelectorAll('tr.hl').forEach(function(r){ r.classList.remove('hl'); });
      if (row) { row.classList.add('hl'); }
    });
  });
  var b = document.body;
  b.setAttribute('data-nodes-drawn', String(document.querySelectorAll('#dag-svg .node').length));
  b.setAttribute('data-cards-drawn', String(document.querySelectorAll('.card').length));
  b.setAttribute('data-ready', '1');
})();
"""

_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'"
)


def render(run: Any) -> str:
    """The whole report page of ``run`` (an :class:`mlstack.runs.Run`) as one HTML string."""
    from mlstack._version import __version__

    rec = run.record or {}
    dag = list(rec.get("dag") or [{"name": n, "deps": []} for n in run.steps])
    steps = {name: run.steps[name] for name in run.steps}
    flat = run.steps.flat()
    cards = cards_of(run)
    counts: dict[str, int] = {}
    for s in flat:
        counts[s.status] = counts.get(s.status, 0) + 1
    where = dict(run.orchestrator)
    place = str(where.get("kind", "?"))
    if where.get("workflow"):
        place += f" {where.get('namespace', '')}/{where['workflow']}".replace(" /", " ")
    who = rec.get("who") or {}
    code = rec.get("code") or {}
    stack = rec.get("stack") or {}

    summary = [
        (
            "status",
            _badge(run.status) + (f' <span class="muted">{_E(str(run.reason))}</span>' if run.reason else ""),
        ),
        ("started (UTC)", _E(_when(run.started))),
        ("took", _E(_took(run.seconds)) or "–"),
        ("steps", _E(", ".join(f"{v} {k}" for k, v in counts.items())) or "–"),
        ("where", _E(place)),
        ("stack", _E(f"{stack.get('project', '?')}/{stack.get('stack', '?')}")),
    ]
    head = "".join(f"<div>{k}<b>{v}</b></div>" for k, v in summary)
    legend = "".join(
        f'<span><i style="background:{c[0]}"></i>{_E(k)}</span>'
        for k, c in COLOURS.items()
        if k in counts or k in ("succeeded", "failed")
    )

    # params
    params = run.params
    params_html = (
        _table_html(["param", "value"], [[k, json.dumps(v, default=str)] for k, v in params.items()])
        if params
        else '<p class="muted">No params.</p>'
    )

    # steps table
    rows = []
    for s in flat:
        preview, full = _result_of(s)
        res = _E(_clip(preview, 140))
        if full is not None and len(preview) > 0:
            res = f"<details><summary>{res}</summary><pre>{_E(full)}</pre></details>"
        note = ""
        if s.doc.get("reused_from"):
            rf = s.doc["reused_from"]
            note = f"reused from {rf.get('run')}" + (" (cache)" if rf.get("via") == "cache" else "")
        elif s.doc.get("why"):
            note = f"ran: {s.doc['why']}"
        item = (
            f' <span class="muted">item {_E(json.dumps(s.doc["item"], default=str))}</span>'
            if "item" in s.doc
            else ""
        )
        rows.append(
            f'<tr id="step-{_E(s.label)}" data-status="{_E(s.status)}"><td><code>{_E(s.label)}</code>{item}</td>'
            f'<td>{_badge(s.status)}</td><td class="num">{s.attempts or ""}</td>'
            f'<td class="num">{"" if s.seconds is None else f"{s.seconds:.2f}"}</td>'
            f'<td>{res}</td><td class="muted">{_E(note)}</td></tr>'
        )
    # a fan-out step's own anchor, for clicks on its DAG box
    anchors = "".join(f'<span id="step-{_E(n)}"></span>' for n in steps if steps[n].branches)
    steps_html = (
        anchors
        + '<div class="tablewrap"><table class="data" id="steps-table"><thead><tr><th>step</th><th>status'
        "</th><th>attempts</th><th>seconds</th><th>result</th><th>note</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )

    # failures
    failed = [s for s in flat if s.status in FAILED]
    fail_html = ""
    if failed or rec.get("error"):
        blocks = []
        err = rec.get("error") or {}
        if err.get("message"):
            blocks.append(f"<p><b>{_E(str(err.get('message')))}</b></p>")
        for s in failed:
            code_txt = f", exit code {s.exit_code}" if s.exit_code is not None else ""
            blocks.append(
                f'<div class="failure" data-step="{_E(s.label)}"><h3>{_E(s.label)}: {_E(s.status)}{_E(code_txt)}'
                f"</h3><pre>{_E(_log_tail(s))}</pre></div>"
            )
        fail_html = f'<section id="failures"><h2>What failed</h2>{"".join(blocks)}</section>'

    # cards in pipeline order (a fan-out step's branches in order)
    card_blocks = []
    for s in flat:
        doc = cards.get(s.label)
        if doc is None:
            continue
        if doc.get("error"):
            body = f'<p class="muted">card unreadable: {_E(doc["error"])}</p>'
        else:
            body = "".join(_card_item(run, i) for i in doc.get("items") or [] if isinstance(i, dict))
        card_blocks.append(
            f'<div class="card" data-step="{_E(s.label)}"><h3>{_E(s.label)} {_badge(s.status)}</h3>{body}</div>'
        )
    cards_html = "".join(card_blocks) or (
        '<p class="muted">No step added a card (<code>mlstack.card.markdown(...)</code>, <code>.table(...)'
        "</code>, <code>.image(...)</code> inside a step).</p>"
    )

    lin = lineage(run)
    lin_list = []
    for i in lin["inputs"]:
        lin_list.append(f"<li>read {_E(str(i['type']))} <code>{_E(i['text'])}</code></li>")
    for o in lin["outputs"]:
        why = f" — {_E(str(o['reason']))}" if o.get("reason") else ""
        by = ", ".join(str(x) for x in o.get("steps") or [])
        lin_list.append(f"<li>{_E(str(o['type']))} <code>{_E(o['text'])}</code> by {_E(by)}{why}</li>")

    foot = [
        f"code {_E(str(code.get('source') or '?'))}",
        f"git {_E(str(code.get('git') or 'unknown'))}",
        f"source {_E(str(code.get('source_digest') or '')[:19])}",
        f"by {_E(str(who.get('user') or '?'))}@{_E(str(who.get('host') or '?'))}",
    ]
    if run.resumed_from:
        foot.append(f"resumed from {_E(str(run.resumed_from))}")
    title = f"{run.pipeline} · {run.id} — {run.status}"
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_E(title)}</title><style>{_CSS}</style></head>
<body data-run="{_E(run.id)}" data-pipeline="{_E(run.pipeline)}" data-status="{_E(run.status)}">
<header><h1>{_E(run.pipeline)} {_badge(run.status)}</h1><div class="id">run {_E(run.id)}</div>
<div class="summary">{head}</div></header>
<main>
<nav><a href="#dag">steps</a><a href="#timeline">timeline</a><a href="#params">params</a><a href="#results">results</a>
{'<a href="#failures">what failed</a>' if fail_html else ""}<a href="#lineage">lineage</a><a href="#cards">cards</a></nav>
<section id="dag"><h2>Steps</h2><div class="legend">{legend}</div><div class="scroll">{dag_svg(dag, steps)}</div></section>
<section id="timeline"><h2>Timeline</h2><div class="scroll">{timeline_svg(run, flat)}</div></section>
{fail_html}
<section id="params"><h2>Params</h2>{params_html}</section>
<section id="results"><h2>Results</h2>{steps_html}</section>
<section id="lineage"><h2>Lineage</h2><div class="scroll">{lineage_svg(run, [n["name"] for n in dag])}</div>
<ul>{"".join(lin_list)}</ul></section>
<section id="cards"><h2>Cards</h2>{cards_html}</section>
<p class="muted">{" · ".join(foot)} · report by mlstack {_E(__version__)}, {_E(generated)}</p>
</main>
<script>{_JS}</script>
</body></html>
"""


def write(run: Any, path: Any) -> str:
    """Write the report of ``run`` to ``path`` (atomically); returns the path written."""
    import os
    from pathlib import Path

    out = Path(path).expanduser()
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(run), encoding="utf-8")
    os.replace(tmp, out)
    return str(out)
