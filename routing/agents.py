"""Agent states as ctid keeps them: set by agents (REST, feature codes) and by what their calls do.

Pure: domain events and commands come in with the time; `views(now)` gives routing its AgentViews.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from ctid.errors import CtidError
from ctid.state import domain as d
from routing.model import AgentStatus, AgentView

NO_ANSWER = "no-answer"
# device states that mean the phone is in use: an agent busy on a personal call is not offered calls
BUSY_DEVICE_STATES = frozenset({"INUSE", "BUSY", "RINGING", "RINGINUSE", "ONHOLD"})
WORKING = frozenset({AgentStatus.RESERVED, AgentStatus.ON_CALL, AgentStatus.ON_HOLD, AgentStatus.WRAP_UP})
SETTABLE = frozenset({AgentStatus.READY, AgentStatus.PAUSED, AgentStatus.LOGGED_OUT})
ROUNDING_S = 1e-6  # occupancy's running totals: anything smaller is float rounding


class AgentStateError(CtidError):
    """A state change an agent may not make now (e.g. ready while on a call)."""


@dataclass(slots=True)
class AgentRecord:
    agent_id: str
    device: str
    name: str = ""
    skills: tuple[tuple[str, int], ...] = ()
    queues: tuple[str, ...] = ()
    status: AgentStatus = AgentStatus.LOGGED_OUT
    since: float = 0.0
    pause_reason: str = ""
    wrap_until: float | None = None
    call: str = ""  # linkedid of the call the agent is reserved for or talking on
    device_busy: bool = False
    last_offered_seq: int = 0
    quality: float = 0.0
    # where the agent goes after a call: ready, or back to the pause/logout a direct call interrupted
    resume: tuple[AgentStatus, str] = (AgentStatus.READY, "")
    calls_handled: int = 0  # calls connected to this agent, for fewest_calls
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
    """Every configured agent's state, occupancy and offer order."""

    def __init__(
        self, agents: list[AgentRecord], *, window_s: float = 3600.0, wrap_up_s: float = 30.0
    ) -> None:
        self.agents = {a.agent_id: a for a in agents}
        self.by_device = {a.device: a for a in agents}
        self.window_s = window_s
        self.wrap_up_s = wrap_up_s
        self._offers = 0
        self.changes: list[d.AgentStateChanged] = []  # state changes not yet taken by the interaction log

    # ---- what agents ask ----------------------------------------------------------------------------

    def set_state(self, agent_id: str, status: AgentStatus, now: float, reason: str = "") -> AgentRecord:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise AgentStateError(f"no agent {agent_id}")
        if status not in SETTABLE:
            raise AgentStateError(f"{status.value} is set by calls, not by agents")
        if agent.status in (AgentStatus.RESERVED, AgentStatus.ON_CALL, AgentStatus.ON_HOLD):
            raise AgentStateError(f"agent {agent_id} is on a call")
        if status is AgentStatus.PAUSED and not reason:
            raise AgentStateError("a pause needs a reason code")
        self._move(agent, status, now, reason if status is AgentStatus.PAUSED else "")
        return agent

    # ---- what calls do ------------------------------------------------------------------------------

    def offered(self, agent_id: str, linkedid: str, now: float) -> None:
        """Routing chose this agent: reserved until the phone answers or rings out."""
        agent = self.agents[agent_id]
        self._interrupt(agent)
        self._offers += 1
        agent.last_offered_seq = self._offers
        agent.call = linkedid
        self._move(agent, AgentStatus.RESERVED, now)

    def apply(self, event: d.DomainEvent, now: float, wrap_up_s: float | None = None) -> None:
        """Fold one call event into the agents' states; `wrap_up_s` is the call's queue's wrap-up."""
        if isinstance(event, d.AgentRinging):
            agent = self.by_device.get(event.agent)
            if agent is not None and agent.status is not AgentStatus.RESERVED:
                self._interrupt(agent)
                agent.call = event.linkedid
                self._move(agent, AgentStatus.RESERVED, now)
        elif isinstance(event, d.CallConnected):
            agent = self.by_device.get(event.agent)
            if agent is not None:
                self._interrupt(agent)
                agent.call = event.linkedid
                agent.calls_handled += 1
                self._move(agent, AgentStatus.ON_CALL, now)
        elif isinstance(event, d.RingNoAnswer):
            agent = self.by_device.get(event.agent)
            if agent is not None and agent.call == event.linkedid:
                agent.call = ""
                self._move(agent, AgentStatus.PAUSED, now, NO_ANSWER)  # ring-no-answer recovery
        elif isinstance(event, d.AgentLeftCall):
            agent = self.by_device.get(event.agent)
            if agent is not None and agent.call == event.linkedid:
                agent.call = ""
                agent.wrap_until = now + (self.wrap_up_s if wrap_up_s is None else wrap_up_s)
                self._move(agent, AgentStatus.WRAP_UP, now)
        elif isinstance(event, d.CallHeld | d.CallResumed):
            agent = next((a for a in self.agents.values() if a.call == event.linkedid), None)
            if agent is not None and agent.status in (AgentStatus.ON_CALL, AgentStatus.ON_HOLD):
                held = isinstance(event, d.CallHeld)
                self._move(agent, AgentStatus.ON_HOLD if held else AgentStatus.ON_CALL, now)
        elif isinstance(event, d.CallAbandoned | d.CallEnded):
            # a reservation whose caller left before the phone answered
            for agent in self.agents.values():
                if agent.call == event.linkedid and agent.status is AgentStatus.RESERVED:
                    agent.call = ""
                    self._move(agent, agent.resume[0], now, agent.resume[1])
        elif isinstance(event, d.AgentDeviceChanged):
            agent = self.by_device.get(event.device)
            if agent is not None:
                agent.device_busy = event.state in BUSY_DEVICE_STATES

    def release(self, agent_id: str, linkedid: str, now: float) -> None:
        """An offer that never reached the phone (the Redirect failed): the agent is ready again."""
        agent = self.agents.get(agent_id)
        if agent is not None and agent.call == linkedid and agent.status is AgentStatus.RESERVED:
            agent.call = ""
            self._move(agent, AgentStatus.READY, now)

    def tick(self, now: float) -> None:
        """Wrap-ups that ran out make their agents ready."""
        for agent in self.agents.values():
            if (
                agent.status is AgentStatus.WRAP_UP
                and agent.wrap_until is not None
                and now >= agent.wrap_until
            ):
                self._move(agent, agent.resume[0], agent.wrap_until, agent.resume[1])

    @staticmethod
    def _interrupt(agent: AgentRecord) -> None:
        """A call reached an agent who was not ready (a direct call): after it they return to that state."""
        if agent.status in (AgentStatus.LOGGED_OUT, AgentStatus.PAUSED):
            agent.resume = (agent.status, agent.pause_reason)
        elif agent.status is AgentStatus.READY:
            agent.resume = (AgentStatus.READY, "")

    # ---- what routing reads --------------------------------------------------------------------------

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
        if agent.status is AgentStatus.READY or agent.status in WORKING:
            current = max(0.0, now - max(agent.since, start))
            if agent.status is AgentStatus.READY:
                idle += current
            else:
                working += current
        # what adding and subtracting a day of intervals leaves over is rounding, not time worked
        working = working if working > ROUNDING_S else 0.0
        idle = idle if idle > ROUNDING_S else 0.0
        total = working + idle
        return working / total if total > 0 else 0.0

    def views(self, now: float, *, offerable_only: bool = False) -> tuple[AgentView, ...]:
        """Every agent as routing sees them; `offerable_only`: just the ready ones a call may be offered to
        (all `decide` looks at), which spares a routing pass the occupancy of every busy agent."""
        out = []
        ready = AgentStatus.READY
        for agent in self.agents.values():
            status = agent.status
            if status is ready and agent.device_busy:
                status = AgentStatus.ON_CALL  # a personal call: not offered anything
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

    def _move(self, agent: AgentRecord, status: AgentStatus, now: float, reason: str = "") -> None:
        if status is not agent.status or reason != agent.pause_reason:
            self.changes.append(
                d.AgentStateChanged(
                    now, agent.call, agent.agent_id, agent.device, status.value, reason, agent.status.value
                )
            )
        if agent.status not in (AgentStatus.LOGGED_OUT, AgentStatus.PAUSED):
            self._remember(agent, (agent.since, now, agent.status in WORKING), now)
        agent.status = status
        agent.since = now
        agent.pause_reason = reason
        if status is not AgentStatus.WRAP_UP:
            agent.wrap_until = None
