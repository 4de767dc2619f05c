"""Domain events: what happened to a call or an agent, in contact-center words, derived from AMI events."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"
    INTERNAL = "internal"


class TransferKind(StrEnum):
    BLIND = "blind"
    ATTENDED = "attended"


@dataclass(frozen=True, slots=True)
class DomainEvent:
    at: float
    linkedid: str

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in self.__dataclass_fields__:
            out[name] = getattr(self, name)
        return out


@dataclass(frozen=True, slots=True)
class CallArrived(DomainEvent):
    """A contact reached ctid: a caller entered ctid-inbound, or an answered dialer call ctid-outbound."""

    uniqueid: str
    channel: str
    direction: Direction
    caller_num: str
    caller_name: str
    dnis: str
    adopted: bool = False  # taken up by a resync: a call already under way, not a new arrival


@dataclass(frozen=True, slots=True)
class CallWaiting(DomainEvent):
    """The contact waits in a queue (entered ctid-wait); `arrived_at` is the queue arrival kept across RNA."""

    uniqueid: str
    queue: str
    arrived_at: float
    requeued: bool  # back after a ring-no-answer: same contact, same arrival
    adopted: bool = False  # taken up by a resync: a contact the log holds open is the same contact


@dataclass(frozen=True, slots=True)
class QueueAssigned(DomainEvent):
    """ctid chose the contact's queue: the dialplan named none (its IVR step failed, or ctid was away) or one
    routing.yaml does not have. ctid sets CTID_QUEUE on the channel to match."""

    uniqueid: str
    channel: str
    queue: str
    asked: str  # CTID_QUEUE as the dialplan left it ('' when unset)


@dataclass(frozen=True, slots=True)
class AgentRinging(DomainEvent):
    uniqueid: str
    agent: str  # the agent's device, e.g. PJSIP/1001
    agent_channel: str
    queue: str


@dataclass(frozen=True, slots=True)
class RingNoAnswer(DomainEvent):
    agent: str
    status: str  # DialStatus: NOANSWER, BUSY, CHANUNAVAIL, CONGESTION
    ring_s: float


@dataclass(frozen=True, slots=True)
class CallConnected(DomainEvent):
    """An agent's leg was bridged with the contact."""

    agent: str
    agent_channel: str
    queue: str
    wait_s: float
    adopted: bool = False  # taken up by a resync: an agent leg the log holds open goes on


@dataclass(frozen=True, slots=True)
class AgentLeftCall(DomainEvent):
    """The agent's leg left the contact (hung up, transferred, or the caller left): wrap-up starts."""

    agent: str


@dataclass(frozen=True, slots=True)
class CallHeld(DomainEvent):
    channel: str


@dataclass(frozen=True, slots=True)
class CallResumed(DomainEvent):
    channel: str
    held_s: float


@dataclass(frozen=True, slots=True)
class CallTransferred(DomainEvent):
    transfer: TransferKind
    from_agent: str
    to_agent: str  # '' for a transfer to a queue
    to_queue: str  # '' for a transfer to an agent


@dataclass(frozen=True, slots=True)
class CallAbandoned(DomainEvent):
    """The caller hung up while waiting, ringing an agent included."""

    queue: str
    wait_s: float
    while_ringing: bool


@dataclass(frozen=True, slots=True)
class CallDeflected(DomainEvent):
    """Routing sent the contact out of its queue without an agent (METRICS.md "deflected")."""

    queue: str
    to: str  # callback, voicemail, hangup, or queue:<name> for a move to another queue
    reason: str  # closed, overflow, max_wait ('' when not given)
    wait_s: float


@dataclass(frozen=True, slots=True)
class CallEnded(DomainEvent):
    """The call is over; disposition `lost` when it ended out of ctid's sight (between two resyncs)."""

    cause: int
    ended_by: str  # 'caller', 'agent', 'system' or '' when unknown
    disposition: str  # answered, abandoned, deflected, ivr, failed, unanswered, lost


@dataclass(frozen=True, slots=True)
class OriginateFailed(DomainEvent):
    """A dialer Originate did not reach the callee (linkedid '' when no channel survived)."""

    action_id: str
    channel: str
    reason: int  # 3 no answer, 5 busy, 8 congestion, 0 failure
    reason_text: str


