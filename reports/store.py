"""What the KPI folds make of the log, kept in SQL as the log is written, and the reports read from it.

`reports.kpi` folds events into queued contacts, agent legs and agent state spans. Folding 30 days of
events for every report does not scale (a million calls are ten million events), so the log's writer runs
the same folds batch by batch (`Materializer`) and stores what they make: `contacts`, `agent_legs`,
`agent_spans`. A report then asks SQL for sums and counts over them (`queue_tallies`, `agent_rows`) and
turns them into figures with the very functions the in-memory path uses (`kpi.queue_figures`,
`kpi.agent_figures`), so a figure has one definition whichever way it was summed.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    Double,
    Index,
    Integer,
    String,
    Table,
    and_,
    case,
    cast,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import RowMapping
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from ctid.agents import AgentState
from ctid.db import Base
from reports.kpi import (
    INF,
    AgentFold,
    CallKey,
    Contact,
    ContactFold,
    KpiSettings,
    Leg,
    Outcome,
    QueueTally,
    Span,
    agent_figures,
)

CHUNK = 500  # keys per IN (...): SQLite allows 32,766 parameters, tuples take two each
PERCENTILES = (50, 90, 95)  # of the answered contacts' waits (QueueTally.wait_p50 ...)
REPORT_WORK_MEM = "64MB"  # PostgreSQL: a month's waits sort in memory, not on disk


def _report_settings(connection: Connection) -> None:
    """PostgreSQL, for this transaction: sorts and hashes in memory, and no JIT (compiling a report's
    expressions costs more than it saves on a few million rows)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
        connection.exec_driver_sql("SET LOCAL jit = off")


class StoredContact(Base):
    """One queued contact (`kpi.Contact`): `seq` numbers a call's contacts from 0."""

    __tablename__ = "contacts"

    server: Mapped[str] = mapped_column(String, primary_key=True)
    call_id: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue: Mapped[str] = mapped_column(String)
    arrive: Mapped[float] = mapped_column(Double, index=True)
    direction: Mapped[str] = mapped_column(String)
    dnis: Mapped[str] = mapped_column(String)
    tier: Mapped[str] = mapped_column(String)
    outcome: Mapped[str] = mapped_column(String)
    outcome_at: Mapped[float | None] = mapped_column(Double)
    wait: Mapped[float | None] = mapped_column(Double)
    short: Mapped[bool] = mapped_column(Boolean)
    agent: Mapped[str] = mapped_column(String)
    deflected_to: Mapped[str] = mapped_column(String)
    deflect_reason: Mapped[str] = mapped_column(String)
    callback_accepted: Mapped[bool] = mapped_column(Boolean)


class AgentLeg(Base):
    """One agent's segment of a call (`kpi.Leg`); `hold_s` is the closed holds' total."""

    __tablename__ = "agent_legs"

    server: Mapped[str] = mapped_column(String, primary_key=True)
    call_id: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[str] = mapped_column(String)
    connected_at: Mapped[float] = mapped_column(Double, index=True)
    left_at: Mapped[float | None] = mapped_column(Double, index=True)
    held_since: Mapped[float | None] = mapped_column(Double)
    holds: Mapped[list[list[float]]] = mapped_column(JSON)
    hold_s: Mapped[float] = mapped_column(Double)
    transferred: Mapped[bool] = mapped_column(Boolean)


class AgentSpan(Base):
    """An agent's time in one state (`kpi.Span`); begin None: since before the log knew the agent,
    finish None: the state it is in now."""

    __tablename__ = "agent_spans"

    agent: Mapped[str] = mapped_column(String, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    device: Mapped[str] = mapped_column(String)  # the device the agent was on when the span began
    state: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String)
    begin: Mapped[float | None] = mapped_column(Double, index=True)
    finish: Mapped[float | None] = mapped_column(Double)

    # the writer looks up each agent's open span with every batch: a partial index holds just those
    __table_args__ = (
        Index(
            "ix_agent_spans_open",
            "agent",
            postgresql_where=text("finish IS NULL"),
            sqlite_where=text("finish IS NULL"),
        ),
    )


