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


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            for part in line.split("&&"):
                command = part.split("#")[0].strip()
                if command.startswith("funnel ") and "~" not in command:
                    commands.append(command)
    return commands


@pytest.mark.parametrize("command", _readme_commands())
def test_every_funnel_command_in_the_readme_works(command: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shlex

    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.chdir(ROOT)
    args = shlex.split(command)[1:]
    if "--out" in args:  # write into a temporary folder, not the checkout
        at = args.index("--out") + 1
        args[at] = str(tmp_path / args[at])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()
