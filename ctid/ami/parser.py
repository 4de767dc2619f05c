"""Sans-I/O AMI stream parser: bytes in, whole AmiMessages out, whatever the TCP chunking.

The stream is cut at the last blank line *before* decoding, so a multi-byte UTF-8 character (张伟) split
across two reads is decoded whole. CRLF and bare LF line endings are both accepted, `Response: Follows`
bodies are kept, and malformed lines or blocks are counted and skipped without touching the messages
around them. Headers are split lazily (AmiMessage.from_raw): the parser reads only each first line, so a
bad line inside a well-formed message is dropped when the message is read, and counted only when it
comes first.
"""

from __future__ import annotations

from ctid.ami.message import AmiMessage, split_fields

BANNER_PREFIX = "Asterisk Call Manager/"
_FOLLOWS_END = "--END COMMAND--"
_STARTS = ("Event", "Response", "Action")


class AmiParser:
    """Incremental parser; `feed()` returns the messages completed by the new bytes."""

    def __init__(self, expect_banner: bool = True) -> None:
        self._buf = b""
        self._expect_banner = expect_banner
        self._follows: list[str] | None = None  # body lines of a Response: Follows still open
        self._follows_fields: list[tuple[str, str]] = []
        self.banner: str | None = None
        self.malformed_lines = 0
        self.malformed_blocks = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        buf = self._buf + data if self._buf else data
        if buf.count(b"\n") != buf.count(b"\r\n"):
            # some line ends in a bare LF: make every ending CRLF (a CR last may still meet its LF)
            tail = b"\r" if buf[-1:] == b"\r" else b""
            buf = buf[: len(buf) - len(tail)].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + tail
        if self._expect_banner:
            newline = buf.find(b"\r\n")
            if newline < 0:
                self._buf = buf
                return []
            self._expect_banner = False
            first = buf[:newline].decode("utf-8", "replace")
            if first.startswith(BANNER_PREFIX):
                self.banner = first
                buf = buf[newline + 2 :]
        cut = buf.rfind(b"\r\n\r\n")
        if cut < 0:
            self._buf = buf
            return []
        self._buf = buf[cut + 4 :]
        out: list[AmiMessage] = []
        append = out.append
        from_raw = AmiMessage.from_raw
        for block in buf[:cut].decode("utf-8", "replace").split("\r\n\r\n"):
            if block[:7] == "Event: " and self._follows is None:  # the hot path: nearly every message
                newline = block.find("\r\n", 7)
                append(from_raw(block, ("Event", block[7:newline] if newline >= 0 else block[7:])))
                continue
            if block[:2] == "\r\n":  # more than one blank line between messages
                block = block.lstrip("\r\n")
            if not block:
                continue
            if self._follows is not None:
                msg = self._continue_follows(block.split("\r\n"))
                if msg is not None:
                    append(msg)
                continue
            newline = block.find("\r\n")
            key, sep, value = (block if newline < 0 else block[:newline]).partition(": ")
            if sep and key in _STARTS:
                head = (key, value)
                if head == ("Response", "Follows"):
                    msg = self._start_follows(block)
                    if msg is not None:
                        append(msg)
                    continue
                append(AmiMessage.from_raw(block, head))
            else:
                msg = self._slow(block)
                if msg is not None:
                    append(msg)
        return out

    def _slow(self, block: str) -> AmiMessage | None:
        """A block with malformed lines: drop them, and lines before the first Event/Response/Action."""
        fields, bad = split_fields(block)
        self.malformed_lines += bad
        start = next((i for i, (k, _) in enumerate(fields) if k in _STARTS), None)
        if start is None:
            self.malformed_blocks += 1
            return None
        self.malformed_lines += start
        fields = fields[start:]
        if fields[0] == ("Response", "Follows"):
            return self._start_follows("\r\n".join(f"{k}: {v}" for k, v in fields))
        return AmiMessage(fields)

    def _start_follows(self, block: str) -> AmiMessage | None:
        fields: list[tuple[str, str]] = []
        lines = block.split("\r\n")
        for index, line in enumerate(lines):
            key, sep, value = line.partition(": ")
            if not sep or " " in key:
                self._follows_fields = fields
                self._follows = []
                return self._continue_follows(lines[index:])
            fields.append((key, value))
        return AmiMessage(fields)  # a Follows with no body at all

    def _continue_follows(self, lines: list[str]) -> AmiMessage | None:
        body = self._follows
        assert body is not None
        for line in lines:
            body.append(line)
            if line.endswith(_FOLLOWS_END):
                self._follows = None
                return AmiMessage(self._follows_fields, body)
        body.append("")  # the blank line that split the body
        return None