class AgentStateDay(Base):
    """Seconds of closed agent spans (begin known) per agent, device, state and reason in one UTC day.

    A month's agent report sums these instead of every span; `first_begin` (the earliest span that reaches
    into the day) bounds the search for the spans a period's part-days need, `latest` (the latest span
    begun) tells which agent a device belongs to. A span adds to the day it begins in even when it lasts
    no time at all."""

    __tablename__ = "agent_state_days"

    agent: Mapped[str] = mapped_column(String, primary_key=True)
    device: Mapped[str] = mapped_column(String, primary_key=True)
    state: Mapped[str] = mapped_column(String, primary_key=True)
    reason: Mapped[str] = mapped_column(String, primary_key=True)
    day: Mapped[float] = mapped_column(Double, primary_key=True)  # epoch seconds of the UTC midnight
    seconds: Mapped[float] = mapped_column(Double)
    first_begin: Mapped[float] = mapped_column(Double)
    latest: Mapped[float] = mapped_column(Double)

    __table_args__ = (Index("ix_agent_state_days_day", "day"),)


STORE_TABLES = frozenset({"contacts", "agent_legs", "agent_spans", "agent_state_days"})
DAY_S = 86400.0
_StateKey = tuple[str, str, str, str]  # agent, device, state, reason


def day_parts(begin: float, finish: float) -> Iterator[tuple[float, float]]:
    """(UTC midnight, seconds) of [begin, finish) in each day it reaches, from the day it begins in."""
    day = math.floor(begin / DAY_S) * DAY_S
    while True:
        following = day + DAY_S
        yield day, min(finish, following) - max(begin, day)
        if finish <= following:
            return
        day = following


def _least_greatest(connection: Connection) -> tuple[Any, Any]:
    """SQL's two-argument min and max: least/greatest on PostgreSQL, SQLite's scalar min/max."""
    if connection.dialect.name == "postgresql":
        return func.least, func.greatest
    return func.min, func.max


def add_state_days(connection: Connection, spans: Iterable[Mapping[str, Any] | RowMapping]) -> None:
    """Add closed spans (agent_spans rows, begin and finish known) to `agent_state_days`."""
    totals: dict[tuple[str, str, str, str, float], list[float]] = {}
    for span in spans:
        begin, finish = span["begin"], span["finish"]
        for day, seconds in day_parts(begin, finish):
            key = (span["agent"], span["device"], span["state"], span["reason"], day)
            total = totals.get(key)
            if total is None:
                totals[key] = [seconds, begin, begin]
            else:
                total[0] += seconds
                total[1] = min(total[1], begin)
                total[2] = max(total[2], begin)
    if not totals:
        return
    rows = [
        {
            "agent": a,
            "device": dev,
            "state": st,
            "reason": r,
            "day": day,
            "seconds": t[0],
            "first_begin": t[1],
            "latest": t[2],
        }
        for (a, dev, st, r, day), t in totals.items()
    ]
    table = AgentStateDay.__table__
    insert = (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(AgentStateDay)
    least, greatest = _least_greatest(connection)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=[c.name for c in table.primary_key],
            set_={
                "seconds": table.c.seconds + insert.excluded.seconds,
                "first_begin": least(table.c.first_begin, insert.excluded.first_begin),
                "latest": greatest(table.c.latest, insert.excluded.latest),
            },
        ),
        rows,
    )


def fill_state_days(connection: Connection, batch: int = 20_000) -> None:
    """`agent_state_days` again from the stored spans (a store written before the table existed)."""
    connection.execute(delete(AgentStateDay))
    spans = AgentSpan.__table__.c
    last: tuple[str, int] = ("", -1)
    while True:
        query = (
            select(AgentSpan.__table__)
            .where(tuple_(spans.agent, spans.seq) > last, spans.begin.is_not(None), spans.finish.is_not(None))
            .order_by(spans.agent, spans.seq)
            .limit(batch)
        )
        rows = list(connection.execute(query).mappings())
        if not rows:
            return
        add_state_days(connection, rows)
        last = (rows[-1]["agent"], rows[-1]["seq"])


