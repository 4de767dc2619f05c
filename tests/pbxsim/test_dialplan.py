"""The dialplan reader: the contract's text, Asterisk patterns, and ${...} / $[...] expansion."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxsim.dialplan import Dialplan, pattern_matches, split_args, substitute

CONTRACT = Path(__file__).resolve().parents[2] / "config/asterisk/extensions_ctid.conf"


def test_pbxsim_runs_exactly_the_shipped_contract() -> None:
    shipped = Dialplan(CONTRACT.read_text("utf-8"))
    ours = Dialplan()
    assert shipped.globals == {"CTID_HOST": "127.0.0.1", "CTID_RING_TIMEOUT": "15"}
    assert set(shipped.contexts) == {c for c in ours.contexts if c.startswith("ctid-")}
    for name, extensions in shipped.contexts.items():
        assert [(e.pattern, e.steps) for e in extensions] == [
            (e.pattern, e.steps) for e in ours.contexts[name]
        ]


@pytest.mark.parametrize(
    ("pattern", "exten", "matches"),
    [
        ("_X.", "4000", True),
        ("_X.", "4", False),
        ("_pX!", "p3600", True),
        ("_pX!", "p3", True),
        ("_1XXX", "1001", True),
        ("_1XXX", "9001", False),
        ("_hX.", "h5550001", True),
        ("_hX.", "H5550001", True),
        ("_NXX", "199", False),
        ("_[13-5]X", "42", True),
    ],
)
def test_patterns(pattern: str, exten: str, matches: bool) -> None:
    assert pattern_matches(pattern, exten) is matches


@given(st.text(alphabet="0123456789", min_size=2, max_size=12))
def test_any_number_reaches_ctid_inbound(number: str) -> None:
    assert Dialplan().exists("ctid-inbound", number)


def test_substitution() -> None:
    values = {"CTID_MOH": "", "EXTEN": "p3600", "DIALSTATUS": "ANSWER", "CTID_AGENT_DIAL": "PJSIP/1001"}
    lookup = values.get
    assert substitute('${IF($["${CTID_MOH}"!=""]?${CTID_MOH}:default)}', lookup) == "default"
    values["CTID_MOH"] = "jazz"
    assert substitute('${IF($["${CTID_MOH}"!=""]?${CTID_MOH}:default)}', lookup) == "jazz"
    assert substitute("${EXTEN:1}", lookup) == "3600"
    assert substitute('$["${DIALSTATUS}"="ANSWER"]?ctid-after,s,1', lookup) == "1?ctid-after,s,1"
    assert substitute("${CTID_AGENT_DIAL},${CTID_RING_TIMEOUT},gt", lookup) == "PJSIP/1001,,gt"


def test_split_args_respects_quotes_and_parentheses() -> None:
    assert split_args('a,"b,c",f(x,y),d') == ["a", '"b,c"', "f(x,y)", "d"]
