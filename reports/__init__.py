"""reports: KPIs folded from interaction-log rows (pure). The log itself (SQL) is `reports.log`, its
read models `reports.store`, report rendering `reports.report`, the wallboard `reports.wallboard`; this door
imports none of them."""

from reports.kpi import (
    DEFAULT_SETTINGS,
    AgentFold,
    Contact,
    ContactFold,
    KpiSettings,
    Outcome,
    QueueTally,
    agent_performance,
    contacts,
    counts_of,
    interval_report,
    percentile,
    queue_figures,
    queue_summary,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "AgentFold",
    "Contact",
    "ContactFold",
    "KpiSettings",
    "Outcome",
    "QueueTally",
    "agent_performance",
    "contacts",
    "counts_of",
    "interval_report",
    "percentile",
    "queue_figures",
    "queue_summary",
]
