"""The agent book: every agent's identity, device, skills, state, reservation and occupancy, shared by
the components that route calls to agents (routing, the dialer), show them (wallboard, API) or save them.

Pure: domain events and the agents' own changes come in with the time. An agent is taken for a call only
through `reserve`, so two components can never both take the same agent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ctid.agents.state import OCCUPIED, ON_A_CALL, ON_CALL, SETTABLE, AgentState
from ctid.errors import CtidError
from ctid.state import BUSY_DEVICE_STATES
from ctid.state import domain as d

NO_ANSWER = "no-answer"
ROUNDING_S = 1e-6  # occupancy's running totals: anything smaller is float rounding


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent at one instant, as the components that choose agents (routing, the dialer) see them."""

    agent_id: str
    device: str  # e.g. PJSIP/1001: what Dial() rings
    status: AgentState
    status_since: float
    skills: tuple[tuple[str, int], ...] = ()
    queues: tuple[str, ...] = ()
    occupancy: float = 0.0  # (talk + hold + wrap) / (that + ready) over the sliding window, 0..1
    quality: float = 0.0  # CSAT / first-call resolution blend, 0..1, for best_for_tier
    last_offered_seq: int = 0  # for round_robin: when this agent was last reserved
    calls_handled: int = 0  # for fewest_calls: calls connected to this agent so far


class AgentStateError(CtidError):
    """A state change an agent may not make now (e.g. ready while on a call)."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One component's hold on one agent for one call, from `reserve` until released or the call moves on."""

    agent_id: str
    owner: str  # the component that took the agent: "routing", "dialer"
    linkedid: str
    at: float


@dataclass(slots=True)
class AgentRecord:
    agent_id: str
    device: str
    name: str = ""
    skills: tuple[tuple[str, int], ...] = ()
    queues: tuple[str, ...] = ()
    status: AgentState = AgentState.LOGGED_OUT
    since: float = 0.0
    pause_reason: str = ""
    wrap_until: float | None = None
    call: str = ""  # linkedid of the call the agent is reserved for or talking on
    reservation: Reservation | None = None  # while reserved or ringing for a component's call
    device_busy: bool = False
    last_offered_seq: int = 0
    quality: float = 0.0
    # where the agent goes after a call: ready, or back to the pause/logout a direct call interrupted
    resume: tuple[AgentState, str] = (AgentState.READY, "")
    calls_handled: int = 0  # calls connected to this agent, for fewest_calls
    talking: AgentState = AgentState.ON_CALL_INBOUND  # the on-call state a resumed hold goes back to
    # (start, end, working) intervals of logged-in time, for occupancy over the sliding window, with
    # their working and idle totals kept as they come and go so occupancy never sums the whole window
    history: deque[tuple[float, float, bool]] = field(default_factory=deque)
    history_working_s: float = 0.0
    history_idle_s: float = 0.0

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "id": self.agent_id,
            "name": self.name,
            "device": self.device,
            "status": self.status.value,
            "since": self.since,
            "time_in_state_s": round(max(0.0, now - self.since), 3),
            "pause_reason": self.pause_reason,
            "wrap_until": self.wrap_until,
            "call": self.call,
            "personal_call": self.device_busy and not self.call,
            "queues": list(self.queues),
            "skills": dict(self.skills),
        }


