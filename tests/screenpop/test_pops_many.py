"""The pop book among a large center's pops: each call's pops are found by the call, never another's."""

from __future__ import annotations

from ctid.state import domain as d
from screenpop.pops import CALLER_HUNG_UP, RING_MOVED_ON, PopBook, PopClosed, PopEnded, PopOpened
from tests.screenpop.test_pops import arrive, connect, ring

DEVICES = [f"PJSIP/{2000 + i}" for i in range(200)]


def hang_up(linkedid: str) -> d.CallEnded:
    return d.CallEnded(9.0, linkedid, 16, "caller", "answered")


def test_among_many_shown_pops_a_call_touches_only_its_own() -> None:
    book = PopBook()
    for device in DEVICES:  # every agent took a call and is wrapping it up: each pop stays shown
        arrive(book, f"old-{device}")
        book.apply(ring(f"old-{device}", device))
        book.apply(connect(f"old-{device}", device))
        assert book.apply(hang_up(f"old-{device}")) == [PopEnded(device, f"old-{device}")]
    first, second = DEVICES[7], DEVICES[8]
    arrive(book, "new")
    (opened,) = book.apply(ring("new", first))
    assert isinstance(opened, PopOpened) and opened.device == first
    closed, reopened = book.apply(ring("new", second))  # the ring moved on: only the first one's closes
    assert closed == PopClosed(first, "new", RING_MOVED_ON)
    assert isinstance(reopened, PopOpened) and reopened.device == second
    assert book.apply(hang_up("new")) == [PopClosed(second, "new", CALLER_HUNG_UP)]
    assert book.current(first) is None and book.current(second) is None  # the new call's pop gave way
    for device in DEVICES[:7] + DEVICES[9:]:  # everyone else still wraps up their own call
        pop = book.current(device)
        assert pop is not None and pop.ended and pop.linkedid == f"old-{device}"
