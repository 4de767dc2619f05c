"""Load a YAML file into a pydantic model so that every error names its file:line:column and field path."""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ctid.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

FieldPath = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and sequence indexes, e.g. ("asterisk", 0, "port")."""

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"

# `$${` is an escaped literal `${`; anything else starting with `${` must be a well-formed reference.
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)(?P<end>\}?)")
_REFERENCE_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Location:
    """A position in a source file, both numbers counted from 1 as editors show them."""

    line: int
    column: int


@dataclass(slots=True)
class _SourceNode:
    at: Location
    key_at: Location | None = None
    children: dict[object, _SourceNode] = field(default_factory=dict)


class SourceMap:
    """Where each value of a loaded document came from, for messages about it after loading."""

    def __init__(self, file: str, root: _SourceNode) -> None:
        self.file = file
        self._root = root

    def locate(self, path: Sequence[object]) -> Location:
        """The position of the value at `path`, or of its nearest ancestor present in the file."""
        return self._walk(path)[0].at

    def locate_key(self, path: Sequence[object]) -> Location:
        """The position of the key naming the value at `path` (for a sequence item or the root: the value)."""
        node, matched = self._walk(path)
        if matched == len(path) and node.key_at is not None:
            return node.key_at
        return node.at

    def error(self, path: Sequence[object], message: str, *, at_key: bool = False) -> str:
        """One error line, `file:line:column: field.path: message`, for use in a ConfigError."""
        where = self.locate_key(path) if at_key else self.locate(path)
        return _format_error(self.file, where, format_path(path), message)

    def _walk(self, path: Sequence[object]) -> tuple[_SourceNode, int]:
        node = self._root
        for depth, part in enumerate(path):
            child = node.children.get(part)
            if child is None:
                return node, depth
            node = child
        return node, len(path)

    def _present(self, path: Sequence[object]) -> FieldPath:
        """The parts of a pydantic error location that are keys or indexes in this document."""
        node = self._root
        present: list[str | int] = []
        for part in path:
            child = node.children.get(part)
            if child is not None and isinstance(part, str | int):
                present.append(part)
                node = child
        return tuple(present)


@dataclass(frozen=True, slots=True)
class Loaded(Generic[M]):
    """A validated model together with the map of where its values were written."""

    model: M
    source: SourceMap


def format_path(path: Sequence[object]) -> str:
    """A field path as a reader writes it: ("asterisk", 0, "port") is `asterisk[0].port`."""
    text = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def load_model(
    path: Path, model: type[M], *, text: str | None = None, env: Mapping[str, str] | None = None
) -> M:
    """Read `path` (or `text`, named `path` in messages) into `model`; raise ConfigError with all problems."""
    return load_located(path, model, text=text, env=env).model


def load_located(
    path: Path, model: type[M], *, text: str | None = None, env: Mapping[str, str] | None = None
) -> Loaded[M]:
    """Like load_model, and also return the SourceMap for checks that span several fields."""
    file = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from exc
        except UnicodeDecodeError as exc:
            raise ConfigError([f"{file}: not UTF-8 text: {exc.reason} at byte {exc.start}"]) from exc
    yaml = YAML(typ="safe", pure=True)
    try:
        document = yaml.compose(text)
    except YAMLError as exc:
        raise ConfigError([_syntax_error(file, text, exc)]) from exc

    builder = _Builder(file, yaml, os.environ if env is None else env)
    if document is None:
        data: object = {}
        root = _SourceNode(Location(1, 1))
    else:
        data, root = builder.build(document, (), key_at=None)
    source = SourceMap(file, root)

    problems = list(builder.problems)
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, model, source, builder.unusable))
    if problems:
        problems.sort(key=lambda problem: (problem[0].line, problem[0].column))
        lines = [_format_error(file, where, "", message) for where, message in problems]
        raise ConfigError(list(dict.fromkeys(lines)))
    return Loaded(validated, source)


def _format_error(file: str, where: Location, dotted: str, message: str) -> str:
    prefix = f"{file}:{where.line}:{where.column}: "
    return f"{prefix}{dotted}: {message}" if dotted else prefix + message


def _location(node: Node) -> Location:
    return Location(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    """Turns composed YAML nodes into plain Python data and a tree of source positions."""

    def __init__(self, file: str, yaml: YAML, env: Mapping[str, str]) -> None:
        self.file = file
        self.yaml = yaml
        self.env = env
        self.problems: list[tuple[Location, str]] = []
        # Values already reported (an unset variable...): pydantic's follow-on complaints would be noise.
        self.unusable: set[FieldPath] = set()
        self._open: set[int] = set()

    def problem(self, where: Location, path: FieldPath, message: str) -> None:
        dotted = format_path(path)
        self.problems.append((where, f"{dotted}: {message}" if dotted else message))

    def build(self, node: Node, path: FieldPath, key_at: Location | None) -> tuple[object, _SourceNode]:
        at = _location(node)
        if isinstance(node, ScalarNode) and node.value == "" and node.style is None and key_at is not None:
            at = key_at  # an empty value's own mark is wherever the next token starts
        source = _SourceNode(at, key_at)
        if id(node) in self._open:
            self.problem(at, path, "an alias refers to a node that contains it")
            self.unusable.add(path)
            return None, source
        self._open.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self._mapping(node, path, source), source
            if isinstance(node, SequenceNode):
                items: list[object] = []
                for index, item in enumerate(node.value):
                    value, source.children[index] = self.build(item, (*path, index), key_at=None)
                    items.append(value)
                return items, source
            assert isinstance(node, ScalarNode)  # the only other kind of node YAML composes
            return self._scalar(node, path, source), source
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: MappingNode, path: FieldPath, source: _SourceNode) -> dict[object, object]:
        data: dict[object, object] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            key_at = _location(key_node)
            if key_node.tag == _MERGE_TAG:
                merged.extend(value_node.value if isinstance(value_node, SequenceNode) else [value_node])
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem(key_at, path, "a key must be a plain value, not a list or mapping")
                continue
            key = self._construct(key_node, path)
            if key is None and key_node.tag != "tag:yaml.org,2002:null":
                continue
            if key in data:
                first = source.children[key].key_at or source.children[key].at
                self.problem(
                    key_at,
                    (*path, _part(key)),
                    f"duplicate key (first at line {first.line}, column {first.column})",
                )
                continue
            data[key], source.children[key] = self.build(value_node, (*path, _part(key)), key_at)
        for merge_node in merged:
            if not isinstance(merge_node, MappingNode):
                self.problem(_location(merge_node), path, "'<<' merges only mappings")
                continue
            extra, extra_source = self.build(merge_node, path, key_at=None)
            assert isinstance(extra, dict)
            for key, value in extra.items():
                if key not in data:
                    data[key] = value
                    source.children[key] = extra_source.children[key]
        return data

    def _scalar(self, node: ScalarNode, path: FieldPath, source: _SourceNode) -> object:
        value = self._construct(node, path)
        if isinstance(value, str) and node.tag == _STR_TAG:
            value, messages = _interpolate(value, self.env)
            for message in messages:
                self.problem(source.at, path, message)
            if messages:
                self.unusable.add(path)
        return value

    def _construct(self, node: ScalarNode, path: FieldPath) -> object:
        try:
            value: object = self.yaml.constructor.construct_object(node, deep=True)
        except MarkedYAMLError as exc:
            self.problem(_location(node), path, str(exc.problem))
            self.unusable.add(path)
            return None
        return value


def _part(key: object) -> str | int:
    return key if isinstance(key, str | int) else str(key)


def _interpolate(value: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """Replace `${NAME}` and `${NAME:-default}` (default also when NAME is empty) from `env`."""
    messages: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body = _REFERENCE_BODY.fullmatch(match["body"])
        if body is None or not match["end"]:
            messages.append(f"malformed reference '{match.group(0)}': write ${{NAME}} or ${{NAME:-default}}")
            return match.group(0)
        name, default = body["name"], body["default"]
        current = env.get(name)
        if default is not None:
            return current or default
        if current is None:
            messages.append(f"environment variable {name} is not set (set it, or write ${{{name}:-default}})")
            return ""
        return current

    return _REFERENCE.sub(replace, value), messages


def _syntax_error(file: str, text: str, exc: YAMLError) -> str:
    if not isinstance(exc, MarkedYAMLError) or exc.problem_mark is None:
        position = getattr(exc, "position", None)
        if isinstance(position, int):
            before = text[:position]
            where = Location(before.count("\n") + 1, position - (before.rfind("\n") + 1) + 1)
            return _format_error(file, where, "", f"YAML error: {exc}".splitlines()[0])
        return f"{file}: YAML error: {exc}"
    mark = exc.problem_mark
    where = Location(mark.line + 1, mark.column + 1)
    lines = text.splitlines()
    line = lines[mark.line] if mark.line < len(lines) else ""
    if line[mark.column : mark.column + 1] == "\t":
        if line[: mark.column].strip(" \t") == "":
            return _format_error(file, where, "", "a TAB is used for indentation; indent with spaces")
        return _format_error(file, where, "", "a TAB is not allowed here; use spaces")
    message = f"YAML syntax error: {exc.problem}"
    if exc.context and exc.context_mark is not None and exc.context_mark.line != mark.line:
        message += f" ({exc.context} at line {exc.context_mark.line + 1})"
    elif exc.context:
        message += f" ({exc.context})"
    return _format_error(file, where, "", message)


def _validation_problems(
    exc: ValidationError, model: type[BaseModel], source: SourceMap, unusable: set[FieldPath]
) -> list[tuple[Location, str]]:
    problems: list[tuple[Location, str]] = []
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        present = source._present(loc)
        if any(present[: len(bad)] == bad for bad in unusable):
            continue
        kind, message = error["type"], error["msg"]
        if kind == "missing" and loc and isinstance(loc[-1], str):
            where = source.locate(present)
            shown = (*present, loc[-1])
            message = "required key is missing"
        elif kind == "extra_forbidden" and loc:
            where = source.locate_key(present)
            shown = present
            message = _unknown_key_message(model, present)
        else:
            where = source.locate(present)
            shown = present
            message = message.removeprefix("Value error, ")
        dotted = format_path(shown)
        problems.append((where, f"{dotted}: {message}" if dotted else message))
    return problems


def _unknown_key_message(model: type[BaseModel], path: FieldPath) -> str:
    key = str(path[-1])
    expected = sorted(_expected_keys(model, path[:-1]))
    if not expected:
        return f"unknown key '{key}'"
    close = difflib.get_close_matches(key, expected, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}' (did you mean '{close[0]}'?)"
    return f"unknown key '{key}' (expected one of: {', '.join(expected)})"


def _expected_keys(model: type[BaseModel], path: FieldPath) -> set[str]:
    """The keys the model accepts in the mapping at `path`, found by walking its field annotations."""
    candidates: list[object] = [model]
    for part in path:
        following: list[object] = []
        for candidate in candidates:
            for tp in _alternatives(candidate):
                following.extend(_member_type(tp, part))
        candidates = following
    keys: set[str] = set()
    for candidate in candidates:
        for tp in _alternatives(candidate):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                keys.update(info.alias or name for name, info in tp.model_fields.items())
    return keys


def _alternatives(tp: object) -> list[object]:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _alternatives(typing.get_args(tp)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [alt for arg in typing.get_args(tp) for alt in _alternatives(arg)]
    return [tp]


def _member_type(tp: object, part: str | int) -> list[Any]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if not isinstance(part, str):
            return []
        return [info.annotation for name, info in tp.model_fields.items() if part in (name, info.alias)]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (dict, Mapping) and len(args) == 2:
        return [args[1]]
    if origin is tuple and isinstance(part, int) and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return [args[0]]
        return [args[part]] if part < len(args) else []
    if origin in (list, set, frozenset, Sequence) and isinstance(part, int) and args:
        return [args[0]]
    return []
