"""ctid's HTTP side under hostile clients, over real loopback TCP: JSON bodies that are too deep, too large
or not JSON are a 400 (never a 500), and wallboard viewers connecting cost one message each."""

from __future__ import annotations

import itertools
import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient, TestServer

from ctid.push import WALLBOARD_TOPIC, PushHub
from ctid.state import domain as d
from ctid.web import MAX_JSON_BODY, MAX_JSON_DEPTH, _json_depth, make_app
from reports.component import WallboardApi
from reports.wallboard import Wallboard
from routing.component import RoutingApi
from tests.auth_rig import logged_in_fake

T0 = 1_795_420_800.0


def make_board() -> Wallboard:
    ticks = itertools.count()

    def clock() -> float:  # every snapshot differs (time in state grows): the case that used to broadcast
        return T0 + next(ticks)

    def views() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        queues: list[dict[str, Any]] = [
            {"queue": "sales", "calls_waiting": 0, "longest_wait_s": 0.0, "agents": {}}
        ]
        agents: list[dict[str, Any]] = [
            {"id": "a1", "name": "Ann", "status": "ready", "device": "PJSIP/1001", "time_in_state_s": clock()}
        ]
        return queues, agents

    board = Wallboard(views=views, clock=clock)
    arrived = d.CallArrived(T0, "c1", "c1", "PJSIP/trunk-1", d.Direction.INBOUND, "13900000001", "", "4000")
    board.on_event("pbx1", arrived)
    board.on_event("pbx1", d.CallWaiting(T0, "c1", "c1", "sales", T0, False))
    board.on_event("pbx1", d.CallAbandoned(T0 + 40, "c1", "sales", 40.0, False))
    return board


class FakeRouting:
    def __init__(self) -> None:
        self.book = SimpleNamespace(agents={"a1": object()})
        self.set: list[tuple[str, str, str]] = []

    def set_agent_state(self, agent_id: str, status: Any, reason: str) -> dict[str, Any]:
        self.set.append((agent_id, status.value, reason))
        return {"id": agent_id, "status": status.value}


@pytest.fixture()
async def site() -> Any:
    published: list[Any] = []
    bus: Any = SimpleNamespace(publish=lambda origin, events: published.extend(events))
    routing: Any = FakeRouting()
    board = make_board()
    hub = PushHub()
    auth, headers = logged_in_fake()
    ctid: Any = SimpleNamespace(
        components=[
            auth,
            RoutingApi(routing, versions=None),
            WallboardApi(board, bus, hub),
        ],  # routes as mounted
        health=lambda: {"ok": True},
    )
    async with TestClient(TestServer(make_app(ctid), host="127.0.0.1"), headers=headers) as client:
        yield SimpleNamespace(client=client, routing=routing, board=board, hub=hub, published=published)


HOSTILE = {
    "deep array": "[" * 100_000 + "]" * 100_000,
    "deep object": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "just over the depth": '{"state": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}",
    "too large": json.dumps({"state": "ready", "reason": "x" * MAX_JSON_BODY}),
    "not json": '{"state": "ready"',
    "not an object": '["ready"]',
    "not utf-8": b'{"state": "ready", "reason": "caf\xe9"}',
    "unclosed escaped quotes": '{"state": "' + '\\"' * 30_000,
    "empty": "",
}


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("path", ["/api/agents/a1/state", "/api/wallboard/worklist/c1"])
async def test_a_hostile_json_body_is_a_400_and_the_server_serves_on(site: Any, path: str, kind: str) -> None:
    body = HOSTILE[kind]
    response = await site.client.post(path, data=body.encode() if isinstance(body, str) else body)
    assert response.status == 400, await response.text()
    assert (await response.text()).strip()
    assert (await site.client.get("/healthz")).status == 200
    assert site.routing.set == [] and site.published == []


@pytest.mark.parametrize(
    "text", ['"' + '\\"' * 32_000, '"' * MAX_JSON_BODY, '"' + "a\\" * 21_000, "[" * MAX_JSON_BODY]
)
def test_the_depth_of_a_body_is_counted_in_linear_time(text: str) -> None:
    """Strings that never close (the backtracking case of a string pattern) cost no more than others."""
    started = time.perf_counter()
    assert _json_depth(text) in (0, MAX_JSON_BODY)
    assert time.perf_counter() - started < 1.0


async def test_a_chunked_body_over_the_limit_is_refused_without_reading_it_all(site: Any) -> None:
    async def chunks() -> Any:
        for _ in range(1_000):  # 8 MB on offer; the server stops after 64 KiB
            yield b" " * 8192

    response = await site.client.post("/api/agents/a1/state", data=chunks())
    assert response.status == 400 and str(MAX_JSON_BODY) in await response.text()


async def test_well_formed_bodies_still_work(site: Any) -> None:
    nested = {"state": "paused", "reason": "break", "note": {"a": [[["[{ in a string"]]]}}
    response = await site.client.post("/api/agents/a1/state", json=nested)
    assert response.status == 200
    assert site.routing.set == [("a1", "paused", "break")]
    response = await site.client.post("/api/wallboard/worklist/c1", json={"action": "callback"})
    assert response.status == 200 and (await response.json())["state"] == "open"
    assert [type(e).__name__ for e in site.published] == ["WorkItemMarked"]


async def test_n_wallboard_viewers_connecting_cost_n_messages_not_n_squared(site: Any) -> None:
    """Each viewer gets its own snapshot at once; the others get nothing for it. After one push of the
    wallboard's own loop, every viewer has received exactly two messages: 2N in all."""
    board: Wallboard = site.board
    n = 12
    sockets = []
    for _ in range(n):
        ws = await site.client.ws_connect("/ws/wallboard")
        first = json.loads((await ws.receive(timeout=5)).data)
        assert [q["queue"] for q in first["queues"]] == ["sales"] and first["worklist"]
        sockets.append(ws)
    assert site.hub.subscribers(WALLBOARD_TOPIC) == n  # each handler subscribes before the first message
    pushed = board.refresh()
    assert pushed is not None
    site.hub.publish(WALLBOARD_TOPIC, pushed)  # what the wallboard's push does for a change
    received = n  # the first messages
    for ws in sockets:
        while True:
            message = await ws.receive(timeout=5)
            assert message.type == WSMsgType.TEXT
            received += 1
            if json.loads(message.data)["version"] == board.version:
                break
        await ws.close()
    assert received == 2 * n
