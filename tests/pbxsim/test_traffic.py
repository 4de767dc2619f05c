"""Seeded traffic: arrival rates, patience, agents answering, outbound fates, byte-for-byte determinism."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from ctid.ami.message import AmiMessage
from pbxsim import World, call_center_site, scripted_peer, unreachable_peer
from pbxsim.autoroute import AutoRouter
from pbxsim.traffic import TrafficGenerator, TrafficProfile

NINE_AM = 1_795_392_000.0 + 9 * 3600  # 2026-11-23 09:00 UTC
AGENTS = [str(n) for n in range(1001, 1006)]
AGI = {"inbound": ['SET VARIABLE CTID_QUEUE "sales"'], "outbound": ['SET VARIABLE CTID_QUEUE "outbound"']}


def traffic_world(seed: int, profile: TrafficProfile, agi: bool = False) -> tuple[World, TrafficGenerator]:
    peer = scripted_peer(AGI) if agi else unreachable_peer
    world = World(seed=seed, start=NINE_AM, endpoints=call_center_site(AGENTS), agi_peer=peer)
    generator = TrafficGenerator(world, profile)
    generator.start()
    return world, generator


def test_callers_arrive_at_the_configured_rate_and_abandon_after_their_patience() -> None:
    world, gen = traffic_world(11, TrafficProfile.flat(120))
    events = world.step(2 * 3600)
    assert 190 <= gen.arrivals <= 290  # Poisson, mean 240
    arrived = {e["Channel"]: float(e["Timestamp"]) for e in events if e.name == "Newchannel"}
    waited = {e["Channel"] for e in events if e.name == "Newexten" and e.get("Context") == "ctid-wait"}
    hung_up = {e["Channel"]: float(e["Timestamp"]) for e in events if e.name == "Hangup"}
    assert set(arrived) == waited
    for plan in gen.plans.values():
        if plan.channel in hung_up:
            assert hung_up[plan.channel] - plan.arrived == pytest.approx(plan.patience, abs=1e-6)
    assert len(hung_up) >= len(arrived) - 5  # only the last few are still waiting
    assert all(e["Cause"] == "16" for e in events if e.name == "Hangup")


def test_arrivals_follow_the_hour_of_day_profile() -> None:
    hours = [0.0] * 24
    hours[10] = 300.0
    world, _ = traffic_world(5, TrafficProfile(hourly_calls=tuple(hours)))
    events = world.step(3 * 3600)  # 09:00 to 12:00
    arrivals = [float(e["Timestamp"]) for e in events if e.name == "Newchannel"]
    assert 230 <= len(arrivals) <= 370
    assert all(NINE_AM + 3600 <= t < NINE_AM + 7200 for t in arrivals)


def test_agents_connected_by_a_driver_answer_and_calls_end() -> None:
    profile = replace(TrafficProfile.flat(60), answer_probability=0.8, hold_probability=0.5, talk_mean=60.0)
    world, gen = traffic_world(7, profile, agi=True)
    router = AutoRouter(world, AGENTS)
    events = router.run(3600)
    gen.stop()
    events += router.run(1800)
    names = Counter(e.name for e in events)
    statuses = Counter(e["DialStatus"] for e in events if e.name == "DialEnd")
    assert statuses["ANSWER"] >= 30
    assert statuses["NOANSWER"] >= 1  # some phones never answer; the Dial times out and ctid re-routes
    assert names["Hold"] >= 5 and names["Hold"] == names["Unhold"]
    assert names["BridgeEnter"] == 2 * names["BridgeCreate"]
    assert world.channels == {}  # every call ended
    ended_by_agent = len(
        {e["Channel"] for e in events if e.name == "Newexten" and e["Context"] == "ctid-after"}
    )
    assert 0 < ended_by_agent < statuses["ANSWER"]  # both sides hang up first sometimes


def _bytes(world: World, seconds: float, driven: bool) -> bytes:
    if driven:
        return b"".join(m.to_bytes() for m in AutoRouter(world, AGENTS).run(seconds))
    return b"".join(m.to_bytes() for m in world.step(seconds))


@pytest.mark.parametrize("driven", [False, True])
def test_same_seed_same_events_byte_for_byte(driven: bool) -> None:
    profile = replace(TrafficProfile(), hold_probability=0.3)
    first = _bytes(traffic_world(42, profile, agi=True)[0], 3600, driven)
    second = _bytes(traffic_world(42, profile, agi=True)[0], 3600, driven)
    other = _bytes(traffic_world(43, profile, agi=True)[0], 3600, driven)
    assert len(first) > 10_000
    assert first == second
    assert first != other


@pytest.mark.parametrize(
    ("rates", "expect"),
    [
        ((1.0, 0.0, 0.0, 0.0), "HUMAN"),
        ((0.0, 1.0, 0.0, 0.0), "MACHINE"),
        ((0.0, 0.0, 1.0, 0.0), "busy"),
        ((0.0, 0.0, 0.0, 1.0), "noanswer"),
    ],
)
def test_outbound_numbers_answer_as_the_profile_says(rates: tuple[float, ...], expect: str) -> None:
    human, machine, busy, no_answer = rates
    profile = replace(
        TrafficProfile.flat(0.0),
        human_rate=human,
        machine_rate=machine,
        busy_rate=busy,
        no_answer_rate=no_answer,
    )
    world, _ = traffic_world(3, profile, agi=True)
    origin = AmiMessage(
        [
            ("Action", "Originate"),
            ("ActionID", "o1"),
            ("Channel", "Local/5551234@sim-callees"),
            ("Context", "ctid-outbound"),
            ("Exten", "s"),
            ("Priority", "1"),
            ("Timeout", "30000"),
        ]
    )
    assert world.handle_action(origin).replies[0]["Response"] == "Success"
    events = world.step(120)
    response = next(e for e in events if e.name == "OriginateResponse")
    amd = [e["Value"] for e in events if e.name == "VarSet" and e["Variable"] == "AMDSTATUS"]
    if expect == "busy":
        assert (response["Response"], response["Reason"]) == ("Failure", "5")
    elif expect == "noanswer":
        assert (response["Response"], response["Reason"]) == ("Failure", "3")
    else:
        assert response["Response"] == "Success"
        assert amd == [expect]
        waiting = [e for e in events if e.name == "Newexten" and e.get("Context") == "ctid-wait"]
        assert waiting, "answered outbound calls go on to ctid-wait after FastAGI"
    assert world.channels == {} or expect in ("HUMAN", "MACHINE")
