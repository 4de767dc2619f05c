"""The interaction log: every domain event appended to SQL, and one summary row per call kept current.

Writing never holds up the AMI reader or routing: `InteractionLog.record` only appends to a buffer, and a
writer task moves batches to the database in a worker thread. While the database is away, batches go to
a spool file in order and are replayed when it returns; every event carries an id fixed when it was
recorded, so a batch sent twice (an ambiguous commit, a replay cut short) is stored once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    Double,
    Engine,
    Integer,
    Select,
    String,
    create_engine,
    func,
    or_,
    select,
)
from sqlalchemy import tuple_ as sql_tuple
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from ctid import dialplan
from ctid.db import Base, DatabaseFileWatch, make_engine
from ctid.errors import CtidError
from ctid.state.domain import DomainEvent, OpenCall
from reports.kpi import Outcome
from reports.store import STORE_TABLES, Materializer, StoredContact, copy_to_scratch, upsert

log = structlog.get_logger("reports.log")

MIGRATIONS = Path(__file__).parent / "migrations"
# Each package's migration tree keeps its own version row, so trees added later never see these revisions.
VERSION_TABLE = "reports_alembic_version"

EVENTS_WRITTEN = Counter("ctid_log_events_written_total", "Domain events written to the interaction log")
SPOOLED_EVENTS = Gauge(
    "ctid_log_spooled_events", "Interaction log records in the spool file, waiting for the database"
)
WRITE_SECONDS = Histogram(
    "ctid_log_write_seconds",
    "One interaction log batch written to the database (one transaction)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

# Event fields that have a column of the same name, and the envelope every event has.
_COLUMN_FIELDS = frozenset({"kind", "at", "linkedid", "queue", "agent"})
# Agent events describe the agent, not the call: routing publishes them without a server name.
_AGENT_KINDS = frozenset({"AgentStateChanged", "AgentDeviceChanged"})
_CALL_VARIABLES = {
    dialplan.TIER_VAR: "tier",
    dialplan.CUSTOMER_VAR: "customer",
    dialplan.CAMPAIGN_VAR: "campaign",
}


class InteractionEvent(Base):
    """One domain event, appended once and never changed: the project's own, richer `queue_log`.

    queue, tier and campaign are filled from what the call had at that moment when the event itself does
    not say, so a report filters any row by them without a join.
    """

    __tablename__ = "interaction_events"

    # SQLite numbers rows itself only for an INTEGER primary key.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    event_id: Mapped[str] = mapped_column(String, unique=True, index=True)  # "<run id>:<server>:<seq>"
    at: Mapped[float] = mapped_column(Double, index=True)  # epoch seconds
    server: Mapped[str] = mapped_column(String)
    call_id: Mapped[str] = mapped_column(String, index=True)  # the linkedid; '' for agent events
    leg: Mapped[str] = mapped_column(String)  # the event's uniqueid, else its agent channel, else ''
    kind: Mapped[str] = mapped_column(String, index=True)
    queue: Mapped[str] = mapped_column(String)
    agent: Mapped[str] = mapped_column(String)  # a device (PJSIP/1001) or an agent id, as the event has it
    campaign: Mapped[str] = mapped_column(String)
    tier: Mapped[str] = mapped_column(String)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)  # the event's other fields


class Interaction(Base):
    """One call as the log knows it so far, rewritten with every batch that touches it."""

    __tablename__ = "interactions"

    server: Mapped[str] = mapped_column(String, primary_key=True)
    call_id: Mapped[str] = mapped_column(String, primary_key=True)
    direction: Mapped[str] = mapped_column(String)
    caller_num: Mapped[str] = mapped_column(String)
    dnis: Mapped[str] = mapped_column(String)
    first_queue: Mapped[str] = mapped_column(String)
    last_queue: Mapped[str] = mapped_column(String)
    tier: Mapped[str] = mapped_column(String)
    customer: Mapped[str] = mapped_column(String)
    campaign: Mapped[str] = mapped_column(String)
    agents: Mapped[list[str]] = mapped_column(JSON)  # devices connected to the call, in order
    arrived_at: Mapped[float | None] = mapped_column(Double, index=True)
    answered_at: Mapped[float | None] = mapped_column(Double)
    ended_at: Mapped[float | None] = mapped_column(Double)
    disposition: Mapped[str] = mapped_column(String)
    transfers: Mapped[int] = mapped_column(Integer)
    last_event_at: Mapped[float] = mapped_column(Double)


class DataGap(Base):
    """A period ctid had no AMI session to a server: reports mark it, since events in it were never seen."""

    __tablename__ = "data_gaps"

    server: Mapped[str] = mapped_column(String, primary_key=True)
    start: Mapped[float] = mapped_column(Double, primary_key=True)
    end: Mapped[float | None] = mapped_column(Double)  # None while the server is still out of sight


LOG_TABLES = frozenset({"interaction_events", "interactions", "data_gaps", *STORE_TABLES})


@dataclass(slots=True)
class CallSummary:
    """What the log knows of one call so far: its `interactions` row, and what its event rows inherit."""

    server: str
    call_id: str
    direction: str = ""
    caller_num: str = ""
    dnis: str = ""
    first_queue: str = ""
    last_queue: str = ""
    tier: str = ""
    customer: str = ""
    campaign: str = ""
    agents: list[str] = field(default_factory=list)
    arrived_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    disposition: str = ""
    transfers: int = 0
    last_event_at: float = 0.0

    def apply(self, fields: dict[str, Any]) -> None:
        """Fold one call event, in `event_fields` form (the spool keeps events in that form too)."""
        kind, at = fields["kind"], fields["at"]
        queue = fields.get("queue")
        if queue:
            self.first_queue = self.first_queue or queue
            self.last_queue = queue
        if kind == "CallArrived":
            self.direction = fields["direction"]
            self.caller_num = fields["caller_num"]
            self.dnis = fields["dnis"]
            self.arrived_at = at if self.arrived_at is None else self.arrived_at
        elif kind == "CallVariable" and fields["name"] in _CALL_VARIABLES:
            setattr(self, _CALL_VARIABLES[fields["name"]], fields["value"])
        elif kind == "CallConnected":
            self.answered_at = at if self.answered_at is None else self.answered_at
            self._add_agent(fields["agent"])
        elif kind == "CallTransferred":
            self.transfers += 1
            self._add_agent(fields["to_agent"])
        elif kind == "CallEnded":
            self.ended_at = at
            self.disposition = fields["disposition"]
        self.last_event_at = max(self.last_event_at, at)

    def _add_agent(self, agent: str) -> None:
        if agent and agent not in self.agents:
            self.agents.append(agent)


def event_fields(event: DomainEvent) -> dict[str, Any]:
    """The event as plain JSON values (`to_dict` with enums as their strings)."""
    return {k: v.value if isinstance(v, Enum) else v for k, v in event.to_dict().items()}


def event_row(server: str, event: DomainEvent, call: CallSummary | None = None) -> dict[str, Any]:
    """The log row of one event (the `load_events` shape, less id and event_id); `call` is folded first.

    Pass the call's `CallSummary` to fill queue, tier and campaign as the log does; without it they come
    from the event alone.
    """
    return _row(server, event_fields(event), call)


def _row(server: str, fields: dict[str, Any], call: CallSummary | None) -> dict[str, Any]:
    if call is not None:
        call.apply(fields)
    return {
        "at": fields["at"],
        "server": server,
        "call_id": fields["linkedid"],
        "leg": fields.get("uniqueid") or fields.get("agent_channel") or "",
        "kind": fields["kind"],
        "queue": fields.get("queue") or (call.last_queue if call else ""),
        "agent": fields.get("agent") or fields.get("device") or fields.get("from_agent") or "",
        "campaign": call.campaign if call else "",
        "tier": call.tier if call else "",
        # `adopted` is kept only where true: most events are live, and older rows never had it
        "data": {k: v for k, v in fields.items() if k not in _COLUMN_FIELDS and (k != "adopted" or v)},
    }


def _call_key(record: dict[str, Any]) -> tuple[str, str] | None:
    fields = record["event"]
    if not fields["linkedid"] or fields["kind"] in _AGENT_KINDS:
        return None
    return (record["server"], fields["linkedid"])


def _insert(connection: Connection, entity: type[Base]) -> sqlite.Insert | postgresql.Insert:
    """INSERT with ON CONFLICT, which SQLAlchemy offers per dialect."""
    name = connection.dialect.name
    if name == "sqlite":
        return sqlite.insert(entity)
    if name == "postgresql":
        return postgresql.insert(entity)
    raise CtidError(f"the interaction log supports SQLite and PostgreSQL, not {name}")


def open_engine(url: str) -> Engine:
    """An engine for the log; a PostgreSQL one checks pooled connections, which a server restart breaks."""
    if make_url(url).get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 5})
    return make_engine(url)


def upgrade_database(target: str | Engine) -> None:
    """Bring the log's tables to the newest migration; a no-op when they are current."""
    engine = open_engine(target) if isinstance(target, str) else target
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    finally:
        if isinstance(target, str):
            engine.dispose()


