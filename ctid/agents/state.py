"""The one vocabulary of an agent's state, with the sets of states that routing, reports and the API share."""

from __future__ import annotations

from enum import StrEnum


class AgentState(StrEnum):
    LOGGED_OUT = "logged_out"
    READY = "ready"
    # a component (routing, the dialer) chose this agent for a call; their phone is not ringing yet
    RESERVED = "reserved"
    RINGING = "ringing"  # their phone rings with a call for them
    # talking: with a caller who called in (or on a call of unknown direction), or on a call the dialer
    # placed (its CallArrived was outbound); see AgentBook.talking_state
    ON_CALL_INBOUND = "on_call_inbound"
    ON_CALL_OUTBOUND = "on_call_outbound"
    ON_HOLD = "on_hold"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"  # with a reason code on the agent's record


ON_CALL = frozenset({AgentState.ON_CALL_INBOUND, AgentState.ON_CALL_OUTBOUND})
# bound to one call: from the reservation until they leave it (agents cannot change their own state then)
ON_A_CALL = frozenset({AgentState.RESERVED, AgentState.RINGING, *ON_CALL, AgentState.ON_HOLD})
# occupied time: the numerator of occupancy, live (AgentBook) and in reports (reports.kpi)
OCCUPIED = frozenset({*ON_A_CALL, AgentState.WRAP_UP})
SETTABLE = frozenset({AgentState.READY, AgentState.PAUSED, AgentState.LOGGED_OUT})  # by agents themselves
# may take calls now or after the one they are on
STAFFED = frozenset(AgentState) - {AgentState.LOGGED_OUT, AgentState.PAUSED}

# values written before the states had a direction and a ringing step: old interaction-log rows and
# saved agent states still hold them ("reserved" then covered the ringing too, so it stays reserved)
LEGACY = {"on_call": AgentState.ON_CALL_INBOUND}


def agent_state(value: str) -> AgentState:
    """A state as stored, old values too; ValueError for one this version does not know."""
    legacy = LEGACY.get(value)
    return legacy if legacy is not None else AgentState(value)
