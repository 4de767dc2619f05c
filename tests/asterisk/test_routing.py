"""ctid as the ACD on a real Asterisk: two queues, three agents, customers from ctid's own database.

The agents' phones are Local channels of the sim-phones context (1011 and 1013 answer after a ring, 9012
never does). The test only plays the customers and the agents' buttons (REST); every routing move is
ctid's, checked from /api/queues, /api/agents, /api/calls and the AMI stream Asterisk sent.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from ctid.customers import Tier
from ctid.customers.book import Customer, import_csv_text
from ctid.db import make_engine
from tests.asterisk.amiclient import event
from tests.asterisk.harness import (
    AGI_PORT,
    ROUTING_AGENTS,
    AsteriskInstance,
    CtidHttp,
    CtidProcess,
    Pbx,
    assert_matches_asterisk,
    poll,
    timeline_events,
)

pytestmark = pytest.mark.asterisk

ALICE, BOB, CAROL = "Local/1011@sim-phones", "Local/9012@sim-phones", "Local/1013@sim-phones"
GOLD, PLAIN = "13900000001", "13900000003"  # a tier-A and a tier-C customer
CUSTOMERS = f"""\
id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip
gold,Gold Ltd,{GOLD},900000,9,100,client,false
plain,Plain Co,{PLAIN},100,1,100,first_time,false
"""


@pytest.fixture(scope="module")
def customers(ctid: CtidProcess) -> None:
    """The customer book in ctid's own database, as an admin's CSV import would leave it."""
    engine = make_engine(f"sqlite:///{Path(ctid.config_path).parent / 'ctid.db'}")
    with Session(engine) as session:
        if session.get(Customer, "gold") is None:
            assert not import_csv_text(session, CUSTOMERS).rejected
        session.get_one(Customer, "gold").tier = Tier.A
        session.get_one(Customer, "plain").tier = Tier.C
        session.commit()
    engine.dispose()


async def post(http: CtidHttp, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.session.post(http.base_url + path, json=body) as response:
        return response.status, await response.text()


async def set_state(http: CtidHttp, agent: str, state: str, reason: str = "") -> None:
    status, text = await post(http, f"/api/agents/{agent}/state", {"state": state, "reason": reason})
    assert status == 200, text


@pytest.fixture
async def routed(pbx: Pbx, http: CtidHttp, asterisk: AsteriskInstance, customers: None) -> AsyncIterator[Pbx]:
    """Every agent logged out afterwards, so ctid routes no call of another test."""
    yield pbx
    if asterisk.channels():
        asterisk.cli("channel request hangup all")
    busy = ("reserved", "ringing", "on_call_inbound", "on_call_outbound", "on_hold")
    await poll(
        lambda: agents(http),
        lambda seen: not any(seen[a]["status"] in busy for a in ROUTING_AGENTS),
        what="routing agents off their calls",
    )
    for agent, seen in (await agents(http)).items():
        if agent in ROUTING_AGENTS and seen["status"] != "logged_out":
            await set_state(http, agent, "logged_out")


async def queue(http: CtidHttp, name: str) -> dict[str, Any]:
    queues = {q["queue"]: q for q in await http.get_ok("/api/queues")}
    return queues[name]


def tier_a_ahead(sales: dict[str, Any]) -> bool:
    return [w["tier"] for w in sales["waiting"]] == ["A", "C"]


async def agents(http: CtidHttp) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in await http.get_ok("/api/agents")}


async def test_a_tier_a_caller_who_arrives_later_is_connected_first(
    routed: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    plain = await routed.inbound_call(PLAIN, "Plain", exten="4100")
    gold = await routed.inbound_call(GOLD, "Gold", exten="4100")
    sales = await poll(
        lambda: queue(http, "sales"), lambda q: q["calls_waiting"] == 2, what="two callers in sales"
    )
    # by arrival until the tier-A caller has waited head_start_after_s (2 s here), then by priority
    if sales["waiting"][1]["wait_s"] < 1.5:
        assert [w["tier"] for w in sales["waiting"]] == ["C", "A"]
    sales = await poll(lambda: queue(http, "sales"), tier_a_ahead, what="the tier-A caller first")
    assert sales["waiting"][0]["linkedid"] == gold.linkedid
    gold_wait, plain_wait = (w["wait_s"] for w in sales["waiting"])
    assert plain_wait > gold_wait >= 2
    mark = routed.ami.mark()
    await set_state(http, "alice", "ready")
    offered = await routed.ami.wait_for(
        event("VarSet", Variable="CTID_AGENT_DIAL", Value=ALICE), after=mark, timeout=5
    )
    assert offered["Linkedid"] == gold.linkedid, "Asterisk was told to ring alice for the tier-A caller"
    connected = await http.wait_call(gold.linkedid, lambda c: c["state"] == "connected", "gold connected")
    assert connected["agent"] == ALICE
    still = await http.wait_call(plain.linkedid, lambda c: c["state"] == "waiting", "plain still waiting")
    assert still["agent"] == ""
    assert (await agents(http))["alice"]["status"] == "on_call_inbound"
    await assert_matches_asterisk(http, asterisk)


async def test_ring_no_answer_pauses_the_agent_and_the_call_reaches_the_next(
    routed: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    await set_state(http, "bob", "ready")  # bob idles longest: offered first; his phone never answers
    await set_state(http, "alice", "ready")
    mark = routed.ami.mark()
    caller = await routed.inbound_call(PLAIN, "Plain", exten="4100")
    rang_out = await routed.ami.wait_for(
        event("DialEnd", DialStatus="NOANSWER", Linkedid=caller.linkedid), after=mark, timeout=8
    )
    assert rang_out["DestChannel"].startswith(BOB)
    connected = await http.wait_call(
        caller.linkedid, lambda c: c["state"] == "connected", "connected to alice", timeout=8
    )
    assert connected["agent"] == ALICE
    bob = (await agents(http))["bob"]
    assert (bob["status"], bob["pause_reason"]) == ("paused", "no-answer")
    waits = timeline_events(await http.get_ok(f"/api/calls/{caller.linkedid}"), "CallWaiting")
    assert waits[-1]["requeued"] and waits[-1]["arrived_at"] == waits[0]["arrived_at"]
    await assert_matches_asterisk(http, asterisk)


async def test_a_blind_transfer_to_another_queue_is_routed_there_with_its_history(
    routed: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    await set_state(http, "alice", "ready")
    await set_state(http, "carol", "ready")
    caller = await routed.inbound_call(PLAIN, "Plain", exten="4100")
    await http.wait_call(
        caller.linkedid, lambda c: c["agent"] == ALICE and c["state"] == "connected", "connected to alice"
    )
    agent_channel = next(
        c.name for c in asterisk.channels() if c.name.startswith(ALICE) and c.name.endswith(";1")
    )
    mark = routed.ami.mark()
    await routed.ami.action("BlindTransfer", Channel=agent_channel, Context="ctid-transfer", Exten="200")
    offered = await routed.ami.wait_for(
        event("VarSet", Variable="CTID_AGENT_DIAL", Value=CAROL, Linkedid=caller.linkedid), after=mark
    )
    assert offered
    connected = await http.wait_call(
        caller.linkedid, lambda c: c["agent"] == CAROL and c["state"] == "connected", "connected to carol"
    )
    assert connected["queue"] == "200"
    assert connected["agents"] == [ALICE, CAROL]
    (transfer,) = timeline_events(await http.get_ok(f"/api/calls/{caller.linkedid}"), "CallTransferred")
    assert (transfer["transfer"], transfer["to_queue"]) == ("blind", "200")
    await assert_matches_asterisk(http, asterisk)


async def test_an_empty_agi_connection_a_half_header_and_a_latin1_caller_name_do_not_stop_routing(
    routed: Pbx, http: CtidHttp, asterisk: AsteriskInstance
) -> None:
    """A port scan, a torn header and a trunk that sends names in Latin-1: the next caller is still
    identified over FastAGI and routed (panoramisk's FastAGI loop spun for good on the first)."""
    _, writer = await asyncio.open_connection("127.0.0.1", AGI_PORT)
    writer.close()
    _, writer = await asyncio.open_connection("127.0.0.1", AGI_PORT)
    writer.write(b"agi_network: yes\nagi_network_script: inbound\nagi_uniq")
    await writer.drain()
    writer.close()
    assert (await asyncio.wait_for(http.get_ok("/healthz"), 1.0))["ok"]
    await set_state(http, "alice", "ready")
    mark = routed.ami.mark()
    caller = await routed.inbound_call(PLAIN, "Muñoz", exten="4100", charset="latin-1")
    queued = await routed.ami.wait_for(
        event("VarSet", Variable="CTID_QUEUE", Linkedid=caller.linkedid), after=mark, timeout=5
    )
    assert queued["Value"] == "sales", "the IVR step identified the caller and set the queue over FastAGI"
    connected = await http.wait_call(caller.linkedid, lambda c: c["state"] == "connected", "connected")
    assert connected["agent"] == ALICE
    await assert_matches_asterisk(http, asterisk)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def ctid_cli(ctid: CtidProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`ctid ARGS` as an operator runs it, with the test admin's token in CTID_TOKEN."""
    token = ctid.login["Authorization"].removeprefix("Bearer ")
    return subprocess.run(
        [sys.executable, "-m", "ctid.cli", *args, "-c", str(ctid.config_path)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "CTID_TOKEN": token},
    )


async def test_a_hot_reload_while_callers_wait_applies_to_them(
    routed: Pbx, http: CtidHttp, ctid: CtidProcess, asterisk: AsteriskInstance
) -> None:
    routing_file = Path(ctid.config_path).parent / "routing.yaml"
    original = routing_file.read_text()
    plain = await routed.inbound_call(PLAIN, "Plain", exten="4100")
    await routed.inbound_call(GOLD, "Gold", exten="4100")
    await poll(lambda: queue(http, "sales"), tier_a_ahead, what="the tier-A caller first")
    try:
        routing_file.write_text(
            original.replace("base: {A: 100, B: 50, C: 10}", "base: {A: 100, B: 50, C: 500}")
        )
        done = ctid_cli(ctid, "reload")
        assert done.returncode == 0, done.stderr
        sales = await queue(http, "sales")
        assert [w["tier"] for w in sales["waiting"]] == ["C", "A"], "the new priorities reach waiting callers"
        mark = routed.ami.mark()
        await set_state(http, "alice", "ready")
        offered = await routed.ami.wait_for(
            event("VarSet", Variable="CTID_AGENT_DIAL", Value=ALICE), after=mark, timeout=5
        )
        assert offered["Linkedid"] == plain.linkedid
        history = ctid_cli(ctid, "config", "history")
        assert history.returncode == 0 and history.stdout.splitlines()[0].startswith("* v"), history.stdout
    finally:
        rolled = ctid_cli(ctid, "config", "rollback")
        assert rolled.returncode == 0, rolled.stderr
    assert routing_file.read_text() == original


async def log_out_when_free(http: CtidHttp, agent: str) -> None:
    await poll(
        lambda: agents(http),
        lambda seen: seen[agent]["status"] not in ("reserved", "ringing", "on_call_inbound", "on_hold"),
        what=f"{agent} off the call",
    )
    await set_state(http, agent, "logged_out")


def agent_recount(data: bytes, devices: dict[str, str], since: float) -> dict[str, dict[str, int]]:
    """Per agent, from the AMI stream alone: offers their phone answered, offers that rang out."""
    from tests.reports.test_recount import blocks

    out = {agent: {"handled": 0, "ring_no_answer": 0} for agent in devices.values()}
    for e in blocks(data):
        if float(e.get("Timestamp", "0") or 0) < since:
            continue
        device = next((d for d in devices if e.get("DestChannel", "").startswith(d + "-")), None)
        if e["Event"] == "DialEnd" and device is not None and e.get("DestContext", "") == "sim-phones":
            status = e.get("DialStatus")
            if status in ("ANSWER", "NOANSWER"):  # not CANCEL: the caller left while it rang
                out[devices[device]]["handled" if status == "ANSWER" else "ring_no_answer"] += 1
    return out


async def test_reports_equal_a_recount_of_the_ami_stream_asterisk_sent(
    routed: Pbx, http: CtidHttp, ctid: CtidProcess, asterisk: AsteriskInstance
) -> None:
    from tests.reports.test_recount import close_enough, recount, summary

    started = time.time()
    for round_ in range(3):
        await set_state(http, "alice", "ready")
        answered = await routed.inbound_call(f"1390000010{round_}", "Answered", exten="4100")
        await http.wait_call(answered.linkedid, lambda c: c["state"] == "connected", "answered")
        await routed.hangup(answered.channel)
        await log_out_when_free(http, "alice")
        for patience in (2, 9):  # a short abandon and a real one: nobody is ready in sales
            caller = await routed.inbound_call(
                f"139000002{patience}{round_}", "Leaves", patience_s=patience, exten="4100"
            )
            await routed.wait_gone(caller.uniqueid, timeout=15)
        await set_state(http, "bob", "ready")  # rings out, then alice takes it
        await set_state(http, "alice", "ready")
        rna = await routed.inbound_call(f"1390000030{round_}", "Rings", exten="4100")
        await http.wait_call(
            rna.linkedid, lambda c: c["agent"] == ALICE and c["state"] == "connected", "alice", timeout=8
        )
        await set_state(http, "bob", "logged_out")
        await set_state(http, "carol", "ready")
        agent_channel = next(
            c.name for c in asterisk.channels() if c.name.startswith(ALICE) and c.name.endswith(";1")
        )
        await routed.ami.action("BlindTransfer", Channel=agent_channel, Context="ctid-transfer", Exten="200")
        await http.wait_call(
            rna.linkedid, lambda c: c["agent"] == CAROL and c["state"] == "connected", "carol"
        )
        await routed.hangup(rna.channel)
        await http.wait_ended(rna.linkedid)
        for agent in ("alice", "carol"):
            await log_out_when_free(http, agent)
    await asyncio.sleep(1.0)  # the interaction log's last batch
    db = f"sqlite:///{Path(ctid.config_path).parent / 'ctid.db'}"
    window = [
        "--db",
        db,
        "-c",
        str(ctid.config_path),
        "--format",
        "json",
        "--from",
        iso(started),
        "--to",
        iso(time.time() + 1),
    ]
    report = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "report", "queue-summary", *window],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    reported = {q["queue"]: q for q in json.loads(report.stdout)}
    data = ctid.ami_log_path.read_bytes()
    stays = [s for s in recount(data) if s.arrive >= started]
    expected = summary(stays, {"sales": 20.0, "200": 20.0})
    assert expected["sales"]["offered"] == 12 and expected["sales"]["short_abandoned"] == 3
    for name in ("sales", "200"):
        for key, value in expected[name].items():
            assert close_enough(reported[name][key], value), (name, key, reported[name][key], value)
    agents_report = subprocess.run(
        [sys.executable, "-m", "ctid.cli", "report", "agent-performance", *window],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    performance = {a["agent"]: a for a in json.loads(agents_report.stdout)}
    counted = agent_recount(data, {ALICE: "alice", BOB: "bob", CAROL: "carol"}, started)
    assert counted == {
        "alice": {"handled": 6, "ring_no_answer": 0},
        "bob": {"handled": 0, "ring_no_answer": 3},
        "carol": {"handled": 3, "ring_no_answer": 0},
    }
    for agent, figures in counted.items():
        for key, value in figures.items():
            assert performance.get(agent, {}).get(key, 0) == value, (agent, key, performance.get(agent))
