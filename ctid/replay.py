"""Replays a recorded AMI stream (a transcript or a raw byte log) through the state model, offline."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctid.ami import events as ev
from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.state import CallStateModel
from ctid.state.domain import DomainEvent

SESSION_MARKER = "# --- a new AMI session"
LIST_ITEMS = (ev.CoreShowChannel, ev.ChannelStatus, ev.DeviceStateChange, ev.ExtensionStatus, ev.ListComplete)


def is_transcript(head: bytes) -> bool:
    return head.startswith(b"# ") or head.startswith(b"<<< ") or head.startswith(b">>> ")


def transcript_sessions(text: str) -> list[bytes]:
    """The bytes Asterisk sent in each AMI session of a transcript (`<<< ` lines, CRLF restored)."""
    sessions: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.startswith(SESSION_MARKER):
            sessions.append([])
        elif line.startswith("<<< ") or line == "<<<":
            sessions[-1].append(line[4:] + "\r\n")
    return ["".join(s).encode("utf-8") for s in sessions if s]


def read_messages(path: Path) -> Iterator[AmiMessage]:
    """Every message Asterisk sent, in order; a transcript's sessions each start with a new parser."""
    data = path.read_bytes()
    chunks = transcript_sessions(data.decode("utf-8")) if is_transcript(data[:4]) else [data]
    for chunk in chunks:
        parser = AmiParser()
        yield from parser.feed(chunk)


class Replayer:
    """Folds messages into a model as the daemon would, including resync lists answered in the stream.

    A transcript with two sessions open at once carries each live event twice; events are told apart by
    their Timestamp and headers, so the copy is skipped.
    """

    def __init__(self, model: CallStateModel | None = None) -> None:
        self.model = model or CallStateModel(history=None)
        self.domain_events: list[DomainEvent] = []
        self._seen: deque[tuple[tuple[str, str], ...]] = deque(maxlen=512)
        self._seen_set: set[tuple[tuple[str, str], ...]] = set()
        self._channels: list[ev.CoreShowChannel] = []
        self._statuses: list[ev.ChannelStatus] = []
        self._devices: list[ev.DeviceStateChange] = []
        self.now = 0.0

    def feed(self, msg: AmiMessage) -> None:
        if not msg.is_event or not ev.relevant(msg):  # the same events the daemon folds
            return
        if "Timestamp" in msg.headers:
            if msg.fields in self._seen_set:
                return
            if len(self._seen) == self._seen.maxlen:
                self._seen_set.discard(self._seen[0])
            self._seen.append(msg.fields)
            self._seen_set.add(msg.fields)
        event = ev.decode_event(msg)
        if event.ts is not None:
            self.now = event.ts
        if event.action_id is not None and isinstance(event, LIST_ITEMS):  # a list action's answer
            self._collect(event)
            return
        self.domain_events.extend(self.model.apply(event, self.now))

    def _collect(self, event: ev.AmiEvent) -> None:
        if isinstance(event, ev.CoreShowChannel):
            self._channels.append(event)
        elif isinstance(event, ev.ChannelStatus):
            self._statuses.append(event)
        elif isinstance(event, ev.DeviceStateChange):
            self._devices.append(event)
        elif isinstance(event, ev.ListComplete) and event.name == "DeviceStateListComplete":
            self.domain_events.extend(
                self.model.resync(self._channels, self._statuses, self._devices, self.now)
            )
            self._channels, self._statuses, self._devices = [], [], []

    def calls(self) -> list[dict[str, Any]]:
        out = []
        for call in self.model.all_calls():
            data = call.to_dict()
            data["timeline"] = call.timeline
            out.append(data)
        return out


def replay_file(path: Path) -> Replayer:
    replayer = Replayer()
    for msg in read_messages(path):
        replayer.feed(msg)
    return replayer
