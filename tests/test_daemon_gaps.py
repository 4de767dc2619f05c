"""A data gap's start and end come from one clock, Asterisk's, even when ctid's own clock is an hour off.

ctid runs beside pbxsim over real TCP with its clock an hour ahead of pbxsim's; its AMI link is cut
(`drop_connections`, as a ping timeout does) and it is restarted on the same database. Each gap must start at
the last thing ctid saw from pbxsim and end at the resync, both on pbxsim's clock; a waiting caller who hung
up during the cut is closed as lost, as of the gap's start; one still waiting after the restart stays the
same contact.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from ctid.config import load_config
from ctid.daemon import Ctid
from ivr.component import IvrComponent
from pbxsim import PbxSimServer, World, call_center_site
from reports.log import load_gaps, open_engine
from reports.store import StoredContact
from tests.daemon_rig import until, write_ctid_yaml

AHEAD_S = 3600.0


class SkewedClock:
    """ctid's clock, an hour ahead of the Asterisk it watches."""

    def __init__(self, world: World) -> None:
        self.world = world

    def now(self) -> float:
        return self.world.now + AHEAD_S


async def test_gaps_after_a_cut_and_a_restart_are_on_asterisks_clock(tmp_path: Path) -> None:
    world = World(seed=5, endpoints=call_center_site(["1001"]))  # nobody routes: callers wait
    server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1)
    await server.start()
    config = write_ctid_yaml(tmp_path, server.port)

    async def start() -> Ctid:
        ctid = Ctid(load_config(config), clock=SkewedClock(world))
        await ctid.start()
        server.agi_port = ctid.component(IvrComponent).port
        await ctid.wait_synced()
        return ctid

    ctid = await start()
    try:
        calls_from = world.now
        leaving = await server.call_in("trunk", "4000", cid_num="13800001111")
        staying = await server.call_in("trunk", "4000", cid_num="13900002222")
        await server.advance(5)
        await until(lambda: len(ctid.calls()) == 2, "ctid to see both callers waiting")
        quiet_from = world.now  # the last events ctid receives come before this: nothing moves after

        await server.advance(30)  # a quiet half minute, then the link drops
        assert server.drop_connections() == 1
        connection = ctid.servers["pbx1"].connection
        await until(lambda: not connection.synced.is_set(), "ctid to see the cut")
        channel = world.find_channel(leaving)
        assert channel is not None
        world.hangup(channel, 16)  # while ctid is blind
        await server.advance(20)
        await ctid.wait_synced()
        resynced = world.now

        await server.advance(10)
        await ctid.interaction_log.flush()
        await ctid.stop()
        stopped = world.now
        await server.advance(60)
        ctid = await start()
        restarted = world.now
        await server.advance(5)
        await ctid.interaction_log.flush()
    finally:
        await ctid.stop()
        await server.stop()

    db = f"sqlite:///{tmp_path}/ctid.db"
    gaps = [(g["start"], g["end"]) for g in load_gaps(db, 0, 1e12)]
    (cut_start, cut_end), *others = gaps
    assert calls_from <= cut_start <= quiet_from  # the last event received, not ctid's clock at the drop
    assert cut_end == resynced  # the resync's Ping: the same clock
    assert others == [(stopped, restarted)]  # the restart: ctid's downtime, from the stop's Ping
    engine = open_engine(db)
    table = StoredContact.__table__
    with engine.connect() as connection:
        rows = connection.execute(select(table.c.outcome, table.c.outcome_at).order_by(table.c.arrive)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("lost", cut_start), ("open", None)]  # the stayer: one contact
    assert staying in [c.name for c in server.channels()]
