"""ctid as the ACD, end to end: pbxsim over TCP, the IVR over FastAGI, routing.yaml, REST and the AMI stream.

ctid's clock is pbxsim's virtual clock (injected, as a wall clock would be in production), so waits and
ageing are exact while each test runs in a second or two.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.orm import Session
from structlog.testing import capture_logs

from ctid.config import load_config
from ctid.customers import Tier
from ctid.customers.book import Customer, import_csv_text
from ctid.daemon import Ctid
from ivr.component import IvrComponent
from pbxsim import PbxSimServer, World, WorldClock, call_center_site
from pbxsim.world import PhonePlan
from reports.log import load_events
from routing.component import RoutingComponent
from tests.auth_rig import bearer

START = 1_795_402_800.0  # Monday 2026-11-23, 11:00 in Shanghai: the office queues are open
AGENTS = {"alice": "1001", "bob": "1002", "carol": "1003"}

ROUTING = """\
queues:
  sales:
    skills: {{sales: 3}}
    strategy: {strategy}
    ring_timeout_s: 10
    wrap_up_s: 0
    max_wait_s: 3000
    hours: office
    closed_action: {closed_action}
  "200":
    skills: {{support: 3}}
    strategy: longest_idle
    ring_timeout_s: 10
    max_wait_s: 3000
dnis:
  "4000": sales
  "4001": "200"
hours:
  office:
    timezone: Asia/Shanghai
    weekly: {{mon: ["08:00-18:00"], tue: ["08:00-18:00"]}}
agents:
  - {{id: alice, name: Alice, device: PJSIP/1001, skills: {{sales: 5}}, queues: [sales]}}
  - {{id: bob, name: Bob, device: PJSIP/1002, skills: {{sales: 6}}, queues: [sales]}}
  - {{id: carol, name: Carol, device: PJSIP/1003, skills: {{sales: 8, support: 5}}, queues: [sales, "200"]}}
priorities:
  base: {{A: 100, B: 50, C: 10}}
  ageing_per_s: 1.0
pause_reasons: [no-answer, break]
"""

CUSTOMERS = """\
id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip
gold,Gold Ltd,13900000001,900000,9,100,client,false
plain,Plain Co,13900000003,100,1,100,first_time,false
"""


@dataclass
class Site:
    server: PbxSimServer
    ctid: Ctid
    base: str
    routing_file: Path
    answer: dict[str, float | None]  # agent phone -> seconds before answering (None: never)
    config: Path | None = None  # ctid.yaml, for a restart
    login: dict[str, str] = field(default_factory=dict)  # an admin's bearer token

    async def restart(self, while_down: float = 0.0) -> None:
        """Stop ctid as SIGTERM does, let `while_down` virtual seconds pass, start a new ctid on the same
        database and wait for its resync."""
        await self.ctid.stop()
        await self.run(while_down)
        await self.start_again()

    async def start_again(self) -> None:
        """A new ctid on the same ctid.yaml and database (the previous one stopped), once it has resynced."""
        assert self.config is not None
        ctid = Ctid(load_config(self.config), clock=WorldClock(self.world))
        ctid.component(RoutingComponent).service.ticker.interval_s = 0.005
        await ctid.start()
        self.server.agi_port = ctid.component(IvrComponent).port
        await ctid.wait_synced()
        self.ctid, self.base = ctid, f"http://127.0.0.1:{ctid.web_port}"
        await self.run(0.5)

    @property
    def world(self) -> World:
        return self.server.world

    async def run(self, seconds: float, step: float = 0.5) -> None:
        """Let virtual time pass in small steps, giving ctid's reads and actions real time in between."""
        end = self.world.now + seconds
        while self.world.now < end:
            await self.server.advance(min(step, end - self.world.now))
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await self.server.settle()

    async def call(self, dnis: str, number: str) -> str:
        channel = await self.server.call_in("trunk", dnis, cid_num=number)
        await self.run(1)
        return channel

    async def set_state(self, agent: str, state: str, reason: str = "") -> int:
        async with (
            aiohttp.ClientSession(headers=self.login) as http,
            http.post(
                f"{self.base}/api/agents/{agent}/state", json={"state": state, "reason": reason}
            ) as resp,
        ):
            return resp.status

    async def get(self, path: str) -> Any:
        async with aiohttp.ClientSession(headers=self.login) as http, http.get(self.base + path) as resp:
            return await resp.json()

    async def agent_of(self, caller_channel: str) -> str:
        """Which agent the caller is talking to, by ctid's /api/calls."""
        for call in await self.get("/api/calls"):
            if call["contact_channel"] == caller_channel:
                return str(call.get("agent", ""))
        return ""

    async def hang_up(self, channel: str) -> None:
        ch = next(c for c in self.world.channels.values() if c.name == channel)
        self.world.hangup(ch, 16)
        await self.run(1)


