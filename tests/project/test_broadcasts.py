"""Broadcast files in a project: loaded after the funnels, attached to their funnel's plan, part of
the release; a broken one fails the check without stopping the funnels."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.project.folder import Project
from engine.project.release import _relative
from engine.scheduler.funnels import LiveFunnels, load_funnels
from engine.sequences.broadcast_model import Audience, Broadcast, BroadcastEmail, Send
from engine.sequences.plan import PathKind
from tests.support.project import DATA, ROOT, funnels_project, minimal_project, shipped_project

GOOD = (DATA / "broadcasts" / "good" / "sale.yaml").read_text(encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The minimal project with broadcasts/spring-sale.yaml going to it."""
    root = minimal_project(tmp_path / "project")
    (root / "broadcasts").mkdir()
    (root / "broadcasts" / "spring-sale.yaml").write_text(GOOD, encoding="utf-8")
    return root


def _broadcast(root: Path, name: str, text: str) -> Path:
    path = root / "broadcasts" / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_examples_validate_with_their_broadcast(monkeypatch: pytest.MonkeyPatch) -> None:
    result = Project(ROOT).check()
    assert [str(e) for e in result.errors] == []
    [loaded] = result.broadcasts
    assert loaded.path == ROOT / "broadcasts" / "2026-12-10-winter-sale.yaml"
    plans = {f.plan.funnel: f.plan for f in result.funnels}
    assert plans["first-marathon"].broadcasts == (loaded.plan,)
    assert plans["camping-gear"].broadcasts == ()
    email = plans["first-marathon"].email("winter-sale")
    assert email is not None and email.path is PathKind.BROADCAST
    monkeypatch.chdir(ROOT)
    run = CliRunner().invoke(main, ["validate"])
    assert run.exit_code == 0, run.output
    assert run.output.splitlines()[-1] == (
        "broadcasts/2026-12-10-winter-sale.yaml: ok, broadcast 'winter-sale' (sale) to funnel "
        "'first-marathon': segments beginner, advanced; stages nurture, customer; at 2026-12-10 "
        "09:00 in each subscriber's time zone, inside the funnel's send window; where 4:1 would "
        "break: defer")


def test_a_broadcast_is_attached_to_its_funnel_and_its_email_is_in_the_release(project: Path) -> None:
    funnels = load_funnels(Project(project))
    plan = funnels.plans["minimal"]
    broadcast = plan.broadcast("spring-sale")
    assert broadcast is not None and plan.email("spring-sale") == broadcast.email
    assert "minimal/spring-sale" in funnels.release.texts
    assert Project(project).load_plans().funnels[0].plan.broadcasts == (broadcast,)


def test_broadcasts_are_attached_in_file_name_order(project: Path) -> None:
    _broadcast(project, "0-first.yaml", GOOD.replace("broadcast: spring-sale", "broadcast: first"))
    plan = Project(project).check().funnels[0].plan
    assert [b.id for b in plan.broadcasts] == ["first", "spring-sale"]


def _old_digest(project: Path) -> str:
    """The release hash as it was before broadcasts existed: sequence files, then templates."""
    sha = hashlib.sha256()
    snapshot = Project(project).snapshot()
    sequences = {_relative(path, project): data for path, data in snapshot.sequences.items()}
    for kind, files in (("sequence", sequences), ("template", snapshot.templates)):
        for name in sorted(files):
            sha.update(f"{kind}\0{name}\0{len(files[name])}\0".encode())
            sha.update(files[name])
    return sha.hexdigest()


def test_the_release_id_changes_with_a_broadcast_and_only_then(project: Path) -> None:
    first = load_funnels(Project(project)).release
    path = project / "broadcasts" / "spring-sale.yaml"
    path.write_text(GOOD.replace("name: Spring sale", "name: The spring sale"), encoding="utf-8")
    edited = load_funnels(Project(project)).release
    assert edited.id != first.id
    shutil.rmtree(project / "broadcasts")
    without = load_funnels(Project(project)).release
    assert without.id not in (first.id, edited.id)
    # A project without broadcasts keeps the release id it had before they existed.
    assert without.hash == _old_digest(project)


def test_the_check_reads_the_snapshot_s_broadcasts(project: Path) -> None:
    snapshot = Project(project).snapshot()
    _broadcast(project, "spring-sale.yaml", GOOD.replace("role: sale", "role: sael"))  # after the read
    result = Project(project).check(snapshot=snapshot)
    assert result.errors == [] and result.funnels[0].plan.broadcast("spring-sale") is not None
    assert Project(project).check().errors  # the folder itself is now broken


def test_a_broken_broadcast_fails_the_check_but_the_funnels_still_compile(project: Path) -> None:
    _broadcast(project, "spring-sale.yaml", GOOD.replace("segments: [one, two]", "segments: [one, tow]"))
    result = Project(project).check()
    assert [str(e) for e in result.errors] == [
        f"{_shown(project)}/broadcasts/spring-sale.yaml:10:19: funnel 'minimal' has no segment "
        "'tow'; did you mean 'two'?"]
    [loaded] = result.funnels
    assert loaded.plan.funnel == "minimal" and loaded.plan.broadcasts == ()
    assert result.broadcasts == []


def test_a_daemon_reloads_on_a_broadcast_and_keeps_the_last_good_release_on_a_broken_one(
    project: Path,
) -> None:
    live = LiveFunnels(Project(project))
    assert live.current.plans["minimal"].broadcast("autumn") is None
    _broadcast(project, "autumn.yaml", GOOD.replace("broadcast: spring-sale", "broadcast: autumn"))
    assert live.reload_if_changed() is True
    assert live.current.plans["minimal"].broadcast("autumn") is not None
    good = live.current.release
    _touch(_broadcast(project, "autumn.yaml", GOOD.replace("broadcast: spring-sale", "broadcast: autumn")
                      .replace("role: sale", "role: transactional")))
    assert live.reload_if_changed() is False
    assert live.current.release == good and live.current.plans["minimal"].broadcast("autumn")


