"""`ctid bench ...`: benchmarks that print one JSON object; speed targets live here, never in unit tests."""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from typing import Any

from ctid import dialplan
from ctid.ami.client import AmiConnection
from ctid.ami.events import AmiEvent
from ctid.ami.message import AmiMessage
from ctid.state import CallStateModel

INGEST_AGENTS = [str(1000 + i) for i in range(1, 201)]
CHUNK = 65536


def generate_stream(events: int, seed: int) -> tuple[bytes, int, set[str]]:
    """Seeded pbxsim traffic answered by its stand-in router, serialized: (bytes, message count, names)."""
    from pbxsim import TrafficGenerator, TrafficProfile, World, call_center_site, scripted_peer
    from pbxsim.autoroute import AutoRouter

    identify = [f'SET VARIABLE {dialplan.QUEUE_VAR} "sales"', f'SET VARIABLE {dialplan.TIER_VAR} "B"']
    peer = scripted_peer({dialplan.INBOUND_SCRIPT: identify})
    world = World(seed=seed, start=1_795_424_400.0, endpoints=call_center_site(INGEST_AGENTS), agi_peer=peer)
    profile = replace(TrafficProfile.flat(3600), talk_mean=150.0, patience_mean=120.0)
    TrafficGenerator(world, profile).start()
    router = AutoRouter(world, INGEST_AGENTS)
    messages: list[AmiMessage] = []
    while len(messages) < events:
        messages += router.run(60)
    messages = messages[:events]
    names = {m.get("CallerIDName", "") for m in messages if m.get("CallerIDName")}
    return b"".join(m.to_bytes() for m in messages), len(messages), names


def panoramisk_stock_rate(data: bytes, count: int) -> tuple[float, int]:
    """panoramisk 1.4's own protocol parsing the same bytes: (messages/s, distinct caller names it saw)."""
    from panoramisk.ami_protocol import AMIProtocol

    names: set[str] = set()

    class Factory:
        save_stream = None

        def dispatch(self, message: Any) -> None:
            name = message.get("CallerIDName")
            if name:
                names.add(name)

    protocol = AMIProtocol()
    protocol.connection_made(None)
    protocol.factory = Factory()
    protocol.encoding = "utf8"
    chunks = [data[i : i + CHUNK - 7] for i in range(0, len(data), CHUNK - 7)]  # cuts land anywhere
    start = time.perf_counter()
    for chunk in chunks:
        protocol.data_received(chunk)
    elapsed = time.perf_counter() - start
    return count / elapsed, len(names)


def _pbxsim_sender(data: bytes, rate: float, control: Connection, ready: Event) -> None:
    """Child process: pbxsim's AMI server holding the pre-serialized stream, sending when told to."""

    async def serve() -> None:
        from pbxsim import PbxSimServer, World

        server = PbxSimServer(World(seed=0), host="127.0.0.1", port=0, agi_port=1)
        await server.start()
        control.send(server.port)
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, control.recv)
            if command == "all":
                server.send_raw(data)
            elif command == "paced":
                offsets = _message_offsets(data)
                count = len(offsets) - 1
                size = max(1, int(rate / 1000))
                sent: list[float] = []
                for first in range(0, count, size):
                    sent.append(time.perf_counter())  # CLOCK_MONOTONIC: comparable across processes
                    server.send_raw(data[offsets[first] : offsets[min(count, first + size)]])
                    await asyncio.sleep(0.001)
                control.send((size, sent))
            else:
                await server.stop()
                return

    ready.set()
    asyncio.run(serve())


