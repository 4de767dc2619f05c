"""Who is calling: the IVR's `inbound` step asks this (caller's number -> customer, dialled number -> queue).

It knows nothing of routing or the database: the router gives it `queue_for` and the default tier, the
customer book gives it `lookup`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass

import structlog

from ctid.customers.value import CustomerRecord, CustomerValue

log = structlog.get_logger("ctid.customers.identify")

LOOKUP_TIMEOUT_S = 2.0

Lookup = Callable[[str], CustomerRecord | None]  # caller's number -> the customer, blocking (a database)


@dataclass(frozen=True, slots=True)
class Identification:
    """What the IVR learned about an inbound caller, handed to routing through CTID_* variables."""

    queue: str
    customer: str = ""
    tier: str = ""


class CallerDirectory:
    """Identifies inbound callers for the IVR and keeps their value figures for routing's priorities."""

    def __init__(
        self,
        queue_for: Callable[[str, str], str],
        default_tier: Callable[[], str],
        lookup: Lookup,
        values: MutableMapping[str, CustomerValue],
        timeout_s: float = LOOKUP_TIMEOUT_S,
    ) -> None:
        self.queue_for = queue_for  # (dialled number, queue asked for) -> the queue the caller waits in
        self.default_tier = default_tier  # the tier of callers who are not customers, or not yet tiered
        self.lookup = lookup
        self.values = values
        self.timeout_s = timeout_s

    async def identify(self, caller: str, dnis: str) -> Identification:
        queue, default_tier = self.queue_for(dnis, ""), self.default_tier()  # both from the same routing.yaml
        record = None
        if caller:
            try:  # a slow or absent database never holds the caller: they are routed as unknown
                record = await asyncio.wait_for(asyncio.to_thread(self.lookup, caller), self.timeout_s)
            except Exception as exc:
                log.warning("customer_lookup_failed", error=str(exc) or type(exc).__name__)
        if record is None:
            return Identification(queue=queue, tier=default_tier)
        self.values[record.id] = record.value
        tier = record.tier.value if record.tier is not None else default_tier
        return Identification(queue=queue, customer=record.id, tier=tier)
