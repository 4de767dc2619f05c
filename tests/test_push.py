"""The push hub: snapshot topics coalesce to the newest, event topics deliver all in order or close a slow
subscriber with the reason, a reconnecting subscriber gets a fresh snapshot; and the WebSocket shell over a
real loopback socket."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientConnectionResetError, WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from ctid.push import CLOSE_CODE, SLOW_CONSUMER, Closed, Kind, PushHub, UnknownTopic, serve


def drain(subscription: Any) -> list[str]:
    """Every message waiting for `subscription`, in order."""
    taken = []
    while (message := subscription.next_nowait()) is not None:
        taken.append(message)
    return taken


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def board_hub(snapshots: list[str]) -> PushHub:
    """A hub whose `wallboard` snapshot topic gives the last of `snapshots` to a newcomer."""
    hub = PushHub()
    hub.topic("wallboard", Kind.SNAPSHOT, snapshot=lambda _: snapshots[-1])
    return hub


def test_a_new_subscriber_gets_the_snapshot_first_then_what_is_published() -> None:
    hub = board_hub(["v1"])
    subscription = hub.subscribe("wallboard")
    assert drain(subscription) == ["v1"]
    hub.publish("wallboard", "v2")
    assert drain(subscription) == ["v2"]


def test_a_slow_snapshot_subscriber_skips_stale_snapshots_but_gets_the_newest() -> None:
    hub = board_hub(["v1"])
    slow = hub.subscribe("wallboard")
    for version in ("v2", "v3", "v4"):
        hub.publish("wallboard", version)
    assert drain(slow) == ["v4"]
    assert drain(slow) == []


def test_an_events_subscriber_gets_every_message_in_publish_order() -> None:
    hub = PushHub()
    hub.topic("supervisor", Kind.EVENTS, snapshot=lambda _: "state", limit=10)
    subscription = hub.subscribe("supervisor")
    for n in range(5):
        hub.publish("supervisor", f"e{n}")
    assert drain(subscription) == ["state", "e0", "e1", "e2", "e3", "e4"]


def test_a_slow_events_subscriber_is_closed_with_the_reason_and_the_others_are_not() -> None:
    hub = PushHub()
    hub.topic("supervisor", Kind.EVENTS, limit=3)
    closed_before = sample("ctid_push_closed_total", topic="supervisor", reason=SLOW_CONSUMER)
    slow, keeping_up = hub.subscribe("supervisor"), hub.subscribe("supervisor")
    for n in range(3):
        hub.publish("supervisor", f"e{n}")
        assert keeping_up.next_nowait() == f"e{n}"
    assert slow.backlog == 3
    hub.publish("supervisor", "e3")  # one more than slow can hold
    with pytest.raises(Closed) as closed:
        slow.next_nowait()
    assert closed.value.reason == "slow-consumer: more than 3 messages behind"
    assert closed.value.cause == SLOW_CONSUMER
    assert sample("ctid_push_closed_total", topic="supervisor", reason=SLOW_CONSUMER) == closed_before + 1
    assert hub.subscribers("supervisor") == 1
    hub.publish("supervisor", "e4")
    assert drain(keeping_up) == ["e3", "e4"]
    with pytest.raises(Closed):  # closed stays closed; nothing more reaches it
        slow.next_nowait()
    slow.close()  # the shell leaving afterwards changes nothing
    assert hub.subscribers("supervisor") == 1


def test_a_closed_subscriber_reconnecting_gets_a_fresh_snapshot() -> None:
    pops = {"agent:7": "pop of call c1"}
    hub = PushHub()
    hub.topic("agent:", Kind.EVENTS, snapshot=lambda name: pops.get(name), limit=1)
    first = hub.subscribe("agent:7")  # its snapshot fills its one place
    pops["agent:7"] = "pop of call c2"
    hub.publish("agent:7", "pop of call c2")
    with pytest.raises(Closed):
        first.next_nowait()
    again = hub.subscribe("agent:7")
    assert drain(again) == ["pop of call c2"]


def test_leaving_forgets_the_subscriber_and_its_gauge() -> None:
    hub = board_hub(["v1"])
    before = sample("ctid_push_subscribers", topic="wallboard")
    with hub.subscribe("wallboard"), hub.subscribe("wallboard") as second:
        assert hub.subscribers("wallboard") == 2
        assert sample("ctid_push_subscribers", topic="wallboard") == before + 2
        second.close()
        assert hub.subscribers("wallboard") == 1
    assert hub.subscribers("wallboard") == 0
    assert sample("ctid_push_subscribers", topic="wallboard") == before
    published = sample("ctid_push_messages_total", topic="wallboard")
    hub.publish("wallboard", "v2")  # nobody left to take it
    assert sample("ctid_push_messages_total", topic="wallboard") == published + 1


def test_agent_topics_are_one_per_agent() -> None:
    hub = PushHub()
    hub.topic("agent:", Kind.EVENTS)
    seven, eight = hub.subscribe("agent:7"), hub.subscribe("agent:8")
    hub.publish("agent:7", "pop for 7")
    assert drain(seven) == ["pop for 7"] and drain(eight) == []
    assert hub.subscribers("agent:7") == hub.subscribers("agent:8") == 1


@pytest.mark.parametrize("name", ["agent:", "agent", "agents:7", "wallboard:1", "supervisor"])
def test_a_topic_nobody_registered_is_refused(name: str) -> None:
    hub = board_hub(["v1"])
    hub.topic("agent:", Kind.EVENTS)
    with pytest.raises(UnknownTopic):
        hub.subscribe(name)
    with pytest.raises(UnknownTopic):
        hub.publish(name, "x")


def test_a_topic_is_registered_once() -> None:
    hub = board_hub(["v1"])
    with pytest.raises(ValueError, match="registered already"):
        hub.topic("wallboard", Kind.SNAPSHOT)
    with pytest.raises(ValueError, match="at least 1"):
        hub.topic("supervisor", Kind.EVENTS, limit=0)


async def test_next_waits_for_a_publish_and_wakes_on_a_close() -> None:
    hub = PushHub()
    hub.topic("supervisor", Kind.EVENTS, limit=1)
    subscription = hub.subscribe("supervisor")
    waiting = asyncio.ensure_future(subscription.next())
    await asyncio.sleep(0)
    assert not waiting.done()
    hub.publish("supervisor", "e0")
    assert await waiting == "e0"
    waiting = asyncio.ensure_future(subscription.next())
    await asyncio.sleep(0)
    hub.publish("supervisor", "e1")
    hub.publish("supervisor", "e2")  # e1 not taken yet: over the limit of 1
    with pytest.raises(Closed, match="more than 1 messages behind"):
        await waiting


# ---- the WebSocket shell --------------------------------------------------------------------------------


@pytest.fixture()
async def site() -> AsyncIterator[Any]:
    hub = PushHub()
    hub.topic("wallboard", Kind.SNAPSHOT, snapshot=lambda _: "snapshot")
    hub.topic("supervisor", Kind.EVENTS, snapshot=lambda _: "snapshot", limit=2)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        return await serve(request, hub, request.match_info["topic"])

    async def both(request: web.Request) -> web.WebSocketResponse:
        return await serve(request, hub, ("wallboard", "supervisor"))

    app = web.Application()
    app.router.add_get("/ws/{topic}", socket)
    app.router.add_get("/ws-both", both)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, hub


async def until_subscribed(hub: PushHub, name: str, count: int) -> None:
    """The server's handler runs on this loop: let it reach its subscription."""
    for _ in range(1000):
        if hub.subscribers(name) == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{count} subscribers of {name} expected, {hub.subscribers(name)} there")


