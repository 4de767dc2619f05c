"""Sans-I/O AMI stream parser: bytes in, whole AmiMessages out, whatever the TCP chunking.

The stream is cut at the last blank line *before* decoding, so a multi-byte UTF-8 character (张伟) split
across two reads is decoded whole. CRLF and bare LF line endings are both accepted, `Response: Follows`
bodies are kept, and malformed lines or blocks are counted and skipped without touching the messages
around them. Headers are split lazily (AmiMessage.from_raw): the parser reads only each first line, so a
bad line inside a well-formed message is dropped when the message is read, and counted only when it
comes first.

The cost is linear in the bytes fed: a read is scanned once (plus the three bytes before it, where a blank
line may straddle two reads), and the bytes of a message still incomplete are joined once, when it ends.
A message larger than `max_message_bytes` is not kept while it streams in: it is dropped, counted as a
malformed block and reported once in `notices` with its size (never its content), and parsing resumes
after its end. A `Response: Follows` body is bounded in lines and size, and ends at the next clear message
start (an event, or a response to an action) if its `--END COMMAND--` never comes, so events keep flowing.
"""

from __future__ import annotations

from ctid.ami.message import AmiMessage, split_fields

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_MESSAGE_BYTES = 1 << 20  # no AMI event comes near this; Status with every variable is a few kB
MAX_FOLLOWS_LINES = 20_000
_FOLLOWS_END = "--END COMMAND--"
_STARTS = ("Event", "Response", "Action")
_BOUNDARY = b"\r\n\r\n"


