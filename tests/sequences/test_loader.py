"""The YAML loader: positions for every node, YAML 1.2 scalars, duplicate keys."""

from __future__ import annotations

from engine.sequences.loader import Pos, load_text


def test_every_value_and_key_has_its_line_and_column() -> None:
    doc, errors = load_text("funnel: x\nsegments:\n  - id: one\n    name: One\n", "f.yaml")
    assert errors == [] and doc is not None
    assert doc.marks.at(("segments", 0, "name")) == Pos(4, 11)
    assert doc.marks.key(("segments", 0, "name")) == Pos(4, 5)
    assert doc.marks.at(("segments", 0)) == Pos(3, 5)
    # a path that is not there falls back to its nearest ancestor
    assert doc.marks.at(("segments", 0, "missing")) == Pos(3, 5)


def test_plain_scalars_follow_yaml_1_2_so_marketers_words_stay_words() -> None:
    text = "a: no\nb: on\nc: 08:30\nd: 4:1\ne: true\nf: 12\ng: 1.5\nh: ~\ni: '12'\nj: 2026-03-02\n"
    doc, _ = load_text(text, "f.yaml")
    assert doc is not None
    assert doc.data == {"a": "no", "b": "on", "c": "08:30", "d": "4:1", "e": True, "f": 12,
                        "g": 1.5, "h": None, "i": "12", "j": "2026-03-02"}


def test_a_duplicate_key_is_an_error_that_names_the_first_one() -> None:
    _, errors = load_text("name: a\nfunnel: f\nname: b\n", "f.yaml")
    assert [str(e) for e in errors] == [
        "f.yaml:3:1: duplicate key 'name' (first given at line 1); keep one of them"]


def test_syntax_errors_point_at_the_line() -> None:
    doc, errors = load_text("funnel: x\nname: [a, b\n", "f.yaml")
    assert doc is None and len(errors) == 1
    assert errors[0].line >= 2 and errors[0].problem.startswith("YAML syntax")


def test_an_empty_file_says_how_to_start() -> None:
    _, errors = load_text("# only a comment\n", "f.yaml")
    assert str(errors[0]) == ("f.yaml:1:1: the file is empty; start it with 'funnel: <id>' "
                              "(see docs/sequence-files.md)")


def test_aliases_reuse_a_value() -> None:
    doc, errors = load_text("a: &gap 2d\nb: *gap\n", "f.yaml")
    assert errors == [] and doc is not None and doc.data == {"a": "2d", "b": "2d"}
