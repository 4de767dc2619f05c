"""What the desktop's whole-ctid tests share: a customer with an open complaint and its steps, and an agent's
desktop socket recording what it receives with pbxsim's virtual time."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from ctid.customers.book import Case, SupportCaseStep
from pbxsim import World

COMPLAINT = "Router drops the line every evening"
STEPS = (
    ("Wang Li", "Replaced the router remotely", "Call back Friday to check"),
    ("Zhao Min", "Customer says it still drops", "Send a technician"),
)


def open_complaint(engine: Engine, customer_id: str = "gold") -> None:
    """An open case for `customer_id` with two steps."""
    with Session(engine) as session:
        case = Case(customer_id=customer_id, opened_at=datetime(2026, 11, 1, tzinfo=UTC), subject=COMPLAINT)
        case.steps = [
            SupportCaseStep(
                at=datetime(2026, 11, day, 9, tzinfo=UTC), who=who, done=done, next_step=next_step
            )
            for day, (who, done, next_step) in zip((2, 9), STEPS, strict=True)
        ]
        session.add(case)
        session.commit()


@dataclass
class Desktop:
    """One agent's /ws/agent: every message with the virtual time it arrived."""

    ws: aiohttp.ClientWebSocketResponse
    world: World
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> Desktop:
        self.task = asyncio.get_running_loop().create_task(self._read())
        return self

    async def _read(self) -> None:
        async for message in self.ws:
            self.received.append((self.world.now, json.loads(message.data)))

    def kinds(self) -> list[str]:
        return [m["kind"] for _, m in self.received]

    def pops(self) -> list[tuple[float, dict[str, Any]]]:
        return [(at, m) for at, m in self.received if m["kind"].startswith("Pop")]

    def shown(self) -> dict[str, Any] | None:
        """The pop as the page shows it after every message so far."""
        pop: dict[str, Any] | None = None
        for _, m in self.received:
            if m["kind"] in ("PopOpened", "PopUpdated"):
                pop = m["pop"]
            elif m["kind"] == "PopEnded" and pop is not None:
                pop = {**pop, "ended": True}
            elif m["kind"] == "PopClosed":
                pop = None
        return pop
