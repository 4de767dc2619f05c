"""A real Asterisk that goes silent with the TCP session still up: ctid's connection stops counting as live
within two ping intervals, drops the session and logs in again once Asterisk answers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from ctid.ami.client import AmiConnection
from tests.asterisk.harness import AsteriskInstance
from tests.asterisk.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk


async def within(seconds: float, probe: Callable[[], bool], what: str) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not probe():
        if loop.time() - start > seconds:
            raise AssertionError(f"not within {seconds} s: {what}")
        await asyncio.sleep(0.01)
    return loop.time() - start


async def test_a_frozen_asterisk_is_not_live_and_the_session_is_redone(
    asterisk: AsteriskInstance, ami_proxy: TcpProxy
) -> None:
    conn = AmiConnection(
        name="liveness",
        host="127.0.0.1",
        port=ami_proxy.port,
        username=asterisk.username,
        secret=asterisk.secret,
        action_timeout=1.0,
        reconnect_min=0.2,
        reconnect_max=0.4,
        ping_interval=0.2,
    )
    conn.start()
    try:
        await asyncio.wait_for(conn.synced.wait(), 10)
        await asyncio.sleep(0.5)
        assert conn.live  # Asterisk answers every Ping
        with ami_proxy.freeze():
            took = await within(2.0, lambda: not conn.live, "the frozen session to count as not live")
            assert took <= 1.0  # two ping intervals (0.4 s), and the time to notice
            await within(2.0, lambda: not conn.logged_in, "the frozen session to be dropped")
        await within(10.0, lambda: conn.synced.is_set() and conn.live, "a new session, resynced")
        assert conn.reconnects >= 1
    finally:
        await conn.close()
