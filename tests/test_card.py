"""mlstack.card: what steps add to their run's report -- tables, images and Markdown, stored with the run."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

import mlstack.card as card
from mlstack.errors import UsageError


def png(width: int, height: int, rgb: tuple[int, int, int] = (255, 0, 255)) -> bytes:
    """A solid-colour PNG, encoded here (no imaging library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    raw = zlib.compress(row * height)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(card, "_current", None)


def test_outside_a_run_cards_collect_in_memory(fresh, monkeypatch) -> None:
    monkeypatch.delenv("MLSTACK_RUN_ID", raising=False)
    monkeypatch.delenv("MLSTACK_STEP", raising=False)
    c = card.markdown("# hi").table([{"a": 1}]).image(png(3, 2), title="tiny")
    assert c is card.current() and c.run_id is None
    kinds = [i["type"] for i in c.to_dict()["items"]]
    assert kinds == ["markdown", "table", "image"]
    img = c.items[2]
    assert img == {
        "type": "image",
        "format": "png",
        "size": len(png(3, 2)),
        "width": 3,
        "height": 2,
        "title": "tiny",
    }
    assert c.blob(2) == png(3, 2)


def test_tables_from_dicts_rows_columns_and_dataframes(fresh) -> None:
    c = card.Card()
    c.table([{"metric": "auc", "value": 0.9}, {"metric": "loss", "extra": True}])
    assert c.items[-1]["columns"] == ["metric", "value", "extra"]
    assert c.items[-1]["rows"] == [["auc", 0.9, None], ["loss", None, True]]
    c.table([(1, "a"), (2, "b", "x")], columns=["n", "s", "t"], title="rows")
    assert c.items[-1]["rows"] == [[1, "a", None], [2, "b", "x"]] and c.items[-1]["title"] == "rows"
    c.table({"x": [1, 2, 3], "y": [4, 5]})
    assert c.items[-1]["rows"] == [[1, 4], [2, 5], [3, None]]
    c.table([{"a": 1, "b": 2, "c": 3}], columns=["c", "a"])
    assert c.items[-1]["columns"] == ["c", "a"] and c.items[-1]["rows"] == [[3, 1]]
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    df = pd.DataFrame({"C": [0.5, 5.0], "auc": np.array([0.77, float("nan")]), "n": np.array([1, 2])})
    c.table(df)
    item = c.items[-1]
    assert item["columns"] == ["C", "auc", "n"]
    # numpy scalars become JSON numbers; NaN, which JSON cannot hold, becomes text
    assert item["rows"] == [[0.5, 0.77, 1], [5.0, "nan", 2]]
    json.dumps(c.to_dict(), allow_nan=False)


def test_long_tables_are_cut_and_counted(fresh) -> None:
    c = card.Card().table([[i] for i in range(card.MAX_ROWS + 25)], columns=["i"])
    assert len(c.items[0]["rows"]) == card.MAX_ROWS and c.items[0]["truncated"] == 25
    c.table([["x" * (card.MAX_CELL + 50)]])
    assert len(c.items[-1]["rows"][0][0]) == card.MAX_CELL


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda c: c.table(42), "not int"),
        (lambda c: c.table("abc"), "not str"),
        (lambda c: c.table([{"a": 1}, [1, 2]]), "neither all dicts nor all sequences"),
        (lambda c: c.table([(1, 2, 3)], columns=["a"]), "3 values but 1 columns"),
        (lambda c: c.table([{"a": 1}], columns=["b"]), "columns=['b'] are not in the data"),
        (lambda c: c.table([list(range(card.MAX_COLUMNS + 1))]), "columns, above"),
        (lambda c: c.markdown(b"bytes"), "takes text"),
        (lambda c: c.markdown("x" * (card.MAX_TEXT + 1)), "characters, above"),
        (lambda c: c.image("a.png"), "not str"),
        (lambda c: c.image(b"GIF8 nope"), "not a PNG, JPEG, GIF or WebP"),
    ],
)
def test_bad_card_input_is_a_usage_error_naming_it(fresh, call, says) -> None:
    with pytest.raises(UsageError) as e:
        call(card.Card())
    assert says in e.value.message and e.value.fix


