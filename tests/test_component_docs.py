"""docs/components/*.md are generated from the component sources and must stay in step with them.

The generator (mlstack/_docgen.py) only parses source with ``ast``; the first tests exercise it on a small
sample package written here, the last ones run it on the real ``components/`` and ``docs/components/``.
Fix a failure of the last two with ``.venv/bin/python -m mlstack._docgen`` (and a docstring saying the default).
"""

from __future__ import annotations

import inspect
import json
import textwrap
from pathlib import Path

import pytest

from mlstack import _docgen

SAMPLE = '''
"""Sample layer."""
from typing import Any, TypedDict

import pulumi

TYPE = "mlstack:sample:Widget"


class PartArgs(TypedDict, total=False):
    """One part."""

    size: int
    """How big. Default: 3."""


class WidgetArgs(TypedDict, total=False):
    """Arguments of :class:`Widget`."""

    color: str
    """Paint colour, e.g. ``"red"``. Default: ``"blue"``."""

    parts: list[PartArgs]
    """The parts. Default: one part of size 3."""

    owner: str
    """Required. Who owns it | pipes are escaped."""


class _Mixin:
    widget_arn: pulumi.Output[str]
    """ARN of the widget."""

    def grant_read(self, role: Any, name: str | None = None) -> Any:
        """Let ``role`` read the widget."""


class Widget(pulumi.ComponentResource, _Mixin):
    """A widget; exports the manifest ``sample`` section.

    Secure by default.
    """

    widget_name: pulumi.Output[str]

    def __init__(self, name: str, args: WidgetArgs | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self.register_outputs({"widget_name": 1, "extra_output": 2})

    @classmethod
    def from_name(cls, name: str, widget_name: str) -> "Widget":
        """A widget created elsewhere."""

    def _private(self) -> None:
        """Not documented."""
'''


@pytest.fixture
def sample(tmp_path: Path) -> tuple[Path, Path, Path]:
    comps = tmp_path / "components"
    (comps / "sample").mkdir(parents=True)
    (comps / "__init__.py").write_text(
        '_EXPORTS = {"Widget": "mlstack.components.sample.widget", '
        '"WidgetArgs": "mlstack.components.sample.widget"}\n'
    )
    (comps / "sample" / "__init__.py").write_text("")
    (comps / "sample" / "widget.py").write_text(SAMPLE)
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "__main__.py").write_text(
        textwrap.dedent(
            """
            from mlstack.components import Widget

            w = Widget(
                "w",
                {"color": "red", "owner": "ml"},
            )
            """
        )
    )
    return comps, tmp_path / "docs", examples


def test_parse_reads_args_fields_defaults_outputs_and_methods(sample):
    comps, _, _ = sample
    mod = _docgen.parse_module(comps / "sample" / "widget.py", "mlstack.components.sample.widget")
    args = mod.args["WidgetArgs"]
    assert [f.name for f in args.fields] == ["color", "parts", "owner"]
    color = args.fields[0]
    assert color.default == '`"blue"`.'
    assert color.description == 'Paint colour, e.g. `"red"`.'
    owner = args.fields[2]
    assert owner.default == "Required."
    assert owner.description == "Who owns it | pipes are escaped."
    w = mod.components["Widget"]
    assert w.type_token == "mlstack:sample:Widget"
    assert w.args_class == "WidgetArgs"
    # own annotation first, then the mixin's, then register_outputs keys not annotated anywhere
    assert [o.name for o in w.outputs] == ["widget_name", "widget_arn", "extra_output"]
    assert {m.name: m.kind for m in w.methods} == {"from_name": "classmethod", "grant_read": "method"}
    assert "_Mixin" not in mod.components


def test_page_has_title_token_summary_example_args_outputs_and_grants(sample):
    comps, _, examples = sample
    pages, problems = _docgen.generate(comps, [examples])
    assert problems == []
    assert set(pages) == {"widget.md", "README.md"}
    page = pages["widget.md"]
    lines = page.splitlines()
    assert lines[0] == _docgen.HEADER
    assert "# Widget" in lines
    assert "Type token: `mlstack:sample:Widget`" in lines
    assert "A widget; exports the manifest `sample` section." in page
    order = [page.index(s) for s in ("## Example", "## Args: `WidgetArgs`", "### `PartArgs`", "## Outputs")]
    assert order == sorted(order)
    assert 'w = Widget(\n    "w",\n    {"color": "red", "owner": "ml"},\n)' in page  # the real call, verbatim
    assert '| `color` | `str` | `"blue"`. | Paint colour, e.g. `"red"`. |' in lines
    assert "| `owner` | `str` | Required. | Who owns it \\| pipes are escaped. |" in lines
    assert "| `parts` | `list[PartArgs]` | one part of size 3. | The parts. |" in lines
    assert "| `size` | `int` | 3. | How big. |" in lines
    assert "| `widget_arn` | `pulumi.Output[str]` | ARN of the widget. |" in lines
    assert "## Grant methods" in lines
    assert "- `grant_read(role: Any, name: str | None=None) -> Any`: Let `role` read the widget." in lines
    assert (
        "- `Widget.from_name(name: str, widget_name: str) -> 'Widget'`: A widget created elsewhere." in lines
    )
    assert "_private" not in page
    assert "[Widget](widget.md)" in pages["README.md"]