class AgentBook:
    """Every configured agent's state, reservation, occupancy and offer order."""

    def __init__(
        self, agents: list[AgentRecord], *, window_s: float = 3600.0, wrap_up_s: float = 30.0
    ) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.by_device = {a.device: a for a in agents}
        self.window_s = window_s
        self.wrap_up_s = wrap_up_s
        self._offers = 0
        self._outbound: set[str] = set()  # linkedids of live calls the dialer placed (CallArrived outbound)
        self.changes: list[d.AgentStateChanged] = []  # state changes not yet taken by the interaction log
        self.touched: set[str] = set()  # agents moved since their state was last saved (ctid.agents.store)
        # agents restored in a working state, until the AMI resync shows whether their phone is on a call
        self.unconfirmed: set[str] = set()

    # ---- what agents ask ----------------------------------------------------------------------------

    def set_state(self, agent_id: str, status: AgentState, now: float, reason: str = "") -> AgentRecord:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise AgentStateError(f"no agent {agent_id}")
        if status not in SETTABLE:
            raise AgentStateError(f"{status.value} is set by calls, not by agents")
        if agent.status in ON_A_CALL:
            raise AgentStateError(f"agent {agent_id} is on a call")
        if status is AgentState.PAUSED and not reason:
            raise AgentStateError("a pause needs a reason code")
        self._move(agent, status, now, reason if status is AgentState.PAUSED else "")
        return agent

    # ---- what calls do ------------------------------------------------------------------------------

    def reserve(self, agent_id: str, owner: str, linkedid: str, now: float) -> Reservation | None:
        """`owner` takes a ready agent, not on a personal call, for call `linkedid`: reserved until their
        phone rings and answers, rings out, the caller leaves, or `release`. None if the agent is not free
        (unknown, not ready, on a personal call, or already reserved, by this owner or another)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.status is not AgentState.READY or agent.device_busy:
            return None
        self._interrupt(agent)
        self._offers += 1
        agent.last_offered_seq = self._offers
        agent.call = linkedid
        self._move(agent, AgentState.RESERVED, now)
        agent.reservation = Reservation(agent_id, owner, linkedid, now)
        return agent.reservation

    def apply(self, event: d.DomainEvent, now: float, wrap_up_s: float | None = None) -> None:
        """Fold one call event into the agents' states; `wrap_up_s` is the call's queue's wrap-up."""
        if isinstance(event, d.CallArrived):
            if event.direction is d.Direction.OUTBOUND:
                self._outbound.add(event.linkedid)
        elif isinstance(event, d.AgentRinging):
            agent = self.by_device.get(event.agent)
            if agent is not None:
                self._ringing(agent, event.linkedid, now)
        elif isinstance(event, d.CallConnected):
            agent = self.by_device.get(event.agent)
            if agent is not None and not (
                agent.call == event.linkedid and agent.status in (*ON_CALL, AgentState.ON_HOLD)
            ):  # (the same call announced again, by a resync after a restart, changes nothing)
                self._interrupt(agent)
                agent.call = event.linkedid
                agent.calls_handled += 1
                agent.talking = self.talking_state(event.linkedid)
                self._move(agent, agent.talking, now)
        elif isinstance(event, d.RingNoAnswer):
            agent = self.by_device.get(event.agent)
            if agent is not None and agent.call == event.linkedid:
                agent.call = ""
                self._move(agent, AgentState.PAUSED, now, NO_ANSWER)  # ring-no-answer recovery
        elif isinstance(event, d.AgentLeftCall):
            agent = self.by_device.get(event.agent)
            if agent is not None and agent.call == event.linkedid:
                agent.call = ""
                agent.wrap_until = now + (self.wrap_up_s if wrap_up_s is None else wrap_up_s)
                self._move(agent, AgentState.WRAP_UP, now)
        elif isinstance(event, d.CallHeld | d.CallResumed):
            agent = next((a for a in self.agents.values() if a.call == event.linkedid), None)
            if agent is not None and agent.status in (*ON_CALL, AgentState.ON_HOLD):
                held = isinstance(event, d.CallHeld)
                self._move(agent, AgentState.ON_HOLD if held else agent.talking, now)
        elif isinstance(event, d.CallAbandoned | d.CallEnded):
            if isinstance(event, d.CallEnded):
                self._outbound.discard(event.linkedid)
            # a reservation whose caller left before the phone answered
            for agent in self.agents.values():
                if agent.call == event.linkedid and agent.status in (AgentState.RESERVED, AgentState.RINGING):
                    agent.call = ""
                    self._move(agent, agent.resume[0], now, agent.resume[1])
        elif isinstance(event, d.AgentDeviceChanged):
            agent = self.by_device.get(event.device)
            if agent is not None:
                agent.device_busy = event.state in BUSY_DEVICE_STATES  # a personal call: no reservations

    def _ringing(self, agent: AgentRecord, linkedid: str, now: float) -> None:
        """The agent's phone rings: the call they are reserved for, or a direct call if they were free."""
        if agent.status is AgentState.RESERVED and agent.call == linkedid:
            self._move(agent, AgentState.RINGING, now)
        elif agent.status not in (AgentState.RESERVED, AgentState.RINGING):
            self._interrupt(agent)
            agent.call = linkedid
            self._move(agent, AgentState.RINGING, now)

    def talking_state(self, linkedid: str) -> AgentState:
        """On call outbound if the dialer placed the call (it arrived outbound), else inbound: a caller who
        called in, or a direct call ctid saw no arrival of."""
        outbound = linkedid in self._outbound
        return AgentState.ON_CALL_OUTBOUND if outbound else AgentState.ON_CALL_INBOUND

    def release(self, agent_id: str, linkedid: str, now: float) -> bool:
        """A reservation whose call never reached the phone (e.g. the Redirect failed): the agent is ready
        again and anyone may reserve them. False if they are not reserved for that call (any more)."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.call != linkedid or agent.status is not AgentState.RESERVED:
            return False
        agent.call = ""
        self._move(agent, AgentState.READY, now)
        return True

    def configure(self, records: Sequence[AgentRecord]) -> None:
        """The configured agents (routing.yaml) change: new ones come as given, known ones keep their live
        state with their new name, device, skills and queues, removed ones are dropped once idle."""
        fresh = {r.agent_id: r for r in records}
        for agent_id, record in fresh.items():
            current = self.agents.get(agent_id)
            if current is None:
                self.agents[agent_id] = record
            else:
                current.name, current.skills, current.queues = record.name, record.skills, record.queues
                current.device = record.device
        for agent_id in [a for a in self.agents if a not in fresh]:
            if self.agents[agent_id].status in SETTABLE:
                del self.agents[agent_id]
        self.by_device = {a.device: a for a in self.agents.values()}

    def tick(self, now: float) -> None:
        """Wrap-ups that ran out make their agents ready."""
        for agent in self.agents.values():
            if (
                agent.status is AgentState.WRAP_UP
                and agent.wrap_until is not None
                and now >= agent.wrap_until
            ):
                self._move(agent, agent.resume[0], agent.wrap_until, agent.resume[1])

    # ---- across restarts (ctid.agents.store keeps the saved states) --------------------------------------

    def adopt(self, restored: Restored) -> None:
        """Take the agents `restore_agents` made from the saved states, before routing's first pass."""
        self.agents = {a.agent_id: a for a in restored.records}
        self.by_device = {a.device: a for a in restored.records}
        self.unconfirmed = set(restored.unconfirmed)
        self.changes.extend(restored.changes)
        self.touched.update(c.agent for c in restored.changes)

    def confirm_calls(
        self, on_call: Mapping[str, str], now: float, devices: Collection[str] | None = None
    ) -> int:
        """The AMI resync after a restart says which phones are on a call (device -> linkedid): an agent
        restored in a working state stays on their call if their phone is on one, and otherwise takes the
        state they would after the call (ready, or the pause or logout the call interrupted).

        `devices`: settle only the agents whose phone is one of these (the phones one server's resync
        listed), the others wait for theirs; None settles all. Returns how many agents were released from
        a call that is no longer there.
        """
        released = 0
        for agent_id in sorted(self.unconfirmed):
            agent = self.agents.get(agent_id)
            if agent is not None and devices is not None and agent.device not in devices:
                continue
            self.unconfirmed.discard(agent_id)
            if agent is None or agent.status not in ON_A_CALL:
                continue  # a call event since the restore already settled it
            linkedid = on_call.get(agent.device)
            if linkedid is None:
                agent.call = ""
                self._move(agent, agent.resume[0], now, agent.resume[1])
                released += 1
            elif linkedid != agent.call:
                agent.call = linkedid
                self._move(agent, agent.talking, now)
        return released

    def take_saved(self) -> list[SavedAgentState]:
        """The states of the agents moved since the last call, to be saved."""
        touched, self.touched = self.touched, set()
        return [saved_state(self.agents[a]) for a in sorted(touched) if a in self.agents]

    @staticmethod
    def _interrupt(agent: AgentRecord) -> None:
        """A call reached an agent who was not ready (a direct call): after it they return to that state."""
        if agent.status in (AgentState.LOGGED_OUT, AgentState.PAUSED):
            agent.resume = (agent.status, agent.pause_reason)
        elif agent.status is AgentState.READY:
            agent.resume = (AgentState.READY, "")

    # ---- what routing and the dialer read ------------------------------------------------------------

    def occupancy(self, agent: AgentRecord, now: float) -> float:
        """(talk + hold + wrap) / (that + ready idle) over the sliding window (METRICS.md).

        Paused and logged-out time counts on neither side. Routing asks for every agent on every pass,
        so this starts from the history's running totals and only trims the few oldest intervals that
        reach back past the window; `now` is never before the agent's last state change.
        """
        start = now - self.window_s
        working, idle = agent.history_working_s, agent.history_idle_s
        for begin, end, is_working in agent.history:
            if begin >= start:
                break
            outside = min(end, start) - begin
            if is_working:
                working -= outside
            else:
                idle -= outside
        if agent.status is AgentState.READY or agent.status in OCCUPIED:
            current = max(0.0, now - max(agent.since, start))
            if agent.status is AgentState.READY:
                idle += current
            else:
                working += current
        # what adding and subtracting a day of intervals leaves over is rounding, not time worked
        working = working if working > ROUNDING_S else 0.0
        idle = idle if idle > ROUNDING_S else 0.0
        total = working + idle
        return working / total if total > 0 else 0.0

    def views(self, now: float, *, offerable_only: bool = False) -> tuple[AgentView, ...]:
        """Every agent as routing (or the dialer) sees them; `offerable_only`: just the ready ones a call
        may be offered to (all `decide` looks at), which spares a pass the occupancy of every busy agent."""
        out = []
        ready = AgentState.READY
        for agent in self.agents.values():
            status = agent.status
            if status is ready and agent.device_busy:
                status = (
                    AgentState.ON_CALL_INBOUND
                )  # a personal call (its direction unknown): not offered anything
            if offerable_only and status is not ready:
                continue
            out.append(
                AgentView(
                    agent.agent_id,
                    agent.device,
                    status,
                    agent.since,
                    skills=agent.skills,
                    queues=agent.queues,
                    occupancy=self.occupancy(agent, now),
                    quality=agent.quality,
                    last_offered_seq=agent.last_offered_seq,
                    calls_handled=agent.calls_handled,
                )
            )
        return tuple(out)

    def listing(self, now: float) -> list[dict[str, Any]]:
        """Every agent with their state and occupancy, for the API and the wallboard."""
        return [
            {**agent.to_dict(now), "occupancy": round(self.occupancy(agent, now), 4)}
            for agent in self.agents.values()
        ]

    def _remember(self, agent: AgentRecord, span: tuple[float, float, bool], now: float) -> None:
        """Add a finished interval and forget those wholly outside the window, keeping the totals."""
        agent.history.append(span)
        if span[2]:
            agent.history_working_s += span[1] - span[0]
        else:
            agent.history_idle_s += span[1] - span[0]
        while agent.history and agent.history[0][1] < now - self.window_s:
            begin, end, working = agent.history.popleft()
            if working:
                agent.history_working_s -= end - begin
            else:
                agent.history_idle_s -= end - begin
        if not agent.history:
            agent.history_working_s = agent.history_idle_s = 0.0

    def take_changes(self) -> list[d.AgentStateChanged]:
        changes, self.changes = self.changes, []
        return changes

    def _move(self, agent: AgentRecord, status: AgentState, now: float, reason: str = "") -> None:
        # an event stamped a hair before the change it follows (the phone rings as it is reserved) must not
        # put a state's start before the previous one's: the log's spans and occupancy never run backwards
        now = max(now, agent.since)
        if status is not agent.status or reason != agent.pause_reason:
            self.changes.append(
                d.AgentStateChanged(
                    now, agent.call, agent.agent_id, agent.device, status.value, reason, agent.status.value
                )
            )
        self.touched.add(agent.agent_id)
        if agent.status not in (AgentState.LOGGED_OUT, AgentState.PAUSED):
            self._remember(agent, (agent.since, now, agent.status in OCCUPIED), now)
        agent.status = status
        agent.since = now
        agent.pause_reason = reason
        if status not in (AgentState.RESERVED, AgentState.RINGING):
            agent.reservation = None
        if status is not AgentState.WRAP_UP:
            agent.wrap_until = None


