"""Revisions of the interaction log's tables, oldest first."""
