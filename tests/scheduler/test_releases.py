"""Releases: a daemon serves the files it checked, from memory, and keeps the last good release."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from engine.mail.context import SAMPLE, PreviewLinks, template_context
from engine.project.folder import Project
from engine.project.release import Release, changes
from engine.scheduler.funnels import LiveFunnels, load_funnels
from tests.support.project import minimal_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return minimal_project(tmp_path / "project")


def _render_e1(live: LiveFunnels) -> str:
    plan = live.current.plans["minimal"]
    email = plan.email("e1")
    assert email is not None
    context = template_context(plan, email, SAMPLE, PreviewLinks())
    return live.current.renderer.render(email, context).html


def _touch(path: Path) -> None:
    """Make the change visible to the mtime+size stamp even within one clock tick."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000_000))


def test_the_release_id_names_the_content_not_the_moment(project: Path, tmp_path: Path) -> None:
    first = load_funnels(Project(project)).release
    again = load_funnels(Project(project)).release
    assert first.hash == again.hash and len(first.id) == 12
    copy = minimal_project(tmp_path / "elsewhere")  # the same files in another folder
    assert load_funnels(Project(copy)).release.id == first.id
    layout = project / "templates" / "layout.html"
    layout.write_text(layout.read_text() + "\n<!-- edited -->\n")
    assert load_funnels(Project(project)).release.id != first.id


def test_templates_render_from_memory_not_from_disk(project: Path) -> None:
    live = LiveFunnels(Project(project))
    before = _render_e1(live)
    (project / "templates" / "t" / "e1.html").unlink()
    (project / "templates" / "layout.html").write_text("broken {% if %}")
    assert _render_e1(live) == before  # no reload yet: the release still has both files


def test_a_template_renamed_before_the_yaml_keeps_the_whole_last_release(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveFunnels(Project(project))
    old, before = live.current.release, _render_e1(live)
    (project / "templates" / "t" / "e1.html").rename(project / "templates" / "t" / "first.html")
    with caplog.at_level(logging.INFO, logger="funnel"):
        assert live.reload_if_changed() is False
    assert live.current.release == old
    assert _render_e1(live) == before  # the old template, from the kept release
    failed = [r for r in caplog.records if r.getMessage() == "reload_failed"]
    assert failed and "t/e1.html" in " ".join(failed[0].fields["errors"])  # type: ignore[attr-defined]

    path = project / "sequences" / "minimal.yaml"
    path.write_text(path.read_text().replace("template: t/e1.html", "template: t/first.html"))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="funnel"):
        assert live.reload_if_changed() is True
    assert live.current.release.id != old.id
    assert _render_e1(live) == before  # same content under its new name
    reloaded = next(r for r in caplog.records if r.getMessage() == "reloaded")
    fields = reloaded.fields  # type: ignore[attr-defined]
    assert fields["release"] == live.current.release.id and fields["previous"] == old.id
    assert fields["templates_added"] == ["t/first.html"] and fields["templates_removed"] == ["t/e1.html"]
    json.dumps(fields)


def test_a_release_goes_live_once_per_content(project: Path) -> None:
    seen: list[Release] = []
    live = LiveFunnels(Project(project), on_release=lambda funnels: seen.append(funnels.release))
    assert [r.id for r in seen] == [live.current.release.id]
    path = project / "sequences" / "minimal.yaml"
    _touch(path)  # saved unchanged: no new release
    assert live.reload_if_changed() is False and len(seen) == 1
    path.write_text(path.read_text().replace(
        "        - {id: e2, role: education, subject: E2, template: t/e2.html}\n", ""))
    assert live.reload_if_changed() is True
    changed = changes(seen[0], seen[1])
    assert changed["emails_removed"] == ["minimal/e2"] and changed["emails_added"] == []
    assert changed["emails_changed"] == []


def test_an_email_moved_is_named_and_only_the_one_that_left_its_order(project: Path) -> None:
    before = load_funnels(Project(project)).release
    path = project / "sequences" / "minimal.yaml"
    e1 = "        - {id: e1, role: education, subject: E1, template: t/e1.html}\n"
    e2 = "        - {id: e2, role: education, subject: E2, template: t/e2.html}\n"
    path.write_text(path.read_text().replace(e1 + e2, e2 + e1))  # a swap of two neighbours
    after = load_funnels(Project(project)).release
    assert changes(before, after)["emails_moved"] == ["minimal/e2"]  # one of the two, not both
    assert changes(before, before)["emails_moved"] == []
    o1 = "        - {id: o1, subject: O1, template: t/o1.html}\n"
    as_education = o1.replace("{id: o1,", "{id: o1, role: education,")
    path.write_text(path.read_text().replace(o1, "").replace(e2, e2 + as_education))  # sales -> nurture
    assert changes(after, load_funnels(Project(project)).release)["emails_moved"] == ["minimal/o1"]
    assert Release.from_record(after.hash, after.as_record()) == after


