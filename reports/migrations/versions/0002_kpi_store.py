"""The KPI folds' results kept as the log is written: contacts, agent_legs, agent_spans.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23

A log written before this revision is folded into the new tables by revision 0003 (which adds the last
table the fold writes).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("server", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("arrive", sa.Double(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("dnis", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("outcome_at", sa.Double(), nullable=True),
        sa.Column("wait", sa.Double(), nullable=True),
        sa.Column("short", sa.Boolean(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("deflected_to", sa.String(), nullable=False),
        sa.Column("deflect_reason", sa.String(), nullable=False),
        sa.Column("callback_accepted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("server", "call_id", "seq"),
        if_not_exists=True,
    )
    op.create_index("ix_contacts_arrive", "contacts", ["arrive"], if_not_exists=True)
    op.create_table(
        "agent_legs",
        sa.Column("server", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("connected_at", sa.Double(), nullable=False),
        sa.Column("left_at", sa.Double(), nullable=True),
        sa.Column("held_since", sa.Double(), nullable=True),
        sa.Column("holds", sa.JSON(), nullable=False),
        sa.Column("hold_s", sa.Double(), nullable=False),
        sa.Column("transferred", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("server", "call_id", "seq"),
        if_not_exists=True,
    )
    for column in ("connected_at", "left_at"):
        op.create_index(f"ix_agent_legs_{column}", "agent_legs", [column], if_not_exists=True)
    op.create_table(
        "agent_spans",
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("begin", sa.Double(), nullable=True),
        sa.Column("finish", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("agent", "seq"),
        if_not_exists=True,
    )
    op.create_index("ix_agent_spans_begin", "agent_spans", ["begin"], if_not_exists=True)
    op.create_index(
        "ix_agent_spans_open",
        "agent_spans",
        ["agent"],
        postgresql_where=sa.text("finish IS NULL"),
        sqlite_where=sa.text("finish IS NULL"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("agent_spans")
    op.drop_table("agent_legs")
    op.drop_table("contacts")