def agent_device(agent: str) -> str:
    return f"PJSIP/{AGENTS[agent]}"


@pytest.fixture
async def make_site(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Site]]]:
    sites: list[Site] = []

    async def make(
        strategy: str = "longest_idle",
        closed_action: str = "voicemail",
        start: float = START,
        *,
        before_ctid: Callable[[PbxSimServer], Awaitable[None]] | None = None,
        server_options: str = "",
    ) -> Site:
        world = World(seed=7, start=start, endpoints=call_center_site(AGENTS.values()))
        answer: dict[str, float | None] = {}

        def policy(endpoint: Any, ch: Any) -> PhonePlan:
            return PhonePlan(answer.get(endpoint.name, 1.0))

        world.phone_policy = policy
        server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)
        await server.start()
        if before_ctid is not None:  # what happens while ctid is not running yet
            await before_ctid(server)
        routing_file = tmp_path / "routing.yaml"
        routing_file.write_text(ROUTING.format(strategy=strategy, closed_action=closed_action))
        config = tmp_path / "ctid.yaml"
        config.write_text(
            "asterisk:\n"
            f"  - {{name: pbx1, host: 127.0.0.1, port: {server.port}, username: ctid, secret: ctid"
            f"{server_options}}}\n"
            "agi: {host: 127.0.0.1, port: 0}\n"
            "web: {host: 127.0.0.1, port: 0}\n"
            f"database: sqlite:///{tmp_path}/ctid.db\n"
            f"spool: {tmp_path}/spool.jsonl\n"
            "routing: routing.yaml\n"
        )
        ctid = Ctid(load_config(config), clock=WorldClock(world))
        routing = ctid.component(RoutingComponent).service
        routing.ticker.interval_s = 0.005  # a pass per virtual half second or so: overflow steps fall due

        with Session(ctid.interaction_log.engine) as session:
            assert not import_csv_text(session, CUSTOMERS).rejected

            session.get_one(Customer, "gold").tier = Tier.A
            session.get_one(Customer, "plain").tier = Tier.C
            session.commit()
        await ctid.start()
        server.agi_port = ctid.component(IvrComponent).port
        await ctid.wait_synced()
        site = Site(server, ctid, f"http://127.0.0.1:{ctid.web_port}", routing_file, answer, config)
        site.login = bearer(ctid.context.engine)
        sites.append(site)
        return site

    yield make
    for site in sites:
        await site.ctid.stop()
        await site.server.stop()


async def test_a_tier_a_caller_who_arrives_later_is_connected_first(make_site: Any) -> None:
    site = await make_site()
    plain = await site.call("4000", "13900000003")
    await site.run(5)
    gold = await site.call("4000", "13900000001")
    queues = {q["queue"]: q for q in await site.get("/api/queues")}
    waiting = queues["sales"]["waiting"]
    # the head start counts once A has waited head_start_after_s (5 s): until then C, who came first
    assert [w["tier"] for w in waiting] == ["C", "A"]
    assert waiting[1]["priority"] == waiting[1]["wait_s"] < 5
    await site.run(5)
    queues = {q["queue"]: q for q in await site.get("/api/queues")}
    waiting = queues["sales"]["waiting"]
    assert [w["tier"] for w in waiting] == ["A", "C"]  # by priority: A first although C waits longer
    assert waiting[1]["wait_s"] > waiting[0]["wait_s"] >= 5
    assert waiting[0]["priority"] == pytest.approx(100 + waiting[0]["wait_s"], abs=0.01)
    assert await site.set_state("alice", "ready") == 200
    await site.run(3)
    assert await site.agent_of(gold) == agent_device("alice")
    assert await site.agent_of(plain) == ""
    agents = {a["id"]: a for a in await site.get("/api/agents")}
    assert agents["alice"]["status"] == "on_call_inbound"


