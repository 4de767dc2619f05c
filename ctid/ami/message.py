"""AmiMessage: one AMI message (event, response or action) as ordered header pairs, decoded once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

EOL = "\r\n"


class AmiMessage:
    """An AMI message: ordered `fields` as sent, a first-wins `headers` map, and a `Response: Follows` body.

    Keys keep Asterisk's spelling; lookups are exact.
    """

    __slots__ = ("body", "fields", "headers")

    def __init__(self, fields: Iterable[tuple[str, str]], body: Iterable[str] = ()) -> None:
        self.fields: tuple[tuple[str, str], ...] = tuple(fields)
        # first occurrence wins for repeated keys (ChanVariable, Variable): read them with get_all()
        self.headers: dict[str, str] = dict(reversed(self.fields))
        self.body: tuple[str, ...] = tuple(body)

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
    def kind(self) -> str:
        """'event', 'response' or 'action', from the first header."""
        return self.fields[0][0].lower() if self.fields else ""

    @property
    def name(self) -> str:
        """The event name, the response status, or the action name."""
        return self.fields[0][1] if self.fields else ""

    @property
    def is_event(self) -> bool:
        return bool(self.fields) and self.fields[0][0] == "Event"

    @property
    def is_response(self) -> bool:
        return bool(self.fields) and self.fields[0][0] == "Response"

    @property
    def action_id(self) -> str | None:
        return self.headers.get("ActionID")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __contains__(self, key: object) -> bool:
        return key in self.headers

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
        return f"AmiMessage({self.kind}={self.name!r}, {len(self.fields)} fields)"