def test_jpeg_and_gif_sizes_are_read_from_their_headers() -> None:
    jpeg = b"\xff\xd8\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    jpeg += b"\xff\xc0" + struct.pack(">HBHH", 17, 8, 480, 640) + b"\x00" * 12
    assert card._sniff(jpeg) == ("jpeg", 640, 480)
    assert card._sniff(b"GIF89a" + struct.pack("<HH", 32, 16) + b"\x00" * 8) == ("gif", 32, 16)


def test_a_matplotlib_figure_is_saved_as_png(fresh) -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [0, 1])
    c = card.Card().image(fig, title="roc").image(ax)
    plt.close(fig)
    assert c.items[0]["format"] == "png" and c.items[0]["width"] > 100 and c.items[0]["height"] > 50
    assert c.blob(0)[:8] == b"\x89PNG\r\n\x1a\n"
    assert c.items[1]["format"] == "png"


def _backend():
    from mlstack import manifest
    from mlstack.registry import load_backend

    section = manifest.current().artifacts
    return load_backend("artifacts", section.kind).from_section(section)


def test_inside_a_run_each_call_is_stored_with_the_run(fresh, local_home, monkeypatch) -> None:
    monkeypatch.setenv("MLSTACK_RUN_ID", "20260101T000000Z-abc")
    monkeypatch.setenv("MLSTACK_STEP", "train[2]")
    card.markdown("## AUC\n**0.91**")
    b = _backend()
    key = "runs/records/20260101T000000Z-abc/cards/train@2.json"
    doc = json.loads(b.read_doc(key)[0])  # stored at once: a step that fails later keeps its card
    assert doc["step"] == "train" and doc["branch"] == 2 and doc["run"] == "20260101T000000Z-abc"
    assert [i["type"] for i in doc["items"]] == ["markdown"]
    card.image(png(4, 4), title="px")
    doc = json.loads(b.read_doc(key)[0])
    img = doc["items"][1]
    assert img["blob"].startswith("sha256:") and b.get_bytes(img["blob"].removeprefix("sha256:")) == png(4, 4)
    # a retried attempt (a new process) starts the card afresh instead of appending to the failed one's
    monkeypatch.setattr(card, "_current", None)
    card.table([{"attempt": 2}])
    doc = json.loads(b.read_doc(key)[0])
    assert [i["type"] for i in doc["items"]] == ["table"]
    # a plain step (no branch)
    monkeypatch.setenv("MLSTACK_STEP", "evaluate")
    card.markdown("done")
    assert b.read_doc("runs/records/20260101T000000Z-abc/cards/evaluate.json") is not None


def test_a_store_failure_never_fails_the_step(fresh, local_home, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MLSTACK_RUN_ID", "20260101T000000Z-abc")
    monkeypatch.setenv("MLSTACK_STEP", "evaluate")
    c = card.current()

    class Broken:
        def read_doc(self, key):
            raise OSError("disk full")

        def put_bytes(self, data):
            raise OSError("disk full")

    c._backend = Broken()
    card.markdown("still here")
    assert c.stored_error == "OSError: disk full" and c.items[0]["text"] == "still here"
    assert "[mlstack] card of evaluate not stored: OSError: disk full" in capsys.readouterr().err


def test_importing_card_stays_light() -> None:
    code = (
        "import sys, json, mlstack; mlstack.card.markdown; "
        "print(json.dumps(sorted(m for m in ('pandas', 'numpy', 'matplotlib', 'markdown_it', 'pydantic', "
        "'boto3', 'pyarrow') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert json.loads(out.stdout) == []