async def test_a_c_caller_who_waited_long_enough_overtakes_a_fresh_a_caller(make_site: Any) -> None:
    site = await make_site()
    plain = await site.call("4000", "13900000003")
    await site.run(95)  # C: 10 + 1/s x 95 s = 105 > a fresh A's 100
    gold = await site.call("4000", "13900000001")
    assert await site.set_state("bob", "ready") == 200
    await site.run(3)
    assert await site.agent_of(plain) == agent_device("bob")
    assert await site.agent_of(gold) == ""


async def test_ring_no_answer_pauses_the_agent_and_the_call_reaches_the_next(make_site: Any) -> None:
    site = await make_site()
    site.answer[AGENTS["alice"]] = None  # alice's phone rings out
    assert await site.set_state("alice", "ready") == 200
    await site.run(1)
    assert await site.set_state("bob", "ready") == 200  # alice idles longest: she is offered first
    caller = await site.call("4000", "13900000003")
    arrived = site.world.now - 1
    await site.run(14)  # 10 s ring timeout, then back to waiting and on to bob
    assert await site.agent_of(caller) == agent_device("bob")
    agents = {a["id"]: a for a in await site.get("/api/agents")}
    assert agents["alice"]["status"] == "paused" and agents["alice"]["pause_reason"] == "no-answer"
    call = next(c for c in await site.get("/api/calls") if c["contact_channel"] == caller)
    kinds = [step["kind"] for step in (await site.get(f"/api/calls/{call['linkedid']}"))["timeline"]]
    assert kinds.count("AgentRinging") == 2 and "RingNoAnswer" in kinds
    assert abs(call["arrived_at"] - arrived) < 1.5  # the contact keeps its arrival (METRICS.md)


async def ready_in_order(site: Site, *agents: str) -> None:
    for agent in agents:
        assert await site.set_state(agent, "ready") == 200
        await site.run(1)


async def answered_by(site: Site, number: str = "13900000003") -> str:
    caller = await site.call("4000", number)
    await site.run(3)
    return await site.agent_of(caller)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("longest_idle", "carol"), ("skill_first", "carol"), ("round_robin", "alice")],
)
async def test_strategy_picks_the_agent_it_promises(make_site: Any, strategy: str, expected: str) -> None:
    site = await make_site(strategy=strategy)
    # carol idles longest and has the best skill (8); alice sorts first by id among never-offered agents
    await ready_in_order(site, "carol", "alice", "bob")
    if strategy == "round_robin":
        site.ctid.component(RoutingComponent).service.book.agents[
            "alice"
        ].last_offered_seq = 0  # nobody has been offered yet
    assert await answered_by(site) == agent_device(expected)


async def test_least_occupied_prefers_the_agent_who_worked_least(make_site: Any) -> None:
    site = await make_site(strategy="least_occupied")
    await ready_in_order(site, "alice")
    first = await site.call("4000", "13900000003")
    await site.run(60)  # alice talks for a minute
    assert await site.agent_of(first) == agent_device("alice")
    await site.hang_up(first)
    await site.run(2)  # wrap-up 0: alice is ready again, and has idled longer than bob will have
    await ready_in_order(site, "bob")
    assert await answered_by(site) == agent_device("bob")


async def test_best_for_tier_gives_a_callers_the_best_rated_agent(make_site: Any) -> None:
    site = await make_site(strategy="best_for_tier")
    await ready_in_order(site, "bob", "carol", "alice")
    book = site.ctid.component(RoutingComponent).service.book.agents
    book["alice"].quality, book["bob"].quality, book["carol"].quality = 0.95, 0.6, 0.7
    assert await answered_by(site, "13900000001") == agent_device("alice")  # tier A: best rated
    assert await answered_by(site) == agent_device("bob")  # tier C: the longest idle of the rest


async def test_a_blind_transfer_to_a_queue_is_routed_there_with_its_history(make_site: Any) -> None:
    site = await make_site()
    await ready_in_order(site, "alice", "carol")
    caller = await site.call("4000", "13900000003")
    await site.run(3)
    assert await site.agent_of(caller) == agent_device("alice")
    agent_channel = next(c.name for c in site.server.channels() if c.name.startswith("PJSIP/1001-"))
    reply = await site.server.phone_action(
        "BlindTransfer", Channel=agent_channel, Context="ctid-transfer", Exten="200"
    )
    assert reply["Response"] == "Success"
    await site.run(4)
    assert await site.agent_of(caller) == agent_device("carol")
    call = next(c for c in await site.get("/api/calls") if c["contact_channel"] == caller)
    assert call["queue"] == "200"
    detail = await site.get(f"/api/calls/{call['linkedid']}")
    kinds = [step["kind"] for step in detail["timeline"]]
    assert "CallTransferred" in kinds and kinds.count("CallConnected") == 2
    assert detail["agents"] == [agent_device("alice"), agent_device("carol")]


