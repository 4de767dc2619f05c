"""The dialplan contract's AGI() scripts (inbound, outbound, survey, callback), served by ivr.fastagi."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ctid import dialplan
from ctid.config import AgiListener
from ctid.customers import Identification
from ivr.fastagi import AgiLimits, AgiSession, FastAgiServer, Script

log = structlog.get_logger("ctid.ivr")


@dataclass(frozen=True, slots=True)
class CallbackRequest:
    """A caller who accepted a call back (the dialer's callback list takes these)."""

    uniqueid: str
    number: str
    queue: str
    at: float


Identify = Callable[[str, str], Awaitable[Identification]]  # (caller number, dialed number) -> identification


async def default_identify(caller: str, dnis: str) -> Identification:
    return Identification(queue="default")


class IvrServer:
    """Serves the contract's AGI scripts; each handler sets CTID_* variables, never blocks routing."""

    def __init__(
        self, host: str, port: int, identify: Identify = default_identify, limits: AgiLimits | None = None
    ) -> None:
        self.identify = identify
        self.callbacks: list[CallbackRequest] = []  # accepted offers, for the dialer to call back
        scripts: dict[str, Script] = {
            dialplan.INBOUND_SCRIPT: self.inbound,
            dialplan.OUTBOUND_SCRIPT: self.outbound,
            dialplan.SURVEY_SCRIPT: self.survey,
            dialplan.CALLBACK_SCRIPT: self.callback,
        }
        self.server = FastAgiServer(host, port, scripts, limits)

    @classmethod
    def from_settings(cls, settings: AgiListener) -> IvrServer:
        """The server ctid.yaml's `agi:` describes: its address and its limits."""
        limits = AgiLimits(
            max_sessions=settings.max_sessions,
            header_max_bytes=settings.header_max_bytes,
            header_timeout_s=settings.header_timeout_s,
            idle_timeout_s=settings.idle_timeout_s,
        )
        return cls(settings.host, settings.port, limits=limits)

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def close(self) -> None:
        await self.server.close()

    async def inbound(self, session: AgiSession) -> None:
        caller = session.env.get("agi_callerid", "")
        if caller in ("unknown", ""):
            caller = await session.get_variable("CALLERID(num)")
        dnis = session.env.get("agi_extension", "")
        ident = await self.identify(caller, dnis)
        if ident.customer:
            await session.set_variable(dialplan.CUSTOMER_VAR, ident.customer)
        if ident.tier:
            await session.set_variable(dialplan.TIER_VAR, ident.tier)
        await session.set_variable(dialplan.QUEUE_VAR, ident.queue)
        log.info(
            "caller_identified", uniqueid=session.env.get("agi_uniqueid"), queue=ident.queue, tier=ident.tier
        )

    async def outbound(self, session: AgiSession) -> None:
        amd = await session.get_variable("AMDSTATUS")
        campaign = await session.get_variable(dialplan.CAMPAIGN_VAR)
        if amd == "MACHINE":
            await session.command("HANGUP")
            return
        await session.set_variable(dialplan.QUEUE_VAR, f"outbound-{campaign}" if campaign else "outbound")

    async def callback(self, session: AgiSession) -> None:
        """Offer a call back instead of waiting: 1 accepts (CTID_CALLBACK=accepted), else it declines."""
        number = session.env.get("agi_callerid", "")
        queue = await session.get_variable(dialplan.QUEUE_VAR)
        reply = await session.command(f"GET DATA {dialplan.CALLBACK_OFFER_PROMPT} 5000 1")
        accepted = reply.ok and reply.result.strip() == "1"
        await session.set_variable(dialplan.CALLBACK_VAR, "accepted" if accepted else "declined")
        if accepted:
            self.callbacks.append(
                CallbackRequest(session.env.get("agi_uniqueid", ""), number, queue, time.time())
            )
        log.info("callback_offered", uniqueid=session.env.get("agi_uniqueid"), queue=queue, accepted=accepted)

    async def survey(self, session: AgiSession) -> None:
        """The post-call survey belongs to the IVR issue; until then the caller is simply released."""
        await session.command('VERBOSE "ctid: no survey configured" 1')
