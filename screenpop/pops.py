"""Screen pops, pure: domain events in, what each agent's desktop shows out; data loading asked for, not done.

A call's customer data is asked for (`Prefetch`) when the call enters a queue, so a ring only pushes. One pop
per call and agent device: a ring opens it (before answer), a ring that moves on closes it, a transfer opens
it for the receiver with the sender's note on top, a hang-up ends it (it stays shown for wrap-up until the
next pop). Caller-ID text is carried as data; showing it safely is the page's job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from ctid.dialplan import CUSTOMER_VAR, TIER_VAR
from ctid.state import domain as d

RING_MOVED_ON = "ring-moved-on"  # the close reasons the desktop is told
NO_ANSWER = "no-answer"
CALLER_HUNG_UP = "caller-hung-up"  # the caller left before this agent answered
IDENTIFIED_BY_IVR = "ivr-caller-number"  # the IVR found the customer by the caller's number
LINKED_BY_AGENT = "linked-by-agent"  # the agent linked the unknown caller to a customer


@dataclass(frozen=True, slots=True)
class TransferNote:
    by: str  # who wrote it (the sender's name or id, as the desktop gave it)
    text: str


@dataclass(frozen=True, slots=True)
class Pop:
    """What one agent's desktop shows for one call."""

    linkedid: str
    caller_num: str
    caller_name: str
    queue: str
    customer: str  # '' when the caller is not known
    tier: str
    identified_by: str  # how the IVR identified the caller; '' when it did not
    crm_url: str  # the queue's CRM link for this call; '' when the queue has none
    data: Mapping[str, Any] | None = None  # the customer data loaded for the call; None until loaded
    note: TransferNote | None = None  # the transfer note of the agent who sent the call here
    answered: bool = False
    ended: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "linkedid": self.linkedid,
            "caller_num": self.caller_num,
            "caller_name": self.caller_name,
            "queue": self.queue,
            "customer": self.customer,
            "tier": self.tier,
            "identified_by": self.identified_by,
            "crm_url": self.crm_url,
            "data": dict(self.data) if self.data is not None else None,
            "loading": self.data is None,
            "note": {"by": self.note.by, "text": self.note.text} if self.note is not None else None,
            "answered": self.answered,
            "ended": self.ended,
        }


@dataclass(frozen=True, slots=True)
class PopOpened:
    device: str
    pop: Pop


@dataclass(frozen=True, slots=True)
class PopUpdated:
    """The open pop has more to show (its data arrived or changed, a transfer note, a linked customer)."""

    device: str
    pop: Pop


@dataclass(frozen=True, slots=True)
class PopClosed:
    device: str
    linkedid: str
    reason: str


@dataclass(frozen=True, slots=True)
class PopEnded:
    """The call is over for this agent: the pop stays shown for wrap-up."""

    device: str
    linkedid: str


@dataclass(frozen=True, slots=True)
class Prefetch:
    """Load the customer data of this call, then hand it back with `PopBook.loaded`."""

    linkedid: str
    customer: str
    caller_num: str


PopMessage = PopOpened | PopUpdated | PopClosed | PopEnded
Decision = PopMessage | Prefetch


def pop_message(message: PopMessage) -> dict[str, Any]:
    """A pop message as the desktop receives it."""
    if isinstance(message, PopOpened | PopUpdated):
        kind = "PopOpened" if isinstance(message, PopOpened) else "PopUpdated"
        return {"kind": kind, "pop": message.pop.to_dict()}
    if isinstance(message, PopClosed):
        return {"kind": "PopClosed", "linkedid": message.linkedid, "reason": message.reason}
    return {"kind": "PopEnded", "linkedid": message.linkedid}


def crm_url(template: str, caller: str, customer: str, call: str) -> str:
    """The queue's CRM URL template with {caller}, {customer} and {call} filled in, each URL-encoded."""
    if not template:
        return ""
    values = {"caller": caller, "customer": customer, "call": call}
    return template.format_map({key: quote(value, safe="") for key, value in values.items()})


@dataclass(slots=True)
class _Call:
    server: str = ""  # the Asterisk server the call is on
    channel: str = ""  # the caller's channel
    caller_num: str = ""
    caller_name: str = ""
    queue: str = ""
    customer: str = ""
    tier: str = ""
    identified_by: str = ""
    data: Mapping[str, Any] | None = None
    prefetched: bool = False
    notes: dict[str, TransferNote] = field(default_factory=dict)  # by sending device
    forwarded: TransferNote | None = None  # the note of a transfer to a queue, for whoever answers there


