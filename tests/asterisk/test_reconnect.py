"""ctid losing its AMI session mid-call: it reconnects, resyncs from Asterisk's own lists, and its view of the
live calls matches Asterisk's again, including what changed while it could not see."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.asterisk.harness import (
    AsteriskInstance,
    CtidHttp,
    Pbx,
    assert_matches_asterisk,
    assert_nothing_up,
    poll,
)
from tests.asterisk.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk

AGENT_1001 = "Local/1001@sim-phones"


async def health(http: CtidHttp) -> tuple[int, Any]:
    return await http.get("/healthz")


async def wait_health(http: CtidHttp, status: int, what: str, timeout: float = 5.0) -> dict[str, Any]:
    _, body = await poll(lambda: health(http), lambda v: v[0] == status, what=what, timeout=timeout)
    assert isinstance(body, dict)
    return body


async def test_resync_after_asterisk_kicks_the_session(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    waiting = await pbx.inbound_call("13800006666", "陈静")
    talking = await pbx.inbound_call("13800007777", "Đặng Thị Hoa")
    await pbx.connect(talking, AGENT_1001)
    await http.wait_call(waiting.linkedid, lambda c: c["state"] == "waiting", "waiting")
    await http.wait_call(talking.linkedid, lambda c: c["state"] == "connected", "connected")
    await assert_matches_asterisk(http, asterisk)
    gaps_before = (await wait_health(http, 200, "ctid healthy"))["servers"]["pbx1"]["gaps"]

    assert pbx.ami.session_fd is not None, "could not tell the test's own AMI session from ctid's"
    ctid_sessions = [fd for fd in asterisk.ami_session_fds() if fd != pbx.ami.session_fd]
    assert len(ctid_sessions) == 1, f"expected ctid's one AMI session besides the test's, saw {ctid_sessions}"
    asterisk.cli(f"manager kick session {ctid_sessions[0]}")

    body = await poll(
        lambda: health(http),
        lambda v: v[0] == 200 and v[1]["servers"]["pbx1"]["gaps"] == gaps_before + 1,
        what="ctid to notice the cut, reconnect and resync",
    )
    assert body[1]["servers"]["pbx1"]["connected"] is True

    calls = {c["linkedid"]: c for c in await http.calls()}
    assert set(calls) == {waiting.linkedid, talking.linkedid}
    assert (calls[waiting.linkedid]["state"], calls[waiting.linkedid]["queue"]) == ("waiting", "default")
    assert calls[waiting.linkedid]["contact_channel"] == waiting.channel
    assert (calls[talking.linkedid]["state"], calls[talking.linkedid]["agent"]) == ("connected", AGENT_1001)
    assert calls[talking.linkedid]["caller_name"] == "Đặng Thị Hoa"
    await assert_matches_asterisk(http, asterisk)

    await pbx.hangup(waiting.channel)
    await pbx.hangup(talking.channel)
    first = await http.wait_ended(waiting.linkedid)
    second = await http.wait_ended(talking.linkedid)
    assert (first["disposition"], second["disposition"]) == ("abandoned", "answered")
    await assert_nothing_up(http, asterisk)


async def test_resync_after_a_network_outage(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance, ami_proxy: TcpProxy
) -> None:
    leaves = await pbx.inbound_call("13800008881", "陈静")
    talking = await pbx.inbound_call("13800008882", "Đặng Thị Hoa")
    await pbx.connect(talking, AGENT_1001)
    await http.wait_call(leaves.linkedid, lambda c: c["state"] == "waiting", "waiting")
    await http.wait_call(talking.linkedid, lambda c: c["state"] == "connected", "connected")
    await assert_matches_asterisk(http, asterisk)

    with ami_proxy.outage():
        body = await wait_health(http, 503, "ctid to report the lost AMI connection in /healthz")
        assert body["servers"]["pbx1"]["connected"] is False
        # what happens while ctid is blind: a waiting caller gives up, a new caller arrives (identified by
        # ctid's FastAGI, which does not need AMI) and the router moves it to another queue; the connected
        # call's customer is set
        await pbx.hangup(leaves.channel)
        await pbx.wait_gone(leaves.uniqueid)
        arrives = await pbx.inbound_call("13800008883", "Zoë Ångström")
        await pbx.ami.action("Setvar", Channel=arrives.channel, Variable="CTID_QUEUE", Value="vip")
        await pbx.ami.action("Setvar", Channel=talking.channel, Variable="CTID_CUSTOMER", Value="c-77")

    await wait_health(http, 200, "ctid to reconnect and resync once the network is back")
    calls = {c["linkedid"]: c for c in await http.calls()}
    assert set(calls) == {talking.linkedid, arrives.linkedid}, (
        "the caller who left during the outage has ended"
    )
    new = calls[arrives.linkedid]
    assert (new["state"], new["contact_channel"]) == ("waiting", arrives.channel)
    assert new["queue"] == "vip", "CTID_QUEUE comes back from the Status variables of the resync"
    assert (new["caller_num"], new["caller_name"], new["direction"]) == (
        "13800008883",
        "Zoë Ångström",
        "inbound",
    )
    old = calls[talking.linkedid]
    assert (old["state"], old["agent"], old["queue"]) == ("connected", AGENT_1001, "default")
    assert old["customer"] == "c-77", "CTID_CUSTOMER set during the outage comes back from the resync"
    await assert_matches_asterisk(http, asterisk)

    gone = await http.wait_ended(leaves.linkedid)
    assert gone["disposition"] == "lost", "ctid did not see how this call ended, so it must not guess"

    await pbx.connect(arrives, AGENT_1001.replace("1001", "1002"))
    await http.wait_call(arrives.linkedid, lambda c: c["state"] == "connected", "the new caller connected")
    await pbx.hangup(arrives.channel)
    await pbx.hangup(talking.channel)
    assert (await http.wait_ended(arrives.linkedid))["disposition"] == "answered"
    assert (await http.wait_ended(talking.linkedid))["disposition"] == "answered"
    await assert_nothing_up(http, asterisk)


async def test_calls_that_start_and_end_during_the_resync(
    pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance, ami_proxy: TcpProxy
) -> None:
    """ctid's resync reads CoreShowChannels, then Status, DeviceStateList, ExtensionStateList, while live
    events keep arriving. A caller who hangs up, and one who calls in, between the first list and the last
    must come out right: the first ended, the second live. On a busy site this window is never empty."""
    leaves = await pbx.inbound_call("13800009991", "陈静")
    await http.wait_call(leaves.linkedid, lambda c: c["state"] == "waiting", "waiting")

    with ami_proxy.hold_request(b"Action: Status\r\n") as gate:
        with ami_proxy.outage():
            await wait_health(http, 503, "ctid to notice the cut")
        # ctid reconnects, logs in and has Asterisk's channel list (with `leaves` in it); its Status request
        # is held back while the calls change
        await poll(
            lambda: asyncio.to_thread(gate.held.wait, 0.1),
            bool,
            what="ctid's resync to ask for Status",
        )
        await pbx.hangup(leaves.channel)
        await pbx.wait_gone(leaves.uniqueid)
        arrives = await pbx.inbound_call("13800009992", "Zoë Ångström")

    await wait_health(http, 200, "ctid to finish its resync")
    calls = {c["linkedid"]: c for c in await http.calls()}
    assert set(calls) == {arrives.linkedid}, (
        "the caller who hung up during the resync has ended, and the one who called in during it is live; "
        f"ctid reports {[(c['linkedid'], c['state'], c['contact_channel']) for c in calls.values()]}, "
        f"expected only {arrives.linkedid} (left: {leaves.linkedid})"
    )
    assert (calls[arrives.linkedid]["state"], calls[arrives.linkedid]["queue"]) == ("waiting", "default")
    await assert_matches_asterisk(http, asterisk)
    history = {c["linkedid"]: c for c in await http.history()}
    assert arrives.linkedid not in history, "a live call was recorded as ended during the resync"
    assert history[leaves.linkedid]["disposition"] in ("abandoned", "lost")

    await pbx.hangup(arrives.channel)
    await http.wait_ended(arrives.linkedid)
    await assert_nothing_up(http, asterisk)


async def test_connection_lost_during_login_is_retried_at_once(
    pbx: Pbx, http: CtidHttp, ami_proxy: TcpProxy
) -> None:
    """A link that breaks while ctid logs in (or resyncs) is a lost connection like any other: ctid must
    reconnect after its backoff (0.2–0.5 s here), not sit on the dead session until the action times out
    (action_timeout_s is 3 s in this config, 10 s by default)."""
    with ami_proxy.hold_request(b"Action: Login\r\n") as gate:
        with ami_proxy.outage():
            await wait_health(http, 503, "ctid to notice the cut")
        await poll(lambda: asyncio.to_thread(gate.held.wait, 0.1), bool, what="ctid to log in again")
        loop = asyncio.get_running_loop()
        cut_at = loop.time()
        with ami_proxy.outage():  # the link breaks while the Login is on its way
            await asyncio.sleep(0.1)
    await wait_health(http, 200, "ctid to log in and resync", timeout=10)
    recovered_s = loop.time() - cut_at
    assert recovered_s < 2.0, (
        f"ctid took {recovered_s:.1f} s to recover from a link lost during login; it waited for the Login "
        "response on a closed connection instead of reconnecting"
    )
