"""The pop rules, pure: one pop per call and agent, rings that move on, transfers with notes, hang-ups."""

from __future__ import annotations

from ctid.dialplan import CUSTOMER_VAR, TIER_VAR
from ctid.state import domain as d
from screenpop.pops import (
    CALLER_HUNG_UP,
    IDENTIFIED_BY_IVR,
    NO_ANSWER,
    RING_MOVED_ON,
    Decision,
    PopBook,
    PopClosed,
    PopEnded,
    PopOpened,
    PopUpdated,
    Prefetch,
    crm_url,
    pop_message,
)

A, B, C = "PJSIP/1001", "PJSIP/1002", "PJSIP/1003"
HOSTILE = "<img src=x onerror=alert(1)>"


def arrive(
    book: PopBook, linkedid: str = "L1", number: str = "13900000001", name: str = "Gold"
) -> list[Decision]:
    out = book.apply(
        d.CallArrived(1.0, linkedid, linkedid, "SIP/trunk-1", d.Direction.INBOUND, number, name, "4000")
    )
    out += book.apply(d.CallVariable(2.0, linkedid, CUSTOMER_VAR, "gold"))
    out += book.apply(d.CallVariable(2.0, linkedid, TIER_VAR, "A"))
    return out + book.apply(d.QueueAssigned(3.0, linkedid, linkedid, "SIP/trunk-1", "sales", ""))


def ring(linkedid: str, device: str) -> d.AgentRinging:
    return d.AgentRinging(4.0, linkedid, linkedid, device, f"{device}-1", "sales")


def connect(linkedid: str, device: str) -> d.CallConnected:
    return d.CallConnected(5.0, linkedid, device, f"{device}-1", "sales", 4.0)


def test_entering_a_queue_asks_once_for_the_data_and_a_ring_then_only_pushes() -> None:
    book = PopBook()
    assert arrive(book) == [Prefetch("L1", "gold", "13900000001")]
    assert book.apply(d.CallWaiting(3.0, "L1", "L1", "sales", 1.0, False)) == []  # asked already
    assert book.loaded("L1", {"customer": {"name": "Gold Ltd"}}) == []  # nobody shows it yet
    (opened,) = book.apply(ring("L1", A))
    assert isinstance(opened, PopOpened) and opened.device == A
    pop = opened.pop
    assert (pop.caller_num, pop.caller_name, pop.customer, pop.tier, pop.queue) == (
        "13900000001",
        "Gold",
        "gold",
        "A",
        "sales",
    )
    assert pop.identified_by == IDENTIFIED_BY_IVR
    assert pop.data == {"customer": {"name": "Gold Ltd"}}


def test_a_ring_before_the_data_opens_with_what_is_known_then_updates() -> None:
    book = PopBook()
    arrive(book)
    (opened,) = book.apply(ring("L1", A))
    assert isinstance(opened, PopOpened) and opened.pop.data is None
    assert opened.pop.to_dict()["loading"] is True
    (updated,) = book.loaded("L1", {"customer": None})
    assert isinstance(updated, PopUpdated) and updated.device == A
    assert updated.pop.data == {"customer": None} and updated.pop.linkedid == "L1"


def test_one_pop_per_call_and_agent() -> None:
    book = PopBook()
    arrive(book)
    assert len(book.apply(ring("L1", A))) == 1
    assert book.apply(ring("L1", A)) == []
    (answered,) = book.apply(connect("L1", A))
    assert isinstance(answered, PopUpdated) and answered.pop.answered


def test_a_ring_that_moves_on_closes_the_first_pop() -> None:
    book = PopBook()
    arrive(book)
    book.apply(ring("L1", A))
    closed, opened = book.apply(ring("L1", B))
    assert closed == PopClosed(A, "L1", RING_MOVED_ON)
    assert isinstance(opened, PopOpened) and opened.device == B
    assert book.apply(d.RingNoAnswer(6.0, "L1", B, "NOANSWER", 10.0)) == [PopClosed(B, "L1", NO_ANSWER)]
    assert book.current(A) is None and book.current(B) is None


def test_a_transfer_opens_the_pop_for_the_receiver_with_the_note_on_top() -> None:
    book = PopBook()
    arrive(book)
    book.apply(ring("L1", A))
    book.apply(connect("L1", A))
    assert book.transfer_note("L1", A, "wants the 12-month price", by="Alice")
    assert not book.transfer_note("unknown", A, "lost")
    out = book.apply(d.CallTransferred(7.0, "L1", d.TransferKind.BLIND, A, B, ""))
    (opened,) = out  # the sender's answered pop stays
    assert isinstance(opened, PopOpened) and opened.device == B
    assert opened.pop.note is not None
    assert (opened.pop.note.by, opened.pop.note.text) == ("Alice", "wants the 12-month price")
    assert book.current(A) is not None


