"""Graph renderers: every component drawn, dependency edges between components, well-formed output."""

from __future__ import annotations

import re

from mlstack.plan import mock_runtime
from mlstack.plan.graph import component_edges, dot, mermaid, svg, to_dict_graph


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
    for a, b in re.findall(r"(n\d+) --> (n\d+)", mm):
        assert a in ids and b in ids
    assert '"' not in re.sub(r'\["[^"]*"\]', "", mm)  # labels are the only quoted strings

    d = dot(rec)
    assert d.count("{") == d.count("}") and d.count("subgraph cluster_") == 2
    declared = set(re.findall(r"^\s*(n\d+(?:_empty)?) \[", d, re.M))
    (edge,) = re.findall(r"(n\d+) -> (n\d+) \[([^\]]*)\]", d)
    assert edge[0] in declared and edge[1] in declared
    assert "ltail=cluster_" in edge[2] and "lhead=cluster_" in edge[2]
    assert 'st\\"ore' in d

    page = svg(rec)
    drawn = re.findall(r'<g class="component" data-urn="([^"]+)"', page)
    assert len(drawn) == 2 and page.count('class="resource"') == 4
    assert page.count('class="edge"') == 1 and "st&quot;ore" in page

    g = to_dict_graph(rec)
    assert len(g["nodes"]) == 6 and g["edges"] == [{"from": cluster.urn, "to": store.urn}]