def test_without_an_example_program_a_minimal_call_is_shown(sample, tmp_path):
    comps, _, _ = sample
    pages, _ = _docgen.generate(comps, [tmp_path / "nowhere"])
    # the required fields are listed, so the example says what cannot be left out
    assert 'Widget(\n    "name",\n    {\n        "owner": ...,  # Required.\n    },\n)' in pages["widget.md"]


def test_a_component_made_by_a_factory_shows_the_factory_call(sample, tmp_path):
    comps, _, _ = sample
    src = comps / "sample" / "widget.py"
    src.write_text(
        src.read_text()
        + textwrap.dedent(
            '''
            class Gadget(pulumi.ComponentResource):
                """Made by Widget.make_gadget."""

                def __init__(self, name: str, args: PartArgs | None = None, opts=None) -> None:
                    super().__init__("mlstack:sample:Gadget", name, None, opts)

                @staticmethod
                def make(name: str) -> "Gadget":
                    """Not a factory of another class."""
            '''
        )
    )
    text = src.read_text().replace(
        '    @classmethod\n    def from_name(cls, name: str, widget_name: str) -> "Widget":',
        '    @staticmethod\n    def make_gadget(name: str) -> "Gadget":\n        """A gadget."""\n\n'
        '    @classmethod\n    def from_name(cls, name: str, widget_name: str) -> "Widget":',
    )
    src.write_text(text)
    (comps / "__init__.py").write_text(
        '_EXPORTS = {"Widget": "mlstack.components.sample.widget", "Gadget": "mlstack.components.sample.widget"}\n'
    )
    pages, problems = _docgen.generate(comps, [tmp_path / "nowhere"])
    assert problems == []
    assert 'Widget.make_gadget("name")' in pages["gadget.md"]
    assert "from mlstack.components import Widget\n" in pages["gadget.md"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '    """Paint colour, e.g. ``"red"``. Default: ``"blue"``."""\n',
            "",
            "WidgetArgs.color has no docstring",
        ),
        (
            "Default: 3.",
            "Three by default.",
            "PartArgs.size: the docstring does not say what happens by default",
        ),
        ("Required. Who", "Who", "WidgetArgs.owner: the docstring does not say"),
    ],
)
def test_an_undocumented_field_is_reported(sample, old, new, expected):
    comps, _, examples = sample
    src = comps / "sample" / "widget.py"
    assert old in src.read_text()
    src.write_text(src.read_text().replace(old, new))
    _, problems = _docgen.generate(comps, [examples])
    assert len(problems) == 1
    assert expected in problems[0]
    assert "widget.py:" in problems[0]  # file:line so the author finds it


def test_args_of_unexported_modules_are_checked_too(sample):
    comps, _, examples = sample
    (comps / "sample" / "other.py").write_text(
        "from typing import TypedDict\n\nclass OtherArgs(TypedDict, total=False):\n    x: int\n"
    )
    _, problems = _docgen.generate(comps, [examples])
    assert len(problems) == 1 and "OtherArgs.x has no docstring" in problems[0]


def test_check_reports_missing_stale_and_orphan_pages_and_write_fixes_them(sample):
    comps, docs, examples = sample
    assert any("widget.md is missing" in p for p in _docgen.check(docs, comps, [examples]))
    assert _docgen.write(docs, comps, [examples]) == []
    assert _docgen.check(docs, comps, [examples]) == []

    src = comps / "sample" / "widget.py"
    src.write_text(src.read_text().replace("Default: 3.", "Default: 4."))
    assert any("widget.md is stale" in p for p in _docgen.check(docs, comps, [examples]))

    (docs / "gone.md").write_text(_docgen.HEADER + "\n# Gone\n")
    (docs / "handwritten.md").write_text("# Notes\n")
    problems = _docgen.check(docs, comps, [examples])
    assert any("gone.md documents no exported component" in p for p in problems)
    _docgen.write(docs, comps, [examples])
    assert not (docs / "gone.md").exists()  # generated orphans are removed ...
    assert (docs / "handwritten.md").exists()  # ... hand-written files never
    assert "| `size` | `int` | 4. | How big. |" in (docs / "widget.md").read_text()


