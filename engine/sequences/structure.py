"""Check a loaded file against the model; turn pydantic's errors into marketer's errors."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from engine.errors import SequenceError, closest, did_you_mean
from engine.sequences.loader import Document, Path
from engine.sequences.model import Funnel, Node, TransactionalEmail

DOCS = "see docs/sequence-files.md"


def parse_funnel(doc: Document) -> tuple[Funnel | None, list[SequenceError]]:
    """Validate the document's structure; the Funnel (with positions attached) or the errors."""
    if not isinstance(doc.data, dict):
        return None, [doc.marks.error((), "a sequence file must be a set of 'key: value' lines",
                                      "start it with 'funnel: <id>' (see docs/sequence-files.md)")]
    try:
        funnel = Funnel.model_validate(doc.data)
    except ValidationError as exc:
        return None, translate(exc.errors(), doc)
    attach_positions(funnel, ())
    return funnel, []


def translate(details: list[ErrorDetails], doc: Document, root: type[Node] = Funnel,
              docs: str = DOCS) -> list[SequenceError]:
    """pydantic's errors about a file whose model is `root`, in a marketer's words, each at its
    line; `docs` ends those that have no better fix ('see docs/...')."""
    seen: set[Path] = set()
    errors: list[SequenceError] = []
    unknown = [_data_path(doc.data, d["loc"], keep_last=True) for d in details
               if d["type"] == "extra_forbidden"]
    for detail in details:
        kind = detail["type"]
        path = _data_path(doc.data, detail["loc"], keep_last=kind in ("missing", "extra_forbidden"))
        if path in seen:  # a union reports one error per member; the first reads best
            continue
        if kind == "missing" and _misspelled(path, unknown):
            continue  # 'tempalte' is reported as unknown with 'did you mean'; once is enough
        seen.add(path)
        errors.append(_one(detail, path, doc, root, docs))
    return errors


def _misspelled(missing: Path, unknown: list[Path]) -> bool:
    siblings = [str(u[-1]) for u in unknown if u[:-1] == missing[:-1]]
    return closest(str(missing[-1]), siblings) is not None


def _data_path(data: Any, loc: tuple[int | str, ...], *, keep_last: bool) -> Path:
    """Follow pydantic's loc through the data, dropping union-member tags it inserts."""
    path: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        if isinstance(current, dict) and part in current:
            step: Any = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            step = current[part]
        else:
            if i == len(loc) - 1 and keep_last:
                path.append(part)
            continue
        current = step
        path.append(part)
    return tuple(path)


def _one(detail: ErrorDetails, path: Path, doc: Document, root: type[Node], docs: str) -> SequenceError:
    kind = detail["type"]
    marks = doc.marks
    key = _name(path)
    if kind == "extra_forbidden":
        model = _model_at(path[:-1], root)
        if model is TransactionalEmail and path[-1] in ("variants", "experiment"):
            return marks.error(path, f"{_noun(path[:-1], doc, root)} cannot have '{path[-1]}': a "
                               "confirmation, magnet or survey email is not marketing, and "
                               "everyone who asked for it gets the same one",
                               f"remove '{path[-1]}:'; experiments are for nurture, sales, "
                               "customer, win-back and broadcast emails", key=True)
        allowed = sorted(f.alias or n for n, f in model.model_fields.items())
        fix = did_you_mean(str(path[-1]), allowed, f"allowed keys here: {', '.join(allowed)}")
        return marks.error(path, f"unknown key '{path[-1]}' in {_noun(path[:-1], doc, root)}", fix,
                           key=True)
    if kind == "missing":
        model = _model_at(path[:-1], root)
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == path[-1]), None)
        what = f" ({field.description})" if field is not None and field.description else ""
        return marks.error(path[:-1], f"{_noun(path[:-1], doc, root)} is missing '{path[-1]}'",
                           f"add '{path[-1]}:'{what}", key=True)
    value = detail.get("input")
    if kind in ("value_error", "assertion_error"):
        problem, _, fix = str(detail.get("ctx", {}).get("error", detail["msg"])).partition("; ")
        return marks.error(path, problem, fix or docs)
    if kind == "string_type":
        return marks.error(path, f"'{key}' must be text, not {_kind(value)}",
                           "put the value in quotes")
    if kind in ("bool_type", "bool_parsing"):
        return marks.error(path, f"'{key}' must be true or false, not {_shown(value)}",
                           "write true or false")
    if kind == "list_type":
        return marks.error(path, f"'{key}' must be a list, not {_kind(value)}",
                           "write each item on its own line, starting with '- '")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return marks.error(path, f"'{key}' must be a group of 'key: value' lines, not {_kind(value)}",
                           "write its keys on the lines below it, indented by two spaces")
    if kind == "too_short":
        least = detail.get("ctx", {}).get("min_length", 1)
        return marks.error(path, f"'{key}' needs at least {least} item{'s' if least != 1 else ''}",
                           "add the missing items")
    if kind == "literal_error":
        expected = str(detail.get("ctx", {}).get("expected", "")).replace("'", "")
        options = [o.strip() for o in expected.replace(" or ", ",").split(",") if o.strip()]
        match = closest(str(value), options, cutoff=0.5)
        hint = f"; did you mean '{match}'?" if match else ""
        return marks.error(path, f"'{key}' cannot be {_shown(value)}",
                           f"write one of: {', '.join(options)}{hint}")
    return marks.error(path, f"'{key}': {detail['msg'].lower()}", docs)


def _name(path: Path) -> str:
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "value"


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else _kind(value)


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a yes/no value)"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a group of keys"
    return f"'{value}'"


def _noun(path: Path, doc: Document, root: type[Node]) -> str:
    """'email 'b-shoes'', 'segment 'beginner'', 'defaults' — what a marketer calls this place."""
    noun = _model_at(path, root).noun
    node: Any = doc.data
    for part in path:
        if isinstance(node, dict):
            node = node.get(str(part))
        elif isinstance(node, list) and isinstance(part, int):
            node = node[part]
        else:
            node = None
    ident = node.get("id") if isinstance(node, dict) else None
    return f"{noun} '{ident}'" if isinstance(ident, str) else noun


def _model_at(path: Path, root: type[Node]) -> type[Node]:
    model: type[Node] = root
    for part in path:
        if isinstance(part, int):
            continue
        field = next((f for n, f in model.model_fields.items() if (f.alias or n) == part), None)
        inner = _model_in(field.annotation) if field is not None else None
        if inner is None:
            return Node
        model = inner
    return model


def _model_in(annotation: Any) -> type[Node] | None:
    if isinstance(annotation, type) and issubclass(annotation, Node):
        return annotation
    for arg in typing.get_args(annotation):  # Optional[...], list[...], X | Y
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def attach_positions(node: BaseModel, where: Path) -> None:
    """Record on every Node the data path it came from, for later semantic errors."""
    if isinstance(node, Node):
        node._where = where
    for name, field in type(node).model_fields.items():
        value = getattr(node, name)
        key = field.alias or name
        if isinstance(value, BaseModel):
            attach_positions(value, (*where, key))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, BaseModel):
                    attach_positions(item, (*where, key, i))
