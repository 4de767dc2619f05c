"""Caller identification with the router and the book injected: no routing, no IVR, no database."""

import asyncio
import subprocess
import sys
import threading
from decimal import Decimal

from structlog.testing import capture_logs

from ctid.customers import (
    CallerDirectory,
    CustomerRecord,
    CustomerValue,
    Identification,
    Lifecycle,
    Lookup,
    Tier,
)

VALUE = CustomerValue(Decimal("900"), 2.0, Decimal("50"), 1, Lifecycle.CLIENT, False)


def record(tier: Tier | None) -> CustomerRecord:
    return CustomerRecord("c1", "Acme Ltd", tier, Lifecycle.CLIENT, False, 1, VALUE)


def queue_for(dnis: str, asked: str) -> str:
    return {"4000": "sales", "4001": "support"}.get(dnis, asked or "entry")


def directory(lookup: Lookup, values: dict[str, CustomerValue], timeout_s: float = 2.0) -> CallerDirectory:
    return CallerDirectory(queue_for, lambda: "C", lookup, values, timeout_s)


def test_a_known_caller_gets_their_tier_and_routing_their_value() -> None:
    values: dict[str, CustomerValue] = {}
    asked: list[str] = []

    def lookup(number: str) -> CustomerRecord | None:
        asked.append(number)
        return record(Tier.A)

    found = asyncio.run(directory(lookup, values).identify("+44 20 7946 0958", "4001"))
    assert found == Identification(queue="support", customer="c1", tier="A")
    assert asked == ["+44 20 7946 0958"]
    assert values == {"c1": VALUE}


def test_an_unknown_or_untiered_caller_gets_the_routers_default_tier() -> None:
    values: dict[str, CustomerValue] = {}
    unknown = asyncio.run(directory(lambda number: None, values).identify("555", "4000"))
    assert unknown == Identification(queue="sales", tier="C")
    untiered = asyncio.run(directory(lambda number: record(None), values).identify("555", "9999"))
    assert untiered == Identification(queue="entry", customer="c1", tier="C")


def test_no_caller_number_is_not_looked_up() -> None:
    def lookup(number: str) -> CustomerRecord | None:
        raise AssertionError("looked up an empty number")

    assert asyncio.run(directory(lookup, {}).identify("", "4000")) == Identification("sales", tier="C")


def test_a_failing_book_routes_the_caller_as_unknown_and_logs_why() -> None:
    def lookup(number: str) -> CustomerRecord | None:
        raise OSError("database is down")

    with capture_logs() as logs:
        found = asyncio.run(directory(lookup, {}).identify("555", "4000"))
    assert found == Identification(queue="sales", tier="C")
    assert [(e["event"], e["error"]) for e in logs] == [("customer_lookup_failed", "database is down")]


def test_a_slow_book_does_not_hold_the_caller() -> None:
    release = threading.Event()

    def lookup(number: str) -> CustomerRecord | None:
        release.wait(10)  # blocks until the test lets it go, after the directory gave up on it
        return record(Tier.A)

    async def call() -> Identification:
        found = await directory(lookup, values, timeout_s=0.01).identify("555", "4000")
        release.set()
        return found

    values: dict[str, CustomerValue] = {}
    with capture_logs() as logs:
        found = asyncio.run(call())
    assert found == Identification(queue="sales", tier="C") and values == {}
    assert [(e["event"], e["error"]) for e in logs] == [("customer_lookup_failed", "TimeoutError")]


def test_the_door_loads_neither_sqlalchemy_nor_routing_nor_the_ivr() -> None:
    probe = "import sys, ctid.customers; print(sorted({m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "'ctid'" in loaded
    for package in ("sqlalchemy", "routing", "ivr"):
        assert f"'{package}'" not in loaded
