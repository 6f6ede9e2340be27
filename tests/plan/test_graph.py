"""Graph renderers: every component drawn, dependency edges between components, well-formed output."""

from __future__ import annotations

import re

from mlstack.plan import mock_runtime
from mlstack.plan.graph import component_edges, dot, edge_label, graph_html, layout, mermaid, to_dict_graph


def _program() -> None:
    import pulumi
    import pulumi_aws as aws

    class Store(pulumi.ComponentResource):
        def __init__(self, name: str) -> None:
            super().__init__("demo:x:Store", name, None, None)
            self.bucket = aws.s3.Bucket(
                f"{name}-bucket", bucket="b1", opts=pulumi.ResourceOptions(parent=self)
            )
            self.register_outputs({})

    class Cluster(pulumi.ComponentResource):
        def __init__(self, name: str, store: Store) -> None:
            super().__init__("demo:x:Cluster", name, None, None)
            role = aws.iam.Role(
                f"{name}-role", assume_role_policy="{}", opts=pulumi.ResourceOptions(parent=self)
            )
            aws.iam.RolePolicy(
                f"{name}-rp",
                role=role.name,
                policy=store.bucket.arn.apply(lambda a: a),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.register_outputs({})

    s = Store('st"ore')  # a quote in a name must not break any format
    Cluster("cl", s)
    aws.s3.Bucket("loose", bucket="b2")


def test_renderers_draw_every_component_and_the_dependency() -> None:
    rec = mock_runtime.run(_program, project="g", stack="t")
    store = next(r for r in rec.resources if r.type == "demo:x:Store")
    cluster = next(r for r in rec.resources if r.type == "demo:x:Cluster")
    assert component_edges(rec) == [(cluster.urn, store.urn)]

    mm = mermaid(rec)
    assert mm.count("subgraph ") == 2 and mm.count("\n  end") + mm.count("\nend") >= 2
    ids = set(re.findall(r"^\s*(?:subgraph )?(n\d+)\[", mm, re.M))
    ((a, label, b),) = re.findall(r"(n\d+) -->\|([^|]*)\| (n\d+)", mm)
    assert (
        a in ids and b in ids and label == "uses Bucket"
    )  # the cluster's role policy reads the bucket's arn
    assert '"' not in re.sub(r'\["[^"]*"\]', "", mm)  # labels are the only quoted strings

    d = dot(rec)
    assert d.count("{") == d.count("}") and d.count("subgraph cluster_") == 2
    declared = set(re.findall(r"^\s*(n\d+(?:_empty)?) \[", d, re.M))
    (edge,) = re.findall(r"(n\d+) -> (n\d+) \[([^\]]*)\]", d)
    assert edge[0] in declared and edge[1] in declared
    assert "ltail=cluster_" in edge[2] and "lhead=cluster_" in edge[2] and 'label="uses Bucket"' in edge[2]
    assert 'st\\"ore' in d

    page, edges = graph_html(rec)
    drawn = re.findall(r'<div class="node component" id="(g\d+)"', page)
    assert len(drawn) == 2 and page.count('class="node resource"') == 1  # the loose bucket
    assert page.count("<li ") == 3 and "st&quot;ore" in page  # every resource is named in its card
    (edge,) = edges
    assert edge["from"] in drawn and edge["to"] in drawn and edge["via"] == []
    assert edge["label"] == "uses Bucket" and 'cl-rp -> st"ore-bucket (Bucket)' in edge["title"]

    g = to_dict_graph(rec)
    assert len(g["nodes"]) == 6 and g["edges"] == [{"from": cluster.urn, "to": store.urn}]


def _chain() -> None:
    """a -> b -> c and a -> c (a long edge), d alone, e <-> f (a cycle), a loose bucket."""
    import pulumi
    import pulumi_aws as aws

    def comp(name: str, *uses: pulumi.Resource) -> aws.s3.Bucket:
        c = pulumi.ComponentResource(f"demo:x:{name.upper()}", name, None, None)
        policy = "".join("x" for _ in uses)
        b = aws.s3.Bucket(
            f"{name}-bucket", bucket=name, opts=pulumi.ResourceOptions(parent=c, depends_on=list(uses))
        )
        c.register_outputs({"policy": policy})
        return b

    c = comp("c")
    b = comp("b", c)
    comp("a", b, c)
    comp("d")
    e = pulumi.ComponentResource("demo:x:E", "e", None, None)
    eb = aws.s3.Bucket("e-bucket", bucket="e", opts=pulumi.ResourceOptions(parent=e))
    f = comp("f", eb)
    aws.iam.Role("e-role", assume_role_policy="{}", opts=pulumi.ResourceOptions(parent=e, depends_on=[f]))
    aws.s3.Bucket("loose", bucket="loose")


def test_layered_layout_puts_dependents_above_and_routes_long_edges_through_waypoints() -> None:
    rec = mock_runtime.run(_chain, project="g", stack="t")
    name = {r.urn: r.name for r in rec.resources}
    lay = layout(rec)
    row = {u: i for i, r in enumerate(lay.layers) for u in r}
    by = {name[u]: row[u] for u in row if not u.startswith("~")}
    assert by["a"] < by["b"] < by["c"]  # a uses b, b uses c: each above what it uses
    # e and f use each other: the edge closing the cycle is drawn against the flow (dashed), nothing hangs
    assert by["e"] != by["f"]
    ef = [e for e in lay.edges if {name[e["from"]], name[e["to"]]} == {"e", "f"}]
    assert len(ef) == 2 and sum(e["back"] for e in ef) == 1
    long = next(e for e in lay.edges if name[e["from"]] == "a" and name[e["to"]] == "c")
    assert len(long["via"]) == by["c"] - by["a"] - 1 == 1  # a waypoint in b's row keeps it clear of b
    assert row[long["via"][0]] == by["b"]
    # every slot is drawn once; nothing is lost
    slots = [u for r in lay.layers for u in r]
    assert len(slots) == len(set(slots))
    assert {name[u] for u in slots if not u.startswith("~")} == {"a", "b", "c", "d", "e", "f", "loose"}
    for e in lay.edges:
        label = edge_label(rec, [(e["from"], e["to"])])
        assert label.startswith("uses ")
