"""Read a YAML sequence file into plain data plus the line:column of every node.

PyYAML is imported here and nowhere else. Plain scalars are resolved by the YAML
1.2 core schema, not PyYAML's 1.1 defaults, so that a marketer's `no`, `on` or
`08:30` stays the text they typed instead of turning into False or 510.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from engine.errors import SequenceError

Path = tuple[str | int, ...]

_NULL = re.compile(r"^(~|null|Null|NULL|)$")
_BOOL_TRUE = re.compile(r"^(true|True|TRUE)$")
_BOOL_FALSE = re.compile(r"^(false|False|FALSE)$")
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+\.[0-9]*)([eE][-+]?[0-9]+)?$")
# libyaml composes the same nodes, marks included, about 12 times faster (the shipped examples:
# 30 ms of the 80 ms `funnel subscribers show` took to load the funnels); a file it refuses
# is read again by PyYAML's own parser, whose error messages the golden tests pin.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


@dataclass(frozen=True)
class Pos:
    """A 1-based line and column in a file."""

    line: int
    column: int


@dataclass
class Marks:
    """Where each value (and each mapping key) of a loaded document stands in its file."""

    path: str
    values: dict[Path, Pos] = field(default_factory=dict)
    keys: dict[Path, Pos] = field(default_factory=dict)

    def at(self, where: Path) -> Pos:
        """The position of the value at `where`, or of its nearest ancestor that has one."""
        for cut in range(len(where), -1, -1):
            pos = self.values.get(where[:cut])
            if pos is not None:
                return pos
        return Pos(1, 1)

    def key(self, where: Path) -> Pos:
        """The position of the key that names `where` (the value's, for list items)."""
        return self.keys.get(where) or self.at(where)

    def error(self, where: Path, problem: str, fix: str = "", *, key: bool = False) -> SequenceError:
        """A SequenceError pointing at the value (or key) at `where`."""
        pos = self.key(where) if key else self.at(where)
        return SequenceError(self.path, pos.line, pos.column, problem, fix)


@dataclass(frozen=True)
class Document:
    """A loaded sequence file: its data and where each piece of it stands."""

    data: Any
    marks: Marks


def load_text(text: str, path: str) -> tuple[Document | None, list[SequenceError]]:
    """Parse `text`; return the document, or None and the errors that stopped it."""
    try:
        node = _compose(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem, fix = _syntax_words(exc)
        return None, [SequenceError(path, line, col, problem, fix)]
    except yaml.YAMLError as exc:  # reader errors: bad bytes, control characters
        return None, [SequenceError(path, 1, 1, f"YAML cannot be read: {exc}",
                                    "save the file as UTF-8 text")]
    marks = Marks(path)
    if node is None:
        return None, [SequenceError(path, 1, 1, "the file is empty",
                                    "start it with 'funnel: <id>' (see docs/sequence-files.md)")]
    errors: list[SequenceError] = []
    data = _convert(node, (), marks, errors)
    return Document(data, marks), errors


def _compose(text: str) -> Node | None:
    if _FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass  # PyYAML's parser finds it again, with the words below
    return yaml.compose(text, Loader=yaml.SafeLoader)


# PyYAML's own words, and what they mean to someone writing a sequence file.
_SYNTAX = (
    ("character '\\t'", "a tab character", "indent with spaces, not tabs"),
    ("expected <block end>", "unexpected text here",
     "look for a quote that is not closed, or a wrong indentation, on this line or above"),
    ("unexpected end of stream", "a quote is never closed", "close the quote it opens"),
    ("mapping values are not allowed", "a ':' where a value was expected",
     "put text that contains ': ' in quotes, or fix the indentation"),
    ("could not find expected ':'", "a key without ':'",
     "write 'key: value', or put text in quotes"),
    ("found undefined alias", "an alias (*name) with no anchor (&name)",
     "define '&name' first, or remove the '*'"),
    ("expected ',' or ']'", "a list in [ ] is not closed", "close it with ']'"),
    ("expected ',' or '}'", "a group in { } is not closed", "close it with '}'"),
)


def _syntax_words(exc: yaml.MarkedYAMLError) -> tuple[str, str]:
    said = f"{exc.context or ''} {exc.problem or ''}"
    for needle, problem, fix in _SYNTAX:
        if needle in said:
            return f"YAML syntax: {problem}", fix
    return (f"YAML syntax: {exc.problem or exc.context}",
            "check the indentation and quotes on this line and the one above")


def _convert(node: Node, where: Path, marks: Marks, errors: list[SequenceError]) -> Any:
    marks.values[where] = Pos(node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode):
        return [_convert(item, (*where, i), marks, errors) for i, item in enumerate(node.value)]
    if isinstance(node, MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_pos = Pos(key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if not isinstance(key_node, ScalarNode):
                errors.append(SequenceError(marks.path, key_pos.line, key_pos.column,
                                            "a key must be a plain word",
                                            "write 'name: value' with a single word before ':'"))
                continue
            key = str(key_node.value)
            child = (*where, key)
            if key in result:
                first = marks.keys[child]
                errors.append(SequenceError(
                    marks.path, key_pos.line, key_pos.column,
                    f"duplicate key '{key}' (first given at line {first.line})",
                    "keep one of them"))
                continue
            marks.keys[child] = key_pos
            result[key] = _convert(value_node, child, marks, errors)
        return result
    raise TypeError(f"unexpected YAML node {node!r}")  # pragma: no cover - composer makes no others


def _scalar(node: ScalarNode) -> Any:
    text = node.value
    if node.style:  # quoted or block scalar: always text (plain: None, or '' from libyaml)
        return text
    if _NULL.match(text):
        return None
    if _BOOL_TRUE.match(text):
        return True
    if _BOOL_FALSE.match(text):
        return False
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text