@dataclass(frozen=True, slots=True)
class AgentDeviceChanged(DomainEvent):
    """A device's state as Asterisk sees it (DeviceStateChange); linkedid is ''."""

    device: str
    state: str


@dataclass(frozen=True, slots=True)
class AgentStateChanged(DomainEvent):
    """Routing moved an agent to another state (linkedid: the call behind it, or '')."""

    agent: str  # agent id from routing.yaml
    device: str
    state: str  # ctid.agents.AgentState value (older log rows: ctid.agents.LEGACY)
    reason: str  # pause reason code, '' otherwise
    previous: str


@dataclass(frozen=True, slots=True)
class WorkItemMarked(DomainEvent):
    """A supervisor dealt with an abandoned caller on the wallboard's worklist (linkedid: that call)."""

    action: str  # handled, callback
    by: str = ""  # the user who marked it ('' in rows logged before logins existed)


@dataclass(frozen=True, slots=True)
class UserLoggedIn(DomainEvent):
    """A user logged in to ctid's web side (linkedid is '')."""

    user: str
    role: str
    address: str


@dataclass(frozen=True, slots=True)
class UserLoggedOut(DomainEvent):
    user: str
    address: str


@dataclass(frozen=True, slots=True)
class LoginFailed(DomainEvent):
    """A login refused: `reason` is bad_login (unknown user, wrong password, disabled) or slowed (too many
    failures in a row). The password tried is never kept."""

    user: str
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class AdminAction(DomainEvent):
    """An admin changed ctid: a routing reload or rollback over HTTP, users managed with `ctid user`."""

    user: str
    action: str  # e.g. "POST /api/routing/reload", "user add"
    target: str  # what it acted on ('' when the action says it all)
    status: int  # the HTTP answer; 0 for a command-line action


@dataclass(frozen=True, slots=True)
class MonitoringStopped(DomainEvent):
    """ctid stops watching a server (a clean shutdown), at the server's time; linkedid is ''. The next start
    opens its data gap here: the last thing the log holds from the server."""


@dataclass(frozen=True, slots=True)
class CallVariable(DomainEvent):
    """A CTID_* variable on the contact changed (CTID_QUEUE, CTID_CUSTOMER, CTID_TIER, ...)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class CustomerEvent(DomainEvent):
    """Something written to a customer's history (origin `customers`). linkedid is '', so the log keeps no
    call row per origin; `call` names the call it was written during ('' when none)."""

    customer: str  # the customer's id ('' for a disposition of a call with no customer)
    call: str
    agent: str  # the author's agent id ('' for a supervisor or admin)
    user: str  # the logged-in author


@dataclass(frozen=True, slots=True)
class CustomerCreated(CustomerEvent):
    """A customer added over the API."""


@dataclass(frozen=True, slots=True)
class NoteAdded(CustomerEvent):
    note_id: int  # the text stays in the customer book, out of the log


@dataclass(frozen=True, slots=True)
class QuoteRecorded(CustomerEvent):
    quote_id: int
    status: str  # offered, accepted, declined, expired


@dataclass(frozen=True, slots=True)
class CaseOpened(CustomerEvent):
    case_id: int
    case_kind: str  # complaint, inquiry, request
    status: str


@dataclass(frozen=True, slots=True)
class CaseStepAdded(CustomerEvent):
    case_id: int
    step_id: int
    status: str  # the case's status after the step


@dataclass(frozen=True, slots=True)
class LifecycleChanged(CustomerEvent):
    previous: str
    stage: str


@dataclass(frozen=True, slots=True)
class CallDisposed(CustomerEvent):
    """The agent who took `call` (or a supervisor) chose its disposition code (from routing.yaml)."""

    for_agent: str  # the agent whose part of the call it disposes
    code: str


ORIGINATE_REASONS = {
    0: "failed",
    1: "hangup",
    3: "no-answer",
    4: "answered",
    5: "busy",
    8: "congestion",
}


@dataclass(frozen=True, slots=True)
class OpenCall:
    """A call the interaction log still holds open, read back at start so a resync takes it up as the same
    call (or ends it, when Asterisk no longer has it)."""

    linkedid: str
    queued: bool  # the log has a queue stay (contact) for it
    arrived_at: float | None  # its open contact's arrive; None when no contact is open
    queue: str = ""
