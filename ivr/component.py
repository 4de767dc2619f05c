"""The IVR as a ctid component: the FastAGI server for the dialplan contract's AGI() steps."""

from __future__ import annotations

from ctid.component import Component, Context
from ctid.customers.component import CustomersComponent
from ivr.server import IvrServer


def ivr_component(ctx: Context) -> IvrComponent:
    return IvrComponent(ctx)


class IvrComponent(Component):
    name = "ivr"

    def __init__(self, ctx: Context) -> None:
        self.server = IvrServer.from_settings(ctx.config.agi)
        customers = ctx.find(CustomersComponent)
        if customers is not None and customers.identify is not None:
            self.server.identify = customers.identify  # callers identified against the customer book

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self) -> None:
        await self.server.close()
