"""The customer book as a ctid component: its tables, and caller identification for the IVR."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ctid.component import Component, Context


def customers_component(ctx: Context) -> CustomersComponent:
    return CustomersComponent(ctx)


class CustomersComponent(Component):
    """Customers, their phones, value and tier; who is calling, for the IVR and the components after it."""

    name = "customers"

    def __init__(self, ctx: Context) -> None:
        from routing.customers import create_schema

        self.engine = ctx.engine
        ctx.add_schema(create_schema)
        self.values: dict[str, Any] = {}  # customer id -> value figures of callers identified so far
        self.identify: Callable[[str, str], Awaitable[Any]] | None = None  # once a router says where calls go

    def route_with(self, config: Callable[[], Any]) -> None:
        from routing.identify import CallerDirectory

        self.identify = CallerDirectory(config, self.engine, self.values).identify
