"""Load the AMI and FastAGI transcripts captured from a real Asterisk (../shared/asterisk/transcripts).

A `.ami.txt` file holds one or more AMI sessions: `>>> ` lines the client sent, `<<< ` lines Asterisk sent,
an empty marker ends a message, `# ` lines are headers. resync.ami.txt starts a second session after a
`# --- a new AMI session` line, but capture.py logged both sockets into the same file from then on, so the
lines after that marker are split back by owner: the second session's own actions and their replies, one
copy of each event that both sockets received (they come as identical neighbours), and everything after
the second session's `Response: Goodbye` belongs to the first session again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser

TRANSCRIPT_DIR = Path(__file__).resolve().parents[2] / "shared/asterisk/transcripts"

SCENARIOS = [
    "inbound-answered",
    "inbound-abandoned",
    "inbound-ring-no-answer",
    "blind-transfer",
    "attended-transfer",
    "outbound-human",
    "outbound-machine",
    "outbound-failed",
    "resync",
    "inbound-sip",
]

NEW_SESSION_MARKER = "# --- a new AMI session"


@dataclass(frozen=True, slots=True)
class AmiSession:
    """One AMI connection: what the client sent and the exact bytes Asterisk sent (banner first)."""

    actions: tuple[AmiMessage, ...]
    received: bytes
    exchange: tuple[tuple[str, AmiMessage], ...]  # ("sent" | "received", message) in transcript order

    @property
    def banner(self) -> str:
        return self.received.split(b"\r\n", 1)[0].decode("utf-8")

    def messages(self) -> list[AmiMessage]:
        """Everything Asterisk sent after the banner, parsed."""
        return AmiParser().feed(self.received)

    def events(self) -> list[AmiMessage]:
        return [m for m in self.messages() if m.is_event]


@dataclass(frozen=True, slots=True)
class Transcript:
    name: str
    header: tuple[str, ...]
    sessions: tuple[AmiSession, ...]


@dataclass(frozen=True, slots=True)
class AgiSession:
    """One FastAGI connection: the agi_* environment, then (command, reply) pairs."""

    environment: tuple[tuple[str, str], ...]
    exchanges: tuple[tuple[str, str], ...]

    @property
    def script(self) -> str:
        return dict(self.environment)["agi_network_script"]


@dataclass(frozen=True, slots=True)
class AgiTranscript:
    name: str
    header: tuple[str, ...]
    sessions: tuple[AgiSession, ...]


def _message(lines: list[str]) -> AmiMessage:
    fields = []
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            key, value = line.rstrip(":"), ""
        fields.append((key, value))
    return AmiMessage(fields)


class _SessionBuilder:
    def __init__(self) -> None:
        self.actions: list[AmiMessage] = []
        self.received_lines: list[str] = []
        self.exchange: list[tuple[str, AmiMessage]] = []

    def add_sent(self, lines: list[str]) -> None:
        msg = _message(lines)
        self.actions.append(msg)
        self.exchange.append(("sent", msg))

    def add_received(self, lines: list[str]) -> None:
        self.received_lines.extend(lines)
        self.received_lines.append("")
        self.exchange.append(("received", _message(lines)))

    def build(self) -> AmiSession:
        data = "".join(line + "\r\n" for line in self.received_lines).encode("utf-8")
        return AmiSession(tuple(self.actions), data, tuple(self.exchange))


def _blocks(lines: list[str]) -> list[tuple[str, list[str]]]:
    """Group transcript lines into ("sent"|"received"|"banner"|"marker", lines) blocks."""
    out: list[tuple[str, list[str]]] = []
    current: list[str] = []
    for raw in lines:
        if raw.startswith("# "):
            if raw.startswith(NEW_SESSION_MARKER):
                out.append(("marker", [raw]))
            continue
        direction, body = raw[:3], raw[4:]
        kind = "sent" if direction == ">>>" else "received"
        if kind == "received" and body.startswith("Asterisk Call Manager/"):
            out.append(("banner", [body]))
            continue
        if body == "":
            if current:
                out.append((kind, current))
            current = []
        else:
            current.append(body)
    return out


def load_transcript(name: str, directory: Path = TRANSCRIPT_DIR) -> Transcript:
    """Parse `NAME.ami.txt` (in the shared transcripts, or `directory`) into its AMI sessions."""
    text = (directory / f"{name}.ami.txt").read_text("utf-8")
    lines = text.splitlines()
    header = tuple(
        line[2:] for line in lines if line.startswith("# ") and not line.startswith(NEW_SESSION_MARKER)
    )
    sessions: list[_SessionBuilder] = []
    first = _SessionBuilder()
    second: _SessionBuilder | None = None
    second_done = False
    previous: list[str] | None = None
    for kind, block in _blocks(lines):
        if kind == "marker":
            second = _SessionBuilder()
            previous = None
            continue
        if kind == "banner":
            target = second if second is not None else first
            target.received_lines.append(block[0])
            continue
        if second is None or second_done:
            if kind == "sent":
                first.add_sent(block)
            else:
                first.add_received(block)
            continue
        # inside the second session's window: attribute by ownership
        if kind == "sent":
            second.add_sent(block)
            continue
        msg = _message(block)
        if msg.is_event and msg.action_id is None and previous == block:
            first.add_received(block)  # the first socket's copy of a broadcast event
            previous = None
            continue
        second.add_received(block)
        previous = block
        if msg.is_response and msg.name == "Goodbye":
            second_done = True
    sessions.append(first)
    if second is not None:
        sessions.append(second)
    return Transcript(name, header, tuple(s.build() for s in sessions))


def load_agi_transcript(name: str, directory: Path = TRANSCRIPT_DIR) -> AgiTranscript:
    """Parse `NAME.agi.txt` into its FastAGI sessions (an empty tuple when the scenario had none)."""
    path = directory / f"{name}.agi.txt"
    if not path.exists():
        return AgiTranscript(name, (), ())
    lines = path.read_text("utf-8").splitlines()
    header = tuple(line[2:] for line in lines if line.startswith("# "))
    sessions: list[AgiSession] = []
    env: list[tuple[str, str]] = []
    exchanges: list[tuple[str, str]] = []
    in_env = False
    pending: str | None = None
    for raw in lines:
        if raw.startswith("# "):
            continue
        direction, body = raw[:3], raw[4:]
        if direction == "<<<" and body.startswith("agi_network:"):
            if env:
                sessions.append(AgiSession(tuple(env), tuple(exchanges)))
            env, exchanges, in_env = [], [], True
        if in_env:
            if body == "":
                in_env = False
            else:
                key, _, value = body.partition(": ")
                env.append((key, value))
            continue
        if direction == ">>>":
            pending = body
        elif pending is not None:
            exchanges.append((pending, body))
            pending = None
    if env:
        sessions.append(AgiSession(tuple(env), tuple(exchanges)))
    return AgiTranscript(name, header, tuple(sessions))