async def _ingest(data: bytes, count: int, rate: float, rounds: int) -> dict[str, Any]:
    from ctid.daemon import tune_gc

    tune_gc()
    parent, child = multiprocessing.Pipe()
    ready = multiprocessing.Event()
    sender = multiprocessing.Process(target=_pbxsim_sender, args=(data, rate, child, ready), daemon=True)
    sender.start()
    loop = asyncio.get_running_loop()
    port = await loop.run_in_executor(None, parent.recv)
    model = CallStateModel(history=None)

    def on_event(event: AmiEvent) -> None:
        model.apply(event, event.ts or 0.0)

    conn = AmiConnection(
        name="bench", host="127.0.0.1", port=port, username="ctid", secret="ctid", on_event=on_event
    )
    conn.start()
    await asyncio.wait_for(conn.synced.wait(), 10)

    def total() -> int:
        return sum(conn.event_counts.values())

    async def until(n: int) -> None:
        while total() < n:
            await asyncio.sleep(0.001)

    # 1. throughput: the whole stream at once, through TCP, parser, typed events and the state model;
    #    each round alternates with panoramisk's parser on the same bytes, so both see the same machine
    ctid_rates: list[float] = []
    stock_rates: list[float] = []
    stock_names = 0
    for _ in range(rounds):
        stock_rate, stock_names = panoramisk_stock_rate(data, count)
        stock_rates.append(stock_rate)
        model = CallStateModel(history=None)
        base = total()
        parent.send("all")
        start = time.perf_counter()
        await until(base + count)
        ctid_rates.append(count / (time.perf_counter() - start))
    calls = model.all_calls()
    # 2. latency at a steady rate: write on pbxsim's socket to the event applied to the state
    model2 = CallStateModel(history=None)
    received: list[tuple[int, float]] = []
    base2 = total()

    def timed(event: AmiEvent) -> None:
        model2.apply(event, event.ts or 0.0)
        received.append((total() - base2 - 1, time.perf_counter()))

    conn.on_event_cb = timed
    parent.send("paced")
    await until(base2 + count)
    size, sent = await loop.run_in_executor(None, parent.recv)
    parent.send("stop")
    await conn.close()
    sender.join(5)
    latencies = sorted(at - sent[index // size] for index, at in received)
    speedups = sorted(c / p for c, p in zip(ctid_rates, stock_rates, strict=True))
    return {
        "rounds": rounds,
        "events_per_s": round(statistics.median(ctid_rates), 1),
        "panoramisk_stock_events_per_s": round(statistics.median(stock_rates), 1),
        "speedup_vs_panoramisk": round(statistics.median(speedups), 2),
        "speedup_per_round": [round(x, 2) for x in speedups],
        "panoramisk_distinct_names": stock_names,
        "calls_folded": len(calls),
        "latency_rate_events_per_s": round(rate, 1),
        "p50_ms": round(latencies[len(latencies) // 2] * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 3),
        "latency_samples": len(latencies),
        "caller_names": sorted({c.caller_name for c in calls if c.caller_name}),
    }


def _message_offsets(data: bytes) -> list[int]:
    """Byte offset where each message starts, plus the end."""
    offsets = [0]
    pos = data.find(b"\r\n\r\n")
    while pos >= 0:
        offsets.append(pos + 4)
        pos = data.find(b"\r\n\r\n", pos + 4)
    return offsets


def bench_ingest(events: int, seed: int, rate: float, rounds: int) -> dict[str, Any]:
    gen_start = time.perf_counter()
    data, count, names = generate_stream(events, seed)
    generated_s = time.perf_counter() - gen_start
    result = asyncio.run(_ingest(data, count, rate, rounds))
    ctid_names = set(result.pop("caller_names"))
    return {
        "bench": "ingest",
        "seed": seed,
        "events": count,
        "bytes": len(data),
        "generate_seconds": round(generated_s, 2),
        **result,
        "mangled_names": len(ctid_names - names),
        "caller_names_seen": len(ctid_names),
        "note": (
            "medians over alternating rounds; pbxsim sends from its own process; "
            "p50/p99: socket write to state applied"
        ),
    }


# options several benchmarks share, each with its own default
DEFAULTS: dict[str, dict[str, object]] = {
    "routing": {"agents": 100},
    "reports": {"agents": 100, "databases": "sqlite,postgresql"},
    "screenpop": {"agents": 2000, "databases": "sqlite"},
}


def run_bench(what: str, args: argparse.Namespace) -> dict[str, Any]:
    for name, value in DEFAULTS.get(what, {}).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if what == "ingest":
        return bench_ingest(args.events, args.seed, args.rate, args.rounds)
    if what == "routing":
        from ctid.tooling.bench_routing import bench_routing

        return bench_routing(args)
    if what == "reports":
        from ctid.tooling.bench_reports import bench_reports

        return bench_reports(args)
    if what == "screenpop":
        from ctid.tooling.bench_screenpop import bench_screenpop

        return bench_screenpop(args)
    raise ValueError(f"unknown benchmark {what}")