def test_a_note_reaches_a_receiver_already_ringing() -> None:
    book = PopBook()
    arrive(book)
    book.apply(connect("L1", A))
    book.transfer_note("L1", A, "escalate")
    book.apply(ring("L1", B))
    (updated,) = book.apply(d.CallTransferred(7.0, "L1", d.TransferKind.ATTENDED, A, B, ""))
    assert isinstance(updated, PopUpdated) and updated.pop.note is not None
    assert updated.pop.note.text == "escalate"


def test_hang_up_ends_the_pop_which_stays_until_the_next_or_dismissed() -> None:
    book = PopBook()
    arrive(book)
    book.apply(ring("L1", A))
    book.apply(connect("L1", A))
    assert book.apply(d.AgentLeftCall(8.0, "L1", A)) == [PopEnded(A, "L1")]
    assert book.apply(d.CallEnded(9.0, "L1", 16, "caller", "answered")) == []  # ended already
    shown = book.current(A)
    assert shown is not None and shown.ended and shown.linkedid == "L1"
    assert book.on_call(A) == ""
    arrive(book, "L2")
    (opened,) = book.apply(ring("L2", A))  # the next pop replaces it
    assert isinstance(opened, PopOpened) and book.current(A) == opened.pop
    book.apply(connect("L2", A))
    book.apply(d.CallEnded(9.0, "L2", 16, "caller", "answered"))
    assert book.dismiss(A, "L2") == [PopClosed(A, "L2", "dismissed")]
    assert book.current(A) is None


def test_a_caller_who_hangs_up_while_ringing_closes_the_pop() -> None:
    book = PopBook()
    arrive(book)
    book.apply(ring("L1", A))
    assert book.dismiss(A, "L1") == []  # not ended: an agent cannot dismiss a ringing call
    assert book.apply(d.CallEnded(9.0, "L1", 16, "caller", "abandoned")) == [
        PopClosed(A, "L1", CALLER_HUNG_UP)
    ]


def test_a_reconnecting_desktop_gets_the_current_pop() -> None:
    book = PopBook()
    arrive(book)
    book.apply(ring("L1", A))
    shown = book.current(A)
    assert shown is not None and shown.linkedid == "L1"
    assert book.current(B) is None
    assert book.on_call(A) == "L1"


def test_caller_id_text_is_carried_as_data() -> None:
    book = PopBook(crm_template=lambda queue: "https://crm.example/c?n={caller}&id={customer}&call={call}")
    arrive(book, number="+86 139 0000 0001", name=HOSTILE)
    (opened,) = book.apply(ring("L1", A))
    assert isinstance(opened, PopOpened)
    message = pop_message(opened)
    assert message["kind"] == "PopOpened" and message["pop"]["caller_name"] == HOSTILE
    assert message["pop"]["crm_url"] == "https://crm.example/c?n=%2B86%20139%200000%200001&id=gold&call=L1"


def test_crm_url_encodes_each_placeholder() -> None:
    assert crm_url("", "1", "2", "3") == ""
    assert crm_url("https://x/{customer}/{call}", "", "a/b&c", "1.2") == "https://x/a%2Fb%26c/1.2"


def test_a_transfer_to_a_queue_pops_the_note_for_whoever_gets_the_call_there() -> None:
    book = PopBook()
    arrive(book)
    book.apply(connect("L1", A))
    book.transfer_note("L1", A, "billing question", by="Alice")
    assert book.apply(d.CallTransferred(7.0, "L1", d.TransferKind.BLIND, A, "", "200")) == []
    assert book.apply(d.AgentLeftCall(7.0, "L1", A)) == [PopEnded(A, "L1")]
    assert book.apply(d.QueueAssigned(7.5, "L1", "L1", "SIP/trunk-1", "200", "200")) == []  # data loaded once
    (opened,) = book.apply(d.AgentRinging(8.0, "L1", "L1", C, f"{C}-1", "200"))
    assert isinstance(opened, PopOpened) and opened.pop.note is not None
    assert (opened.pop.note.by, opened.pop.note.text, opened.pop.queue) == (
        "Alice",
        "billing question",
        "200",
    )
    ended = book.current(A)
    assert ended is not None and ended.ended  # the sender's pop stays for their wrap-up
    book.apply(connect("L1", C))
    book.apply(d.CallTransferred(9.0, "L1", d.TransferKind.BLIND, C, B, ""))
    passed_on = book.current(B)
    assert passed_on is not None and passed_on.note is None  # Alice's note was for C
