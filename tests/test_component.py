"""The component seam: a new domain is one class and one line in the daemon's list, and the daemon wires it
(bus subscriptions, HTTP routes, start/stop order) without knowing what it does; the one periodic loop."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ctid.auth import Role
from ctid.bus import Subscriber
from ctid.component import Component, Context, Factory, Route, Ticker
from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.state import domain as d
from reports.component import ReportsComponent
from tests.auth_rig import bearer
from tests.daemon_rig import until, write_ctid_yaml


class Probe(Component):
    """A domain the daemon has never heard of: it records what the daemon asks of it."""

    name = "probe"

    def __init__(self, context: Context, calls: list[str]) -> None:
        self.calls = calls
        self.seen: list[tuple[str, str]] = []
        self.before = [type(c).__name__ for c in context.components]  # what it could find when built

    def subscriptions(self) -> Sequence[Subscriber]:
        return (lambda origin, event: self.seen.append((origin, event.kind)),)

    def routes(self) -> Sequence[Route]:
        return (Route("GET", "/api/probe", self.hello, Role.SUPERVISOR),)

    async def hello(self, request: web.Request) -> web.Response:
        return web.json_response({"seen": len(self.seen)})

    async def start(self) -> None:
        self.calls.append("start")

    def started(self) -> None:
        self.calls.append("started")

    async def stop(self) -> None:
        self.calls.append("stop")

    async def close(self) -> None:
        self.calls.append("close")


class LoggingReports(ReportsComponent):
    """The reports component, noting when it closes the log (it must be last: the others may still write)."""

    calls: list[str]

    async def close(self) -> None:
        self.calls.append("log closed")
        await super().close()


async def test_a_new_component_is_one_line_and_the_daemon_wires_it(tmp_path: Path) -> None:
    calls: list[str] = []

    class WithProbe(Ctid):
        def factories(self) -> list[Factory]:
            def reports(context: Context) -> Component:
                component = LoggingReports(context, self.interaction_log)
                component.calls = calls
                return component

            return [reports, *super().factories()[1:], lambda context: Probe(context, calls)]

    config = load_config(write_ctid_yaml(tmp_path, ami_port=1))  # an Asterisk that never answers
    ctid = WithProbe(config)
    probe = ctid.component(Probe)
    assert probe.before == [  # no routing file: off
        "LoggingReports",
        "AuthComponent",
        "AgentsComponent",
        "CustomersComponent",
        "IvrComponent",
    ]
    assert ctid.find(type("Absent", (Component,), {})) is None
    await ctid.start()
    try:
        assert calls == ["start", "started"]
        ctid.bus.publish("pbx1", [d.WorkItemMarked(1.0, "L1", "handled")])
        assert probe.seen == [("pbx1", "WorkItemMarked")]
        url = f"http://127.0.0.1:{ctid.web_port}/api/probe"
        login = bearer(ctid.context.engine)
        async with aiohttp.ClientSession(headers=login) as session, session.get(url) as response:
            assert (response.status, await response.json()) == (200, {"seen": 1})
    finally:
        await ctid.stop()
    assert calls == ["start", "started", "stop", "close", "log closed"]  # stopped in reverse, the log last


async def test_the_ticker_runs_on_after_a_failing_tick_and_stops() -> None:
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 2:
            raise RuntimeError("one bad tick")

    async def atick() -> Any:
        ticks.append(-1)

    ticker = Ticker("test", 0.001, tick)
    ticker.start()
    await until(lambda: len(ticks) >= 4, "ticks after the failing one")
    await ticker.stop()
    assert not ticker.running
    stopped_at = len(ticks)
    ticker.tick, ticker.interval_s = atick, 0.001  # awaitable ticks are awaited
    ticker.start()
    await until(lambda: -1 in ticks, "an awaited tick")
    await ticker.stop()
    assert ticks[:stopped_at] == list(range(stopped_at))
