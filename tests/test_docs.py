"""The documentation's examples are real: the complete example validates and simulates."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.flow.simulate import Script, simulate
from engine.sequences.project import Project
from tests.flow.test_step import T0

ROOT = Path(__file__).resolve().parent.parent


def test_the_complete_example_in_the_reference_is_a_valid_funnel(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / "docs" / "sequence-files.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- example: complete.*?-->\n```yaml\n(.*?)```", text, re.S)
    assert block is not None
    (tmp_path / "sequences").mkdir()
    (tmp_path / "sequences" / "mini.yaml").write_text(block.group(1), encoding="utf-8")
    (tmp_path / "templates").symlink_to(ROOT / "templates")
    monkeypatch.chdir(tmp_path)
    result = Project(tmp_path).check()
    assert [str(e) for e in result.errors] == []
    plan = result.funnels[0].plan
    advanced = plan.segment("advanced")
    assert advanced is not None
    assert [e.role.value for e in advanced.nurture.steps] == ["education"] * 4 + ["sale"]
    assert simulate(plan, Script(T0)).sends()
