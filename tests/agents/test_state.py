"""The one agent-state vocabulary: its shared sets and the old values still found in logs and saved rows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ctid.agents import LEGACY, OCCUPIED, ON_A_CALL, SETTABLE, STAFFED, AgentState, agent_state


def test_old_values_read_as_todays_states_and_todays_read_as_themselves() -> None:
    assert LEGACY == {"on_call": AgentState.ON_CALL_INBOUND}
    assert agent_state("on_call") is AgentState.ON_CALL_INBOUND
    assert agent_state("reserved") is AgentState.RESERVED  # still a value: kept as it was
    for state in AgentState:
        assert agent_state(state.value) is state
    with pytest.raises(ValueError):
        agent_state("on_break")


def test_the_sets_agree_with_one_another() -> None:
    assert ON_A_CALL | {AgentState.WRAP_UP} == OCCUPIED
    assert not OCCUPIED & SETTABLE  # an agent never sets a working state themselves
    assert OCCUPIED | {AgentState.READY} == STAFFED
    assert AgentState.RINGING in ON_A_CALL and AgentState.ON_CALL_OUTBOUND in OCCUPIED


def test_the_door_and_the_book_are_pure() -> None:
    """No database, web, routing or reports code comes with them: any component may hold the book."""
    probe = "import sys, ctid.agents; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    for package in ("sqlalchemy", "aiohttp", "routing", "reports"):
        assert f"'{package}'" not in loaded
