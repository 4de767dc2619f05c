"""The customer book as a ctid component: its tables, and caller identification for the IVR."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ctid.component import Component, Context
from ctid.customers.book import caller_lookup, create_schema
from ctid.customers.identify import CallerDirectory, Identification
from ctid.customers.value import CustomerValue


def customers_component(ctx: Context) -> CustomersComponent:
    return CustomersComponent(ctx)


class CustomersComponent(Component):
    """Customers, their phones, value and tier; who is calling, for the IVR and the components after it."""

    name = "customers"

    def __init__(self, ctx: Context) -> None:
        self.engine = ctx.engine
        ctx.add_schema(create_schema)
        self.values: dict[str, CustomerValue] = {}  # customer id -> figures of callers identified
        self.identify: Callable[[str, str], Awaitable[Identification]] | None = None  # once a router is set

    def route_with(self, queue_for: Callable[[str, str], str], default_tier: Callable[[], str]) -> None:
        """Identify callers from now on, with the router's queue for a dialled number and its default tier."""
        directory = CallerDirectory(queue_for, default_tier, caller_lookup(self.engine), self.values)
        self.identify = directory.identify