def copy_to_scratch(
    connection: Connection, table: Table, names: Sequence[str], rows: Iterable[Sequence[Any]]
) -> str:
    """PostgreSQL: COPY rows (values in `names` order) into an empty scratch copy of `table`, kept until
    the transaction ends or the next copy; returns its name. A multi-row INSERT of thousands of rows costs
    more to build and parse than to run; COPY streams them."""
    scratch = f"ctid_batch_{table.name}"
    connection.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {scratch} (LIKE {table.name}) ON COMMIT DELETE ROWS"
    )
    connection.exec_driver_sql(f"TRUNCATE {scratch}")  # a transaction may copy several batches (rebuild)
    json_columns = {i for i, n in enumerate(names) if isinstance(table.c[n].type, JSON)}
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {scratch} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(tuple(json.dumps(v) if i in json_columns else v for i, v in enumerate(row)))
    return scratch


def upsert(connection: Connection, entity: type[Base], rows: list[dict[str, Any]]) -> None:
    """Insert rows, or update the stored row with the same key (PostgreSQL: through `copy_to_scratch`)."""
    if not rows:
        return
    table: Table = entity.__table__  # type: ignore[assignment]
    keys = [c.name for c in table.primary_key]
    columns = [c.name for c in table.columns if c.name not in keys]
    if connection.dialect.name == "postgresql":
        names = [*keys, *columns]
        scratch = copy_to_scratch(connection, table, names, ([row[n] for n in names] for row in rows))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
        connection.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)} FROM {scratch} "
            f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {updates}"
        )
        return
    insert = sqlite.insert(entity)
    connection.execute(
        insert.on_conflict_do_update(index_elements=keys, set_={c: insert.excluded[c] for c in columns}), rows
    )


def _in_chunks(connection: Connection, query_for: Any, keys: Sequence[Any]) -> list[Any]:
    found: list[Any] = []
    for chunk in range(0, len(keys), CHUNK):
        found.extend(connection.execute(query_for(keys[chunk : chunk + CHUNK])).mappings())
    return found


# ---- writing: the folds, batch by batch ---------------------------------------------------------------


def _contact_row(contact: Contact, seq: int) -> dict[str, Any]:
    return {
        "server": contact.server,
        "call_id": contact.call_id,
        "seq": seq,
        "queue": contact.queue,
        "arrive": contact.arrive,
        "direction": contact.direction,
        "dnis": contact.dnis,
        "tier": contact.tier,
        "outcome": contact.outcome.value,
        "outcome_at": contact.outcome_at,
        "wait": contact.wait,
        "short": contact.short,
        "agent": contact.agent,
        "deflected_to": contact.deflected_to,
        "deflect_reason": contact.deflect_reason,
        "callback_accepted": contact.callback_accepted,
    }


def _contact_of(row: Mapping[str, Any] | RowMapping) -> Contact:
    fields = {k: v for k, v in row.items() if k != "seq"}
    return Contact(**{**fields, "outcome": Outcome(row["outcome"])})


def _leg_row(key: CallKey, seq: int, leg: Leg) -> dict[str, Any]:
    return {
        "server": key[0],
        "call_id": key[1],
        "seq": seq,
        "device": leg.device,
        "connected_at": leg.connected_at,
        "left_at": leg.left_at,
        "held_since": leg.held_since,
        "holds": [list(h) for h in leg.holds],
        "hold_s": sum(finish - begin for begin, finish in leg.holds),
        "transferred": leg.transferred,
    }


def _leg_of(row: Mapping[str, Any] | RowMapping) -> Leg:
    return Leg(
        row["device"],
        row["connected_at"],
        row["left_at"],
        row["held_since"],
        [(begin, finish) for begin, finish in row["holds"]],
        row["transferred"],
        (row["server"], row["call_id"]),
    )


def _bound(value: float, infinite: float) -> float | None:
    return None if value == infinite else value


