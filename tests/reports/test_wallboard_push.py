"""The wallboard's push: a tick gives a snapshot when something changed or a second passed, and the
component publishes it on the hub's `wallboard` topic only while someone watches."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from ctid.push import WALLBOARD_TOPIC, PushHub
from ctid.state import domain as d
from reports.component import WallboardComponent
from reports.wallboard import Wallboard

T0 = 1_795_420_800.0  # 2026-11-23 08:00 UTC


def board(waiting: list[int]) -> Wallboard:
    """A wallboard whose sales queue has `waiting[0]` callers waiting."""

    def views() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        queue = {"queue": "sales", "calls_waiting": waiting[0], "longest_wait_s": 0.0, "agents": {}}
        return [queue], []

    w = Wallboard(views=views, clock=lambda: T0)
    w.resume([])  # today taken up, as when ctid starts
    return w


def test_a_tick_gives_a_snapshot_when_something_changed_or_each_second() -> None:
    waiting = [0]
    w = board(waiting)
    first = w.tick(100.0)
    assert first is not None and json.loads(first)["version"] == 1
    assert w.tick(100.25) is None  # nothing changed, not a second yet: not even rebuilt
    waiting[0] = 1  # a live view moved: seen at the next second
    assert w.tick(100.5) is None
    second = w.tick(101.0)
    assert second is not None and json.loads(second)["queues"][0]["waiting"] == 1
    assert w.tick(102.0) is None  # rebuilt, but the same as the last pushed: nothing to push
    waiting[0] = 2
    w.on_event("pbx1", d.CallWaiting(T0, "c1", "c1", "sales", T0, False))
    third = w.tick(102.1)  # an event: rebuilt at once, within the second
    assert third is not None and json.loads(third)["queues"][0]["waiting"] == 2
    assert json.loads(third)["version"] == 3


async def test_the_component_publishes_on_the_wallboard_topic_only_while_someone_watches() -> None:
    hub = PushHub()
    w = board([0])
    ctx: Any = SimpleNamespace(bus=None, clock=None, engine=None, hub=hub)
    component = WallboardComponent(ctx, w)
    component.push()
    assert w.version == 0  # nobody watching: no snapshot built
    with hub.subscribe(WALLBOARD_TOPIC) as viewer:
        first = viewer.next_nowait()
        assert first is not None and json.loads(first)["queues"][0]["queue"] == "sales"
        component.push()
        pushed = viewer.next_nowait()
        assert pushed is not None and json.loads(pushed)["version"] == w.version == 1
        assert viewer.next_nowait() is None
