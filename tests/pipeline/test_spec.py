from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mlstack.errors import PipelineError, UsageError
from mlstack.pipeline import Pipeline, Step, coerce, load, step


def _pipe() -> Pipeline:
    p = Pipeline("demo", params={"n": 3, "lr": [0.1, 0.2], "flag": False, "label": "x"})

    @p.step
    def a(n):
        return n

    @p.step(foreach="lr")
    def b(a, lr):
        return a * lr

    @p.step(after=["a"])
    def c(b, label):
        return (b, label)

    return p


def test_dependencies_come_from_parameter_names_after_and_foreach() -> None:
    p = _pipe()
    assert p.deps("a") == []
    assert p.deps("b") == ["a"]
    assert p.deps("c") == ["a", "b"]
    assert p.validate() == ["a", "b", "c"]


def test_step_still_calls_the_function() -> None:
    @step(gpus=1, memory="4Gi")
    def f(x):
        return x + 1

    assert isinstance(f, Step) and f(1) == 2
    assert f.resources.gpus == 1 and f.resources.memory == "4Gi"


def test_bad_step_options_name_every_problem() -> None:
    with pytest.raises(UsageError) as e:
        step(gpus=-1, memory="lots", cpu="x")(lambda: None)
    msg = str(e.value)
    assert "gpus=-1" in msg and "memory='lots'" in msg and "cpu='x'" in msg


def test_unknown_parameter_cycle_and_foreach_problems() -> None:
    p = Pipeline("bad", params={"k": 1})

    @p.step
    def a(b):
        return b

    @p.step
    def b(a, nope):
        return a

    @p.step(foreach="k")
    def c(k):
        return k

    with pytest.raises(PipelineError) as e:
        p.validate()
    msg = str(e.value)
    assert "'nope' names no step" in msg
    assert "must default to a list" in msg
    p2 = Pipeline("cyc")
    p2.add(Step(lambda y: y, name="x"))
    p2.add(Step(lambda x: x, name="y"))
    with pytest.raises(PipelineError, match="dependency cycle"):
        p2.validate()


def test_params_are_typed_like_their_defaults() -> None:
    p = _pipe()
    v = p.resolve_params({"n": "5", "lr": "[1, 2, 3]", "flag": "true", "label": "7"})
    assert v == {"n": 5, "lr": [1, 2, 3], "flag": True, "label": "7"}
    with pytest.raises(UsageError, match="no param 'zzz'"):
        p.resolve_params({"zzz": "1"})
    with pytest.raises(UsageError, match="not a boolean"):
        p.resolve_params({"flag": "maybe"})
    assert coerce("[1]", None) == [1] and coerce("abc", None) == "abc"


def test_pipeline_names_are_dns_labels() -> None:
    with pytest.raises(UsageError, match="DNS label"):
        Pipeline("Bad_Name")


def test_load_a_folder_a_file_and_bare_steps(write_pipeline, tmp_path) -> None:
    f = write_pipeline(
        "pipeline = Pipeline('one', params={'x': 1})\n@pipeline.step\ndef s(x):\n    return x\n"
    )
    assert load(f.parent).name == "one" and load(f).source == str(f.resolve())
    g = write_pipeline(
        "@step\ndef first():\n    return 1\n@step\ndef second(first):\n    return first\n", name="my_flow.py"
    )
    p = load(g)
    assert p.name == "my-flow" and list(p.steps) == ["first", "second"]
    with pytest.raises(UsageError, match="no pipeline at"):
        load(tmp_path / "missing")


def test_importing_the_api_is_light() -> None:
    code = (
        "import sys, json; from mlstack.pipeline import step, Pipeline; import mlstack; mlstack.step;"
        "print(json.dumps([m for m in ('hera','pandas','pydantic','numpy','yaml') if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