# ---- agent states across restarts ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SavedAgentState:
    """An agent's state as saved for the next start: what they set, their wrap-up, the call they were on."""

    agent_id: str
    device: str
    status: AgentState
    since: float
    pause_reason: str = ""
    wrap_until: float | None = None
    call: str = ""  # linkedid, for reserved, ringing, on call and on hold
    resume: AgentState = AgentState.READY  # what they go back to after the call
    resume_reason: str = ""


def saved_state(agent: AgentRecord) -> SavedAgentState:
    return SavedAgentState(
        agent.agent_id,
        agent.device,
        agent.status,
        agent.since,
        agent.pause_reason,
        agent.wrap_until,
        agent.call,
        agent.resume[0],
        agent.resume[1],
    )


@dataclass(frozen=True, slots=True)
class Restored:
    """The configured agents with their saved states, and what restoring them changed."""

    records: tuple[AgentRecord, ...]
    changes: tuple[d.AgentStateChanged, ...]  # wrap-ups that ran out while ctid was away
    unconfirmed: frozenset[str]  # restored on a call: the AMI resync decides (AgentBook.confirm_calls)
    counts: Mapping[str, int]  # for the agent_states_restored log line


def restore_agents(
    saved: Mapping[str, SavedAgentState], configured: Sequence[AgentRecord], now: float
) -> Restored:
    """Each configured agent as saved before a restart (pure; `configured` as routing.yaml makes them).

    Ready, paused (with the reason) and logged out come back as they were, with their `since`. A wrap-up
    comes back with its deadline, or, if that passed while ctid was away, as the state it ends in (ready, or
    the pause it came from) from the deadline on. Reserved, ringing, on call and on hold come back as saved
    but unconfirmed, until the AMI resync says whether the phone is still on a call. Agents saved but no
    longer configured are ignored; agents never saved start as configured (logged out since `now`).
    """
    records: list[AgentRecord] = []
    changes: list[d.AgentStateChanged] = []
    unconfirmed: set[str] = set()
    counts = {"restored": 0, "new": 0, "wrap_up_ended": 0, "awaiting_resync": 0}
    for record in configured:
        state = saved.get(record.agent_id)
        if state is None:
            records.append(replace(record, history=deque()))
            counts["new"] += 1
            continue
        counts["restored"] += 1
        since = min(state.since, now)  # a clock set back must not put the agent's last change ahead of now
        resume = (state.resume, state.resume_reason if state.resume is AgentState.PAUSED else "")
        status, reason, wrap_until, call = state.status, state.pause_reason, state.wrap_until, state.call
        if status is AgentState.WRAP_UP and (wrap_until is None or wrap_until <= now):
            ended = since if wrap_until is None else max(since, wrap_until)
            changes.append(
                d.AgentStateChanged(
                    ended, "", record.agent_id, record.device, resume[0].value, resume[1], status.value
                )
            )
            status, reason, since, wrap_until = resume[0], resume[1], ended, None
            counts["wrap_up_ended"] += 1
        elif status in ON_A_CALL:
            unconfirmed.add(record.agent_id)
            counts["awaiting_resync"] += 1
        records.append(
            replace(
                record,
                history=deque(),
                status=status,
                since=since,
                pause_reason=reason if status is AgentState.PAUSED else "",
                wrap_until=wrap_until if status is AgentState.WRAP_UP else None,
                call=call if status in ON_A_CALL else "",
                resume=resume,
                talking=status if status in ON_CALL else AgentState.ON_CALL_INBOUND,
            )
        )
    counts["ignored"] = len(set(saved) - {r.agent_id for r in configured})
    for status in AgentState:
        counts[status.value] = sum(1 for r in records if r.status is status)
    return Restored(tuple(records), tuple(changes), frozenset(unconfirmed), counts)