def load_events(
    source: str | Engine,
    start: float,
    end: float,
    *,
    queue: str | None = None,
    agent: str | None = None,
    kinds: Iterable[str] | None = None,
) -> list[dict[str, Any]]:
    """Logged events with start <= at < end (of `kinds` only, if given), in the order they happened (ties
    in the order written)."""
    table = InteractionEvent.__table__
    query = select(table).where(table.c.at >= start, table.c.at < end).order_by(table.c.at, table.c.id)
    if queue is not None:
        query = query.where(table.c.queue == queue)
    if agent is not None:
        query = query.where(table.c.agent == agent)
    if kinds is not None:
        query = query.where(table.c.kind.in_(list(kinds)))
    return _read(source, query)


def load_gaps(source: str | Engine, start: float, end: float) -> list[dict[str, Any]]:
    """The data gaps overlapping [start, end), oldest first; an open one (`end` None) overlaps all after."""
    table = DataGap.__table__
    query = (
        select(table)
        .where(table.c.start < end, or_(table.c.end.is_(None), table.c.end > start))
        .order_by(table.c.start, table.c.server)
    )
    return _read(source, query)


@dataclass(frozen=True, slots=True)
class ResumePoint:
    """Where the log left one server: its calls still open, the last event seen from it (the server's
    clock), and the start of a data gap still open (the server was out of sight when ctid stopped)."""

    open_calls: list[OpenCall]
    last_seen: float | None
    open_gap: float | None


