"""ctid's FastAGI server: the AGI() steps of the dialplan contract (`inbound`, `outbound`, `survey`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from panoramisk.fast_agi import Application, Request

from ctid.metrics import AGI_SESSIONS

log = structlog.get_logger("ctid.ivr")


@dataclass(frozen=True, slots=True)
class Identification:
    """What the IVR learned about an inbound caller, handed to routing through CTID_* variables."""

    queue: str
    customer: str = ""
    tier: str = ""


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


def agi_quote(value: str) -> str:
    """A value as one quoted AGI argument."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiSession:
    """One FastAGI conversation: the agi_* environment and commands with their parsed results."""

    def __init__(self, request: Request) -> None:
        self.request = request
        self.env: dict[str, str] = dict(request.headers)

    async def command(self, line: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request.send_command(line)
        if "error" in result:
            log.warning("agi_command_failed", command=line.split(" ", 2)[:2], error=result.get("error"))
        return result

    async def get_variable(self, name: str) -> str:
        result = await self.command(f"GET VARIABLE {name}")
        data = result.get("result")
        # panoramisk gives ('1', 'value') for "200 result=1 (value)" and ('0', '') when unset
        if isinstance(data, tuple) and len(data) == 2 and data[0] == "1":
            return str(data[1])
        return ""

    async def set_variable(self, name: str, value: str) -> None:
        await self.command(f"SET VARIABLE {name} {agi_quote(value)}")


class IvrServer:
    """Serves the contract's AGI scripts; each handler sets CTID_* variables, never blocks routing."""

    def __init__(self, host: str, port: int, identify: Identify = default_identify) -> None:
        self.host = host
        self.port = port
        self.identify = identify
        self._server: asyncio.base_events.Server | None = None
        self.app = Application(default_encoding="utf-8")
        self.app.add_route("inbound", self._wrap("inbound", self.inbound))
        self.app.add_route("outbound", self._wrap("outbound", self.outbound))
        self.app.add_route("survey", self._wrap("survey", self.survey))
        self.app.add_route("callback", self._wrap("callback", self.callback))
        self.callbacks: list[CallbackRequest] = []  # accepted offers, for the dialer to call back

    async def start(self) -> None:
        self._server = await asyncio.start_server(self.app.handler, self.host, self.port)
        sockets = self._server.sockets or ()
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("agi_listening", host=self.host, port=self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _wrap(
        self, script: str, handler: Callable[[AgiSession], Awaitable[None]]
    ) -> Callable[[Request], Awaitable[None]]:
        async def route(request: Request) -> None:
            session = AgiSession(request)
            bound = log.bind(uniqueid=session.env.get("agi_uniqueid", ""), script=script)
            try:
                await handler(session)
                AGI_SESSIONS.labels(script, "ok").inc()
            except (
                ConnectionError,
                asyncio.IncompleteReadError,
                ValueError,
            ) as exc:  # ValueError: EOF mid-reply
                AGI_SESSIONS.labels(script, "hangup").inc()
                bound.info("agi_session_ended_early", error=type(exc).__name__)

        return route

    async def inbound(self, session: AgiSession) -> None:
        caller = session.env.get("agi_callerid", "")
        if caller in ("unknown", ""):
            caller = await session.get_variable("CALLERID(num)")
        dnis = session.env.get("agi_extension", "")
        ident = await self.identify(caller, dnis)
        if ident.customer:
            await session.set_variable("CTID_CUSTOMER", ident.customer)
        if ident.tier:
            await session.set_variable("CTID_TIER", ident.tier)
        await session.set_variable("CTID_QUEUE", ident.queue)
        log.info(
            "caller_identified", uniqueid=session.env.get("agi_uniqueid"), queue=ident.queue, tier=ident.tier
        )

    async def outbound(self, session: AgiSession) -> None:
        amd = await session.get_variable("AMDSTATUS")
        campaign = await session.get_variable("CTID_CAMPAIGN")
        if amd == "MACHINE":
            await session.command("HANGUP")
            return
        await session.set_variable("CTID_QUEUE", f"outbound-{campaign}" if campaign else "outbound")

    async def callback(self, session: AgiSession) -> None:
        """Offer a call back instead of waiting: 1 accepts (CTID_CALLBACK=accepted), else it declines."""
        number = session.env.get("agi_callerid", "")
        queue = await session.get_variable("CTID_QUEUE")
        result = await session.command("GET DATA ctid-callback-offer 5000 1")
        digits = result.get("result", "")
        accepted = (digits[0] if isinstance(digits, tuple) else str(digits)).strip() == "1"
        await session.set_variable("CTID_CALLBACK", "accepted" if accepted else "declined")
        if accepted:
            self.callbacks.append(
                CallbackRequest(session.env.get("agi_uniqueid", ""), number, queue, time.time())
            )
        log.info("callback_offered", uniqueid=session.env.get("agi_uniqueid"), queue=queue, accepted=accepted)

    async def survey(self, session: AgiSession) -> None:
        """The post-call survey belongs to the IVR issue; until then the caller is simply released."""
        await session.command('VERBOSE "ctid: no survey configured" 1')