def test_an_email_s_text_changes_with_its_subject_its_template_its_layout_and_the_funnel_s_values(
    project: Path
) -> None:
    def changed_after(edit: tuple[str, str, str]) -> list[str]:
        before = load_funnels(Project(project)).release
        file = project / edit[0]
        file.write_text(file.read_text().replace(edit[1], edit[2]))
        return changes(before, load_funnels(Project(project)).release)["emails_changed"]

    assert changed_after(("templates/t/e1.html", "this is e1", "this is e1 again")) == ["minimal/e1"]
    assert changed_after(("sequences/minimal.yaml", "subject: E2", "subject: E2 again")) == ["minimal/e2"]
    every = changed_after(("templates/layout.html", "<head>", "<head><!-- edited -->"))
    assert {"minimal/e1", "minimal/e2"} <= set(every)  # both extend the layout
    assert changed_after(("sequences/minimal.yaml", "1 Example Street", "2 Example Street")) == sorted(
        load_funnels(Project(project)).release.emails)  # the postal address is in every email


def test_the_check_reads_the_snapshot_it_will_serve(project: Path) -> None:
    snapshot = Project(project).snapshot()
    (project / "templates" / "t" / "e1.html").unlink()  # after the read: not seen
    assert Project(project).check(snapshot=snapshot).errors == []
    assert Project(project).check().errors  # the folder itself now lacks it


def test_a_file_saved_a_moment_ago_is_read_once_it_has_stayed_put(project: Path) -> None:
    live = LiveFunnels(Project(project), settle=60)
    old = live.current.release
    template = project / "templates" / "t" / "e1.html"
    template.write_text("")  # an editor that truncates first: the save is not finished
    assert live.reload_if_changed() is False and live.current.release == old
    template.write_text("{% extends \"layout.html\" %}{% block body %}<p>New e1</p>{% endblock %}")
    assert live.reload_if_changed() is False  # saved a moment ago: it may still change
    minute_ago = time.time_ns() - 61 * 10**9
    for path in project.rglob("*"):  # the project itself was written a moment ago too
        os.utime(path, ns=(minute_ago, minute_ago))
    assert live.reload_if_changed() is True and "New e1" in _render_e1(live)


def test_a_rename_seen_halfway_is_told_once_and_a_new_break_after_a_fix_is_told_again(
    project: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The folder's look lists t/e1.html, the rename lands, its stat misses it: that look saw
    # neither name. It is not read as a change; the next look sees the rename: one warning.
    live = LiveFunnels(Project(project))
    templates = project / "templates" / "t"
    real_stat, renamed = os.stat, []

    def stat_renaming_first(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if not renamed and str(path).endswith(os.path.join("t", "e1.html")):
            renamed.append(path)
            os.rename(templates / "e1.html", templates / "first.html")
        return real_stat(path, *args, **kwargs)

    def warnings() -> int:
        return sum(r.getMessage() == "reload_failed" for r in caplog.records)

    with caplog.at_level(logging.INFO, logger="funnel"):
        monkeypatch.setattr(os, "stat", stat_renaming_first)
        assert live.reload_if_changed() is False  # the look the rename cut in two
        monkeypatch.undo()
        assert renamed and (templates / "first.html").exists()
        assert live.reload_if_changed() is False  # the whole rename
        assert warnings() == 1
        (templates / "first.html").rename(templates / "e1.html")  # put back, and saved again:
        _touch(templates / "e1.html")  # a good load of the release as before
        assert live.reload_if_changed() is False and warnings() == 1
        (templates / "e1.html").rename(templates / "first.html")  # broken again, after a good load
        assert live.reload_if_changed() is False
        assert warnings() == 2


def test_a_link_to_nothing_in_templates_does_not_stop_reloads(project: Path) -> None:
    # An editor's lock file (Emacs writes `.#name` as a link to nothing) is not a folder
    # that is changing: edits beside it still load.
    live = LiveFunnels(Project(project))
    (project / "templates" / "t" / ".#e1.html").symlink_to("user@host.1234:1700000000")
    path = project / "sequences" / "minimal.yaml"
    path.write_text(path.read_text().replace(
        "        - {id: e2, role: education, subject: E2, template: t/e2.html}\n", ""))
    assert live.reload_if_changed() is True