def test_cli_check_exit_codes(sample, monkeypatch, capsys):
    comps, docs, examples = sample
    monkeypatch.setattr(_docgen, "COMPONENTS_DIR", comps)
    monkeypatch.setattr(_docgen, "DOCS_DIR", docs)
    monkeypatch.setattr(_docgen, "EXAMPLE_DIRS", (examples,))
    monkeypatch.setattr(_docgen, "REPO", comps.parent)
    assert _docgen.main(["--check"]) == 1
    assert "missing" in capsys.readouterr().err
    assert _docgen.main([]) == 0
    assert _docgen.main(["--check"]) == 0


SAMPLE_SCHEMA = {
    "resources": {
        "mlstack:sample:Widget": {
            "isComponent": True,
            "inputProperties": {
                "owner": {"type": "string", "description": "Required. Who owns it (from the schema)."},
                "color": {"$ref": "#/types/mlstack:sample:Color", "description": "Paint. Default: blue."},
                "parts": {
                    "type": "array",
                    "items": {"$ref": "#/types/mlstack:sample:PartArgs"},
                    "description": "The parts. Default: one part of size 3.",
                },
                "peer": {"$ref": "pulumi.json#/Any", "description": "Another widget. Default: none."},
                "extra": {
                    "type": "object",
                    "additionalProperties": {"$ref": "pulumi.json#/Any"},
                    "description": "Anything. Default: none.",
                },
            },
            "requiredInputs": ["owner"],
            "properties": {
                "widgetName": {"type": "string", "description": "Name of the widget."},
                "widgetArn": {"type": "string", "secret": True},
            },
            "required": ["widgetArn", "widgetName"],
        }
    },
    "types": {
        "mlstack:sample:Color": {
            "type": "string",
            "description": "A paint colour.",
            "enum": [{"value": "blue", "description": "The default."}, {"value": "red"}],
        },
        "mlstack:sample:PartArgs": {
            "type": "object",
            "properties": {
                "sizeGib": {"type": "integer", "description": "Required. How big."},
                "label": {"type": "string", "description": "A label. Default: none."},
            },
            "required": ["sizeGib"],
        },
    },
}


def test_with_a_schema_the_tables_come_from_it(sample):
    """Types, required, secret, descriptions and defaults from the schema; order and Python names from the
    TypedDict; prose, example and methods from the sources as before."""
    import json

    comps, _, examples = sample
    (comps / "schema.json").write_text(json.dumps(SAMPLE_SCHEMA))
    pages, problems = _docgen.generate(comps, [examples])
    assert problems == []
    page = pages["widget.md"]
    lines = page.splitlines()
    assert lines[0] == _docgen.HEADER and "components/schema.json" in lines[0]
    assert "A widget; exports the manifest `sample` section." in page  # prose from the class docstring
    assert 'w = Widget(\n    "w",\n    {"color": "red", "owner": "ml"},\n)' in page
    # the TypedDict's order (color, parts, owner), schema-only fields after it
    rows = [ln for ln in lines if ln.startswith("| `")]
    inputs = [r.split("`")[1] for r in rows[:5]]
    assert inputs == ["color", "parts", "owner", "extra", "peer"]
    assert "| `color` | Color | blue. | Paint. |" in lines  # the schema's text, not the docstring's
    assert "| `owner` | string | Required. | Who owns it (from the schema). |" in lines
    assert "| `parts` | list of PartArgs | one part of size 3. | The parts. |" in lines
    assert "| `peer` | any (a component reference) | none. | Another widget. |" in lines
    assert "| `extra` | map of any | none. | Anything. |" in lines
    # nested types: the enum's values and the object's fields, required from the type's "required"
    assert "### `Color`" in lines and "| `red` | — |" in lines and "| `blue` | The default. |" in lines
    assert "| `size_gib` (`sizeGib`) | integer | Required. | How big. |" in lines
    assert "| `label` | string | none. | A label. |" in lines
    # outputs: every schema output, secrets marked, in the class's order
    out = page[page.index("## Outputs") :]
    assert out.index("`widget_name`") < out.index("`widget_arn`")
    assert "| `widget_arn` | string (secret) | — |" in out
    assert "| `widget_name` | string | Name of the widget. |" in out
    assert "extra_output" not in out  # a register_outputs key the schema does not have is not an output
    assert "## Grant methods" in lines  # methods still from the source


