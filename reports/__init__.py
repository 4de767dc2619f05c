"""reports: the interaction log every domain event is written to, and the KPIs computed from it."""

from reports.log import (
    CallSummary,
    DataGap,
    Interaction,
    InteractionEvent,
    InteractionLog,
    event_row,
    load_events,
    load_gaps,
    upgrade_database,
)

__all__ = [
    "CallSummary",
    "DataGap",
    "Interaction",
    "InteractionEvent",
    "InteractionLog",
    "event_row",
    "load_events",
    "load_gaps",
    "upgrade_database",
]
