"""`ctid bench screenpop`: a large center's screen pops, from pbxsim's ring to the agent's socket.

A whole ctid (AMI, IVR, routing, screenpop, push hub, web) runs as the daemon does, its database holding a
seeded customer book (customers, their past calls, notes and quotes) loaded in bulk. pbxsim runs in a process
of its own at wall speed, as an Asterisk would. Every agent is logged in (a bearer token each) and holds a
real WebSocket on /ws/agent, opened from a third process. Callers of known customers (and a few unknown
numbers) arrive at `--calls-per-s`; ctid routes each to a ready agent and pbxsim rings the agent's phone. A
pop's latency runs from the AgentRinging event leaving the AMI parser to the PopOpened message read whole by
that agent's socket (CLOCK_MONOTONIC both, comparable across processes).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import itertools
import json
import multiprocessing
import random
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import structlog
from sqlalchemy import Engine, Table, insert

from ctid.agents import AgentState
from ctid.ami.events import AmiEvent
from ctid.auth import Role
from ctid.auth.store import HASHER, ApiToken, UserRow
from ctid.config import load_config
from ctid.customers.book import Customer, CustomerPhone, key_tail
from ctid.customers.tables import CustomerCall, CustomerNote, PriceQuote, QuoteStatus
from ctid.customers.value import Lifecycle, Tier
from ctid.daemon import Ctid, tune_gc
from ctid.state import domain as d
from reports.kpi import percentile
from routing.component import RoutingComponent
from screenpop.component import Loader, ScreenpopComponent

log = structlog.get_logger("ctid.tooling.bench_screenpop")

START = 1_795_402_800.0  # the customer book's "now": past calls, notes and quotes are older
DNIS = "4000"
CALLS_PER_CUSTOMER = 10  # 200,000 customers: 2 million past calls
NOTES_PER_CUSTOMER = 2.5  # 500,000 notes
QUOTES_PER_CUSTOMER = 1.0  # 200,000 quotes
UNKNOWN_SHARE = 0.05  # callers whose number no customer has
CHUNK = 20_000  # rows per bulk insert
CONNECT_AT_ONCE = 100  # sockets opening together
QUIET_S = 2.0  # no new ring or pop for this long after the last caller: the run is over
DRAIN_S = 30.0  # at most this long after the last caller
LIFECYCLES = tuple(Lifecycle)
TIERS = (Tier.A, Tier.B, Tier.C, Tier.C)
PRODUCTS = ("Fibre 1000", "Fibre 300", "Mobile 20 GB", "TV Plus", "Home phone")
DISPOSITIONS = ("sale", "info", "complaint", "callback", "")


def customer_number(index: int) -> str:
    """Customer `index`'s phone (and the caller number pbxsim dials in with)."""
    return f"139{index:08d}"


def agent_id(index: int) -> str:
    return f"a{index:05d}"


def agent_extension(index: int) -> str:
    return str(20_000 + index)


# ---- the customer book, in bulk ------------------------------------------------------------------------


