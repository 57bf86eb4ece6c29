"""The documentation's examples are real: the complete example validates and simulates."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from engine.flow.simulate import Script, simulate
from engine.project.folder import Project
from tests.flow.test_step import T0

ROOT = Path(__file__).resolve().parent.parent


def test_the_complete_example_in_the_reference_is_a_valid_funnel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def _project_copy(folder: Path) -> Path:
    """A copy of the checkout's funnels, broadcasts, templates and examples: README commands write into it."""
    for name in ("sequences", "broadcasts", "templates", "docs"):
        shutil.copytree(ROOT / name, folder / name)
    return folder


# `funnel doctor` reads the public DNS, which a test must not: tests/cli/test_dkim.py runs it
# against a DNS server on loopback.
@pytest.mark.parametrize("command", [c for c in _readme_commands()
                                     if not c.startswith(("funnel run", "funnel doctor"))])
def test_every_funnel_command_in_the_readme_works(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from engine.cli import main

    monkeypatch.chdir(_project_copy(tmp_path / "project"))
    monkeypatch.setenv("FUNNEL_DATABASE_URL", f"sqlite:///{tmp_path / 'funnel.db'}")
    args = shlex.split(command)[1:]
    if "--out" in args:  # write into a temporary folder, not the checkout
        at = args.index("--out") + 1
        args[at] = str(tmp_path / args[at])
    if args[:2] != ["subscribers", "import"]:  # commands about subscribers need some
        seeded = CliRunner().invoke(
            main, ["subscribers", "import", "docs/examples/leads.csv", "--funnel", "first-marathon"]
        )
        assert seeded.exit_code == 0, seeded.output
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


@pytest.mark.parametrize("command", [c for c in _readme_commands() if c.startswith("funnel run")])
def test_every_way_the_readme_starts_the_daemon_starts_it(command: str, tmp_path: Path) -> None:
    """The daemon starts on the shipped funnels, answers /healthz, and stops on SIGTERM with 0."""
    project = _project_copy(tmp_path / "project")
    port = _free_port()
    args = [*shlex.split(command)[1:], "--port", str(port)]
    env = {**os.environ, "FUNNEL_DATABASE_URL": f"sqlite:///{tmp_path / 'funnel.db'}"}
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", *args],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        healthy = False
        while not healthy and time.monotonic() < deadline and process.poll() is None:
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                time.sleep(0.1)
        assert healthy, process.stderr.read() if process.poll() is not None else "no answer"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
