"""Sans-I/O FastAGI: the agi_* environment a channel sends, and Asterisk's answers to AGI commands."""

from __future__ import annotations

import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pbxsim.channels import UNKNOWN, Block, Channel

if TYPE_CHECKING:
    from pbxsim.world import World

INVALID = "510 Invalid or unknown command"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
THREAD_BASE = 140164030000000


class AgiSession:
    """One FastAGI conversation on behalf of a channel blocked in AGI().

    The I/O layer sends `environment_bytes()`, passes every command line to `command()` and writes back
    the reply, then calls `close()` when the peer hangs up the socket (or `close("FAILURE")` when it could
    not connect). The channel resumes its dialplan after close().
    """

    def __init__(self, world: World, channel: Channel, url: str) -> None:
        self.world = world
        self.channel = channel
        self.url = url
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 4573
        self.script = parts.path.lstrip("/")
        self.closed = False
        self.blocking = True  # virtual time waits for this session
        self.detached = False  # the channel went elsewhere (hung up or redirected) meanwhile
        self.hangup_requested = False
        self.hangup_notice = False  # the peer should be told "HANGUP"

    def environment(self) -> list[tuple[str, str]]:
        ch = self.channel
        return [
            ("agi_network", "yes"),
            ("agi_network_script", self.script),
            ("agi_request", self.url),
            ("agi_channel", ch.name),
            ("agi_language", "en"),
            ("agi_type", ch.tech),
            ("agi_uniqueid", ch.uniqueid),
            ("agi_version", _version()),
            ("agi_callerid", ch.cid_num if ch.cid_num != UNKNOWN else "unknown"),
            ("agi_calleridname", ch.cid_name if ch.cid_name != UNKNOWN else "unknown"),
            ("agi_callingpres", "0"),
            ("agi_callingani2", "0"),
            ("agi_callington", "0"),
            ("agi_callingtns", "0"),
            ("agi_dnid", ch.dnid or "unknown"),
            ("agi_rdnis", "unknown"),
            ("agi_context", ch.context),
            ("agi_extension", ch.exten),
            ("agi_priority", str(ch.priority)),
            ("agi_enhanced", "0.0"),
            ("agi_accountcode", ""),
            ("agi_threadid", str(THREAD_BASE + int(ch.uniqueid.rsplit(".", 1)[1]) * 512000)),
        ]

    def environment_bytes(self) -> bytes:
        """The environment as sent: UTF-8, or the charset in SIM_AGI_CHARSET (a trunk's Latin-1 names)."""
        charset = self.world.lookup(self.channel, "SIM_AGI_CHARSET") or "utf-8"
        return "".join(f"{k}: {v}\n" for k, v in self.environment()).encode(charset, "replace") + b"\n"

    def command(self, line: str) -> str:
        """Run one AGI command; returns the reply line (without its newline)."""
        line = line.strip()
        ch = self.channel
        if self.closed or self.detached or not ch.alive:
            return DEAD
        w = self.world
        command_id = str(w.ids.randrange(2**31))
        w.emit_channel("AGIExecStart", ch, [("CommandId", command_id), ("Command", line)], "agi,all")
        reply = self._execute(line)
        code = reply.split(" ", 1)[0]
        result = "Success" if code == "200" else reply.split(" ", 1)[1] if " " in reply else reply
        w.emit_channel(
            "AGIExecEnd",
            ch,
            [("CommandId", command_id), ("Command", line), ("ResultCode", code), ("Result", result)],
            "agi,all",
        )
        return reply

    def _execute(self, line: str) -> str:
        try:
            words = shlex.split(line, posix=True)
        except ValueError:
            words = line.split()
        upper = [x.upper() for x in words[:3]]
        w, ch = self.world, self.channel
        if upper[:2] == ["GET", "VARIABLE"] and len(words) >= 3:
            value = w.lookup(ch, words[2])
            return f"200 result=1 ({value})" if value is not None else "200 result=0"
        if upper[:3] == ["GET", "FULL", "VARIABLE"] and len(words) >= 4:
            return f"200 result=1 ({w.expand(ch, words[3])})"
        if upper[:2] == ["SET", "VARIABLE"] and len(words) >= 4:
            w.set_var(ch, words[2], words[3])
            return "200 result=1"
        if upper[:1] == ["VERBOSE"]:
            return "200 result=1"
        if upper[:1] == ["NOOP"]:
            return "200 result=0"
        if upper[:1] == ["ANSWER"]:
            w.answer(ch)
            return "200 result=0"
        if upper[:2] == ["CHANNEL", "STATUS"]:
            return f"200 result={int(ch.state)}"
        if upper[:1] == ["HANGUP"]:
            if not self.hangup_requested:
                self.hangup_requested = True
                w.emit_channel("SoftHangupRequest", ch, [("Cause", "32")])
            return "200 result=1"
        if upper[:1] == ["EXEC"] and len(words) >= 2:
            return self._exec(words[1], " ".join(words[2:]))
        if upper[:2] == ["GET", "DATA"]:
            # the caller's keypresses: SIM_DTMF on the channel (a test's or a traffic profile's choice)
            digits = w.lookup(ch, "SIM_DTMF") or ""
            return f"200 result={digits}" if digits else "200 result= (timeout)"
        if upper[:2] == ["STREAM", "FILE"] or upper[:2] == ["WAIT", "FOR"]:
            return "200 result=0 endpos=0" if upper[0] == "STREAM" else "200 result=0"
        if upper[:2] == ["SAY", "DIGITS"] or upper[:2] == ["SAY", "NUMBER"]:
            return "200 result=0"
        return INVALID

    def _exec(self, app: str, args: str) -> str:
        w, ch = self.world, self.channel
        name = app.lower()
        if name == "set":
            var, _, value = args.partition("=")
            w.set_var(ch, var.strip(), value)
            return "200 result=0"
        if name in ("noop", "playback", "wait", "verbose", "log", "answer"):
            if name == "answer":
                w.answer(ch)
            return "200 result=0"
        if name == "hangup":
            self._execute("HANGUP")
            return "200 result=-1"
        return "200 result=-2"

    def notice_hangup(self) -> None:
        """The channel hung up while the script runs."""
        self.detached = True
        self.hangup_notice = True

    def close(self, status: str = "SUCCESS") -> None:
        """The FastAGI peer is done (SUCCESS) or could not be reached (FAILURE): the dialplan goes on."""
        if self.closed:
            return
        self.closed = True
        w, ch = self.world, self.channel
        if self in w.agi_open:
            w.agi_open.remove(self)
        if self.detached or not ch.alive:
            return
        if self.hangup_requested:
            w.set_var(ch, "AGISTATUS", "HANGUP")
            ch.block = None
            w.hangup(ch, 0)
            return
        w.set_var(ch, "AGISTATUS", status)
        if ch.block is not None and isinstance(ch.block, AgiBlock) and ch.block.session is self:
            w.resume(ch)


class AgiBlock(Block):
    def __init__(self, session: AgiSession) -> None:
        self.session = session

    def stop(self, reason: str) -> None:
        if reason == "hangup":
            self.session.notice_hangup()
        else:
            self.session.detached = True
        w = self.session.world
        if self.session in w.agi_open:
            self.session.blocking = False


def _version() -> str:
    from pbxsim.world import ASTERISK_VERSION

    return ASTERISK_VERSION


def scripted_peer(scripts: Mapping[str, Sequence[str]]) -> Callable[[AgiSession], None]:
    """An in-process FastAGI peer that sends each script's commands in order, then hangs up the socket."""

    def peer(session: AgiSession) -> None:
        for command in scripts.get(session.script, ()):
            reply = session.command(command)
            if not reply.startswith("200"):
                break
        session.close()

    return peer


def unreachable_peer(session: AgiSession) -> None:
    """Nothing listens where the dialplan points: AGISTATUS=FAILURE, the dialplan goes on."""
    session.close("FAILURE")