def customer_rows(customers: int, seed: int) -> dict[Table, Iterator[dict[str, Any]]]:
    """The seeded book: rows for each table, generated as they are inserted."""
    at = datetime.fromtimestamp(START, UTC)

    def people() -> Iterator[dict[str, Any]]:
        rng = random.Random(f"bench-screenpop-customers-{seed}")
        for i in range(customers):
            yield {
                "id": f"c{i:07d}",
                "name": f"Customer {i}",
                "lifecycle": rng.choice(LIFECYCLES),
                "revenue_12m": Decimal(rng.randrange(100, 500_000)),
                "tenure_years": round(rng.uniform(0, 20), 1),
                "cost_to_serve": Decimal(rng.randrange(10, 5_000)),
                "vip": rng.random() < 0.02,
                "tier": rng.choice(TIERS),
            }

    def phones() -> Iterator[dict[str, Any]]:
        for i in range(customers):
            number = customer_number(i)
            yield {"number": number, "match_key": key_tail(number), "customer_id": f"c{i:07d}"}

    def calls() -> Iterator[dict[str, Any]]:
        rng = random.Random(f"bench-screenpop-calls-{seed}")
        for i in range(customers * CALLS_PER_CUSTOMER):
            yield {
                "customer_id": f"c{i // CALLS_PER_CUSTOMER:07d}",
                "linkedid": f"past-{i}",
                "server": "pbx1",
                "arrived_at": START - rng.uniform(3600, 3 * 365 * 86400),
                "queue": "sales",
                "agent": agent_id(rng.randrange(1, 2001)),
                "wait_s": round(rng.uniform(0, 120), 1),
                "talk_s": round(rng.uniform(20, 900), 1),
                "disposition": rng.choice(DISPOSITIONS),
            }

    def notes() -> Iterator[dict[str, Any]]:
        rng = random.Random(f"bench-screenpop-notes-{seed}")
        for i in range(int(customers * NOTES_PER_CUSTOMER)):
            owner = rng.randrange(customers)
            past = owner * CALLS_PER_CUSTOMER + rng.randrange(CALLS_PER_CUSTOMER)
            yield {
                "customer_id": f"c{owner:07d}",
                "call": f"past-{past}" if rng.random() < 0.7 else "",
                "agent": agent_id(rng.randrange(1, 2001)),
                "user": "bench",
                "at": at - timedelta(seconds=rng.uniform(3600, 3 * 365 * 86400)),
                "text": f"Note {i}: asked about the bill and the router's evening drops",
            }

    def quotes() -> Iterator[dict[str, Any]]:
        rng = random.Random(f"bench-screenpop-quotes-{seed}")
        for _ in range(int(customers * QUOTES_PER_CUSTOMER)):
            quoted = at - timedelta(seconds=rng.uniform(3600, 365 * 86400))
            yield {
                "customer_id": f"c{rng.randrange(customers):07d}",
                "call": "",
                "agent": agent_id(rng.randrange(1, 2001)),
                "user": "bench",
                "at": quoted,
                "product": rng.choice(PRODUCTS),
                "price": Decimal(rng.randrange(1_000, 100_000)) / 100,
                "currency": "CNY",
                "valid_until": quoted + timedelta(days=30),
                "status": rng.choice(tuple(QuoteStatus)),
            }

    return {
        Customer.__table__: people(),  # type: ignore[dict-item]
        CustomerPhone.__table__: phones(),  # type: ignore[dict-item]
        CustomerCall.__table__: calls(),  # type: ignore[dict-item]
        CustomerNote.__table__: notes(),  # type: ignore[dict-item]
        PriceQuote.__table__: quotes(),  # type: ignore[dict-item]
    }


