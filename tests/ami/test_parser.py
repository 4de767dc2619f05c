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
