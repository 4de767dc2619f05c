"""Alembic environment of the interaction log: runs on the connection `upgrade_database` hands over.

The next revision is written by comparing the models with a database at head, e.g.
`command.revision(config, "what changed", autogenerate=True)` with the same `config` as `upgrade_database`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from ctid.db import Base
from reports.log import LOG_TABLES, VERSION_TABLE


def _ours(name: str | None, type_: str, _parents: object) -> bool:
    # Other packages' tables share Base.metadata and the database; autogenerate must leave them alone.
    return type_ != "table" or name in LOG_TABLES


connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
    include_name=_ours,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
