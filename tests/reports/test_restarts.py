"""Restarts and AMI cuts are invisible in the figures: forty pbxsim minutes with two restarts and one cut
(agents log in once, at the start of the shift, and keep their states through both restarts).

pbxsim's seeded callers reach ctid over real AMI and FastAGI; ctid is stopped and started again on the same
database twice, and its AMI link is cut once through a TCP proxy, while pbxsim's callers keep coming. A
second AMI client, connected straight to pbxsim throughout, sees every event and counts the queue
arrivals itself (its own few lines, not ctid's parser or model). The queue summary must offer exactly
those arrivals, less the ones ctid could not see at all (a caller who reached a queue and hung up within
one outage): those must lie inside a data gap. No contact and no call
may stay open, and the gaps must be exactly the outages, start <= end on one clock.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import func, select

from ctid.agents import AgentState
from ctid.config import load_config
from ctid.daemon import Ctid
from ctid.tooling.simday import DEFAULT_ROUTING, SPINS, back_from_no_answer, day_start
from ivr.component import IvrComponent
from pbxsim import PbxSimServer, TrafficGenerator, TrafficProfile, World, WorldClock, call_center_site
from reports.log import DataGap, Interaction, load_events, load_gaps, open_engine
from reports.report import run_report
from reports.store import StoredContact
from routing.component import RoutingComponent
from routing.config import load_routing
from tests.asterisk.tcpproxy import TcpProxy
from tests.daemon_rig import until
from tests.reports.test_recount import blocks

SEED = 11
CALLS_PER_HOUR = 200.0
OUTAGE_S = 150.0  # virtual seconds ctid is away each time
QUIET_S = 120.0  # a cut's gap starts at the last event seen before it: never later, at most this earlier


@dataclass
class Arrival:
    """A caller's stay in a queue as the independent client saw it."""

    uid: str
    arrive: float


@dataclass
class Watch:
    """What the independent client counts: queue stays (as METRICS.md defines them), and each contact
    channel's begin and hang-up."""

    stays: list[Arrival] = field(default_factory=list)
    began: dict[str, float] = field(default_factory=dict)
    hung_up: dict[str, float] = field(default_factory=dict)


def count_arrivals(data: bytes) -> Watch:
    """Stays from the raw AMI bytes: a contact (a channel that ran ctid-inbound) starts one when it enters
    ctid-wait, unless it comes back from ringing an agent who did not answer, and when ctid moves it to
    another queue while it waits (CTID_QUEUE changed)."""
    watch = Watch()
    context: dict[str, str] = {}
    queue: dict[str, str] = {}
    waiting: set[str] = set()  # contacts whose stay is open
    rang_out: set[str] = set()
    for e in blocks(data):
        name, uid, at = e["Event"], e.get("Uniqueid", ""), float(e.get("Timestamp", "0") or 0)
        if name == "Newexten" and e.get("Context", "").startswith("ctid-"):
            ctx = e["Context"]
            if ctx == "ctid-inbound" and uid not in watch.began:
                watch.began[uid] = at
            if uid not in watch.began:
                continue
            previous, context[uid] = context.get(uid), ctx
            if ctx == "ctid-wait" and previous != "ctid-wait":
                if uid in waiting and uid in rang_out:
                    rang_out.discard(uid)
                else:
                    waiting.add(uid)
                    watch.stays.append(Arrival(uid, at))
            elif ctx != "ctid-wait" and ctx != "ctid-connect":
                waiting.discard(uid)
        elif name == "VarSet" and uid in watch.began and e.get("Variable") == "CTID_QUEUE":
            if (
                context.get(uid) == "ctid-wait"
                and uid in waiting
                and queue.get(uid) not in (None, e["Value"])
            ):
                watch.stays.append(Arrival(uid, at))
            queue[uid] = e["Value"]
        elif name == "DialEnd" and uid in watch.began and e.get("DialStatus") != "ANSWER":
            rang_out.add(uid)
        elif name == "BridgeEnter" and uid in watch.began:
            waiting.discard(uid)
        elif name == "Hangup" and uid in watch.began:
            watch.hung_up[uid] = at
            waiting.discard(uid)
    return watch