class Materializer:
    """Runs the KPI folds over one batch of new log rows, continuing each call and agent where the stored
    tables left it, and stores what changed. `calls` gives (direction, dnis, tier) of the batch's calls as
    they were before it (the log's call summaries)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def apply(self, rows: Sequence[Mapping[str, Any]], calls: Mapping[CallKey, tuple[str, str, str]]) -> None:
        call_keys = sorted({(r["server"], r["call_id"]) for r in rows if r["call_id"]})
        agents = sorted({r["agent"] for r in rows if r["kind"] == "AgentStateChanged"})
        contacts = ContactFold(KpiSettings())
        agent_fold = AgentFold()
        first_contact = self._seed_contacts(contacts, call_keys, calls)
        self._seed_legs(agent_fold, call_keys)
        first_span, devices = self._seed_spans(agent_fold, agents)
        for row in rows:
            contacts.apply(row)
            agent_fold.apply(row)
            if row["kind"] == "AgentStateChanged":
                devices.setdefault(row["agent"], []).append(row["data"].get("device", ""))
        self._store_contacts(contacts.contacts, first_contact)
        self._store_legs(agent_fold.legs)
        self._store_spans(agent_fold, agents, first_span, devices)

    def _seed_contacts(
        self, fold: ContactFold, keys: list[CallKey], calls: Mapping[CallKey, tuple[str, str, str]]
    ) -> dict[CallKey, int]:
        table = StoredContact.__table__

        def query(chunk: list[CallKey]) -> Any:
            return select(table).where(tuple_(table.c.server, table.c.call_id).in_(chunk))

        stored: dict[CallKey, Any] = {}
        for row in _in_chunks(self.connection, query, keys):  # a call has a contact or two: keep the latest
            key = (row["server"], row["call_id"])
            if key not in stored or row["seq"] > stored[key]["seq"]:
                stored[key] = row
        first: dict[CallKey, int] = {}
        for key in keys:
            row = stored.get(key)
            direction, dnis, tier = calls.get(key, ("", "", ""))
            fold.seed(key, direction, dnis, tier, _contact_of(row) if row else None)
            first[key] = row["seq"] if row else 0
        return first

    def _store_contacts(self, contacts: list[Contact], first: dict[CallKey, int]) -> None:
        seq = dict(first)
        rows = []
        for contact in contacts:
            key = (contact.server, contact.call_id)
            rows.append(_contact_row(contact, seq[key]))
            seq[key] += 1
        upsert(self.connection, StoredContact, rows)

    def _seed_legs(self, fold: AgentFold, keys: list[CallKey]) -> None:
        table = AgentLeg.__table__

        def query(chunk: list[CallKey]) -> Any:
            return (
                select(table)
                .where(tuple_(table.c.server, table.c.call_id).in_(chunk))
                .order_by(table.c.server, table.c.call_id, table.c.seq)
            )

        by_call: dict[CallKey, list[Leg]] = defaultdict(list)
        for row in _in_chunks(self.connection, query, keys):
            by_call[row["server"], row["call_id"]].append(_leg_of(row))
        for key, legs in by_call.items():
            fold.seed_call(key, legs)

    def _store_legs(self, legs: list[Leg]) -> None:
        seq: dict[CallKey, int] = defaultdict(int)
        rows = []
        for leg in legs:  # in the order the fold made them: a call's seeded legs, then its new ones
            rows.append(_leg_row(leg.call, seq[leg.call], leg))
            seq[leg.call] += 1
        upsert(self.connection, AgentLeg, rows)

    def _seed_spans(self, fold: AgentFold, agents: list[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
        table = AgentSpan.__table__

        def query(chunk: list[str]) -> Any:
            return select(table).where(table.c.agent.in_(chunk), table.c.finish.is_(None))

        first: dict[str, int] = {}
        devices: dict[str, list[str]] = {}
        for row in _in_chunks(self.connection, query, agents):
            begin = -INF if row["begin"] is None else row["begin"]
            fold.seed_agent(row["agent"], Span(row["state"], row["reason"], begin, INF))
            first[row["agent"]] = row["seq"]
            devices[row["agent"]] = [row["device"]]
        return first, devices

    def _store_spans(
        self, fold: AgentFold, agents: list[str], first: dict[str, int], devices: dict[str, list[str]]
    ) -> None:
        rows = []
        for agent in agents:
            spans = fold.spans_of(agent)
            seq = first.get(agent, 0)
            names = devices.get(agent, [])
            if agent not in first:
                names = [names[0] if names else "", *names]  # the span before the first change the log holds
            for i, span in enumerate(spans):
                rows.append(
                    {
                        "agent": agent,
                        "seq": seq + i,
                        "device": names[i] if i < len(names) else "",
                        "state": span.state,
                        "reason": span.reason,
                        "begin": _bound(span.begin, -INF),
                        "finish": _bound(span.finish, INF),
                    }
                )
        upsert(self.connection, AgentSpan, rows)
        # every span but an agent's last is closed, and closed in this batch (the seeded one was open)
        add_state_days(
            self.connection, (r for r in rows if r["begin"] is not None and r["finish"] is not None)
        )


# ---- reading: sums and counts for the reports ----------------------------------------------------------


def _count(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _local_hour(connection: Connection, column: Any, timezone: str) -> Any:
    """The hour (0-23) of an epoch time on the clocks of `timezone`."""
    if connection.dialect.name == "postgresql":
        return cast(func.extract("hour", func.timezone(timezone, func.to_timestamp(column))), Integer)
    zone = ZoneInfo(timezone)

    def hour(at: float) -> int:
        return datetime.fromtimestamp(at, zone).hour

    raw = connection.connection.dbapi_connection
    raw.create_function("ctid_local_hour", 1, hour, deterministic=True)  # type: ignore[union-attr]
    return func.ctid_local_hour(column)


def _slot(connection: Connection, column: Any, start: float, interval_s: float) -> Any:
    """The interval a time falls in, counted from `start` (times are >= start, so truncation floors)."""
    offset = (column - start) / interval_s
    if connection.dialect.name == "postgresql":
        return cast(func.floor(offset), Integer)
    return cast(offset, Integer)


def queue_tallies(
    connection: Connection,
    *,
    start: float,
    end: float,
    settings: KpiSettings,
    interval_s: float | None = None,
    by: Sequence[str] = ("queue",),
    inbound_only: bool = False,
    timezone: str = "UTC",
) -> dict[tuple[Any, ...], QueueTally]:
    """The stored contacts that arrived in [start, end), tallied per group: `by` names contact columns
    (queue, dnis, tier) or `hour` (the local hour of arrival in `timezone`); with `interval_s`, the
    interval number comes first. `inbound_only` leaves dialer contacts out."""
    c = StoredContact.__table__.c
    threshold = (
        case(
            *((c.queue == name, literal(t)) for name, t in settings.service_level_s.items()),
            else_=literal(settings.default_service_level_s),
        )
        if settings.service_level_s
        else literal(settings.default_service_level_s)
    )
    within = and_(c.wait.is_not(None), c.wait <= threshold)
    answered, abandoned = c.outcome == Outcome.ANSWERED.value, c.outcome == Outcome.ABANDONED.value
    deflected = c.outcome == Outcome.DEFLECTED.value
    callback = and_(deflected, c.deflected_to == "callback")
    short = c.wait < settings.short_abandon_s  # the report's setting, not the one the writer folded with
    keys: list[Any] = [
        _local_hour(connection, c.arrive, timezone).label("hour") if name == "hour" else c[name].label(name)
        for name in by
    ]
    if interval_s is not None:
        keys.insert(0, _slot(connection, c.arrive, start, float(interval_s)).label("slot"))
    where = [c.arrive >= start, c.arrive < end]
    if inbound_only:
        where.append(c.direction != "outbound")
    sums = (
        select(
            *keys,
            func.count().label("offered"),
            _count(answered).label("answered"),
            _count(abandoned).label("abandoned"),
            _count(and_(abandoned, short)).label("short_abandoned"),
            _count(deflected).label("deflected"),
            _count(c.outcome == Outcome.OPEN.value).label("open"),
            _count(c.outcome == Outcome.LOST.value).label("lost"),
            _count(and_(answered, within)).label("answered_in_t"),
            _count(and_(abandoned, ~short, ~within)).label("abandoned_over_t"),
            _count(or_(answered, abandoned, callback)).label("removed"),
            _count(and_(or_(answered, abandoned, callback), within)).label("removed_in_t"),
            func.coalesce(func.sum(case((answered, c.wait), else_=0.0)), 0.0).label("answer_wait_sum"),
            func.coalesce(func.sum(case((abandoned, c.wait), else_=0.0)), 0.0).label("abandon_wait_sum"),
            func.max(c.wait).label("longest_wait"),
            _count(callback).label("callbacks_offered"),
            _count(and_(callback, c.callback_accepted)).label("callbacks_accepted"),
            _count(
                and_(deflected, or_(c.deflect_reason == "overflow", c.deflected_to.like("queue:%")))
            ).label("overflowed"),
        )
        .where(*where)
        .group_by(*keys)
    )
    postgres = connection.dialect.name == "postgresql"
    _report_settings(connection)
    if postgres:  # nearest-rank percentiles in the same pass: percentile_disc is exactly that
        sums = sums.add_columns(
            func.percentile_disc(postgresql.array([p / 100 for p in PERCENTILES]))
            .within_group(c.wait)
            .filter(answered)
            .label("percentiles")
        )
    group_names = {k.name for k in keys} | {"percentiles"}
    tallies: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in connection.execute(sums).mappings():
        group = tuple(row[k.name] for k in keys)
        fields = {k: v for k, v in row.items() if k not in group_names}
        for p, value in zip(PERCENTILES, row.get("percentiles") or (), strict=False):
            fields[f"wait_p{p}"] = value
        tallies[group] = fields
    if not postgres:
        _ranked_percentiles(connection, keys, [*where, answered], tallies)
    return {group: QueueTally(**{k: v for k, v in fields.items()}) for group, fields in tallies.items()}


def _ranked_percentiles(
    connection: Connection, keys: list[Any], where: list[Any], tallies: dict[tuple[Any, ...], dict[str, Any]]
) -> None:
    """Nearest-rank percentiles where SQL has no percentile_disc (SQLite): the value at rank
    ceil(p * n / 100) of each group, picked with a window."""
    c = StoredContact.__table__.c
    ranked = (
        select(
            *keys,
            c.wait.label("wait"),
            func.row_number().over(partition_by=keys, order_by=c.wait).label("rank"),
            func.count().over(partition_by=keys).label("n"),
        )
        .where(*where)
        .subquery()
    )
    r = ranked.c
    picks = [(p * r.n + 99) // 100 for p in PERCENTILES]
    group_cols = [r[k.name] for k in keys]
    wanted = select(*group_cols, r.wait, r.rank, r.n).where(or_(*(r.rank == pick for pick in picks)))
    for row in connection.execute(wanted).mappings():
        group = tuple(row[k.name] for k in keys)
        for p in PERCENTILES:
            if row["rank"] == max(1, math.ceil(p * row["n"] / 100)):
                tallies[group][f"wait_p{p}"] = row["wait"]


def _state_seconds(
    connection: Connection, start: float, end: float
) -> tuple[dict[_StateKey, float], dict[str, tuple[float, str]]]:
    """Seconds per (agent, device, state, reason) inside [start, end), and for each device the begin and
    agent of the latest span that names it.

    Whole UTC days come from `agent_state_days`; the part-days at the period's edges from the closed spans
    that reach into them (an index range from their days' `first_begin`); spans still open or begun before
    the log knew the agent (a few per agent) are clipped here.
    """
    spans, days = AgentSpan.__table__.c, AgentStateDay.__table__.c
    seconds: dict[_StateKey, float] = defaultdict(float)
    latest: dict[str, tuple[float, str]] = {}

    def saw(device: str, begin: float, agent: str) -> None:
        if begin >= latest.get(device, (-math.inf, ""))[0]:
            latest[device] = (begin, agent)

    group = (days.agent, days.device, days.state, days.reason)
    span_group = (spans.agent, spans.device, spans.state, spans.reason)
    least, greatest = _least_greatest(connection)
    for row in connection.execute(
        select(days.device, days.agent, func.max(days.latest)).group_by(*group[:2])
    ):
        saw(row[0], row[2], row[1])
    first_day, last_day = math.ceil(start / DAY_S) * DAY_S, math.floor(end / DAY_S) * DAY_S
    edges = [(start, end)]
    if first_day < last_day:
        whole = select(*group, func.sum(days.seconds)).where(days.day >= first_day, days.day < last_day)
        for agent, device, state, reason, total in connection.execute(whole.group_by(*group)):
            seconds[agent, device, state, reason] += total
        edges = [(start, first_day), (last_day, end)]
    for low, high in edges:
        if high <= low:
            continue
        reach = select(func.min(days.first_begin)).where(
            days.day >= math.floor(low / DAY_S) * DAY_S, days.day < high
        )
        earliest = connection.execute(reach).scalar()
        if earliest is None:
            continue
        inside = least(spans.finish, literal(high)) - greatest(spans.begin, literal(low))
        closed = (
            select(*span_group, func.sum(inside))
            .where(spans.begin >= earliest, spans.begin < high, spans.finish.is_not(None), spans.finish > low)
            .group_by(*span_group)
        )
        for agent, device, state, reason, total in connection.execute(closed):
            seconds[agent, device, state, reason] += total
    irregular = select(*span_group, spans.begin, spans.finish).where(
        or_(spans.finish.is_(None), spans.begin.is_(None))
    )
    for agent, device, state, reason, begin, finish in connection.execute(irregular):
        saw(device, -1e300 if begin is None else begin, agent)
        inside = min(end if finish is None else finish, end) - max(start if begin is None else begin, start)
        if inside > 0:
            seconds[agent, device, state, reason] += inside
    return seconds, latest


def agent_rows(connection: Connection, *, start: float, end: float) -> list[dict[str, Any]]:
    """`kpi.agent_performance`'s rows from the stored legs and spans (and the log's ring-no-answers and
    survey answers), for the agents active in [start, end)."""
    from reports.log import InteractionEvent  # the log's own table; reports.log imports this module

    legs, events = AgentLeg.__table__.c, InteractionEvent.__table__.c
    _report_settings(connection)
    seconds, latest = _state_seconds(connection, start, end)
    by_state: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    by_reason: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (agent, _, state, reason), total in seconds.items():
        if total > 0:
            by_state[agent][state] += total
            if state == AgentState.PAUSED.value:
                by_reason[agent][reason] += total
    device_agent = {device: agent for device, (_, agent) in latest.items() if device}

    def agent_of(device: str) -> str:
        return device_agent.get(device, device)

    handled: dict[str, int] = defaultdict(int)
    transfers: dict[str, int] = defaultdict(int)
    talk: dict[str, float] = defaultdict(float)
    hold: dict[str, float] = defaultdict(float)
    ended_in = and_(legs.left_at.is_not(None), legs.left_at >= start, legs.left_at < end)
    inside = and_(legs.connected_at >= start, legs.left_at.is_not(None), legs.left_at <= end)
    whole = (
        select(
            legs.device,
            _count(ended_in).label("handled"),
            _count(and_(ended_in, legs.transferred)).label("transfers"),
            func.coalesce(
                func.sum(case((inside, legs.left_at - legs.connected_at - legs.hold_s), else_=0.0)), 0.0
            ).label("talk"),
            func.coalesce(func.sum(case((inside, legs.hold_s), else_=0.0)), 0.0).label("hold"),
        )
        .where(legs.connected_at < end, or_(legs.left_at.is_(None), legs.left_at >= start))
        .group_by(legs.device)
    )
    for row in connection.execute(whole).mappings():
        agent = agent_of(row["device"])
        handled[agent] += row["handled"]
        transfers[agent] += row["transfers"]
        talk[agent] += row["talk"]
        hold[agent] += row["hold"]
    # legs cut by the period's edges (few): clipped exactly, holds and all
    cut = select(AgentLeg.__table__).where(
        legs.connected_at < end, or_(legs.left_at.is_(None), legs.left_at > start), ~inside
    )
    for row in connection.execute(cut).mappings():
        leg, agent = _leg_of(row), agent_of(row["device"])
        talk[agent] += leg.talk_in(start, end)
        hold[agent] += leg.hold_in(start, end)

    ring_no_answer: dict[str, int] = defaultdict(int)
    rna = (
        select(events.agent, func.count().label("n"))
        .where(events.kind == "RingNoAnswer", events.at >= start, events.at < end)
        .group_by(events.agent)
    )
    for row in connection.execute(rna).mappings():
        ring_no_answer[agent_of(row["agent"])] += row["n"]
    scores: dict[str, list[float]] = defaultdict(list)
    surveys = (
        select(events.agent, events.data)
        .where(events.kind == "SurveyAnswered", events.at >= start, events.at < end)
        .order_by(events.at, events.id)
    )
    for row in connection.execute(surveys).mappings():
        overall = (row["data"] or {}).get("overall")
        if overall is not None:
            scores[agent_of(row["agent"])].append(float(overall))

    agents = set(by_state) | set(handled) | set(talk) | set(ring_no_answer) | set(scores)
    return [
        agent_figures(
            agent,
            devices=sorted(dev for dev, owner in device_agent.items() if owner == agent),
            handled=handled[agent],
            talk=talk[agent],
            hold=hold[agent],
            transfers=transfers[agent],
            by_state=by_state[agent],
            by_reason=by_reason[agent],
            ring_no_answer=ring_no_answer[agent],
            scores=scores[agent],
        )
        for agent in sorted(agents)
    ]


def rebuild(connection: Connection, batch: int = 5000) -> int:
    """Fold the whole log into the store tables again, in the order it was written; returns events folded."""
    from reports.log import CallSummary, InteractionEvent

    for entity in (StoredContact, AgentLeg, AgentSpan, AgentStateDay):
        connection.execute(delete(entity))
    table = InteractionEvent.__table__
    summaries: dict[CallKey, CallSummary] = {}
    folded, last = 0, -1
    while True:
        query = select(table).where(table.c.id > last).order_by(table.c.id).limit(batch)
        rows = [dict(r) for r in connection.execute(query).mappings()]
        if not rows:
            break
        keys = {(r["server"], r["call_id"]) for r in rows if r["call_id"]}
        before = {k: (s.direction, s.dnis, s.tier) for k, s in summaries.items() if k in keys}
        Materializer(connection).apply(rows, before)
        for row in rows:
            key = (row["server"], row["call_id"])
            if row["call_id"] and row["kind"] not in ("AgentStateChanged", "AgentDeviceChanged"):
                fields = {
                    **row["data"],
                    "kind": row["kind"],
                    "at": row["at"],
                    "queue": row["queue"],
                    "agent": row["agent"],
                }
                summaries.setdefault(key, CallSummary(*key)).apply(fields)
        folded += len(rows)
        last = max(r["id"] for r in rows)
    return folded


def _bucket(value: Any, edges: Sequence[float]) -> Any:
    """The histogram bucket of a value, as `kpi.histogram` counts it: the last edge at or below it."""
    return case(*((value < edge, i) for i, edge in enumerate(edges[1:])), else_=len(edges) - 1)


def _counts(connection: Connection, query: Any, edges: Sequence[float]) -> list[int]:
    counts = [0] * len(edges)
    for bucket, n in connection.execute(query):
        counts[bucket] += n
    return counts


def distribution_counts(
    connection: Connection,
    *,
    start: float,
    end: float,
    talk_edges_s: Sequence[float],
    wait_edges_s: Sequence[float],
) -> dict[str, list[int]]:
    """`kpi.distributions`' bucket counts: talk of the agent legs ended in [start, end), waits of the
    contacts arrived in it, answered and abandoned apart."""
    legs, c = AgentLeg.__table__.c, StoredContact.__table__.c
    talk = _bucket(legs.left_at - legs.connected_at - legs.hold_s, talk_edges_s)
    talks = (
        select(talk, func.count())
        .where(legs.left_at.is_not(None), legs.left_at >= start, legs.left_at < end)
        .group_by(talk)
    )
    out = {"talk": _counts(connection, talks, talk_edges_s)}
    wait = _bucket(c.wait, wait_edges_s)
    for key, outcome in (("wait_answered", Outcome.ANSWERED), ("wait_abandoned", Outcome.ABANDONED)):
        waits = (
            select(wait, func.count())
            .where(c.arrive >= start, c.arrive < end, c.outcome == outcome.value, c.wait.is_not(None))
            .group_by(wait)
        )
        out[key] = _counts(connection, waits, wait_edges_s)
    return out


def contacts_since(connection: Connection, start: float) -> list[Contact]:
    """The stored contacts that arrived at or after `start`, oldest first (a wallboard resuming today)."""
    table = StoredContact.__table__
    query = select(table).where(table.c.arrive >= start).order_by(table.c.arrive)
    return [_contact_of(row) for row in connection.execute(query).mappings()]