def test_a_broadcast_id_used_twice_names_both_files(project: Path) -> None:
    _broadcast(project, "z-again.yaml", GOOD)
    result = Project(project).check()
    shown = _shown(project)
    assert [str(e) for e in result.errors] == [
        f"{shown}/broadcasts/z-again.yaml:2:12: broadcast id 'spring-sale' is also used by "
        f"{shown}/broadcasts/spring-sale.yaml; give each broadcast its own id"]


def test_a_broadcast_to_a_broken_funnel_reports_only_its_own_mistakes(project: Path) -> None:
    sequence = project / "sequences" / "minimal.yaml"
    sequence.write_text(sequence.read_text().replace("name: Minimal funnel", "name: [Minimal"))
    # 'tow' is no segment of minimal, but that file did not load: not reported; 'sale' is no stage.
    _broadcast(project, "spring-sale.yaml", GOOD.replace("segments: [one, two]", "segments: [one, tow]")
               .replace("stages: [nurture, sales_done, customer]", "stages: [sale]"))
    result = Project(project).check()
    broadcast_errors = result.by_file[project / "broadcasts" / "spring-sale.yaml"]
    assert [str(e) for e in broadcast_errors] == [
        f"{_shown(project)}/broadcasts/spring-sale.yaml:11:12: no stage 'sale'; did you mean 'sales'?"]
    assert result.by_file[sequence]  # the funnel's own error is reported with its own file
    _broadcast(project, "spring-sale.yaml", GOOD)  # no mistake of its own: not ok either, not all checked
    result = Project(project).check()
    assert result.by_file[project / "broadcasts" / "spring-sale.yaml"] == [] and result.broadcasts == []


def test_validate_on_a_broadcast_file_checks_it_with_the_funnel_it_needs_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = funnels_project(tmp_path / "project", ["minimal", "other"])
    other = root / "sequences" / "other.yaml"
    other.write_text(other.read_text().replace("spacing: 2d", "spacing: 2"))  # broken, not needed
    (root / "broadcasts").mkdir()
    _broadcast(root, "spring-sale.yaml", GOOD)
    monkeypatch.chdir(root)
    run = CliRunner().invoke(main, ["validate", "broadcasts/spring-sale.yaml"])
    assert run.exit_code == 0, run.output
    assert [line.split(":")[0] for line in run.output.splitlines()] == [
        "sequences/minimal.yaml", "broadcasts/spring-sale.yaml"]
    assert CliRunner().invoke(main, ["validate"]).exit_code == 1  # the whole project: other is broken


def _shown(path: Path) -> str:
    """`path` as errors show it (relative to the working folder when below it)."""
    return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)


def _touch(path: Path) -> None:
    """Make the change visible to the mtime+size stamp even within one clock tick."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def _docs() -> str:
    return (ROOT / "docs" / "broadcasts.md").read_text(encoding="utf-8")


def test_the_example_in_the_docs_is_a_valid_broadcast_of_the_shipped_funnels(tmp_path: Path) -> None:
    block = re.search(r"<!-- example: broadcast.*?-->\n```yaml\n(.*?)```", _docs(), re.S)
    assert block is not None
    root = shipped_project(tmp_path / "project")
    (root / "broadcasts").mkdir()
    _broadcast(root, "example.yaml", block.group(1))
    result = Project(root).check()
    assert [str(e) for e in result.errors] == []
    [loaded] = result.broadcasts
    assert loaded.plan.funnel == "first-marathon" and loaded.plan.local


def test_the_docs_name_every_key_and_quote_the_pinned_errors() -> None:
    docs = _docs()
    # An email's variants and experiment are documented once, for sequences and broadcasts alike.
    experiments = (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8")
    for model in (Broadcast, BroadcastEmail, Audience, Send):
        for name, field in model.model_fields.items():
            assert f"`{field.alias or name}`" in (experiments if name in ("variants", "experiment")
                                                  else docs), name
    pinned = {line for path in (DATA / "broadcasts" / "bad").glob("*.expected")
              for line in path.read_text(encoding="utf-8").splitlines()}
    quoted = re.search(r"## Checking a broadcast.*?```\n.*?```\n.*?```\n(.*?)```", docs, re.S)
    assert quoted is not None
    for line in quoted.group(1).splitlines():
        assert line in pinned, line


def test_an_empty_or_unreadable_broadcast_file_says_how_to_start(project: Path) -> None:
    _broadcast(project, "spring-sale.yaml", "# to do\n")
    _broadcast(project, "z.yaml", "broadcast: [x\n")
    result = Project(project).check()
    shown = _shown(project)
    assert [str(e) for e in result.errors] == [
        f"{shown}/broadcasts/spring-sale.yaml:1:1: the file is empty; start it with 'broadcast: <id>' "
        "(see docs/broadcasts.md)",
        f"{shown}/broadcasts/z.yaml:2:1: YAML syntax: a list in [ ] is not closed; close it with ']'"]
    assert result.funnels[0].plan.broadcasts == ()


def test_validate_on_a_broadcast_to_an_unknown_funnel_says_only_that(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broadcast(project, "spring-sale.yaml", GOOD.replace("funnel: minimal", "funnel: minimall"))
    monkeypatch.chdir(project)
    run = CliRunner().invoke(main, ["validate", "broadcasts/spring-sale.yaml"])
    assert (run.exit_code, run.stdout, run.stderr) == (
        1, "broadcasts/spring-sale.yaml:4:9: no funnel 'minimall'; did you mean 'minimal'?\n",
        "1 error in 1 file\n")