class AmiWatcher:
    """A plain AMI client on pbxsim: logs in and keeps every byte it receives."""

    def __init__(self) -> None:
        self.data = bytearray()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self, port: int) -> None:
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._writer.write(b"Action: Login\r\nUsername: ctid\r\nSecret: ctid\r\nEvents: on\r\n\r\n")
        await self._writer.drain()

        async def read() -> None:
            while chunk := await reader.read(65536):
                self.data += chunk

        self._task = asyncio.create_task(read())

    async def stop(self) -> bytes:
        assert self._writer is not None and self._task is not None
        self._writer.close()
        await asyncio.gather(self._task, return_exceptions=True)
        return bytes(self.data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_hour(tmp_path: Path) -> dict[str, object]:
    cfg = load_routing(DEFAULT_ROUTING)
    phones = [a.device.split("/", 1)[1] for a in cfg.agents if a.device.startswith("PJSIP/")]
    world = World(seed=SEED, start=day_start(DEFAULT_ROUTING, SEED), endpoints=call_center_site(phones))
    traffic = TrafficGenerator(world, replace(TrafficProfile.flat(CALLS_PER_HOUR), dids=tuple(cfg.dnis)))
    traffic.start()
    server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)
    await server.start()
    watcher = AmiWatcher()
    await watcher.start(server.port)
    proxy = TcpProxy(server.port, free_port())
    proxy.start()
    db = f"sqlite:///{tmp_path}/log.db"
    config_path = tmp_path / "ctid.yaml"
    config_path.write_text(
        "asterisk:\n"
        f"  - {{name: pbx1, host: 127.0.0.1, port: {proxy.port}, username: ctid, secret: ctid,\n"
        "      reconnect_min_s: 0.02, reconnect_max_s: 0.05}\n"
        "agi: {host: 127.0.0.1, port: 0}\n"
        "web: {host: 127.0.0.1, port: 0}\n"
        f"database: {db}\n"
        f"spool: {tmp_path / 'spool.jsonl'}\n"
        f"routing: {DEFAULT_ROUTING}\n",
        encoding="utf-8",
    )
    outages: list[tuple[float, float]] = []  # (ctid stops seeing, ctid sees again), virtual time

    kept: dict[str, tuple[AgentState, str]] = {}  # agents' states when ctid stopped

    async def start_ctid() -> Ctid:
        ctid = Ctid(load_config(config_path), clock=WorldClock(world))
        await ctid.start()
        server.agi_port = ctid.component(IvrComponent).port
        await ctid.wait_synced()
        routing = ctid.component(RoutingComponent).service
        assert routing is not None
        routing.ticker.interval_s = 3600.0  # routed after each virtual second below instead
        for agent in routing.book.agents.values():
            if not kept:  # the shift starts: everyone logs in once, never again after a restart
                routing.set_agent_state(agent.agent_id, AgentState.READY)
                continue
            status, reason = kept[agent.agent_id]
            if status is AgentState.PAUSED:
                assert (agent.status, agent.pause_reason) == (status, reason), agent.agent_id
            else:  # ready, at work or wrapping up when ctid stopped: at work, or free (maybe offered a call)
                assert agent.status not in (AgentState.LOGGED_OUT, AgentState.PAUSED), agent.agent_id
        return ctid

    async def spin() -> None:
        for _ in range(SPINS):
            await asyncio.sleep(0)

    async def run(ctid: Ctid | None, seconds: float) -> None:
        end = world.now + seconds
        while world.now < end:
            await server.advance(min(1.0, end - world.now))
            await spin()
            if ctid is not None and ctid.servers["pbx1"].connection.synced.is_set():
                back_from_no_answer(ctid.component(RoutingComponent).service, world.now)
                ctid.component(RoutingComponent).service.route_now()
                await spin()

    async def away(action: Callable[[], Awaitable[None]], back: Callable[[], Awaitable[None]]) -> None:
        await action()
        down = world.now
        await run(None, OUTAGE_S)
        await back()
        outages.append((down, world.now))

    ctid = await start_ctid()
    first_call = world.now
    try:
        await run(ctid, 600)

        async def restart() -> None:
            nonlocal ctid
            await ctid.interaction_log.flush()
            kept.update(
                {
                    a.agent_id: (a.status, a.pause_reason)
                    for a in ctid.component(RoutingComponent).service.book.agents.values()
                }
            )
            await ctid.stop()

        async def come_back() -> None:
            nonlocal ctid
            ctid = await start_ctid()

        await away(restart, come_back)
        await run(ctid, 600)

        cut = proxy.outage()

        async def cut_link() -> None:
            # what pbxsim sent has crossed the proxy (else which of the last instant's events ctid got, and
            # so whether a caller arriving at the gap's very start was seen, would be a race)
            await asyncio.sleep(0.3)
            cut.__enter__()
            await until(lambda: not ctid.servers["pbx1"].connection.synced.is_set(), "ctid to see the cut")

        async def mend_link() -> None:
            cut.__exit__(None, None, None)
            await ctid.wait_synced()

        await away(cut_link, mend_link)
        await run(ctid, 600)
        await away(restart, come_back)
        await run(ctid, 600)
        traffic.stop()
        for _ in range(240):  # the last callers finish (bounded: patience and talk end within the hour)
            if not world.channel_list():
                break
            await run(ctid, 15)
        assert not world.channel_list()
        await run(ctid, 5)
        await asyncio.sleep(0.1)
        await ctid.interaction_log.flush()
    finally:
        await ctid.stop()
        proxy.stop()
        seen = await watcher.stop()
        await server.stop()
    return {"db": db, "seen": seen, "outages": outages, "start": first_call, "end": world.now}


