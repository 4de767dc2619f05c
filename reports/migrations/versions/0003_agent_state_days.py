"""Agent state seconds per UTC day (`agent_state_days`), which a month's agent report sums.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23

A log whose store was never folded (written before revision 0002) is folded here, in log order; a store
folded already gets its day totals from the stored spans.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "agent_state_days",
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("day", sa.Double(), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("first_begin", sa.Double(), nullable=False),
        sa.Column("latest", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("agent", "device", "state", "reason", "day"),
        if_not_exists=True,
    )
    op.create_index("ix_agent_state_days_day", "agent_state_days", ["day"], if_not_exists=True)
    from reports.store import fill_state_days, rebuild

    connection = op.get_bind()
    folded = connection.execute(sa.text("SELECT 1 FROM agent_spans LIMIT 1")).first() is not None
    logged = connection.execute(sa.text("SELECT 1 FROM interaction_events LIMIT 1")).first() is not None
    if folded:
        fill_state_days(connection)
    elif logged:
        rebuild(connection)


def downgrade() -> None:
    op.drop_table("agent_state_days")
