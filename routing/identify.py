"""Who is calling and where they go: the IVR's `inbound` step asks this (DNIS → queue, number → customer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, MutableMapping

import structlog
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ivr.server import Identification
from routing.config import RoutingConfig
from routing.customers import CustomerRecord, lookup_by_phone
from routing.value import CustomerValue

log = structlog.get_logger("routing.identify")


class CallerDirectory:
    """Identifies inbound callers for the IVR and keeps their value figures for routing's priorities."""

    def __init__(
        self,
        config: Callable[[], RoutingConfig],
        engine: Engine | None,
        values: MutableMapping[str, CustomerValue],
    ) -> None:
        self.config = config
        self.engine = engine
        self.values = values

    def _lookup(self, caller: str) -> CustomerRecord | None:
        assert self.engine is not None
        with Session(self.engine) as session:
            return lookup_by_phone(session, caller)

    async def identify(self, caller: str, dnis: str) -> Identification:
        cfg = self.config()
        queue = cfg.queue_for_contact(dnis)
        record = None
        if self.engine is not None and caller:
            try:  # a slow or absent database never holds the caller: they are routed as unknown
                record = await asyncio.wait_for(asyncio.to_thread(self._lookup, caller), 2.0)
            except Exception as exc:
                log.warning("customer_lookup_failed", error=str(exc) or type(exc).__name__)
        if record is None:
            return Identification(queue=queue, tier=cfg.tiers.default_tier)
        self.values[record.id] = record.value
        tier = record.tier.value if record.tier is not None else cfg.tiers.default_tier
        return Identification(queue=queue, customer=record.id, tier=tier)
