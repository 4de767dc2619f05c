"""The AMI parser: whole messages whatever the TCP chunking, UTF-8 intact, bad lines skipped, nothing lost."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from ctid.replay import transcript_sessions
from tests.transcripts import SCENARIOS, TRANSCRIPT_DIR

NAMES = ["张伟", "Zoë Ångström", "Đặng Thị Hoa", "陈静", "刘洋", "😀 emoji"]


def feed_chunks(data: bytes, cuts: list[int], parser: AmiParser | None = None) -> list[AmiMessage]:
    parser = parser or AmiParser()
    out: list[AmiMessage] = []
    last = 0
    for cut in sorted(set(cuts)):
        out.extend(parser.feed(data[last:cut]))
        last = cut
    out.extend(parser.feed(data[last:]))
    return out


def test_banner_and_a_login_response() -> None:
    parser = AmiParser()
    msgs = parser.feed(
        b"Asterisk Call Manager/13.0.0\r\nResponse: Success\r\nActionID: a1\r\nMessage: ok\r\n\r\n"
    )
    assert parser.banner == "Asterisk Call Manager/13.0.0"
    assert [m.name for m in msgs] == ["Success"]
    assert msgs[0].action_id == "a1"


def test_a_chinese_name_split_inside_a_character_arrives_whole() -> None:
    raw = "Event: Newchannel\r\nCallerIDName: 张伟\r\nUniqueid: 1.0\r\n\r\n".encode()
    cut = raw.index("张".encode()) + 1  # inside the three bytes of 张
    parser = AmiParser(expect_banner=False)
    assert parser.feed(raw[:cut]) == []
    (msg,) = parser.feed(raw[cut:])
    assert msg["CallerIDName"] == "张伟"


def test_lf_only_line_endings_and_a_cr_split_from_its_lf() -> None:
    parser = AmiParser(expect_banner=False)
    msgs = parser.feed(b"Event: A\nX: 1\n\nEvent: B\r")
    msgs += parser.feed(b"\nY: 2\r\n\r\n")
    assert [(m.name, m.fields[1]) for m in msgs] == [("A", ("X", "1")), ("B", ("Y", "2"))]


def test_response_follows_body_is_kept() -> None:
    raw = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
        b"Channel              Location\r\n\r\n2 active channels\r\n--END COMMAND--\r\n\r\n"
        b"Event: After\r\n\r\n"
    )
    msgs = feed_chunks(raw, [17, 60, 90])
    assert [m.name for m in msgs] == ["Follows", "After"]
    assert msgs[0].action_id == "c1"
    assert msgs[0].body == ("Channel              Location", "", "2 active channels", "--END COMMAND--")


def test_repeated_headers_keep_every_value_and_first_wins_lookup() -> None:
    (msg,) = AmiParser(expect_banner=False).feed(b"Event: Status\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n")
    assert msg.get_all("Variable") == ["A=1", "B=2"]
    assert msg["Variable"] == "A=1"


def test_malformed_lines_are_counted_and_skipped() -> None:
    parser = AmiParser(expect_banner=False)
    msgs = parser.feed(b"garbage without colon\r\nEvent: X\r\nbad line\r\nK: v\r\n\r\n\x00\xff\r\n\r\n")
    msgs += parser.feed(b"Event: Y\r\nno colon\r\nK: w\r\n\r\n")
    assert [m.fields for m in msgs] == [(("Event", "X"), ("K", "v")), (("Event", "Y"), ("K", "w"))]
    assert parser.malformed_lines == 3  # the two in a block that starts badly, and the junk block's line
    assert parser.malformed_blocks == 1


def test_every_transcript_parses_the_same_in_one_read_and_byte_by_byte() -> None:
    for name in SCENARIOS:
        for session in transcript_sessions((TRANSCRIPT_DIR / f"{name}.ami.txt").read_text("utf-8")):
            whole = AmiParser().feed(session)
            assert whole, name
            parser = AmiParser()
            one_by_one = [m for i in range(len(session)) for m in parser.feed(session[i : i + 1])]
            assert one_by_one == whole, name
            assert parser.malformed_lines == 0


header_key = st.from_regex(r"[A-Z][A-Za-z0-9-]{0,15}", fullmatch=True)
header_value = st.one_of(
    st.sampled_from(NAMES),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\r\n"),
        max_size=30,
    ),
).map(str.strip)


@st.composite
def messages(draw: st.DrawFn) -> AmiMessage:
    first = draw(st.sampled_from(["Event", "Response"]))
    name = draw(st.from_regex(r"[A-Za-z]{1,20}", fullmatch=True))
    rest = draw(st.lists(st.tuples(header_key, header_value), max_size=12))
    return AmiMessage([(first, name), *rest])


garbage = st.one_of(
    st.just(b"no colon here\r\n\r\n"),
    st.binary(min_size=1, max_size=20)
    .filter(lambda b: b":" not in b and b"\n" not in b and b"\r" not in b)
    .map(lambda b: b + b"\r\n\r\n"),
)


@settings(max_examples=300, deadline=None)
@given(
    msgs=st.lists(messages(), min_size=1, max_size=15),
    junk=st.lists(st.tuples(st.integers(0, 15), garbage), max_size=5),
    cuts=st.lists(st.integers(0, 4000), max_size=40),
    lf_only=st.booleans(),
)
def test_any_chunking_with_junk_between_messages_loses_and_alters_nothing(
    msgs: list[AmiMessage], junk: list[tuple[int, bytes]], cuts: list[int], lf_only: bool
) -> None:
    pieces = [m.to_bytes() for m in msgs]
    for position, blob in sorted(junk, reverse=True):
        pieces.insert(min(position, len(pieces)), blob)
    data = b"Asterisk Call Manager/13.0.0\r\n" + b"".join(pieces)
    if lf_only:
        data = data.replace(b"\r\n", b"\n")
    parser = AmiParser()
    got = feed_chunks(data, [c for c in cuts if c <= len(data)], parser)
    assert got == msgs
    assert parser.banner == "Asterisk Call Manager/13.0.0"


# ---- bounds: message size, Follows bodies, linear cost --------------------------------------------------


def event(name: str, **headers: str) -> bytes:
    return AmiMessage([("Event", name), *headers.items()]).to_bytes()


def test_an_oversized_message_is_dropped_counted_once_and_parsing_resumes_after_it() -> None:
    big = event("Huge", Data="x" * 5000, CallerIDName="张伟")
    stream = event("Before", Uniqueid="1.1") + big + event("After", CallerIDName="张伟")
    for chunk in (1, 7, 100, 4096, len(stream)):
        parser = AmiParser(expect_banner=False, max_message_bytes=1000)
        got: list[AmiMessage] = []
        for i in range(0, len(stream), chunk):
            got.extend(parser.feed(stream[i : i + chunk]))
            assert parser.buffered <= 1000  # the oversized message is never held while it streams in
        assert [m.name for m in got] == ["Before", "After"], chunk
        assert got[1]["CallerIDName"] == "张伟"
        assert parser.malformed_blocks == 1
        # its size (less the blank line that ends it), never its content
        assert parser.notices == [("ami_message_too_large", {"bytes": len(big) - 4, "limit": 1000})]


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(0, 20000), max_size=30),
    lf_only=st.booleans(),
)
def test_oversized_messages_among_others_give_the_same_result_whatever_the_chunking(
    sizes: list[int], cuts: list[int], lf_only: bool
) -> None:
    msgs = [AmiMessage([("Event", f"E{i}"), ("Data", "y" * size)]) for i, size in enumerate(sizes)]
    data = b"".join(m.to_bytes() for m in msgs)
    if lf_only:
        data = data.replace(b"\r\n", b"\n")
    whole = AmiParser(expect_banner=False, max_message_bytes=1500)
    expected = whole.feed(data)
    assert expected == [m for m in msgs if len(m.to_bytes()) - 4 <= 1500]
    chunked = AmiParser(expect_banner=False, max_message_bytes=1500)
    assert feed_chunks(data, [c for c in cuts if c <= len(data)], chunked) == expected
    assert chunked.notices == whole.notices
    assert chunked.malformed_blocks == whole.malformed_blocks == len(msgs) - len(expected)


def test_a_32_mb_message_costs_linear_time_whether_dropped_or_kept() -> None:
    """Was 13 s (the buffer re-joined and re-scanned on every read); now a fraction of a second."""
    import time

    big = event("Huge", Data="z" * (32 << 20))
    chunks = [big[i : i + 65536] for i in range(0, len(big), 65536)]
    for limit in (1 << 20, 64 << 20):
        parser = AmiParser(expect_banner=False, max_message_bytes=limit)
        start = time.perf_counter()
        got = [m for chunk in chunks for m in parser.feed(chunk)]
        elapsed = time.perf_counter() - start
        assert [m.name for m in got] == ([] if limit < len(big) else ["Huge"])
        assert elapsed < 6.0, (limit, elapsed)  # on a shared, loaded machine: ~0.3 s when quiet


def test_an_unterminated_follows_ends_at_the_next_event_and_events_keep_flowing() -> None:
    raw = (
        b"Response: Follows\r\nPrivilege: Command\r\nActionID: c1\r\n"
        b"Channel              Location\r\n\r\n"
        b"Event: Newchannel\r\nChannel: PJSIP/a-1\r\nUniqueid: 1.1\r\n\r\n"
        b"Response: Success\r\nActionID: p1\r\nPing: Pong\r\n\r\n"
    )
    for cuts in ([], list(range(len(raw)))):
        parser = AmiParser(expect_banner=False)
        msgs = feed_chunks(raw, cuts, parser)
        assert [m.name for m in msgs] == ["Follows", "Newchannel", "Success"]
        assert msgs[0].action_id == "c1" and msgs[0].body == ("Channel              Location",)
        assert msgs[2].action_id == "p1"
        assert parser.notices == [("ami_follows_unterminated", {"lines": 2})]
        assert parser.malformed_blocks == 1


def test_a_ping_answer_ends_an_unterminated_follows_but_body_text_does_not() -> None:
    raw = (
        b"Response: Follows\r\nActionID: c1\r\nline one\r\n\r\n"
        b"Event: looks like a header: but has spaces\r\nmore text\r\n\r\n"  # body: not all headers
        b"Response: Success\r\nPing: Pong\r\n\r\n"  # body: a response without an ActionID
        b"Response: Success\r\nActionID: p1\r\nPing: Pong\r\n\r\n"
    )
    parser = AmiParser(expect_banner=False)
    msgs = parser.feed(raw)
    assert [m.name for m in msgs] == ["Follows", "Success"]
    assert msgs[0].body[-1] == "Ping: Pong" and msgs[1].action_id == "p1"


def test_a_follows_body_beyond_its_bounds_is_dropped_and_what_follows_it_is_parsed() -> None:
    body = b"".join(b"row %d of a long listing\r\n" % i for i in range(100))
    raw = (
        b"Response: Follows\r\nActionID: c1\r\n"
        + body
        + b"\r\n"
        + body
        + b"--END COMMAND--\r\n\r\n"
        + event("Hangup", Uniqueid="1.1")
    )
    parser = AmiParser(expect_banner=False, max_follows_lines=50)
    msgs = feed_chunks(raw, list(range(0, len(raw), 13)), parser)
    assert [m.name for m in msgs] == ["Hangup"]
    assert parser.malformed_blocks == 1
    assert [name for name, _ in parser.notices] == ["ami_follows_too_large"]
    by_size = AmiParser(expect_banner=False, max_message_bytes=1000)
    assert [m.name for m in by_size.feed(raw)] == ["Hangup"]
