"""The interaction log: interaction_events, interactions, data_gaps.

Revision ID: 0001
Revises:
Create Date: 2026-05-20

Tables and indexes are created only if absent: routing's `create_schema` runs `Base.metadata.create_all`,
which makes these same tables from the models when reports.log is imported before it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "interaction_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event_id", sa.String(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("server", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("leg", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("queue", sa.String(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("campaign", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        if_not_exists=True,
    )
    for column, unique in (("event_id", True), ("at", False), ("call_id", False), ("kind", False)):
        op.create_index(
            f"ix_interaction_events_{column}",
            "interaction_events",
            [column],
            unique=unique,
            if_not_exists=True,
        )
    op.create_table(
        "interactions",
        sa.Column("server", sa.String(), nullable=False),
        sa.Column("call_id", sa.String(), nullable=False),
        sa.Column("direction", sa.String(), nullable=False),
        sa.Column("caller_num", sa.String(), nullable=False),
        sa.Column("dnis", sa.String(), nullable=False),
        sa.Column("first_queue", sa.String(), nullable=False),
        sa.Column("last_queue", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=False),
        sa.Column("customer", sa.String(), nullable=False),
        sa.Column("campaign", sa.String(), nullable=False),
        sa.Column("agents", sa.JSON(), nullable=False),
        sa.Column("arrived_at", sa.Double(), nullable=True),
        sa.Column("answered_at", sa.Double(), nullable=True),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("disposition", sa.String(), nullable=False),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("last_event_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("server", "call_id"),
        if_not_exists=True,
    )
    op.create_index("ix_interactions_arrived_at", "interactions", ["arrived_at"], if_not_exists=True)
    op.create_table(
        "data_gaps",
        sa.Column("server", sa.String(), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("server", "start"),
        if_not_exists=True,
    )


def downgrade() -> None:
    op.drop_table("data_gaps")
    op.drop_table("interactions")
    op.drop_table("interaction_events")
