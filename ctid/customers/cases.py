"""A customer's service cases as the book hands them out: what was opened, and each step taken since."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class CaseKind(enum.StrEnum):
    COMPLAINT = "complaint"
    INQUIRY = "inquiry"
    REQUEST = "request"


class CaseStatus(enum.StrEnum):
    """Where a case stands; `resolved` closes it."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    WAITING_FOR_CUSTOMER = "waiting_for_customer"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class CaseStep:
    """One thing done on a case: when, by whom, what, what is to happen next ("" when nothing), and the
    case's status after it ("" in steps recorded before cases had one)."""

    at: datetime
    who: str
    done: str
    next_step: str = ""
    status: str = ""


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """A service case with its steps in the order they were taken."""

    id: int
    customer: str
    subject: str
    opened_at: datetime
    steps: tuple[CaseStep, ...]
    kind: CaseKind = CaseKind.COMPLAINT
    status: CaseStatus = CaseStatus.OPEN
