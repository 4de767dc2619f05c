"""Pops kept up to date with the customer's history: every write to a customer loads their data again for
each call whose pop shows them (any agent's, ended ones too); an unknown caller linked to a customer."""

from __future__ import annotations

from ctid.dialplan import CUSTOMER_VAR
from ctid.state import domain as d
from screenpop.pops import LINKED_BY_AGENT, PopBook, PopUpdated, Prefetch
from tests.screenpop.test_pops import A, B, arrive, connect, ring

GOLD = {"customer": {"id": "gold", "name": "Gold Ltd"}}


def note(customer: str = "gold", call: str = "L1") -> d.NoteAdded:
    return d.NoteAdded(9.0, "", customer, call, "alice", "alice-login", 7)


def test_a_write_to_the_customer_reloads_each_call_that_shows_them_once() -> None:
    book = PopBook()
    arrive(book, "L1")
    arrive(book, "L2")
    book.loaded("L1", GOLD)
    book.loaded("L2", GOLD)
    book.apply(connect("L1", A))
    book.apply(ring("L2", B))  # another agent's pop of the same customer
    events: list[d.CustomerEvent] = [
        note(),
        d.QuoteRecorded(9.0, "", "gold", "L1", "alice", "alice-login", 3, "offered"),
        d.CaseStepAdded(9.0, "", "gold", "L1", "alice", "alice-login", 1, 2, "in_progress"),
        d.LifecycleChanged(9.0, "", "gold", "L1", "alice", "alice-login", "client", "repeat"),
        d.CallDisposed(9.0, "", "gold", "L1", "alice", "alice-login", "alice", "resolved"),
    ]
    for event in events:
        assert book.apply(event, "customers") == [
            Prefetch("L1", "gold", "13900000001"),
            Prefetch("L2", "gold", "13900000001"),
        ]
    updated = book.loaded("L2", {"customer": {"id": "gold", "notes": [{"text": "new"}]}})
    assert [(type(m), m.device) for m in updated] == [(PopUpdated, B)]


def test_a_customer_found_by_number_is_refreshed_by_the_id_in_the_data() -> None:
    book = PopBook()
    book.apply(d.CallArrived(1.0, "L1", "L1", "SIP/trunk-1", d.Direction.INBOUND, "139", "", "4000"))
    book.apply(d.QueueAssigned(3.0, "L1", "L1", "SIP/trunk-1", "sales", ""))
    book.apply(ring("L1", A))
    assert book.apply(note()) == []  # not loaded yet: nothing shows gold
    book.loaded("L1", {**GOLD, "found_by": "caller-number"})
    assert book.apply(note()) == [Prefetch("L1", "", "139")]  # looked up the same way again


def test_writes_to_other_customers_or_with_no_customer_reload_nothing() -> None:
    book = PopBook()
    arrive(book)
    book.loaded("L1", GOLD)
    book.apply(connect("L1", A))
    assert book.apply(note("plain")) == []
    assert book.apply(d.CallDisposed(9.0, "", "", "L9", "alice", "a", "alice", "resolved")) == []


def test_an_ended_pop_kept_for_wrap_up_still_gets_the_new_data() -> None:
    book = PopBook()
    arrive(book)
    book.loaded("L1", GOLD)
    book.apply(connect("L1", A))
    book.apply(d.CallEnded(6.0, "L1", 16, "caller", "answered"))
    (prefetch,) = book.apply(note())
    assert prefetch == Prefetch("L1", "gold", "13900000001")
    (updated,) = book.loaded("L1", {"customer": {"id": "gold", "notes": [{"text": "after"}]}})
    assert isinstance(updated, PopUpdated) and updated.pop.ended
    assert updated.pop.data == {"customer": {"id": "gold", "notes": [{"text": "after"}]}}


def test_linking_an_unknown_caller_shows_the_customer_and_asterisks_echo_changes_nothing() -> None:
    book = PopBook()
    book.apply(d.CallArrived(1.0, "L1", "L1", "SIP/trunk-1", d.Direction.INBOUND, "139", "", "4000"), "pbx1")
    book.apply(d.QueueAssigned(3.0, "L1", "L1", "SIP/trunk-1", "sales", ""))
    book.loaded("L1", {"customer": None, "found_by": "", "open_cases": []})
    book.apply(connect("L1", A))
    assert book.caller_channel("L1") == ("pbx1", "SIP/trunk-1") and book.customer_of("L1") == ""
    prefetch, updated = book.linked("L1", "gold")
    assert prefetch == Prefetch("L1", "gold", "139")
    assert isinstance(updated, PopUpdated) and updated.device == A
    assert (updated.pop.customer, updated.pop.identified_by) == ("gold", LINKED_BY_AGENT)
    assert book.apply(d.CallVariable(7.0, "L1", CUSTOMER_VAR, "gold")) == []
    pop = book.current(A)
    assert pop is not None and pop.identified_by == LINKED_BY_AGENT
    assert book.apply(note()) == [Prefetch("L1", "gold", "139")]  # its writes now refresh it
    assert book.customer_of("L1") == "gold"


def test_a_caller_found_by_number_is_a_known_customer() -> None:
    book = PopBook()
    book.apply(d.CallArrived(1.0, "L1", "L1", "SIP/trunk-1", d.Direction.INBOUND, "139", "", "4000"))
    assert book.customer_of("L1") == ""
    book.loaded("L1", {**GOLD, "found_by": "caller-number"})
    assert book.customer_of("L1") == "gold" and book.customer_of("L9") == ""


def test_an_unknown_or_ended_call_cannot_be_linked() -> None:
    book = PopBook()
    assert book.caller_channel("L9") is None and book.linked("L9", "gold") == []
    arrive(book)
    book.apply(d.CallEnded(6.0, "L1", 16, "caller", "answered"))
    assert book.caller_channel("L1") is None
