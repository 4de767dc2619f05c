"""Sans-I/O AMI stream parser: bytes in, whole AmiMessages out, whatever the TCP chunking.

Messages are split on the blank line *before* decoding, so a multi-byte UTF-8 character (张伟) cut across
two reads is decoded whole. CRLF and bare LF line endings are both accepted, `Response: Follows` bodies are
kept, and malformed lines or blocks are counted and skipped without touching the messages around them.
"""

from __future__ import annotations

from ctid.ami.message import AmiMessage

BANNER_PREFIX = "Asterisk Call Manager/"
_FOLLOWS_END = "--END COMMAND--"
_STARTS = ("Event", "Response", "Action")


class AmiParser:
    """Incremental parser; `feed()` returns the messages completed by the new bytes."""

    def __init__(self, expect_banner: bool = True) -> None:
        self._buf = b""
        self._expect_banner = expect_banner
        self._follows: list[str] | None = None  # lines of a Response: Follows still open
        self._follows_fields: list[tuple[str, str]] = []
        self.banner: str | None = None
        self.malformed_lines = 0
        self.malformed_blocks = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf + data
        if b"\r" in buf:
            if buf.endswith(b"\r"):  # its LF may come with the next read
                buf, self._buf = buf[:-1], b"\r"
            else:
                self._buf = b""
            buf = buf.replace(b"\r\n", b"\n")
        else:
            self._buf = b""
        if self._expect_banner:
            newline = buf.find(b"\n")
            if newline < 0:
                self._buf = buf + self._buf
                return []
            self._expect_banner = False
            first = buf[:newline].decode("utf-8", "replace")
            if first.startswith(BANNER_PREFIX):
                self.banner = first
                buf = buf[newline + 1 :]
        blocks = buf.split(b"\n\n")
        self._buf = blocks.pop() + self._buf
        out: list[AmiMessage] = []
        for block in blocks:
            if block:
                msg = self._parse_block(block.decode("utf-8", "replace"))
                if msg is not None:
                    out.append(msg)
        return out

    def _parse_block(self, text: str) -> AmiMessage | None:
        lines = text.split("\n")
        if self._follows is not None:
            return self._continue_follows(lines)
        fields: list[tuple[str, str]] = []
        for index, line in enumerate(lines):
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.partition(":")
            key = key.rstrip("\r")
            if not sep or not key or " " in key:
                if fields and fields[0] == ("Response", "Follows"):
                    self._follows = []
                    self._follows_fields = fields
                    return self._continue_follows(lines[index:])
                self.malformed_lines += 1
                continue
            if not fields and key not in _STARTS:
                self.malformed_lines += 1
                continue
            fields.append((key, value.rstrip("\r")))
        if not fields:
            self.malformed_blocks += 1
            return None
        return AmiMessage(fields)

    def _continue_follows(self, lines: list[str]) -> AmiMessage | None:
        assert self._follows is not None
        body = self._follows
        for line in lines:
            line = line.rstrip("\r")
            body.append(line)
            if line.endswith(_FOLLOWS_END):
                self._follows = None
                return AmiMessage(self._follows_fields, body)
        body.append("")  # the blank line that split the body
        return None