def test_a_required_field_without_a_required_docstring_is_still_shown_required(sample):
    import json

    comps, _, examples = sample
    schema = json.loads(json.dumps(SAMPLE_SCHEMA))
    schema["types"]["mlstack:sample:PartArgs"]["properties"]["sizeGib"]["description"] = "How big."
    (comps / "schema.json").write_text(json.dumps(schema))
    pages, _ = _docgen.generate(comps, [examples])
    assert "| `size_gib` (`sizeGib`) | integer | Required. | How big. |" in pages["widget.md"]


def test_a_component_missing_from_the_schema_is_a_problem(sample):
    import json

    comps, _, examples = sample
    (comps / "schema.json").write_text(json.dumps({"resources": {}, "types": {}}))
    _, problems = _docgen.generate(comps, [examples])
    assert any("has no mlstack:sample:Widget" in p and "--write-schema" in p for p in problems)


# ---------------------------------------------------------------- the real components


def test_every_args_field_of_every_component_says_its_default():
    _, problems = _docgen.generate()
    assert problems == [], "\n".join(problems)


def test_committed_component_pages_are_up_to_date():
    problems = _docgen.check()
    assert problems == [], "\n".join(problems) + "\nfix: .venv/bin/python -m mlstack._docgen"


def test_every_exported_component_has_a_page_with_its_type_token():
    exported = _docgen.exported_components()
    assert {"S3ArtifactStore", "EksGpuCluster", "ArgoWorkflows", "MLStack"} <= set(exported)
    for name in exported:
        page = _docgen.DOCS_DIR / f"{name.lower()}.md"
        assert page.is_file(), page
        assert f"`mlstack:index:{name}`" in page.read_text()


def test_every_schema_input_and_output_is_on_the_component_page():
    import json

    schema = json.loads((_docgen.COMPONENTS_DIR / "schema.json").read_text())
    for token, res in schema["resources"].items():
        name = token.rsplit(":", 1)[-1]
        page = (_docgen.DOCS_DIR / f"{name.lower()}.md").read_text()
        args, outputs = page.split("## Outputs", 1)  # an Outputs table on every page (ExistingEksCluster too)
        for key in res["inputProperties"]:
            assert f"| `{_docgen._snake(key)}`" in args, (name, key)
        for key, prop in res["properties"].items():
            row = next(ln for ln in outputs.splitlines() if ln.startswith(f"| `{_docgen._snake(key)}` |"))
            assert ("(secret)" in row) == bool(prop.get("secret")), row
        for key in res.get("requiredInputs", []):
            row = next(ln for ln in args.splitlines() if ln.startswith(f"| `{_docgen._snake(key)}`"))
            assert "| Required" in row, row


def test_outputs_the_clusters_inherit_are_declared_once_and_described_in_the_schema():
    """JobsClusterBase declares the outputs both clusters share, with their docstrings, and nothing repeats them;
    Pulumi's analyzer reads docstrings from the component's own class only, so components/provider.py
    (``inherit_descriptions``) copies them into the schema: each of those outputs is described there with the
    base's text (element types too, as the analyzer does for its own outputs)."""
    compute = _docgen.COMPONENTS_DIR / "compute"
    base_docs = {o.name: o.doc for o in _outputs_of(compute / "_shared.py", "JobsClusterBase")}
    assert {"jobs_role_arn", "manifest_section", "oidc_provider_arn"} <= set(base_docs)
    schema = json.loads((_docgen.COMPONENTS_DIR / "schema.json").read_text())
    for module, cls in (("eks.py", "EksGpuCluster"), ("existing.py", "ExistingEksCluster")):
        own = {o.name for o in _outputs_of(compute / module, cls)}
        assert not own & set(base_docs), f"{cls} redeclares {sorted(own & set(base_docs))}"
        props = schema["resources"][f"mlstack:index:{cls}"]["properties"]
        for name, doc in base_docs.items():
            prop = props[_camel(name)]
            assert inspect.cleandoc(prop["description"]) == doc, (cls, name)
        section = props["manifestSection"]
        assert section["additionalProperties"]["description"] == section["description"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.title() for w in rest)


def _outputs_of(path: Path, cls_name: str) -> list:
    import ast

    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls_name)
    return _docgen._outputs(cls)