async def test_closed_hours_send_callers_to_the_closed_action(make_site: Any) -> None:
    site = await make_site(start=START + 8 * 3600)  # 19:00 in Shanghai: the office is closed
    await ready_in_order(site, "alice")
    caller = await site.call("4000", "13900000003")
    history = await site.get("/api/calls/history")
    ended = next(c for c in history if c["contact_channel"] == caller)
    assert ended["disposition"] == "deflected"
    deflected = next(step for step in ended["timeline"] if step["kind"] == "CallDeflected")
    assert (deflected["to"], deflected["reason"], deflected["queue"]) == ("voicemail", "closed", "sales")
    assert [c for c in site.world.channels.values() if c.name == caller] == []


async def test_closed_hours_can_move_callers_to_another_queue(make_site: Any) -> None:
    site = await make_site(closed_action='"queue:200"', start=START + 8 * 3600)
    await ready_in_order(site, "carol")
    caller = await site.call("4000", "13900000003")
    await site.run(3)
    assert await site.agent_of(caller) == agent_device("carol")
    call = next(c for c in await site.get("/api/calls") if c["contact_channel"] == caller)
    assert call["queue"] == "200"


async def test_an_overflow_step_offers_a_callback_and_records_the_acceptance(make_site: Any) -> None:
    site = await make_site()
    text = site.routing_file.read_text().replace(
        "    max_wait_s: 3000\n    hours: office",
        "    max_wait_s: 3000\n    overflow: [{after_s: 30, action: callback}]\n    hours: office",
    )
    site.routing_file.write_text(text)
    from routing.config import load_routing

    site.ctid.component(RoutingComponent).service.apply_config(load_routing(site.routing_file))
    caller = await site.call("4000", "13900000003")
    ch = next(c for c in site.world.channels.values() if c.name == caller)
    site.world.set_var(ch, "SIM_DTMF", "1")  # the caller will press 1
    await site.run(35)
    ended = next(c for c in await site.get("/api/calls/history") if c["contact_channel"] == caller)
    deflected = next(step for step in ended["timeline"] if step["kind"] == "CallDeflected")
    assert (deflected["to"], deflected["reason"]) == ("callback", "overflow")
    assert 30 <= deflected["wait_s"] < 32
    assert ended["disposition"] == "deflected"
    assert [(r.number, r.queue) for r in site.ctid.component(IvrComponent).server.callbacks] == [
        ("13900000003", "sales")
    ]


async def test_a_reload_applies_to_callers_already_waiting_and_a_broken_file_changes_nothing(
    make_site: Any,
) -> None:
    site = await make_site()
    plain = await site.call("4000", "13900000003")
    await site.call("4000", "13900000001")
    original = site.routing_file.read_text()
    assert [w["tier"] for w in (await queue_of(site, "sales"))["waiting"]] == ["C", "A"]  # A's delay
    no_delay = original.replace("  ageing_per_s: 1.0\n", "  ageing_per_s: 1.0\n  head_start_after_s: 0\n")
    site.routing_file.write_text(no_delay)
    async with aiohttp.ClientSession(headers=site.login) as http:
        async with http.post(f"{site.base}/api/routing/reload") as resp:
            assert resp.status == 200 and (await resp.json())["version"] == 2
        waiting = (await queue_of(site, "sales"))["waiting"]
        assert [w["tier"] for w in waiting] == ["A", "C"]  # without the delay, A's head start counts at once
        site.routing_file.write_text(
            no_delay.replace("base: {A: 100, B: 50, C: 10}", "base: {A: 100, B: 50, C: 500}")
        )
        async with http.post(f"{site.base}/api/routing/reload") as resp:
            assert resp.status == 200 and (await resp.json())["version"] == 3
        waiting = (await queue_of(site, "sales"))["waiting"]
        assert [w["tier"] for w in waiting] == ["C", "A"]  # the waiting C caller is now ahead
        broken = site.routing_file.read_text().replace(
            "    ring_timeout_s: 10\n", "\tring_timeout_s: 10\n", 1
        )
        site.routing_file.write_text(broken)
        async with http.post(f"{site.base}/api/routing/reload") as resp:
            body = await resp.json()
        assert resp.status == 422 and body["version"] == 3
        line = next(n for n, text in enumerate(broken.splitlines(), 1) if text.startswith("\t"))
        assert any(f"{site.routing_file}:{line}:" in error for error in body["errors"]), body["errors"]
        async with http.get(f"{site.base}/api/routing/history") as resp:
            versions = [(v["version"], v["current"]) for v in await resp.json()]
            assert versions == [(3, True), (2, False), (1, False)]
    assert await site.set_state("alice", "ready") == 200
    await site.run(3)
    assert await site.agent_of(plain) == agent_device("alice")  # routed on version 3, not the broken file


