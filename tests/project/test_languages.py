"""`funnel validate` on a funnel in two languages: the starter (English and Hungarian), broken on purpose."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.flow.explain import Explanation
from engine.project.folder import Project
from engine.project.release import make_release
from engine.subscribers.profile import EnrollmentView, Profile
from engine.web.dashboard.timeline import entries

STARTER = Path(__file__).resolve().parents[2] / "engine" / "project" / "starter"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "bakery"
    shutil.copytree(STARTER, root)
    return root


def _validate(project: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--project", str(project), "validate"])
    return result.exit_code, result.output


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_the_shipped_starter_validates_in_both_languages(project: Path) -> None:
    code, output = _validate(project)
    assert code == 0, output
    plan = Project(project).plan("home-bakery")
    assert plan.languages == ("en", "hu")
    hungarian = plan.in_language("hu-HU")
    assert hungarian.language == "hu" and plan.in_language("de") is plan
    assert hungarian.email("b-flour").template == "hu/home-bakery/b-flour.html"  # type: ignore[union-attr]
    assert hungarian.email("b-flour").subject == "Milyen lisztet vegyél (és milyet ne)"  # type: ignore[union-attr]
    assert hungarian.magnet(None).title == "Kovász 5 nap alatt: útmutató"


def test_a_hungarian_template_without_the_unsubscribe_link_is_reported_at_its_email(project: Path) -> None:
    hungarian = project / "templates" / "hu" / "home-bakery" / "b-flour.html"
    # Its own page instead of the Hungarian layout: the postal address, but no unsubscribe link.
    hungarian.write_text("<p>Liszt.</p><p>{{ postal_address }}</p>\n")
    code, output = _validate(project)
    assert code == 1
    sequence = project / "sequences" / "home-bakery.yaml"
    line = _line_of(sequence, "template: home-bakery/b-flour.html")
    column = sequence.read_text().splitlines()[line - 1].index("home-bakery/b-flour.html") + 1
    assert (
        f"home-bakery.yaml:{line}:{column}: the 'hu' version of email 'b-flour' has no unsubscribe "
        'link; extend the shared layout ({% extends "hu/layout.html" %}) or add {{ unsubscribe_url }} '
        "and {{ postal_address }} to the template"
    ) in output
    assert output.count("has no unsubscribe link") == 1  # the English b-flour is fine


def test_an_untranslated_subject_and_a_missing_hungarian_template_say_what_to_write(project: Path) -> None:
    sequence = project / "sequences" / "home-bakery.yaml"
    text = sequence.read_text()
    text = text.replace(
        'subject: {en: "Scoring that opens the way you want", '
        'hu: "Bevágás, ami úgy nyílik, ahogy szeretnéd"}',
        'subject: "Scoring that opens the way you want"',
    )
    text = text.replace('hu: "Gőz az otthoni sütőben, négyféleképpen"', 'de: "Dampf im Ofen"')
    sequence.write_text(text)
    (project / "templates" / "hu" / "home-bakery" / "k-hydration.html").unlink()
    code, output = _validate(project)
    assert code == 1
    scoring = _line_of(sequence, '"Scoring that opens the way you want"')
    assert (
        f"home-bakery.yaml:{scoring}:21: the subject of email 'k-scoring' is not translated: the "
        "funnel's languages are en, hu; write it once per language: "
        'subject: {en: "...", hu: "..."}'
    ) in output
    steam = _line_of(sequence, "Dampf im Ofen")
    assert f"home-bakery.yaml:{steam}:" in output
    assert (
        "'de' is not one of the funnel's languages (en, hu); add 'de' to 'languages:' or remove this text"
        in output
    )
    assert "the subject of email 'k-steam' has no 'hu' text; add 'hu: \"...\"' to it" in output
    hydration = _line_of(sequence, "template: home-bakery/k-hydration.html")
    assert (f"home-bakery.yaml:{hydration}:") in output
    assert (
        "the 'hu' version of email 'k-hydration' has no template: 'hu/home-bakery/k-hydration.html' not "
        "found in"
    ) in output
    assert (
        "write it: a copy of home-bakery/k-hydration.html in 'hu', saved as "
        "templates/hu/home-bakery/k-hydration.html" in output
    )


def test_texts_per_language_need_the_funnel_to_declare_them(project: Path) -> None:
    sequence = project / "sequences" / "home-bakery.yaml"
    sequence.write_text(sequence.read_text().replace("languages: [en, hu]", ""))
    code, output = _validate(project)
    assert code == 1
    assert (
        "the subject of email 'confirm' is given per language, but the funnel declares no languages; "
        "add 'languages: [en, hu]' under 'name:'"
    ) in output


def _with_variant(project: Path) -> Path:
    """b-flour tries a short version, in both languages."""
    sequence = project / "sequences" / "home-bakery.yaml"
    old = (
        'subject: {en: "Which flour to buy (and which to skip)", hu: "Milyen lisztet vegyél (és milyet ne)"}}'
    )
    text = sequence.read_text()
    assert old in text
    sequence.write_text(
        text.replace(
            old,
            old[:-1] + ",\n"
            "           variants: [{id: plain}, {id: short, template: home-bakery/b-flour-short.html,\n"
            '                       subject: {en: "Flour, briefly", hu: "Liszt, röviden"}}],\n'
            "           experiment: {metric: clicks}}",
        )
    )
    templates = project / "templates"
    (templates / "home-bakery" / "b-flour-short.html").write_text(
        '{% extends "layout.html" %}{% block body %}<p>Bread flour.</p>{% endblock %}\n'
    )
    (templates / "hu" / "home-bakery" / "b-flour-short.html").write_text(
        '{% extends "hu/layout.html" %}{% block body %}<p>Kenyérliszt.</p>{% endblock %}\n'
    )
    return project


def test_an_experiments_variant_has_its_version_in_each_language(project: Path) -> None:
    code, output = _validate(_with_variant(project))
    assert code == 0, output
    plan = Project(project).plan("home-bakery")
    english = plan.email("b-flour").as_variant("short")  # type: ignore[union-attr]
    hungarian = plan.in_language("hu").email("b-flour").as_variant("short")  # type: ignore[union-attr]
    assert (english.subject, english.template) == ("Flour, briefly", "home-bakery/b-flour-short.html")
    assert (hungarian.subject, hungarian.template) == ("Liszt, röviden", "hu/home-bakery/b-flour-short.html")
    assert plan.in_language("hu").email("b-flour").as_variant(None).subject == (  # type: ignore[union-attr]
        "Milyen lisztet vegyél (és milyet ne)"
    )
    # The one rule sending, previewing and the timelines read an email by (Plan.as_read):
    # the language the locale matches, then the variant given.
    assert plan.as_read("b-flour", "hu-HU", "short") == (plan.in_language("hu"), hungarian)
    assert plan.as_read("b-flour", "de", "short") == (plan, english)
    assert plan.as_read("b-flour", None, None) == (plan, plan.email("b-flour"))
    assert plan.as_read("gone", "hu", "short") is None
    (project / "templates" / "hu" / "home-bakery" / "b-flour-short.html").unlink()
    code, output = _validate(project)
    assert code == 1
    assert (
        "the 'hu' version of variant 'short' of email 'b-flour' has no template: "
        "'hu/home-bakery/b-flour-short.html' not found"
    ) in output


def test_a_hungarian_edit_changes_that_emails_text_in_the_release_and_no_other(project: Path) -> None:
    def texts() -> dict[str, str]:
        folder = Project(project)
        snapshot = folder.snapshot()
        result = folder.check(snapshot=snapshot)
        assert not result.errors
        return dict(make_release(snapshot, [f.plan for f in result.funnels]).texts)

    before = texts()
    hungarian = project / "templates" / "hu" / "home-bakery" / "k-steam.html"
    hungarian.write_text(hungarian.read_text().replace("négyféleképpen", "többféleképpen") + "<!-- -->\n")
    after = texts()
    assert [k for k in before if before[k] != after[k]] == ["home-bakery/k-steam"]
    sequence = project / "sequences" / "home-bakery.yaml"
    sequence.write_text(sequence.read_text().replace('hu: "Első nap: a kovász etetése"', 'hu: "Első nap"'))
    assert [k for k in after if after[k] != texts()[k]] == ["home-bakery/b-starter"]


@pytest.mark.parametrize(
    ("locale", "subject"), [("hu", "Első nap: a kovász etetése"), ("de", "Day one: feeding your starter")]
)
def test_the_dashboards_timeline_names_the_subject_the_person_read(
    project: Path, locale: str, subject: str
) -> None:
    plan = Project(project).plan("home-bakery")
    sent = {
        "step": "b-starter",
        "variant": None,
        "status": "sent",
        "sent_at": datetime(2026, 3, 3, tzinfo=UTC),
        "created_at": datetime(2026, 3, 3, tzinfo=UTC),
        "last_reply": None,
        "release": None,
        "funnel": "home-bakery",
    }
    view = EnrollmentView({"funnel": "home-bakery"}, [sent], Explanation(None, None, ""))
    profile = Profile({"locale": locale, "timezone": "UTC"}, [], [], [], [view])
    (entry,) = entries(profile, {"home-bakery": plan})
    assert entry.text == f"sent 'b-starter' “{subject}”"