def _chunks(rows: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def bulk_insert(engine: Engine, table: Table, rows: Iterable[dict[str, Any]]) -> int:
    """Rows into `table`: COPY on PostgreSQL, executemany elsewhere; how many."""
    count = 0
    if engine.dialect.name != "postgresql":
        with engine.begin() as connection:
            for chunk in _chunks(rows):
                connection.execute(insert(table), chunk)
                count += len(chunk)
        return count
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    columns = list(first)
    names = ", ".join(f'"{name}"' for name in columns)
    raw = engine.raw_connection()
    try:
        with raw.cursor().copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
            for row in itertools.chain([first], rows):
                copy.write_row([_pg_value(row[name]) for name in columns])
                count += 1
        raw.commit()
    finally:
        raw.close()
    return count


def _pg_value(value: Any) -> Any:
    return value.value if isinstance(value, Lifecycle | Tier | QuoteStatus) else value


def load_customers(engine: Engine, customers: int, seed: int) -> dict[str, int]:
    """The seeded book into the database; rows per table."""
    return {
        table.name: bulk_insert(engine, table, rows) for table, rows in customer_rows(customers, seed).items()
    }


def log_agents_in(engine: Engine, agents: int, now: float) -> list[str]:
    """A user and a bearer token per agent, written directly (one argon2 hash shared by all); the tokens."""
    shared_hash = HASHER.hash("bench-password")
    users = [
        {
            "name": agent_id(i),
            "role": Role.AGENT.value,
            "agent_id": agent_id(i),
            "password_hash": shared_hash,
            "disabled": False,
            "created": now,
            "updated": now,
        }
        for i in range(1, agents + 1)
    ]
    tokens = [f"bench-token-{i}-{random.Random(i).getrandbits(64):x}" for i in range(1, agents + 1)]
    rows = [
        {
            "digest": hashlib.sha256(token.encode()).hexdigest(),
            "user": agent_id(i),
            "created": now,
            "last_used": now,  # no write on first use
            "revoked": False,
        }
        for i, token in enumerate(tokens, start=1)
    ]
    with engine.begin() as connection:
        connection.execute(insert(UserRow), users)
        connection.execute(insert(ApiToken), rows)
    return tokens


# ---- ctid and pbxsim -----------------------------------------------------------------------------------


def routing_yaml(agents: int) -> str:
    lines = [
        "queues:",
        "  sales: {skills: {sales: 3}, strategy: longest_idle, ring_timeout_s: 10, wrap_up_s: 0,",
        "          max_wait_s: 3000}",
        f'dnis: {{"{DNIS}": sales}}',
        "agents:",
    ]
    lines += [
        f"  - {{id: {agent_id(i)}, name: Agent {i}, device: PJSIP/{agent_extension(i)}, "
        "skills: {sales: 5}, queues: [sales]}"
        for i in range(1, agents + 1)
    ]
    return "\n".join(lines) + "\n"


def ctid_yaml(tmp: Path, url: str, ami_port: int) -> Path:
    config = tmp / "ctid.yaml"
    config.write_text(
        "asterisk:\n"
        f"  - {{name: pbx1, host: 127.0.0.1, port: {ami_port}, username: ctid, secret: ctid}}\n"
        "agi: {host: 127.0.0.1, port: 0}\n"
        "web: {host: 127.0.0.1, port: 0}\n"
        f"database: {url}\n"
        f"spool: {tmp}/spool.jsonl\n"
        "routing: routing.yaml\n"
    )
    return config


@dataclass
class PopClock:
    """What the bench sees on ctid's side: when each ring left the parser, and each lookup's duration."""

    parsed_at: float = 0.0  # when the AMI event being handled now left the parser
    rings: dict[tuple[str, str], float] = field(default_factory=dict)  # (device, linkedid) -> parsed_at
    lookups: list[float] = field(default_factory=list)
    sent: int = 0  # PopOpened messages published

    def watch_parser(self, on_event: Callable[[AmiEvent], None]) -> Callable[[AmiEvent], None]:
        def timed(event: AmiEvent) -> None:
            self.parsed_at = time.perf_counter()
            on_event(event)

        return timed

    def on_event(self, origin: str, event: d.DomainEvent) -> None:
        if isinstance(event, d.AgentRinging):
            self.rings.setdefault((event.agent, event.linkedid), self.parsed_at)

    def timed_load(self, load: Loader) -> Loader:
        def timed(engine: Engine, customer: str, caller: str) -> dict[str, Any]:
            started = time.perf_counter()
            try:
                return load(engine, customer, caller)
            finally:
                self.lookups.append(time.perf_counter() - started)

        return timed

    def counting(self, publish: Callable[[str, str], None]) -> Callable[[str, str], None]:
        def counted(name: str, message: str) -> None:
            if name.startswith("pop:") and message.startswith('{"kind": "PopOpened"'):
                self.sent += 1
            publish(name, message)

        return counted


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def arrivals(server: Any, calls_per_s: float, seconds: float, customers: int, seed: int) -> float:
    """Callers at a steady `calls_per_s` of wall time for `seconds`, pbxsim's traffic generator playing the
    agents' phones and the callers (ring, talk); the seconds the arrivals took."""
    from pbxsim import TrafficGenerator, TrafficProfile
    from pbxsim.traffic import CallerPlan

    world = server.world
    talk = max(1.0, min(20.0, 0.5 * len(world.endpoints) / calls_per_s))  # agents stay half busy
    profile = replace(
        TrafficProfile.flat(0),
        talk_min=talk / 2,
        ring_min=0.5,
        ring_max=2.0,
        answer_probability=1.0,  # every ring answered: no ring moves on after the last caller
        hold_probability=0.0,
    )
    traffic = TrafficGenerator(world, profile, seed=seed)
    traffic.start()  # no arrivals of its own (a flat zero profile): its phones and callers' plans only
    rng = random.Random(f"bench-screenpop-callers-{seed}")

    async def arrive(number: str, call_talk: float) -> None:
        channel = world.channels[await server.call_in("trunk", DNIS, cid_num=number, cid_name="Bench")]
        plan = CallerPlan(channel.name, world.now, 3600.0, call_talk, True, None, 0.0)
        traffic.plans[channel.linkedid] = plan

    loop = asyncio.get_running_loop()
    started = loop.time()
    callers: list[asyncio.Task[None]] = []
    for n in range(int(calls_per_s * seconds)):
        await asyncio.sleep(max(0.0, started + n / calls_per_s - loop.time()))
        if rng.random() < UNKNOWN_SHARE:
            number = f"150{rng.randrange(10**8):08d}"
        else:
            number = customer_number(rng.randrange(customers))
        call_talk = talk / 2 + rng.expovariate(2.0 / talk)  # callers hang up; agents never leave first
        callers.append(loop.create_task(arrive(number, call_talk)))  # on time, however long pbxsim takes
    took = loop.time() - started
    await asyncio.gather(*callers)
    return took


def _pbxsim(
    agents: int, calls_per_s: float, seconds: float, customers: int, seed: int, control: Connection
) -> None:
    """Child process: pbxsim at wall speed, as an Asterisk of its own would run; its AMI port out, ctid's
    FastAGI port in, then the callers when told, and the seconds they took."""

    async def run() -> None:
        from pbxsim import PbxSimServer, World, call_center_site

        extensions = [agent_extension(i) for i in range(1, agents + 1)]
        world = World(seed=seed, start=time.time(), endpoints=call_center_site(extensions))
        server = PbxSimServer(world, host="127.0.0.1", port=0, agi_port=1, speed=1.0)
        await server.start()
        loop = asyncio.get_running_loop()
        control.send(server.port)
        server.agi_port = await loop.run_in_executor(None, control.recv)
        await loop.run_in_executor(None, control.recv)  # go
        control.send(await arrivals(server, calls_per_s, seconds, customers, seed))
        await loop.run_in_executor(None, control.recv)  # stop
        await server.stop()

    asyncio.run(run())


async def quiet(clock: PopClock, for_s: float, at_most_s: float) -> None:
    """Until no ring and no pop for `for_s` seconds (or `at_most_s` in all): the last calls popped."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + at_most_s
    seen = (-1, -1)
    while loop.time() < deadline and seen != (len(clock.rings), clock.sent):
        seen = (len(clock.rings), clock.sent)
        await asyncio.sleep(for_s)


class Received(NamedTuple):
    """A pop message as an agent's socket read it."""

    agent: int  # the agent's index
    kind: str
    linkedid: str
    at: float  # time.perf_counter() when read
    loaded: bool  # it carried the customer's data


# ---- the agents' browsers, in a process of their own ---------------------------------------------------


def _desktops(base: str, tokens: Sequence[str], control: Connection) -> None:
    """Child process: one /ws/agent per token; at "stop", every pop message read, with when it was read."""

    async def run() -> None:
        received: list[Received] = []
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            gate = asyncio.Semaphore(CONNECT_AT_ONCE)

            async def connect(token: str) -> aiohttp.ClientWebSocketResponse:
                async with gate:
                    return await http.ws_connect(
                        f"{base}/ws/agent", headers={"Authorization": f"Bearer {token}"}, heartbeat=None
                    )

            sockets = await asyncio.gather(*(connect(token) for token in tokens))

            async def read(index: int, ws: aiohttp.ClientWebSocketResponse) -> None:
                async for message in ws:
                    at = time.perf_counter()
                    body = json.loads(message.data)
                    kind = body["kind"]
                    if "pop" in body:
                        pop = body["pop"]
                        received.append(Received(index, kind, pop["linkedid"], at, not pop["loading"]))
                    elif kind.startswith("Pop"):
                        received.append(Received(index, kind, body["linkedid"], at, False))

            readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(sockets, start=1)]
            loop = asyncio.get_running_loop()
            control.send("connected")
            await loop.run_in_executor(None, control.recv)
            for ws in sockets:
                await ws.close()
            await asyncio.gather(*readers, return_exceptions=True)
        control.send(received)

    asyncio.run(run())


