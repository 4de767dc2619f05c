"""Alembic migrations of the interaction log's tables; `reports.log.upgrade_database` runs them."""
