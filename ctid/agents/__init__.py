"""ctid.agents: the agent book every component reads and changes agents through, with their one vocabulary.

Pure: no database or web imports here; `ctid.agents.store` saves the book across restarts.
"""

from ctid.agents.book import (
    NO_ANSWER,
    AgentBook,
    AgentRecord,
    AgentStateError,
    AgentView,
    Reservation,
    Restored,
    SavedAgentState,
    restore_agents,
)
from ctid.agents.state import (
    LEGACY,
    OCCUPIED,
    ON_A_CALL,
    ON_CALL,
    SETTABLE,
    STAFFED,
    AgentState,
    agent_state,
)

__all__ = [
    "LEGACY",
    "NO_ANSWER",
    "OCCUPIED",
    "ON_A_CALL",
    "ON_CALL",
    "SETTABLE",
    "STAFFED",
    "AgentBook",
    "AgentRecord",
    "AgentState",
    "AgentStateError",
    "AgentView",
    "Reservation",
    "Restored",
    "SavedAgentState",
    "agent_state",
    "restore_agents",
]