# ---- the figures ---------------------------------------------------------------------------------------


def _ms(samples: list[float], q: int) -> float:
    return round((percentile(samples, q) or 0.0) * 1000, 3)


def pop_figures(rings: dict[tuple[str, str], float], received: list[Received], sent: int) -> dict[str, Any]:
    """Latencies and the pops' fates: each ring of an agent's phone should be one PopOpened on that
    agent's socket, and nothing else. `with_data_ms`: until the socket had the pop with the customer's data
    (in the PopOpened, or a PopUpdated after it when the ring beat the lookup)."""
    rung = {
        (int(device.rsplit("/", 1)[1]) - 20_000, linkedid): at for (device, linkedid), at in rings.items()
    }
    opened = Counter((r.agent, r.linkedid) for r in received if r.kind == "PopOpened")
    first: dict[tuple[int, str], float] = {}
    with_data: dict[tuple[int, str], float] = {}
    before_data = 0
    for r in received:
        key = (r.agent, r.linkedid)
        if r.kind == "PopOpened" and key not in first:
            first[key] = r.at
            before_data += not r.loaded
        if r.loaded:
            with_data.setdefault(key, r.at)
    latencies = [at - rung[key] for key, at in first.items() if key in rung]
    data_latencies = [at - rung[key] for key, at in with_data.items() if key in rung]
    return {
        "pop_ms": {"p50": _ms(latencies, 50), "p99": _ms(latencies, 99), "max": _ms(latencies, 100)},
        "with_data_ms": {"p50": _ms(data_latencies, 50), "p99": _ms(data_latencies, 99)},
        "pops": {
            "sent": sent,
            "received": sum(opened.values()),
            "lost": sum(1 for key in rung if key not in opened),
            "duplicated": sum(n - 1 for n in opened.values()),
            "wrong_agent": sum(n for key, n in opened.items() if key not in rung),
            "rings": len(rung),
            "opened_before_data": before_data,
        },
    }