async def queue_of(site: Site, name: str) -> dict[str, Any]:
    return next(q for q in await site.get("/api/queues") if q["queue"] == name)


async def test_metrics_expose_the_live_queue_figures(make_site: Any) -> None:
    site = await make_site()
    await ready_in_order(site, "alice")
    await answered_by(site)
    await site.call("4000", "13900000001")  # waits: alice is busy
    async with aiohttp.ClientSession(headers=site.login) as http, http.get(f"{site.base}/metrics") as resp:
        text = await resp.text()
    board = {q["queue"]: q for q in (await site.get("/api/wallboard"))["queues"]}
    assert f'ctid_service_level_ratio{{queue="sales"}} {float(board["sales"]["service_level"])}' in text
    assert 'ctid_calls_waiting{queue="sales"} 1.0' in text
    assert 'ctid_agents{queue="sales",state="on_call_inbound"} 1.0' in text
    assert 'ctid_wait_seconds_count{outcome="answered",queue="sales"}' in text
    assert "ctid_routing_decision_seconds_count" in text


async def test_the_report_api_gives_what_the_log_holds(make_site: Any) -> None:
    site = await make_site()
    await ready_in_order(site, "alice")
    await answered_by(site)
    await site.ctid.interaction_log.flush()
    start, end = START - 60, site.world.now + 60
    summary = await site.get(f"/api/reports/queue-summary?from={start}&to={end}")
    sales = next(q for q in summary if q["queue"] == "sales")
    assert (sales["offered"], sales["answered"]) == (1, 1)
    async with aiohttp.ClientSession(headers=site.login) as http:
        async with http.get(
            f"{site.base}/api/reports/queue-summary?from={start}&to={end}&format=html"
        ) as resp:
            assert resp.status == 200 and "<svg" in await resp.text()
        async with http.get(f"{site.base}/api/reports/nope") as resp:
            assert resp.status == 404
        async with http.get(f"{site.base}/api/reports/queue-summary?from=yesterday") as resp:
            assert resp.status == 400


async def test_a_supervisor_marks_an_abandoned_caller_and_the_mark_is_logged(make_site: Any) -> None:
    site = await make_site()
    channel = await site.call("4000", "13900000042")  # nobody is ready: the caller waits, then gives up
    await site.run(30)
    await site.hang_up(channel)
    (item,) = (await site.get("/api/wallboard"))["worklist"]
    assert item["number"] == "13900000042" and item["wait_s"] >= 30
    async with aiohttp.ClientSession(headers=site.login) as http:
        url = f"{site.base}/api/wallboard/worklist/{item['id']}"
        async with http.post(url, json={"action": "callback"}) as resp:
            assert resp.status == 200 and (await resp.json())["state"] == "callback"
        async with http.post(url, json={"action": "later"}) as resp:
            assert resp.status == 400
        async with http.post(
            f"{site.base}/api/wallboard/worklist/nobody", json={"action": "handled"}
        ) as resp:
            assert resp.status == 404
    assert (await site.get("/api/wallboard"))["worklist"] == []
    await site.ctid.interaction_log.flush()
    engine = site.ctid.interaction_log.engine
    (marked,) = load_events(engine, START - 60, site.world.now + 60, kinds=["WorkItemMarked"])
    assert (marked["call_id"], marked["data"]["action"]) == (item["id"], "callback")


async def agents_by_id(site: Site) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in await site.get("/api/agents")}


