"""The supervisors' wallboard: one live snapshot computed in ctid and pushed to every viewer.

Queue tiles (waiting, longest wait, today's service level and abandon rate, agents by state), an agent
grid (state, time in state, handled today) and the worklist of today's abandoned callers not yet reached
again. Today's figures are `reports.kpi.queue_figures` of a tally kept as today's contacts open and close
(the reports' own contact fold, fed each event once), so a refresh costs the same at 9:00 and at 17:00.
The snapshot is rebuilt at most once per `interval_s` and only when something changed, so a hundred open
wallboards cost one computation, never a database query each; a viewer who connects gets a snapshot built
for it alone, sent to nobody else. The snapshots go out on the push hub's `wallboard` topic.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from ctid import dialplan
from ctid.metrics import ABANDON_RATIO, SERVICE_LEVEL, WAIT_SECONDS
from ctid.state import domain as d
from reports.kpi import Contact, ContactFold, KpiSettings, Outcome, QueueTally, counts_of, queue_figures
from reports.log import event_row

log = structlog.get_logger("reports.wallboard")

Views = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]  # (queues, agents) live


@dataclass(frozen=True, slots=True)
class Thresholds:
    """warn/alarm levels; `higher_is_worse` says which way a figure goes bad."""

    warn: float
    alarm: float
    higher_is_worse: bool = True

    def level(self, value: float | None) -> str:
        if value is None:
            return "ok"
        if self.higher_is_worse:
            return "alarm" if value >= self.alarm else "warn" if value >= self.warn else "ok"
        return "alarm" if value <= self.alarm else "warn" if value <= self.warn else "ok"


DEFAULT_THRESHOLDS = {
    "longest_wait_s": Thresholds(30, 60),
    "waiting": Thresholds(3, 8),
    "abandon_rate": Thresholds(0.05, 0.10),
    "service_level": Thresholds(0.80, 0.70, higher_is_worse=False),
}
_LEVELS = ("ok", "warn", "alarm")
# the log rows the worklist and calls handled today are made of (`Wallboard._follow`)
FOLLOWED = (
    "CallArrived",
    "CallVariable",
    "CallAbandoned",
    "CallConnected",
    "AgentLeftCall",
    "CallEnded",
    "WorkItemMarked",
)


@dataclass(slots=True)
class WorkItem:
    """An abandoned caller to reach again."""

    id: str  # the abandoned call's linkedid
    number: str
    customer: str
    tier: str
    queue: str
    wait_s: float
    at: float
    state: str = "open"  # open, handled, callback


@dataclass(slots=True)
class _Call:
    number: str = ""
    customer: str = ""
    tier: str = ""


@dataclass
class Wallboard:
    views: Views
    clock: Callable[[], float]
    timezone: str = "UTC"
    thresholds: dict[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    settings: KpiSettings = field(default_factory=KpiSettings)
    interval_s: float = 0.5
    _today: ContactFold = field(init=False)  # today's contacts, folded as events come
    _tallies: dict[str, Counter[str]] = field(default_factory=dict)  # per queue: QueueTally's counts
    worklist: dict[str, WorkItem] = field(default_factory=dict)
    version: int = 0
    _calls: dict[str, _Call] = field(default_factory=dict)
    _handled: dict[str, int] = field(default_factory=dict)  # agent device -> calls handled today
    _day_start: float = 0.0
    _day_end: float = 0.0  # the next midnight: until then every event is today's
    _dirty: bool = True
    _last: str = ""
    _pushed_at: float = float("-inf")  # the loop's time of the last push

    def __post_init__(self) -> None:
        self._today = ContactFold(self.settings, self._count)

    # ---- events in --------------------------------------------------------------------------------

    def on_event(self, server: str, event: d.DomainEvent) -> None:
        self._roll_day(event.at)
        if event.at < self._day_start:
            return
        row = event_row(server, event)
        self._today.apply(row)
        self._follow(row)
        if isinstance(event, d.CallConnected) and not event.adopted:  # a resync's: its wait is no sample
            WAIT_SECONDS.labels(event.queue, "answered").observe(event.wait_s)
        elif isinstance(event, d.CallAbandoned):
            WAIT_SECONDS.labels(event.queue, "abandoned").observe(event.wait_s)
        self._dirty = True

    def _follow(self, row: Mapping[str, Any]) -> None:
        """The worklist and calls handled today, from one log row (`FOLLOWED` kinds): live, or read back
        from the log after a restart."""
        kind, linkedid, data = row["kind"], row["call_id"], row["data"]
        if kind == "AgentLeftCall":
            self._handled[row["agent"]] = self._handled.get(row["agent"], 0) + 1
            return
        if kind == "WorkItemMarked":
            item = self.worklist.get(linkedid)
            if item is not None:
                item.state = data["action"]
            return
        if kind == "CallEnded":
            self._calls.pop(linkedid, None)
            return
        call = self._calls.setdefault(linkedid, _Call()) if linkedid else None
        if call is None:
            return
        if kind == "CallArrived":
            call.number = data.get("caller_num", "")
        elif kind == "CallVariable":
            if data.get("name") == dialplan.CUSTOMER_VAR:
                call.customer = data.get("value", "")
            elif data.get("name") == dialplan.TIER_VAR:
                call.tier = data.get("value", "")
        elif kind == "CallAbandoned" and call.number:
            if data["wait_s"] >= self.settings.short_abandon_s:
                self.worklist[linkedid] = WorkItem(
                    linkedid, call.number, call.customer, call.tier, row["queue"], data["wait_s"], row["at"]
                )
        elif kind == "CallConnected" and call.number:
            for item in self.worklist.values():  # the caller got through after all
                if item.number == call.number and item.state == "open":
                    item.state = "handled"

    def _roll_day(self, now: float) -> None:
        if now < self._day_end:  # the common case, checked for every event without a calendar
            return
        zone = ZoneInfo(self.timezone)
        day = datetime.fromtimestamp(now, zone).date()
        start = datetime.combine(day, time(0), zone).timestamp()
        if start > self._day_start:  # midnight: today starts empty
            self._day_end = datetime.combine(day + timedelta(days=1), time(0), zone).timestamp()
            self._day_start = start
            self._today = ContactFold(self.settings, self._count)
            self._tallies.clear()
            self.worklist.clear()
            self._handled.clear()
            self._dirty = True

    def resume(self, contacts: Iterable[Contact], rows: Iterable[Mapping[str, Any]] = ()) -> int:
        """Take up today after a restart: the contacts from the store (closed ones counted, open ones folded
        on as their outcomes come), and the worklist and calls handled from the log's `FOLLOWED` rows, in
        the order they happened. Returns the contacts taken."""
        self._roll_day(self.clock())
        for row in rows:
            if row["at"] >= self._day_start:
                self._follow(row)
        taken = 0
        for contact in contacts:
            if contact.arrive < self._day_start:
                continue
            taken += 1
            if contact.outcome is Outcome.OPEN:
                key = (contact.server, contact.call_id)
                self._today.seed(key, contact.direction, contact.dnis, contact.tier, contact)
                self._count(None, contact)
            else:
                self._count(None, replace(contact, outcome=Outcome.OPEN))
                self._count(replace(contact, outcome=Outcome.OPEN), contact)
        self._dirty = True
        return taken

    def _count(self, old: Contact | None, new: Contact) -> None:
        """Today's tally of a queue kept as contacts open and close: a refresh reads it, never re-folds."""
        counts = self._tallies.setdefault(new.queue, Counter())
        if old is not None:
            counts.subtract(counts_of(old, self.settings))
        counts.update(counts_of(new, self.settings))

    def mark(self, item_id: str, action: str) -> d.WorkItemMarked:
        """A supervisor marks a worklist entry handled, or schedules a call back: the event that says so,
        for the bus (the log keeps it, so the mark outlives a restart, and `on_event` applies it).
        KeyError if there is no such entry, ValueError for another action."""
        if action not in ("handled", "callback"):
            raise ValueError("action is handled or callback")
        if item_id not in self.worklist:
            raise KeyError(item_id)
        log.info("worklist_marked", linkedid=item_id, action=action)
        return d.WorkItemMarked(self.clock(), item_id, action)

    def handled_today(self, device: str) -> int:
        """Calls the agent on `device` handled today (as in the agent grid)."""
        self._roll_day(self.clock())
        return self._handled.get(device, 0)

    # ---- the snapshot -----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        self._roll_day(now)
        queues, agents = self.views()
        today = {
            name: queue_figures(QueueTally(**counts), self.settings) for name, counts in self._tallies.items()
        }
        tiles = []
        for q in queues:
            figures = today.get(q["queue"], {})
            tile = {
                "queue": q["queue"],
                "waiting": q["calls_waiting"],
                "longest_wait_s": q["longest_wait_s"],
                "estimated_wait_s": q.get("estimated_wait_s"),
                "agents": q["agents"],
                "offered": figures.get("offered", 0),
                "answered": figures.get("answered", 0),
                "service_level": figures.get("service_level"),
                "abandon_rate": figures.get("abandon_rate"),
                "service_level_s": self.settings.service_level_s.get(
                    q["queue"], self.settings.default_service_level_s
                ),
            }
            levels = [self.thresholds[key].level(tile[key]) for key in self.thresholds if key in tile]
            tile["level"] = max(levels, key=_LEVELS.index, default="ok")
            tiles.append(tile)
            if tile["service_level"] is not None:
                SERVICE_LEVEL.labels(tile["queue"]).set(tile["service_level"])
            if tile["abandon_rate"] is not None:
                ABANDON_RATIO.labels(tile["queue"]).set(tile["abandon_rate"])
        grid = [
            {
                "id": a.get("id", ""),
                "name": a.get("name", ""),
                "status": a.get("status", ""),
                "pause_reason": a.get("pause_reason", ""),
                "time_in_state_s": a.get("time_in_state_s"),
                "queues": a.get("queues", []),
                "handled_today": self._handled.get(a.get("device", ""), 0),
            }
            for a in agents
            if a.get("id")
        ]
        work = [
            asdict(item)
            for item in sorted(self.worklist.values(), key=lambda i: i.at)
            if item.state == "open"
        ]
        return {"at": now, "version": self.version, "queues": tiles, "agents": grid, "worklist": work}

    def refresh(self) -> str | None:
        """Rebuild the snapshot; the JSON to push when it differs from the last one pushed, else None."""
        self._dirty = False
        snap = self.snapshot()
        body = json.dumps(
            {k: v for k, v in snap.items() if k not in ("at", "version")}, sort_keys=True, default=str
        )
        if body == self._last:
            return None
        self._last = body
        self.version += 1
        snap["version"] = self.version
        return json.dumps(snap, default=str)

    def tick(self, now: float) -> str | None:
        """A tick of the push loop at the loop's time `now` (every `interval_s / 2`, while anyone watches):
        the fresh snapshot to push when something changed, and each second (waits grow); else None."""
        if not (self._dirty or now - self._pushed_at >= 1.0):
            return None
        self._pushed_at = now
        return self.refresh()

    def first_message(self) -> str:
        """What a new viewer sees at once, for that viewer alone: the live snapshot under the version last
        pushed. Nothing goes to the other viewers (N viewers connecting cost N messages, not N squared);
        whatever changed reaches them with the next `tick`."""
        return json.dumps(self.snapshot(), default=str)