async def _run(tmp: Path, url: str, database: str, args: argparse.Namespace, seed: int) -> dict[str, Any]:
    from ivr.component import IvrComponent

    out: dict[str, Any] = {
        "agents": args.agents,
        "customers": args.customers,
        "calls_per_s": args.calls_per_s,
        "seconds": args.seconds,
        "database": database,
    }
    loop = asyncio.get_running_loop()
    pbx, pbx_end = multiprocessing.Pipe()
    pbxsim = multiprocessing.Process(
        target=_pbxsim,
        args=(args.agents, args.calls_per_s, args.seconds, args.customers, seed, pbx_end),
        daemon=True,
    )
    pbxsim.start()
    ami_port = await loop.run_in_executor(None, pbx.recv)
    (tmp / "routing.yaml").write_text(routing_yaml(args.agents))
    ctid = Ctid(load_config(ctid_yaml(tmp, url, ami_port)))
    engine = ctid.context.engine
    started = time.perf_counter()
    out["rows"] = load_customers(engine, args.customers, seed)
    tokens = log_agents_in(engine, args.agents, time.time())
    out["load_s"] = round(time.perf_counter() - started, 1)
    log.warning("bench_screenpop_loaded", database=database, seconds=out["load_s"])

    clock = PopClock()
    state = next(iter(ctid.servers.values()))
    state.connection.on_event_cb = clock.watch_parser(state.connection.on_event_cb)  # type: ignore[arg-type]
    ctid.bus.subscribe(clock.on_event)
    screenpop = ctid.component(ScreenpopComponent)
    screenpop.load = clock.timed_load(screenpop.load)
    screenpop.hub.publish = clock.counting(screenpop.hub.publish)  # type: ignore[method-assign, assignment]
    await ctid.start()
    pbx.send(ctid.component(IvrComponent).port)
    await ctid.wait_synced()
    routing = ctid.component(RoutingComponent).service
    for i in range(1, args.agents + 1):
        routing.set_agent_state(agent_id(i), AgentState.READY, "")
    tune_gc()

    parent, child = multiprocessing.Pipe()
    before = rss_kb()
    desktops = multiprocessing.Process(
        target=_desktops, args=(f"http://127.0.0.1:{ctid.web_port}", tokens, child), daemon=True
    )
    desktops.start()
    await loop.run_in_executor(None, parent.recv)
    await asyncio.sleep(1.0)  # the last snapshots written
    out["rss_kb_per_agent"] = round((rss_kb() - before) / args.agents, 1)

    pbx.send("go")
    took = await loop.run_in_executor(None, pbx.recv)
    await quiet(clock, QUIET_S, DRAIN_S)
    parent.send("stop")
    received = await loop.run_in_executor(None, parent.recv)
    desktops.join(10)
    await ctid.stop()
    pbx.send("stop")
    pbxsim.join(10)

    out.update(pop_figures(clock.rings, received, clock.sent))
    out["lookup_ms"] = {
        "p50": _ms(clock.lookups, 50),
        "p99": _ms(clock.lookups, 99),
        "lookups": len(clock.lookups),
    }
    out["callers"] = int(args.calls_per_s * args.seconds)
    out["calls_per_s_achieved"] = round(out["callers"] / took, 1)
    return out


def bench_screenpop(args: argparse.Namespace) -> dict[str, Any]:
    """The issue's figures on each database asked for: the first one's at the top, the others' by name."""
    from ctid.tooling.pgtemp import PostgresUnavailable, throwaway_postgres

    results: list[dict[str, Any]] = []
    for database in args.databases.split(","):
        with tempfile.TemporaryDirectory(prefix="ctid-bench-pop-") as name:
            tmp = Path(name)
            if database == "sqlite":
                results.append(asyncio.run(_run(tmp, f"sqlite:///{tmp}/ctid.db", database, args, args.seed)))
                continue
            try:
                with throwaway_postgres() as server:
                    url = server.create_database()
                    results.append(asyncio.run(_run(tmp, url, database, args, args.seed)))
            except PostgresUnavailable as exc:
                results.append({"database": database, "skipped": str(exc)})
    first, *others = results
    return {**first, **{other["database"]: other for other in others}}
