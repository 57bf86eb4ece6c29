"""Whatever a file holds, checking it ends in a funnel or in positioned errors, never a crash."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given
from hypothesis import strategies as st

from engine.mail.render import Renderer
from engine.project.templates import TemplateChecker
from engine.sequences.compile import compile_funnel
from engine.sequences.loader import load_text
from engine.sequences.structure import parse_funnel
from engine.sequences.validate import check_funnel

DATA = Path(__file__).resolve().parent.parent / "data"
MINIMAL = yaml.safe_load((DATA / "sequences/good/minimal.yaml").read_text())

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=12),
                    st.sampled_from(["2d", "one", "two", "e1", "sale", "education", "purchase",
                                     "t/e1.html", "weekdays 08:00-11:00", "4:1", "1/day"]))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)


def _paths(node: Any, where: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [where]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*where, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, (*where, i)))
    return found


PATHS = [p for p in _paths(MINIMAL) if p]


@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_mutated_files_give_positioned_errors_or_a_funnel(edits: list[tuple[Any, Any]]) -> None:
    data = copy.deepcopy(MINIMAL)
    for path, value in edits:
        node = data
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    text = yaml.safe_dump(data, allow_unicode=True)
    lines = text.count("\n") + 1
    doc, errors = load_text(text, "f.yaml")
    if doc is not None and not errors:
        funnel, errors = parse_funnel(doc)
        if funnel is not None:
            errors = check_funnel(funnel, doc.marks)
            plan = compile_funnel(funnel, "f.yaml")
            errors += TemplateChecker(Renderer(DATA / "templates")).check(funnel, plan, doc.marks)
    for error in errors:
        assert error.problem and error.line >= 1 and error.column >= 1
        if error.path == "f.yaml":
            assert error.line <= lines