async def test_the_socket_sends_the_snapshot_then_what_is_published(site: Any) -> None:
    client, hub = site
    ws = await client.ws_connect("/ws/wallboard")
    assert (await ws.receive(timeout=5)).data == "snapshot"
    hub.publish("wallboard", "v2")
    assert (await ws.receive(timeout=5)).data == "v2"
    await ws.close()
    await until_subscribed(hub, "wallboard", 0)


async def test_a_socket_over_the_bound_is_closed_with_the_reason(site: Any) -> None:
    client, hub = site
    ws = await client.ws_connect("/ws/supervisor")
    await until_subscribed(hub, "supervisor", 1)
    for n in range(3):  # nothing runs the handler in between: at least 3 wait, over its bound of 2
        hub.publish("supervisor", f"e{n}")
    message = await ws.receive(timeout=5)
    if message.type == WSMsgType.TEXT:  # the handler had sent the snapshot before the burst
        assert message.data == "snapshot"
        message = await ws.receive(timeout=5)
    assert message.type == WSMsgType.CLOSE
    assert message.data == CLOSE_CODE and message.extra == "slow-consumer: more than 2 messages behind"
    await until_subscribed(hub, "supervisor", 0)
    again = await client.ws_connect("/ws/supervisor")  # reconnecting: the snapshot afresh
    assert (await again.receive(timeout=5)).data == "snapshot"
    await again.close()


async def test_one_socket_carries_several_topics_each_with_its_snapshot(site: Any) -> None:
    client, hub = site
    ws = await client.ws_connect("/ws-both")
    assert [(await ws.receive(timeout=5)).data for _ in range(2)] == ["snapshot", "snapshot"]
    hub.publish("supervisor", "e1")
    assert (await ws.receive(timeout=5)).data == "e1"
    hub.publish("wallboard", "v2")
    assert (await ws.receive(timeout=5)).data == "v2"
    await ws.close()
    await until_subscribed(hub, "wallboard", 0)
    await until_subscribed(hub, "supervisor", 0)


async def test_a_socket_of_several_topics_closes_when_one_falls_behind(site: Any) -> None:
    client, hub = site
    ws = await client.ws_connect("/ws-both")
    await until_subscribed(hub, "supervisor", 1)
    for n in range(3):
        hub.publish("supervisor", f"e{n}")
    while (message := await ws.receive(timeout=5)).type == WSMsgType.TEXT:
        assert message.data == "snapshot"
    assert message.type == WSMsgType.CLOSE and message.data == CLOSE_CODE
    await until_subscribed(hub, "wallboard", 0)  # the other topic is left too


async def test_a_browser_that_leaves_as_a_message_goes_out_ends_its_socket_quietly(
    site: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp refuses to write to a closing transport (a browser that just left): the handler ends as for
    any leaving browser, with nothing logged as an error (seen against the real Asterisk, test_desktop)."""
    client, hub = site
    ws = await client.ws_connect("/ws/wallboard")
    assert (await ws.receive(timeout=5)).data == "snapshot"

    async def closing(self: web.WebSocketResponse, data: str, compress: int | None = None) -> None:
        raise ClientConnectionResetError("Cannot write to closing transport")

    monkeypatch.setattr(web.WebSocketResponse, "send_str", closing)
    hub.publish("wallboard", "v2")
    await until_subscribed(hub, "wallboard", 0)
    await ws.close()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
