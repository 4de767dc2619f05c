"""The customer book as a ctid component: its tables, caller identification for the IVR, the customer API,
and the customers' past calls written from the bus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from ctid.bus import CUSTOMERS, Subscriber, from_server
from ctid.component import Component, Context, Route
from ctid.customers.book import caller_lookup, create_schema
from ctid.customers.calls import CallFolder, CustomerCallWriter
from ctid.customers.http import CustomerApi
from ctid.customers.identify import CallerDirectory, Identification
from ctid.customers.value import CustomerValue
from ctid.state.domain import DomainEvent


def customers_component(ctx: Context) -> CustomersComponent:
    return CustomersComponent(ctx)


class CustomersComponent(Component):
    """Customers, their phones, value, tier and history; who is calling, for the IVR and the components
    after it."""

    name = CUSTOMERS

    def __init__(self, ctx: Context, writer: CustomerCallWriter | None = None) -> None:
        self.engine = ctx.engine
        ctx.add_schema(create_schema)
        self.values: dict[str, CustomerValue] = {}  # customer id -> figures of callers identified
        self.identify: Callable[[str, str], Awaitable[Identification]] | None = None  # once a router is set
        self.dispositions: Callable[[], tuple[str, ...]] = tuple  # routing.yaml's codes, once a router is set
        agents = ctx.agents
        self.folder = CallFolder(lambda device: a.agent_id if (a := agents.by_device.get(device)) else device)
        self.writer = writer or CustomerCallWriter(ctx.engine)
        self.api = CustomerApi(
            ctx.engine, ctx.bus, ctx.clock, self.folder, self.writer, lambda: self.dispositions()
        )

    def route_with(
        self,
        queue_for: Callable[[str, str], str],
        default_tier: Callable[[], str],
        dispositions: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        """Identify callers from now on, with the router's queue for a dialled number and its default tier;
        take disposition codes from the router's configuration."""
        directory = CallerDirectory(queue_for, default_tier, caller_lookup(self.engine), self.values)
        self.identify = directory.identify
        self.dispositions = dispositions

    def subscriptions(self) -> Sequence[Subscriber]:
        return (self._on_event,)

    def _on_event(self, origin: str, event: DomainEvent) -> None:
        if from_server(origin):
            rows = self.folder.apply(origin, event)
            if rows:
                self.writer.add(rows)

    def routes(self) -> Sequence[Route]:
        return self.api.routes()

    def started(self) -> None:
        self.writer.start()

    async def close(self) -> None:
        await self.writer.close()