def resume_point(connection: Connection, server: str) -> ResumePoint:
    """What a restarted ctid needs to take `server` up where the log left it (run it off the event loop)."""
    calls, contacts = Interaction.__table__.c, StoredContact.__table__.c
    events, gaps = InteractionEvent.__table__.c, DataGap.__table__.c
    open_ids = list(
        connection.execute(
            select(calls.call_id).where(calls.server == server, calls.ended_at.is_(None))
        ).scalars()
    )
    queued: set[str] = set()
    waiting: dict[str, tuple[float, str]] = {}
    for chunk in range(0, len(open_ids), 500):
        query = select(contacts.call_id, contacts.outcome, contacts.arrive, contacts.queue).where(
            contacts.server == server, contacts.call_id.in_(open_ids[chunk : chunk + 500])
        )
        for call_id, outcome, arrive, queue in connection.execute(query):
            queued.add(call_id)
            if outcome == Outcome.OPEN.value:
                waiting[call_id] = (arrive, queue)
    open_calls = [
        OpenCall(call_id, call_id in queued, *waiting.get(call_id, (None, ""))) for call_id in open_ids
    ]
    # the newest first, through the index on `at`: the scan stops at the server's latest row
    last_seen = connection.execute(
        select(events.at).where(events.server == server).order_by(events.at.desc()).limit(1)
    ).scalar()
    open_gap = connection.execute(
        select(func.max(gaps.start)).where(gaps.server == server, gaps.end.is_(None))
    ).scalar()
    return ResumePoint(open_calls, last_seen, open_gap)


def _read(source: str | Engine, query: Select[Any]) -> list[dict[str, Any]]:
    engine = open_engine(source) if isinstance(source, str) else source
    try:
        with engine.connect() as connection:
            return [dict(row) for row in connection.execute(query).mappings()]
    finally:
        if isinstance(source, str):
            engine.dispose()


@dataclass(frozen=True, slots=True)
class _Gap:
    server: str
    start: float
    end: float | None