class PopBook:
    """Every call's pop facts and every agent device's current pop. `crm_template`: queue -> its template."""

    def __init__(self, crm_template: Callable[[str], str] = lambda queue: "") -> None:
        self.crm_template = crm_template
        self._calls: dict[str, _Call] = {}
        self._shown: dict[str, Pop] = {}  # device -> its current pop (ringing, on the call, or ended)
        self._showing: dict[str, set[str]] = {}  # linkedid -> the devices whose current pop it is

    def current(self, device: str) -> Pop | None:
        """The pop `device`'s desktop shows now: what a reconnecting browser gets back."""
        return self._shown.get(device)

    def dismiss(self, device: str, linkedid: str) -> list[PopMessage]:
        """The agent closed an ended pop."""
        pop = self._shown.get(device)
        if pop is None or pop.linkedid != linkedid or not pop.ended:
            return []
        self._hide(device)
        return [PopClosed(device, linkedid, "dismissed")]

    def transfer_note(self, linkedid: str, from_agent: str, text: str, by: str = "") -> bool:
        """The agent on device `from_agent` leaves a note for whoever they transfer the call to; False when
        the call is not known (over, or never seen)."""
        call = self._calls.get(linkedid)
        if call is None:
            return False
        call.notes[from_agent] = TransferNote(by or from_agent, text)
        return True

    def loaded(self, linkedid: str, data: Mapping[str, Any]) -> list[PopMessage]:
        """The (pre)fetched data of a call: the pops shown for it, ended ones too, are updated."""
        call = self._calls.get(linkedid)
        if call is not None:
            call.data = data
        return self._update(linkedid, lambda pop: replace(pop, data=data))

    def caller_channel(self, linkedid: str) -> tuple[str, str] | None:
        """The server and caller's channel of a live call; None when not known."""
        call = self._calls.get(linkedid)
        return (call.server, call.channel) if call is not None and call.channel else None

    def customer_of(self, linkedid: str) -> str:
        """The customer a live call is bound to or was found as ('' for an unknown caller)."""
        call = self._calls.get(linkedid)
        return (call.customer or _customer_id(call.data)) if call is not None else ""

    def linked(self, linkedid: str, customer: str) -> list[Decision]:
        """The agent linked the call to `customer`: its pops show them, once their data is loaded."""
        call = self._calls.get(linkedid)
        if call is None:
            return []
        call.customer, call.identified_by = customer, LINKED_BY_AGENT
        out: list[Decision] = [Prefetch(linkedid, customer, call.caller_num)]
        out += self._update(
            linkedid, lambda pop: replace(pop, customer=customer, identified_by=LINKED_BY_AGENT)
        )
        return out

    def on_call(self, device: str) -> str:
        """The call whose pop `device` shows and has not ended ('' when none)."""
        pop = self._shown.get(device)
        return pop.linkedid if pop is not None and not pop.ended else ""

    def apply(self, event: d.DomainEvent, server: str = "") -> list[Decision]:
        """Fold one event from `server` (its bus origin)."""
        match event:
            case d.CallArrived(linkedid=linkedid, channel=channel, caller_num=number, caller_name=name):
                call = self._calls.setdefault(linkedid, _Call())
                call.server, call.channel = server, channel
                call.caller_num, call.caller_name = number, name
            case d.CallVariable(linkedid=linkedid, name=name, value=value) if name in (
                CUSTOMER_VAR,
                TIER_VAR,
            ):
                call = self._calls.setdefault(linkedid, _Call())
                if name == CUSTOMER_VAR:
                    echo = call.identified_by == LINKED_BY_AGENT and value == call.customer  # of a link
                    call.customer = value
                    call.identified_by = call.identified_by if echo else (IDENTIFIED_BY_IVR if value else "")
                else:
                    call.tier = value
            case (
                d.QueueAssigned(linkedid=linkedid, queue=queue)
                | d.CallWaiting(linkedid=linkedid, queue=queue)
            ):
                return self._queued(linkedid, queue)
            case d.AgentRinging(linkedid=linkedid, agent=device, queue=queue):
                return self._ring(linkedid, device, queue)
            case d.RingNoAnswer(linkedid=linkedid, agent=device):
                return self._close(device, linkedid, NO_ANSWER)
            case d.CallConnected(linkedid=linkedid, agent=device, queue=queue):
                out = self._ring(linkedid, device, queue)
                if linkedid in self._calls:  # a queue transfer's note is delivered once answered
                    self._calls[linkedid].forwarded = None
                return out + self._update_at(device, linkedid, lambda pop: replace(pop, answered=True))
            case d.CallTransferred(linkedid=linkedid, from_agent=sender, to_agent=receiver):
                return self._transferred(linkedid, sender, receiver)
            case d.AgentLeftCall(linkedid=linkedid, agent=device):
                return self._end(device, linkedid)
            case d.CallEnded(linkedid=linkedid):
                return self._hung_up(linkedid)
            case d.CustomerEvent(customer=customer) if customer:
                return self._refresh(customer)
        return []

    def _refresh(self, customer: str) -> list[Decision]:
        """The customer's history changed: load it again for every call whose pop shows them."""
        seen: dict[str, Prefetch] = {}
        for pop in self._shown.values():
            if pop.linkedid not in seen and customer in (pop.customer, _customer_id(pop.data)):
                seen[pop.linkedid] = Prefetch(pop.linkedid, pop.customer, pop.caller_num)
        return list(seen.values())

    def _queued(self, linkedid: str, queue: str) -> list[Decision]:
        call = self._calls.setdefault(linkedid, _Call())
        call.queue = queue
        if call.prefetched:
            return []
        call.prefetched = True
        return [Prefetch(linkedid, call.customer, call.caller_num)]

    def _ring(
        self, linkedid: str, device: str, queue: str, note: TransferNote | None = None
    ) -> list[Decision]:
        shown = self._shown.get(device)
        if shown is not None and shown.linkedid == linkedid and not shown.ended:
            return []  # one pop per call and agent
        out: list[Decision] = []
        for other, pop in self._pops_of(linkedid):  # the ring moved on from an agent who did not answer
            if other != device and not pop.answered and not pop.ended:
                out += self._close(other, linkedid, RING_MOVED_ON)
        call = self._calls.setdefault(linkedid, _Call())
        if queue and not call.queue:
            call.queue = queue
        if not call.prefetched:
            out += self._queued(linkedid, call.queue)
        pop = Pop(
            linkedid=linkedid,
            caller_num=call.caller_num,
            caller_name=call.caller_name,
            queue=call.queue,
            customer=call.customer,
            tier=call.tier,
            identified_by=call.identified_by,
            crm_url=crm_url(self.crm_template(call.queue), call.caller_num, call.customer, linkedid),
            data=call.data,
            note=note or call.forwarded,
        )
        self._show(device, pop)
        out.append(PopOpened(device, pop))
        return out

    def _transferred(self, linkedid: str, sender: str, receiver: str) -> list[Decision]:
        call = self._calls.setdefault(linkedid, _Call())
        note = call.notes.get(sender)
        if not receiver:  # to a queue: the note waits for the agent who gets the call there
            call.forwarded = note
            return []
        out = self._ring(linkedid, receiver, call.queue, note)
        if note is not None and not any(isinstance(m, PopOpened) for m in out):  # already ringing there
            out += self._update_at(receiver, linkedid, lambda pop: replace(pop, note=note))
        return out

    def _hung_up(self, linkedid: str) -> list[Decision]:
        out: list[Decision] = []
        for device, pop in self._pops_of(linkedid):
            if not pop.ended:
                # an answered call's pop stays for wrap-up; a ring the caller gave up on goes away
                hang_up = self._end if pop.answered else functools.partial(self._close, reason=CALLER_HUNG_UP)
                out += hang_up(device, linkedid)
        self._calls.pop(linkedid, None)
        return out

    def _close(self, device: str, linkedid: str, reason: str) -> list[Decision]:
        pop = self._shown.get(device)
        if pop is None or pop.linkedid != linkedid:
            return []
        self._hide(device)
        return [PopClosed(device, linkedid, reason)]

    def _end(self, device: str, linkedid: str) -> list[Decision]:
        pop = self._shown.get(device)
        if pop is None or pop.linkedid != linkedid or pop.ended:
            return []
        self._shown[device] = replace(pop, ended=True)
        return [PopEnded(device, linkedid)]

    def _update(self, linkedid: str, change: Callable[[Pop], Pop]) -> list[PopMessage]:
        out: list[PopMessage] = []
        for device, _ in self._pops_of(linkedid):
            out += self._update_at(device, linkedid, change)
        return out

    def _update_at(self, device: str, linkedid: str, change: Callable[[Pop], Pop]) -> list[PopMessage]:
        pop = self._shown.get(device)
        if pop is None or pop.linkedid != linkedid:
            return []
        changed = change(pop)
        if changed == pop:
            return []
        self._shown[device] = changed
        return [PopUpdated(device, changed)]

    def _pops_of(self, linkedid: str) -> list[tuple[str, Pop]]:
        """The devices showing a pop of the call, with it (an index: a center shows thousands of pops)."""
        return [(device, self._shown[device]) for device in sorted(self._showing.get(linkedid, ()))]

    def _show(self, device: str, pop: Pop) -> None:
        self._hide(device)
        self._shown[device] = pop
        self._showing.setdefault(pop.linkedid, set()).add(device)

    def _hide(self, device: str) -> None:
        pop = self._shown.pop(device, None)
        if pop is None:
            return
        devices = self._showing[pop.linkedid]
        devices.discard(device)
        if not devices:
            del self._showing[pop.linkedid]


def _customer_id(data: Mapping[str, Any] | None) -> str:
    """The id of the customer in a pop's loaded data ('' when none)."""
    customer = data.get("customer") if data is not None else None
    return str(customer.get("id", "")) if isinstance(customer, Mapping) else ""