def differences(db: str, watch: Watch, missed: list[Arrival], outages: object) -> str:
    """Which calls ctid counted differently from the independent client, with their log rows."""
    engine = open_engine(db)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(StoredContact.__table__)).mappings().all()
            counted = Counter(row["call_id"] for row in rows)
            expected = Counter(s.uid for s in watch.stays) - Counter(s.uid for s in missed)
            out = [f"outages {outages}"]
            for uid in sorted(set(counted) | set(expected)):
                if counted[uid] != expected[uid]:
                    events = load_events(engine, 0, math.inf)
                    mine = [(e["at"], e["kind"], e["data"]) for e in events if e["call_id"] == uid]
                    stays = [s.arrive for s in watch.stays if s.uid == uid]
                    out.append(
                        f"{uid}: ctid {counted[uid]}, expected {expected[uid]}, stays {stays}, "
                        f"hung up {watch.hung_up.get(uid)}, log {mine}"
                    )
            return "\n".join(out)
    finally:
        engine.dispose()


def test_two_restarts_and_a_cut_leave_the_queue_summary_equal_to_an_independent_count(tmp_path: Path) -> None:
    day = asyncio.run(run_hour(tmp_path))
    db, outages = str(day["db"]), day["outages"]
    assert isinstance(outages, list) and len(outages) == 3
    watch = count_arrivals(bytes(day["seen"]))  # type: ignore[arg-type]
    start, end = float(day["start"]) - 60, float(day["end"]) + 60  # type: ignore[arg-type]

    # the gaps are the outages: each from the last thing ctid saw (a restart's stop notes Asterisk's time
    # with a Ping; a cut loses what was in flight, back to the last event received) to the resync's Ping,
    # both on Asterisk's clock
    closed = load_gaps(db, start, end)
    assert [g["server"] for g in closed] == ["pbx1"] * 3
    for gap, (down, up), kind in zip(closed, outages, ("restart", "cut", "restart"), strict=True):
        assert gap["end"] is not None and gap["start"] <= gap["end"]
        if kind == "restart":
            assert gap["start"] == down
        else:
            assert down - QUIET_S <= gap["start"] <= down
        assert gap["end"] == up

    def unseen(stay: Arrival) -> bool:
        """It reached the queue and its call hung up inside one gap: ctid never had a chance to see it."""
        gone = watch.hung_up.get(stay.uid)
        return gone is not None and any(g["start"] < stay.arrive and gone <= g["end"] for g in closed)

    missed = [s for s in watch.stays if unseen(s)]
    summary = run_report("queue-summary", db, start=start, end=end)
    offered = sum(q["offered"] for q in summary)
    assert len(watch.stays) > 100 and missed  # the day is busy, and some callers came and went unseen
    assert offered == len(watch.stays) - len(missed), differences(db, watch, missed, outages)

    engine = open_engine(db)
    try:
        with engine.connect() as connection:
            contacts = StoredContact.__table__.c
            open_contacts = connection.execute(
                select(func.count()).where(contacts.outcome == "open").select_from(StoredContact)
            ).scalar()
            calls = Interaction.__table__.c
            open_calls = connection.execute(
                select(func.count()).where(calls.ended_at.is_(None)).select_from(Interaction)
            ).scalar()
            open_gaps = connection.execute(
                select(func.count()).where(DataGap.__table__.c.end.is_(None)).select_from(DataGap)
            ).scalar()
    finally:
        engine.dispose()
    assert (open_contacts, open_calls, open_gaps) == (0, 0, 0)
    for queue in summary:  # every contact has its outcome (lost: left while ctid was away, in no ratio)
        outcomes = ("answered", "abandoned", "deflected", "lost")
        assert queue["open"] == 0 and queue["offered"] == sum(queue[k] for k in outcomes), queue
