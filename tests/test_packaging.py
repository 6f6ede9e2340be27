"""Every package folder is listed in pyproject (setuptools ships only listed packages)."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed_in_pyproject() -> None:
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    found = set()
    for base, dotted in (("mlstack", "mlstack"), ("components", "mlstack.components")):
        for init in (ROOT / base).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / base)
            found.add(".".join([dotted, *rel.parts]) if rel.parts else dotted)
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_components_are_importable_as_mlstack_components() -> None:
    import mlstack.components

    assert Path(mlstack.components.__file__).resolve().parent == ROOT / "components"


def test_every_lazy_component_export_resolves() -> None:
    import mlstack.components as c

    for name in c.__all__:
        assert getattr(c, name).__name__ == name
