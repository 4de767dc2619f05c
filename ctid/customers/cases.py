"""A customer's service cases as the book hands them out: what was opened, and each step taken since."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One thing done on a case: when, by whom, what, and what is to happen next ("" when nothing)."""

    at: datetime
    who: str
    done: str
    next_step: str = ""


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """An open service case with its steps in the order they were taken."""

    id: int
    customer: str
    subject: str
    opened_at: datetime
    steps: tuple[CaseStep, ...]
