"""docs/api.md's examples run as written (the embedded model in the first), so the page cannot drift from
the code it documents."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_lists_every_public_name():
    import referee

    text = PAGE.read_text(encoding="utf-8")
    assert all(f"`referee.{name}" in text for name in referee.__all__ if name != "__version__")


@pytest.mark.parametrize("index", [0, 1])
def test_the_examples_run(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(_blocks()[index], f"{PAGE}:block{index + 1}", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    if index == 0:
        assert out[:2] == ["A", "[1.0]"] and 1.0 <= float(out[2].strip("[]")) <= 10.0
    else:
        assert out[0].startswith("runs/api-judge") and (tmp_path / "runs" / "api-judge" / "metrics.json").exists()