def _crlf(data: bytes, after_cr: bool) -> bytes:
    """Every line ending of a read made CRLF; a leading LF that completes the last read's CR stays as is."""
    if after_cr and data[:1] == b"\n":
        return b"\n" + data[1:].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class AmiParser:
    """Incremental parser; `feed()` returns the messages completed by the new bytes.

    `notices` collects what the caller should log once, as (event name, sizes) pairs: an oversized message
    dropped, a Follows body dropped or cut short. The caller drains it.
    """

    def __init__(
        self,
        expect_banner: bool = True,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_follows_lines: int = MAX_FOLLOWS_LINES,
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_follows_lines = max_follows_lines
        self._pending: list[bytes] = []  # the reads since the last blank line, joined once a message ends
        self._pending_len = 0
        self._tail = b""  # the last three bytes of _pending (or of a message being skipped)
        self._after_cr = False  # the last read ended in CR: an LF first in the next completes a CRLF
        self._skipped: int | None = None  # bytes of an oversized message dropped so far, while it lasts
        self._expect_banner = expect_banner
        self._follows: list[str] | None = None  # body lines of a Response: Follows still open
        self._follows_fields: list[tuple[str, str]] = []
        self._follows_chars = 0
        self._follows_dropping = False  # the open body outgrew its bounds: drop it up to its end
        self.banner: str | None = None
        self.malformed_lines = 0
        self.malformed_blocks = 0
        self.notices: list[tuple[str, dict[str, int]]] = []

    @property
    def buffered(self) -> int:
        """Bytes held for a message not yet complete (never more than max_message_bytes once a read is in)."""
        return self._pending_len

    def feed(self, data: bytes) -> list[AmiMessage]:
        if not data:
            return []
        after_cr, self._after_cr = self._after_cr, data[-1:] == b"\r"
        if data.count(b"\n") != data.count(b"\r\n"):
            data = _crlf(data, after_cr)
        if self._skipped is not None:
            data = self._skip(data)
            if not data:
                return []
        if self._expect_banner:
            data = self._banner(data)
            if not data:
                return []
        at = data.rfind(_BOUNDARY)
        if self._pending:
            if at < 0 and _BOUNDARY not in self._tail + data[:3]:
                self._hold(data)
                return []
            start = self._pending_len
            buf = b"".join(self._pending) + data
            self._pending = []
            self._pending_len = 0
            self._tail = b""
            cut = start + at if at >= 0 else buf.rfind(_BOUNDARY, max(0, start - 3))
        else:
            if at < 0:
                self._hold(data)
                return []
            buf, cut = data, at
        if cut + 4 < len(buf):
            self._hold(buf[cut + 4 :])
        region = buf[:cut]
        if cut > self.max_message_bytes:
            region = self._without_oversized(region)
        return self._messages(region.decode("utf-8", "replace"))

    # ---- bytes: banner, incomplete messages, oversized ones -----------------------------------------

    def _hold(self, chunk: bytes) -> None:
        """Keep the bytes of a message not yet complete; past the size bound, start skipping it."""
        self._pending.append(chunk)
        self._pending_len += len(chunk)
        self._tail = chunk[-3:] if len(chunk) >= 3 else (self._tail + chunk)[-3:]
        if self._pending_len > self.max_message_bytes:
            self._skipped = self._pending_len
            self._pending = []
            self._pending_len = 0

    def _skip(self, data: bytes) -> bytes:
        """Drop the rest of an oversized message; what follows its end is parsed again."""
        assert self._skipped is not None
        tail = self._tail
        at = (tail + data[:3]).find(_BOUNDARY)
        if at >= 0:
            end = at + 4 - len(tail)
        else:
            at = data.find(_BOUNDARY)
            if at < 0:
                self._skipped += len(data)
                self._tail = data[-3:] if len(data) >= 3 else (tail + data)[-3:]
                return b""
            end = at + 4
        self._oversized(self._skipped + end - 4)
        self._skipped = None
        self._tail = b""
        self._expect_banner = False  # a banner comes first or not at all
        return data[end:]

    def _oversized(self, size: int) -> None:
        self.malformed_blocks += 1
        self.notices.append(("ami_message_too_large", {"bytes": size, "limit": self.max_message_bytes}))

    def _without_oversized(self, region: bytes) -> bytes:
        """A run of whole messages read at once, less any larger than the bound."""
        blocks = region.split(_BOUNDARY)
        kept = [block for block in blocks if len(block) <= self.max_message_bytes]
        for block in blocks:
            if len(block) > self.max_message_bytes:
                self._oversized(len(block))
        return _BOUNDARY.join(kept)

    def _banner(self, data: bytes) -> bytes:
        """The bytes after the banner line (kept in `banner`), or b"" while that line is incomplete."""
        if data.find(b"\r\n") < 0 and not (self._tail[-1:] == b"\r" and data[:1] == b"\n"):
            self._hold(data)
            return b""
        if self._pending:
            data = b"".join(self._pending) + data
            self._pending = []
            self._pending_len = 0
            self._tail = b""
        self._expect_banner = False
        newline = data.find(b"\r\n")
        first = data[:newline].decode("utf-8", "replace")
        if first.startswith(BANNER_PREFIX):
            self.banner = first
            return data[newline + 2 :]
        return data

    # ---- text: whole blocks to messages -------------------------------------------------------------

    def _messages(self, text: str) -> list[AmiMessage]:
        out: list[AmiMessage] = []
        append = out.append
        from_raw = AmiMessage.from_raw
        for block in text.split("\r\n\r\n"):
            if block[:7] == "Event: " and self._follows is None:  # the hot path: nearly every message
                newline = block.find("\r\n", 7)
                append(from_raw(block, ("Event", block[7:newline] if newline >= 0 else block[7:])))
                continue
            if block[:2] == "\r\n":  # more than one blank line between messages
                block = block.lstrip("\r\n")
            if not block:
                continue
            if self._follows is not None:
                if not _clear_start(block):
                    msg = self._continue_follows(block.split("\r\n"))
                    if msg is not None:
                        append(msg)
                    continue
                msg = self._cut_follows()
                if msg is not None:
                    append(msg)
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
                self._follows_chars = 0
                self._follows_dropping = False
                return self._continue_follows(lines[index:])
            fields.append((key, value))
        return AmiMessage(fields)  # a Follows with no body at all

    def _continue_follows(self, lines: list[str]) -> AmiMessage | None:
        body = self._follows
        assert body is not None
        for line in lines:
            if self._follows_dropping:
                if line.endswith(_FOLLOWS_END):
                    self._follows = None
                    return None
                continue
            body.append(line)
            if line.endswith(_FOLLOWS_END):
                self._follows = None
                return AmiMessage(self._follows_fields, body)
            self._follows_chars += len(line) + 2
            if len(body) > self.max_follows_lines or self._follows_chars > self.max_message_bytes:
                self.malformed_blocks += 1
                self.notices.append(
                    ("ami_follows_too_large", {"lines": len(body), "chars": self._follows_chars})
                )
                self._follows_dropping = True
                body.clear()
        if not self._follows_dropping:
            body.append("")  # the blank line that split the body
        return None

    def _cut_follows(self) -> AmiMessage | None:
        """A Follows body whose end never came, closed as it stands because a new message started."""
        body = self._follows
        assert body is not None
        self._follows = None
        self.malformed_blocks += 1
        self.notices.append(("ami_follows_unterminated", {"lines": len(body)}))
        if self._follows_dropping:
            return None
        if body and body[-1] == "":
            body.pop()
        return AmiMessage(self._follows_fields, body)


def _clear_start(block: str) -> bool:
    """Whether a block inside an open Follows body is plainly the next message, not more of the body.

    An event, or a response that names its action, every line of it a `Key: value` header.
    """
    if block[:7] != "Event: " and (block[:10] != "Response: " or "\r\nActionID: " not in block):
        return False
    return all(" " not in line.partition(": ")[0] and ": " in line for line in block.split("\r\n"))
