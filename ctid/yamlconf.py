"""Load a YAML file into a pydantic model so that every error names its file:line:column and field path.

A config file is hostile input too: files over MAX_FILE_BYTES, nesting deeper than MAX_DEPTH and aliases
that would expand into more than MAX_ALIAS_NODES nodes (a "billion laughs") are refused with file:line
while the file is composed, before any expanded value is built.
"""

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
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

from ctid.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

FieldPath = tuple[str | int, ...]
"""Where a value sits in a document: mapping keys and sequence indexes, e.g. ("asterisk", 0, "port")."""

MAX_FILE_BYTES = 1 << 20
"""The largest config file read (1 MiB); a routing.yaml for thousands of agents is a few hundred KB."""
MAX_ALIAS_NODES = 10_000
"""How many nodes aliases may add to a document in all, counting every alias's whole expansion."""
MAX_DEPTH = 64
"""How deeply mappings and sequences may nest in the file as written."""

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
    """A validated model together with the map of where its values were written, and the plain data read
    (for a second view of the same document without composing it again: ruamel's pure scanner is slow)."""

    model: M
    source: SourceMap
    data: object = None


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


def read_config_text(path: Path) -> str:
    """A config file's text, read no further than MAX_FILE_BYTES; ConfigError if too large or not UTF-8."""
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    return decode_config_text(path, data)


def decode_config_text(path: Path, data: bytes) -> str:
    """The text of a config file read as `data` (at most MAX_FILE_BYTES + 1 of it), or ConfigError."""
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError([_too_large(str(path), data)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:  # an editor saved it as Latin-1: refused, not a crash
        raise ConfigError([f"{path}: not UTF-8 text: {exc.reason} at byte {exc.start}"]) from exc


def _too_large(file: str, data: bytes) -> str:
    """The error for a file over the limit, at the line and column where the limit falls."""
    before = data[:MAX_FILE_BYTES]
    line_start = before.rfind(b"\n") + 1
    where = Location(before.count(b"\n") + 1, len(before[line_start:].decode("utf-8", "replace")) + 1)
    return _format_error(
        file, where, "", f"file too large: config files are limited to {MAX_FILE_BYTES} bytes (1 MiB)"
    )


def load_located(
    path: Path, model: type[M], *, text: str | None = None, env: Mapping[str, str] | None = None
) -> Loaded[M]:
    """Like load_model, and also return the SourceMap for checks that span several fields."""
    file = str(path)
    if text is None:
        text = read_config_text(Path(path))
    elif len(text) > MAX_FILE_BYTES // 4 and len(encoded := text.encode("utf-8")) > MAX_FILE_BYTES:
        raise ConfigError([_too_large(file, encoded)])
    document = compose_bounded(file, text)

    builder = _Builder(file, YAML(typ="safe", pure=True), os.environ if env is None else env)
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
    return Loaded(validated, source, data)


def compose_bounded(file: str, text: str) -> Node | None:
    """The document's node graph (aliases shared, not copied); ConfigError for syntax errors and limits."""
    yaml = YAML(typ="safe", pure=True)
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    try:
        document: Node | None = yaml.compose(text)
    except _LimitExceeded as exc:
        raise ConfigError([_format_error(file, exc.where, "", exc.message)]) from None
    except YAMLError as exc:
        raise ConfigError([_syntax_error(file, text, exc)]) from exc
    return document


class _LimitExceeded(Exception):
    def __init__(self, where: Location, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class _BoundedScanner(Scanner):
    """ruamel's scanner, refusing `[` and `{` nested beyond MAX_DEPTH as it meets them: its cost grows
    with the square of that depth (a few thousand `[` take minutes), before the composer sees a node."""

    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:
        if len(self.flow_context) >= MAX_DEPTH:
            mark = self.reader.get_mark()
            raise _LimitExceeded(
                Location(mark.line + 1, mark.column + 1), f"nested more than {MAX_DEPTH} levels deep"
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


class _BoundedComposer(Composer):
    """ruamel's composer, counting as it goes: refuses deep nesting and aliases that expand too far.

    An alias is composed as the anchored node itself (nothing is copied), so the cost is only paid by
    whoever later walks the graph as a tree; each alias is charged the size of that tree as it is read.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._nesting = 0
        self._alias_nodes = 0
        self._open_anchors: list[str] = []
        self._sizes: dict[int, int] = {}

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        where = Location(event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, AliasEvent):
            node = super().compose_node(parent, index)
            if any(self.anchors.get(name) is node for name in self._open_anchors):
                raise _LimitExceeded(where, f"alias '*{event.anchor}' refers to a node that contains it")
            self._alias_nodes += self._expanded_size(node)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _LimitExceeded(
                    where,
                    f"alias '*{event.anchor}' expands the document beyond {MAX_ALIAS_NODES} nodes "
                    "(aliases may repeat small parts, not multiply the file)",
                )
            return node
        if self._nesting >= MAX_DEPTH:
            raise _LimitExceeded(where, f"nested more than {MAX_DEPTH} levels deep")
        self._nesting += 1
        if event.anchor is not None:
            self._open_anchors.append(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._nesting -= 1
            if event.anchor is not None:
                self._open_anchors.pop()

    def _expanded_size(self, node: Node) -> int:
        """How many nodes `node` is as a tree, aliases inside it expanded; each node is computed once.

        The graph has no cycles (an alias to an anchor still open is refused), so the memo is exact and
        the recursion is no deeper than the nesting of the file.
        """
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, MappingNode):
            size += sum(self._expanded_size(key) + self._expanded_size(value) for key, value in node.value)
        elif isinstance(node, SequenceNode):
            size += sum(self._expanded_size(item) for item in node.value)
        self._sizes[id(node)] = size
        return size


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
        self._interpolated: dict[int, tuple[str, list[str]]] = {}

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
            interpolated = self._interpolated.get(id(node))
            if interpolated is None:  # once per node: an aliased `${...}` text is one string, not thousands
                interpolated = self._interpolated[id(node)] = _interpolate(value, self.env)
            value, messages = interpolated
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