async def test_agents_keep_their_states_across_a_restart_and_the_ready_one_takes_the_next_call(
    make_site: Any,
) -> None:
    site = await make_site()
    assert await site.set_state("alice", "ready") == 200
    assert await site.set_state("bob", "paused", "break") == 200
    assert await site.set_state("carol", "ready") == 200
    assert await site.set_state("carol", "logged_out") == 200
    await site.run(2)
    before = await agents_by_id(site)
    with capture_logs() as logs:
        await site.restart(while_down=3)
    (restored,) = [e for e in logs if e["event"] == "agent_states_restored"]
    assert (restored["restored"], restored["new"], restored["ready"], restored["paused"]) == (3, 0, 1, 1)
    after = await agents_by_id(site)
    for agent in AGENTS:
        kept = ("status", "pause_reason", "since")
        assert {k: after[agent][k] for k in kept} == {k: before[agent][k] for k in kept}, agent
    assert [after[a]["status"] for a in AGENTS] == ["ready", "paused", "logged_out"]
    assert after["bob"]["pause_reason"] == "break"
    assert after["alice"]["time_in_state_s"] >= before["alice"]["time_in_state_s"] + 3
    # a caller is offered to alice without anyone logging in again
    caller = await site.call("4000", "13900000003")
    await site.run(3)
    assert await site.agent_of(caller) == agent_device("alice")
    assert (await agents_by_id(site))["alice"]["status"] == "on_call_inbound"


async def test_an_agent_whose_call_ended_while_ctid_was_down_is_ready_for_the_caller_who_waited(
    make_site: Any,
) -> None:
    site = await make_site()
    assert await site.set_state("carol", "ready") == 200  # queue 200's only agent
    first = await site.call("4001", "13900000003")
    await site.run(3)
    assert await site.agent_of(first) == agent_device("carol")
    second = await site.call("4001", "13900000001")  # waits: carol is on a call
    await site.ctid.stop()
    await site.hang_up(first)  # the call ends while ctid is down
    await site.run(2)
    await site.start_again()
    # the resync shows carol's phone free: she is ready (what she was before the call), and the caller
    # who waited through the restart is offered to her
    await site.run(3)
    assert await site.agent_of(second) == agent_device("carol")
    assert (await agents_by_id(site))["carol"]["status"] == "on_call_inbound"


async def test_an_agent_on_a_call_through_a_restart_stays_on_it_and_wraps_up_after(make_site: Any) -> None:
    site = await make_site()
    assert await site.set_state("carol", "ready") == 200
    first = await site.call("4001", "13900000003")
    await site.run(3)
    before = (await agents_by_id(site))["carol"]
    assert before["status"] == "on_call_inbound"
    second = await site.call("4001", "13900000001")
    await site.restart(while_down=2)
    after = (await agents_by_id(site))["carol"]
    assert (after["status"], after["since"], after["call"]) == (
        "on_call_inbound",
        before["since"],
        before["call"],
    )
    await site.run(5)
    assert await site.agent_of(second) == ""  # not offered while carol talks
    await site.hang_up(first)
    carol = (await agents_by_id(site))["carol"]
    assert carol["status"] == "wrap_up"
    await site.run(31)  # queue 200's wrap-up is 30 s
    assert await site.agent_of(second) == agent_device("carol")