_Pending = tuple[str, str, DomainEvent] | _Gap  # (event id, server, event) or a gap


def _as_record(item: _Pending) -> dict[str, Any]:
    """The JSON form a pending item takes in a batch and in the spool."""
    if isinstance(item, _Gap):
        return {"gap": {"server": item.server, "start": item.start, "end": item.end}}
    event_id, server, event = item
    return {"event_id": event_id, "server": server, "event": event_fields(event)}


def _db_error(exc: SQLAlchemyError) -> dict[str, str]:
    # The driver's first line says what went wrong (refused, shut down); the full text may hold row values.
    cause = getattr(exc, "orig", None) or exc
    return {"error": type(cause).__name__, "detail": (str(cause).splitlines() or [""])[0][:200]}


_EVENT_COLUMNS = (
    "event_id",
    "at",
    "server",
    "call_id",
    "leg",
    "kind",
    "queue",
    "agent",
    "campaign",
    "tier",
    "data",
)


def _copy_events(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """PostgreSQL: the batch COPYed to a scratch table (its `id` holding the batch order), then what is
    new inserted in one statement, in order."""
    table = InteractionEvent.__table__
    columns = ", ".join(_EVENT_COLUMNS)
    values = ([i, *(row[c] for c in _EVENT_COLUMNS)] for i, row in enumerate(rows))
    scratch = copy_to_scratch(connection, table, ["id", *_EVENT_COLUMNS], values)  # type: ignore[arg-type]
    inserted = connection.exec_driver_sql(
        f"INSERT INTO interaction_events ({columns}) SELECT {columns} FROM {scratch} ORDER BY id "
        "ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )
    return {event_id for (event_id,) in inserted}


class InteractionLog:
    """Writes every recorded event to the log tables in batches, through a spool file when the DB is away.

    Order is kept end to end: while anything is spooled, new batches queue behind it in the spool, and the
    spool is replayed before live batches resume.
    """

    def __init__(
        self,
        url: str,
        spool_path: Path,
        *,
        batch_size: int = 1000,
        flush_interval_s: float = 0.2,
        retry_interval_s: float = 1.0,
    ) -> None:
        self.engine = open_engine(url)
        self._file = DatabaseFileWatch(self.engine)
        # other components' tables, made (in the writer's thread) with the log's own whenever it makes them:
        # at start, and again when the SQLite file was removed or replaced under ctid
        self.on_new_database: list[Callable[[Engine], None]] = []
        self.spool_path = spool_path
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_interval_s = retry_interval_s
        self.written = 0  # events stored by this log (a replayed duplicate is not counted again)
        self._run_id = uuid.uuid4().hex[:12]
        self._seq = 0
        self._buffer: deque[_Pending] = deque()
        self._in_flight = 0
        self._spooled = 0
        self._schema_ready = False
        self._retry_at = 0.0
        self._closing = False
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Records held in memory, not yet in the database or the spool."""
        return len(self._buffer) + self._in_flight

    @property
    def spooled(self) -> int:
        """Records in the spool file, waiting for the database."""
        return self._spooled

    # ---- in: called from the event loop, never waits ---------------------------------------------------

    def record(self, server: str, event: DomainEvent) -> None:
        """Queue one event: O(1) and no I/O, so the AMI reader and routing never wait on the database."""
        self._seq += 1
        self._buffer.append((f"{self._run_id}:{server}:{self._seq}", server, event))
        if len(self._buffer) >= self.batch_size:
            self._wake.set()

    def record_gap(self, server: str, start: float, end: float | None = None) -> None:
        """A period without an AMI session to `server`: open (`end` None) when lost, closed on resync."""
        self._buffer.append(_Gap(server, start, end))

    def subscriber(self) -> Callable[[str, DomainEvent], None]:
        """The bus subscriber: `bus.subscribe(log.subscriber())`."""
        return self.record

    # ---- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate the tables and start the writer; a spool left by an earlier run is replayed first.

        A database that is down now does not stop ctid: the writer spools and migrates once it is back.
        """
        self._spooled = await asyncio.to_thread(self._open_spool)
        SPOOLED_EVENTS.set(self._spooled)
        try:
            await asyncio.to_thread(self._ensure_schema)
        except SQLAlchemyError as exc:
            log.warning("interaction_log_db_unavailable", **_db_error(exc))
            self._retry_at = asyncio.get_running_loop().time() + self.retry_interval_s
        if self._spooled:
            log.info("interaction_log_spool_found", records=self._spooled)
        self._task = asyncio.create_task(self._run(), name="interaction-log")

    async def flush(self) -> None:
        """Everything recorded so far is in the database or the spool; a spool is replayed if it can be."""
        async with self._lock:
            await self._step(retry=True)

    async def close(self) -> None:
        """Stop the writer after a last flush."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.flush()
        await asyncio.to_thread(self.engine.dispose)

    # ---- the writer ---------------------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            self._wake.clear()
            try:
                async with self._lock:
                    await self._step(retry=loop.time() >= self._retry_at)
            except Exception:  # a bug in one batch must not stop the log for the rest of the run
                log.exception("interaction_log_writer_failed")

    async def _step(self, *, retry: bool) -> None:
        """Move the records buffered now to the database, or behind the spool while it is not empty."""
        loop = asyncio.get_running_loop()
        if self._spooled and retry:
            try:
                replayed = await asyncio.to_thread(self._replay_spool)
            except SQLAlchemyError as exc:
                self._retry_at = loop.time() + self.retry_interval_s
                log.debug("interaction_log_replay_failed", **_db_error(exc))
            else:
                log.info("interaction_log_spool_replayed", records=self._spooled, written=replayed)
                self.written += replayed
                self._spooled = 0
                SPOOLED_EVENTS.set(0)
        remaining = len(self._buffer)
        while remaining:
            batch = [self._buffer.popleft() for _ in range(min(self.batch_size, remaining))]
            remaining -= len(batch)
            self._in_flight = len(batch)
            try:
                written, spooled = await asyncio.to_thread(self._deliver, batch, not self._spooled)
            except OSError:  # the spool is unwritable too: keep the batch in memory and try again later
                self._buffer.extendleft(reversed(batch))
                log.exception("interaction_log_spool_failed", path=str(self.spool_path))
                return
            finally:
                self._in_flight = 0
            self.written += written
            if spooled:
                if not self._spooled:
                    self._retry_at = loop.time() + self.retry_interval_s
                self._spooled += spooled
                SPOOLED_EVENTS.set(self._spooled)

    # ---- worker-thread side -------------------------------------------------------------------------------

    def _deliver(self, batch: list[_Pending], to_db: bool) -> tuple[int, int]:
        """(events written, records spooled): the batch goes to the database, or on any error to the spool."""
        records = [_as_record(item) for item in batch]
        if to_db:
            try:
                return self._write(records), 0
            except SQLAlchemyError as exc:
                log.warning("interaction_log_db_unavailable", spool=str(self.spool_path), **_db_error(exc))
        self._spool_append(records)
        return 0, len(records)

    def _ensure_schema(self) -> None:
        if self._schema_ready and (change := self._file.changed()):
            # SQLite's open connections would write on into the old file: drop them, start a new one
            log.warning("interaction_log_db_file_changed", change=change, path=str(self._file.path))
            self.engine.dispose()
            self._schema_ready = False
        if not self._schema_ready:
            upgrade_database(self.engine)
            for create in self.on_new_database:
                create(self.engine)
            self._file.settle()
            self._schema_ready = True

    def _write(self, records: list[dict[str, Any]]) -> int:
        """One transaction: the events (each stored once), the summaries of their calls, the gaps."""
        self._ensure_schema()
        started = time.perf_counter()
        events = [r for r in records if "event" in r]
        gaps = [r["gap"] for r in records if "gap" in r]
        with self.engine.begin() as connection:
            stored = self._load_calls(connection, {k for r in events if (k := _call_key(r))})
            calls = self._summaries(stored)
            rows = [
                {"event_id": r["event_id"], **_row(r["server"], r["event"], self._call(calls, r))}
                for r in events
            ]
            inserted = self._insert_events(connection, rows)
            if len(inserted) < len(events):
                # A replay of events stored before: fold only the new ones, so no transfer counts twice.
                calls = self._summaries(stored)
                for r in events:
                    if r["event_id"] in inserted and (call := self._call(calls, r)) is not None:
                        call.apply(r["event"])
            before = {k: (c.direction, c.dnis, c.tier) for k, c in self._summaries(stored).items()}
            Materializer(connection).apply([row for row in rows if row["event_id"] in inserted], before)
            touched = {k: calls[k] for r in events if r["event_id"] in inserted and (k := _call_key(r))}
            self._upsert_calls(connection, list(touched.values()))
            self._upsert_gaps(connection, gaps)
        WRITE_SECONDS.observe(time.perf_counter() - started)
        EVENTS_WRITTEN.inc(len(inserted))
        return len(inserted)

    @staticmethod
    def _insert_events(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
        """The event_ids actually inserted: one already stored is left alone and not returned."""
        if not rows:
            return set()
        if connection.dialect.name == "postgresql":
            return _copy_events(connection, rows)
        insert = _insert(connection, InteractionEvent)
        statement = insert.on_conflict_do_nothing(index_elements=["event_id"]).returning(
            InteractionEvent.event_id
        )
        return set(connection.execute(statement, rows).scalars())

    @staticmethod
    def _upsert_calls(connection: Connection, calls: list[CallSummary]) -> None:
        upsert(connection, Interaction, [dataclasses.asdict(call) for call in calls])

    @staticmethod
    def _upsert_gaps(connection: Connection, gaps: list[dict[str, Any]]) -> None:
        if not gaps:
            return
        insert = _insert(connection, DataGap)
        # A gap once closed stays closed, even if a spool replays its opening again.
        statement = insert.on_conflict_do_update(
            index_elements=["server", "start"],
            set_={"end": func.coalesce(insert.excluded.end, DataGap.__table__.c.end)},
        )
        connection.execute(statement, gaps)

    @staticmethod
    def _load_calls(connection: Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The stored summaries of these calls, asked in chunks that stay under SQLite's parameter limit."""
        wanted = list(keys)
        table = Interaction.__table__
        found: dict[tuple[str, str], Any] = {}
        for chunk in range(0, len(wanted), 500):
            query = select(table).where(
                sql_tuple(table.c.server, table.c.call_id).in_(wanted[chunk : chunk + 500])
            )
            found.update(
                {(row["server"], row["call_id"]): row for row in connection.execute(query).mappings()}
            )
        return found

    @staticmethod
    def _summaries(stored: dict[tuple[str, str], Any]) -> dict[tuple[str, str], CallSummary]:
        return {key: CallSummary(**{**row, "agents": list(row["agents"])}) for key, row in stored.items()}

    @staticmethod
    def _call(calls: dict[tuple[str, str], CallSummary], record: dict[str, Any]) -> CallSummary | None:
        """The summary of the call this record's event belongs to, created on the call's first event."""
        key = _call_key(record)
        if key is None:
            return None
        call = calls.get(key)
        if call is None:
            call = calls[key] = CallSummary(*key)
        return call

    def _spool_append(self, records: list[dict[str, Any]]) -> None:
        with self.spool_path.open("a", encoding="utf-8") as spool:
            spool.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
            spool.flush()
            os.fsync(spool.fileno())

    def _open_spool(self) -> int:
        """Records already in the spool; a line torn by a crash is ended so the next append stays whole."""
        self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        if not self.spool_path.exists():
            return 0
        text = self.spool_path.read_bytes()
        if text and not text.endswith(b"\n"):
            with self.spool_path.open("ab") as spool:
                spool.write(b"\n")
            text += b"\n"
        return text.count(b"\n")

    def _replay_spool(self) -> int:
        """Write the spool to the database in order, then empty it; on error it stays whole for next time."""
        written = 0
        batch: list[dict[str, Any]] = []
        with self.spool_path.open(encoding="utf-8") as spool:
            for line in spool:
                try:
                    batch.append(json.loads(line))
                except json.JSONDecodeError:  # only a line torn by a crash; its batch was never confirmed
                    log.warning("interaction_log_spool_line_skipped")
                    continue
                if len(batch) >= self.batch_size:
                    written += self._write(batch)
                    batch = []
        if batch:
            written += self._write(batch)
        with self.spool_path.open("w") as spool:
            os.fsync(spool.fileno())
        return written
