"""AmiMessage: one AMI message (event, response or action) as ordered header pairs, parsed on first use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import overload

EOL = "\r\n"


def split_fields(raw: str) -> tuple[list[tuple[str, str]], int]:
    """Header pairs of a CRLF-separated block, and how many malformed lines (no `key: value`) were skipped."""
    fields: list[tuple[str, str]] = []
    bad = 0
    for line in raw.split("\r\n"):
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep or not key or " " in key:
            bad += 1
            continue
        fields.append((key, value))
    return fields, bad


class AmiMessage:
    """An AMI message: ordered `fields` as sent, a first-wins `headers` map, and a `Response: Follows` body.

    Keys keep Asterisk's spelling; lookups are exact. A message read off the wire keeps its raw text and
    splits its headers only when first asked, so events nobody reads cost almost nothing.
    """

    __slots__ = ("_fields", "_headers", "body", "first", "raw")

    def __init__(self, fields: Iterable[tuple[str, str]] = (), body: Iterable[str] = ()) -> None:
        self._fields: tuple[tuple[str, str], ...] | None = tuple(fields)
        self._headers: dict[str, str] | None = None
        self.body: tuple[str, ...] = tuple(body)
        self.first: tuple[str, str] = self._fields[0] if self._fields else ("", "")
        self.raw: str | None = None

    @classmethod
    def from_raw(cls, raw: str, first: tuple[str, str]) -> AmiMessage:
        """A message over the CRLF-separated text of a block whose first line the parser already checked."""
        msg = cls.__new__(cls)
        msg._fields = None
        msg._headers = None
        msg.body = ()
        msg.first = first
        msg.raw = raw
        return msg

    @classmethod
    def build(cls, first: tuple[str, str], rest: Mapping[str, object] | None = None) -> AmiMessage:
        """A message from its first header and more headers; list values repeat the key."""
        fields = [first]
        for key, value in (rest or {}).items():
            if value is None:
                continue
            if isinstance(value, list | tuple):
                fields.extend((key, str(v)) for v in value)
            else:
                fields.append((key, str(value)))
        return cls(fields)

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        if self._fields is None:
            assert self.raw is not None
            self._fields = tuple(split_fields(self.raw)[0])
        return self._fields

    @property
    def headers(self) -> dict[str, str]:
        # first occurrence wins for repeated keys (ChanVariable, Variable): read them with get_all()
        if self._headers is None:
            if self._fields is None and self.raw is not None:
                # the hot path: every line is `key: value`, split in one pass without building fields
                parts = [line.split(": ", 1) for line in self.raw.split("\r\n")]
                try:
                    self._headers = dict(reversed(parts))
                    return self._headers
                except ValueError:
                    pass
            self._headers = dict(reversed(self.fields))
        return self._headers

    @property
    def kind(self) -> str:
        """'event', 'response' or 'action', from the first header."""
        return self.first[0].lower()

    @property
    def name(self) -> str:
        """The event name, the response status, or the action name."""
        return self.first[1]

    @property
    def is_event(self) -> bool:
        return self.first[0] == "Event"

    @property
    def is_response(self) -> bool:
        return self.first[0] == "Response"

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    @overload
    def get(self, key: str) -> str | None: ...

    @overload
    def get(self, key: str, default: str) -> str: ...

    def get(self, key: str, default: str | None = None) -> str | None:
        raw = self.raw
        if self._headers is not None or raw is None:
            return self.headers.get(key, default)
        # a raw message answers a lookup with two scans in C, without splitting every header
        if self.first[0] == key:
            return self.first[1]
        start = raw.find("\r\n" + key + ": ")
        if start < 0:
            return default
        start += len(key) + 4
        end = raw.find("\r\n", start)
        return raw[start:] if end < 0 else raw[start:end]

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.fields if k == key]

    def to_bytes(self) -> bytes:
        lines = [f"{k}: {v}" for k, v in self.fields]
        lines.extend(self.body)
        return (EOL.join(lines) + EOL + EOL).encode("utf-8")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AmiMessage):
            return NotImplemented
        return self.fields == other.fields and self.body == other.body

    def __hash__(self) -> int:
        return hash((self.fields, self.body))

    def __repr__(self) -> str:
        return f"AmiMessage({self.kind}={self.name!r})"