def closed_port() -> int:
    """A loopback port nothing listens on: a FastAGI step aimed at it fails as Asterisk's does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def waiting_in(site: Site) -> dict[str, list[str]]:
    """/api/queues as {queue: [linkedid waiting...]} for the queues with someone waiting."""
    return {
        q["queue"]: [w["linkedid"] for w in q["waiting"]]
        for q in await site.get("/api/queues")
        if q["waiting"]
    }


async def linkedid_of(site: Site, channel: str) -> str:
    return next(c["linkedid"] for c in await site.get("/api/calls") if c["contact_channel"] == channel)


async def test_a_caller_whose_ivr_step_fails_waits_in_their_numbers_queue_and_is_routed(
    make_site: Any,
) -> None:
    site = await make_site()
    site.server.agi_port = closed_port()  # ctid's FastAGI out of reach: AGI() fails, the dialplan goes on
    channel = await site.call("4001", "13900000003")  # 4001 is queue "200" in routing.yaml
    linkedid = await linkedid_of(site, channel)
    caller = site.world.find_channel(channel)
    assert caller is not None and caller.context == "ctid-wait"
    assert site.world.lookup(caller, "AGISTATUS") == "FAILURE"
    assert await waiting_in(site) == {"200": [linkedid]}  # seen, in a queue routing.yaml has
    assert site.world.lookup(caller, "CTID_QUEUE") == "200"  # ctid set it: Asterisk's records agree
    assert await site.set_state("carol", "ready") == 200
    await site.run(3)
    assert await site.agent_of(channel) == agent_device("carol")
    await site.ctid.interaction_log.flush()
    rows = load_events(site.ctid.interaction_log.engine, START - 60, site.world.now + 60)
    mine = [(r["kind"], r["queue"]) for r in rows if r["call_id"] == linkedid and r["kind"] != "CallVariable"]
    # one contact, in "200" from the start: no phantom "default" queue, no deflection
    assert [k for k, q in mine if k in ("CallWaiting", "CallDeflected")] == ["CallWaiting"]
    assert {q for k, q in mine if q} == {"200"}
    assert ("QueueAssigned", "200") in mine
    # a reload that maps 4001 elsewhere applies to the next such caller
    site.routing_file.write_text(site.routing_file.read_text().replace('"4001": "200"', '"4001": sales'))
    async with (
        aiohttp.ClientSession(headers=site.login) as http,
        http.post(f"{site.base}/api/routing/reload") as resp,
    ):
        assert resp.status == 200
    later = await site.call("4001", "13900000001")
    assert await waiting_in(site) == {"sales": [await linkedid_of(site, later)]}


async def test_a_caller_who_arrived_while_ctid_was_not_running_is_routed_once_it_starts(
    make_site: Any,
) -> None:
    channels: list[str] = []

    async def call_before_ctid(server: PbxSimServer) -> None:
        channels.append(await server.call_in("trunk", "4001", cid_num="13900000003"))
        await server.advance(20)  # waiting in ctid-wait, no CTID_QUEUE: AGI() found nobody

    site = await make_site(before_ctid=call_before_ctid)
    (channel,) = channels
    await site.run(1)
    linkedid = await linkedid_of(site, channel)
    # the resync's lists do not say which number it dialled: routing.yaml's default queue (the first, unset)
    assert await waiting_in(site) == {"sales": [linkedid]}
    caller = site.world.find_channel(channel)
    assert caller is not None and site.world.lookup(caller, "CTID_QUEUE") == "sales"
    assert await site.set_state("alice", "ready") == 200
    await site.run(3)
    assert await site.agent_of(channel) == agent_device("alice")


async def test_a_channel_whose_hangup_was_never_seen_is_reaped_once_asterisk_no_longer_lists_it(
    make_site: Any,
) -> None:
    site = await make_site(server_options=", stale_channel_s: 600")
    lost = await site.call("4000", "13900000003")
    kept = await site.call("4000", "13900000001")
    # Asterisk loses the first caller's channel without a Hangup event (as a crashed module or a lost
    # event would); the second one sits on hold music, silent but present
    caller = site.world.find_channel(lost)
    assert caller is not None
    del site.world.channels[caller.name]
    assert await site.ctid.reap_stale_channels("pbx1") == 0  # nobody silent for 600 s yet: nothing is asked
    await site.run(700, step=50)
    assert await site.ctid.reap_stale_channels("pbx1") == 1
    calls = {c["contact_channel"]: c for c in await site.get("/api/calls")}
    assert set(calls) == {kept} and calls[kept]["state"] == "waiting"
    history = {c["contact_channel"]: c for c in await site.get("/api/calls/history")}
    assert history[lost]["disposition"] == "lost"
    assert [w for ws in (await waiting_in(site)).values() for w in ws] == [calls[kept]["linkedid"]]
    assert await site.ctid.reap_stale_channels("pbx1") == 0  # the listed one counts as seen again


async def test_the_stale_channel_check_runs_by_itself(make_site: Any) -> None:
    site = await make_site(server_options=", stale_channel_s: 2")  # checked every real second
    lost = await site.call("4000", "13900000003")
    caller = site.world.find_channel(lost)
    assert caller is not None
    del site.world.channels[caller.name]  # its Hangup never comes
    await site.run(5)
    deadline = asyncio.get_running_loop().time() + 5
    while await site.get("/api/calls"):
        assert asyncio.get_running_loop().time() < deadline, "the lost channel was never reaped"
        await asyncio.sleep(0.05)
    history = {c["contact_channel"]: c["disposition"] for c in await site.get("/api/calls/history")}
    assert history == {lost: "lost"}
