"""The KPIs of design/METRICS.md computed from interaction-log rows: pure functions, rows in, reports out.

A row is one `interaction_events` entry as a mapping: `at` (epoch seconds), `server`, `call_id` (the
linkedid), `kind` (a `ctid.state.domain` event name), the lifted columns `queue`, `agent`, `tier`, `campaign`,
and `data` with the event's other fields. Rows come in log order, (at, id). They may start before the
report's period: earlier rows give the context (an agent's state at the period start, a call answered
before it), and figures count only what METRICS.md puts in the period.

Nothing here reads a clock. Time still running at the end of the rows (an agent's current state, a
call in progress) runs on to the period's `end`, so a report of the current day passes `end=min(end, now)`.

Percentiles are nearest-rank: the smallest observed value with at least p % of the values at or below it.
It always reports a wait some caller really had, and needs no interpolation rule to agree on.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from ctid import dialplan
from ctid.agents import LEGACY, OCCUPIED, AgentState
from ctid.state import domain as d

Row = Mapping[str, Any]
CallKey = tuple[str, str]  # (server, linkedid): a linkedid is unique on its own Asterisk only

INF = math.inf
SURVEY_ANSWERED = "SurveyAnswered"  # post-call survey result: data {"overall": 1-5, ...}, `agent` set
TOP_BOX_SCORE = 5
# histogram bucket edges (seconds): bucket i is [edge i, edge i+1), the last one is open-ended
TALK_EDGES_S = (0.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0, 1800.0)
WAIT_EDGES_S = (0.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0, 600.0)
# agent_comparison's ranked columns: True when a higher value ranks first
RANKED_COLUMNS = {
    "handled": True,
    "aht_s": False,
    "occupancy": True,
    "utilization": True,
    "transfer_rate": False,
    "ring_no_answer": False,
    "csat": True,
}


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """The settings METRICS.md names, with its defaults; `service_level_s` maps a queue to its T."""

    short_abandon_s: float = 5.0
    service_level_s: Mapping[str, float] = field(default_factory=dict)
    default_service_level_s: float = 20.0

    def threshold(self, queue: str) -> float:
        return self.service_level_s.get(queue, self.default_service_level_s)


DEFAULT_SETTINGS = KpiSettings()


# ---- small arithmetic ----------------------------------------------------------------------------


def _get(row: Row, name: str, default: Any = "") -> Any:
    """An event field: from `data`, or from the row's own column where the log lifted it out of `data`."""
    data = row.get("data") or {}
    if name in data:
        return data[name]
    value = row.get(name)
    return default if value is None else value


def _overlap(begin: float, finish: float, start: float, end: float) -> float:
    return max(0.0, min(finish, end) - max(begin, start))


def _ratio(part: float, whole: float) -> float | None:
    """None (JSON null) when there is nothing to divide by: 0 % and 'no calls' are different readings."""
    return part / whole if whole else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def percentile(values: Sequence[float], p: int) -> float | None:
    """Nearest-rank percentile (p in 1..100) of `values`, None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(p * len(ordered) / 100)) - 1]


def gaps_in(gaps: Iterable[Row], start: float, end: float) -> list[dict[str, Any]]:
    """The data gaps (`server`, `start`, `end`) that overlap [start, end), whole, oldest first.

    A gap still open (`end` None: the server is not back yet) overlaps everything after its start.
    A report shows them so nobody reads a hole in the log as a quiet hour.
    """
    found = [
        {"server": g["server"], "start": g["start"], "end": g.get("end")}
        for g in gaps
        if g["start"] < end and (g.get("end") is None or g["end"] > start)
    ]
    return sorted(found, key=lambda g: (g["start"], g["server"]))


# ---- queued contacts -----------------------------------------------------------------------------


class Outcome(StrEnum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"
    DEFLECTED = "deflected"
    OPEN = "open"  # no outcome in the log: still waiting when the rows end
    LOST = "lost"  # the call ended while ctid could not see it (a data gap): neither answered nor abandoned


@dataclass(frozen=True, slots=True)
class Contact:
    """One stay of one call in one queue (METRICS.md "A queued contact's timeline")."""

    server: str
    call_id: str
    queue: str
    arrive: float
    direction: str  # inbound or outbound (CallArrived); '' when the rows hold no arrival
    dnis: str
    tier: str  # the call's tier when the contact left the queue (tiers may be set while it waits)
    outcome: Outcome = Outcome.OPEN
    outcome_at: float | None = None  # the answer or the leave
    wait: float | None = None  # outcome_at - arrive
    short: bool = False  # abandoned with wait < short_abandon_s
    agent: str = ""  # the answering agent's device
    deflected_to: str = ""  # callback, voicemail, hangup, or queue:<name>
    deflect_reason: str = ""  # closed, overflow, max_wait
    callback_accepted: bool = False

    def offered_in(self, start: float, end: float) -> bool:
        """A contact counts in the period (and the interval) of its arrive."""
        return start <= self.arrive < end

    @property
    def overflowed(self) -> bool:
        return self.outcome is Outcome.DEFLECTED and (
            self.deflect_reason == "overflow" or self.deflected_to.startswith("queue:")
        )

    def within(self, threshold_s: float) -> bool:
        return self.wait is not None and self.wait <= threshold_s


@dataclass(slots=True)
class _CallFacts:
    """What the log said about a call before and while its contacts waited."""

    direction: str = ""
    dnis: str = ""
    tier: str = ""


ContactListener = Callable[["Contact | None", "Contact"], None]


class ContactFold:
    """Folds rows into contacts: each CallWaiting that is not a ring-no-answer requeue opens one.

    A CallWaiting a resync emitted (`adopted`) for a call whose contact is still open is that contact
    again, not a new one; a call that ended out of sight (CallEnded `lost`) closes its open contact as lost.
    """

    def __init__(self, settings: KpiSettings, listener: ContactListener | None = None) -> None:
        self.settings = settings
        self.listener = listener  # told of each contact opened (old None) and each outcome
        self.contacts: list[Contact] = []
        self._calls: dict[CallKey, _CallFacts] = defaultdict(_CallFacts)
        self._latest: dict[CallKey, int] = {}  # index in `contacts` of each call's latest contact
        self._handlers: dict[str, Callable[[CallKey, Row], None]] = {
            d.CallArrived.__name__: self._arrived,
            d.CallVariable.__name__: self._variable,
            d.CallWaiting.__name__: self._waiting,
            d.CallConnected.__name__: self._connected,
            d.CallAbandoned.__name__: self._abandoned,
            d.CallDeflected.__name__: self._deflected,
            d.CallEnded.__name__: self._ended,
        }

    def seed(self, key: CallKey, direction: str, dnis: str, tier: str, latest: Contact | None) -> None:
        """Continue a call folded earlier (the log's writer folds batch by batch): what the call was, and
        its latest contact, the only one later rows can still change."""
        facts = self._calls[key]
        facts.direction, facts.dnis, facts.tier = direction, dnis, tier
        if latest is not None:
            self._latest[key] = len(self.contacts)
            self.contacts.append(latest)

    def apply(self, row: Row) -> None:
        key = (row["server"], row["call_id"])
        if row.get("tier"):
            self._set_tier(key, row["tier"])
        handler = self._handlers.get(row["kind"])
        if handler is not None:
            handler(key, row)

    def _open(self, key: CallKey) -> int | None:
        index = self._latest.get(key)
        if index is not None and self.contacts[index].outcome is Outcome.OPEN:
            return index
        return None

    def _set_tier(self, key: CallKey, tier: str) -> None:
        self._calls[key].tier = tier
        index = self._open(key)
        if index is not None:
            self.contacts[index] = replace(self.contacts[index], tier=tier)

    def _arrived(self, key: CallKey, row: Row) -> None:
        facts = self._calls[key]
        facts.direction = str(_get(row, "direction"))
        facts.dnis = str(_get(row, "dnis"))

    def _variable(self, key: CallKey, row: Row) -> None:
        name, value = _get(row, "name"), _get(row, "value")
        if name == dialplan.TIER_VAR:
            self._set_tier(key, value)
        elif name == dialplan.CALLBACK_VAR and value == "accepted":
            index = self._latest.get(key)
            if index is not None and self.contacts[index].deflected_to == "callback":
                self.contacts[index] = replace(self.contacts[index], callback_accepted=True)

    def _waiting(self, key: CallKey, row: Row) -> None:
        if (_get(row, "requeued", False) or _get(row, "adopted", False)) and self._open(key) is not None:
            return  # back after a ring-no-answer, or taken up by a resync: the same contact keeps its arrive
        facts = self._calls[key]
        self._latest[key] = len(self.contacts)
        arrive = float(_get(row, "arrived_at", row["at"]))
        contact = Contact(
            key[0], key[1], str(_get(row, "queue")), arrive, facts.direction, facts.dnis, facts.tier
        )
        self.contacts.append(contact)
        if self.listener is not None:
            self.listener(None, contact)

    def _connected(self, key: CallKey, row: Row) -> None:
        # a second agent on an answered contact (attended transfer) is an agent leg, not a new answer
        self._close(key, row, Outcome.ANSWERED, agent=str(_get(row, "agent")))

    def _abandoned(self, key: CallKey, row: Row) -> None:
        self._close(key, row, Outcome.ABANDONED)

    def _deflected(self, key: CallKey, row: Row) -> None:
        to, reason = str(_get(row, "to")), str(_get(row, "reason"))
        self._close(key, row, Outcome.DEFLECTED, deflected_to=to, deflect_reason=reason)

    def _ended(self, key: CallKey, row: Row) -> None:
        if _get(row, "disposition") == "lost":
            self._close(key, row, Outcome.LOST)

    def _close(
        self,
        key: CallKey,
        row: Row,
        outcome: Outcome,
        agent: str = "",
        deflected_to: str = "",
        deflect_reason: str = "",
    ) -> None:
        index = self._open(key)
        if index is None:
            return  # an outcome with no contact waiting (the rows start after its arrive)
        contact = self.contacts[index]
        wait = None if outcome is Outcome.LOST else row["at"] - contact.arrive  # a lost one's is unknown
        closed = self.contacts[index] = replace(
            contact,
            outcome=outcome,
            outcome_at=row["at"],
            wait=wait,
            short=outcome is Outcome.ABANDONED and wait is not None and wait < self.settings.short_abandon_s,
            agent=agent,
            deflected_to=deflected_to,
            deflect_reason=deflect_reason,
        )
        if self.listener is not None:
            self.listener(contact, closed)


def contacts(rows: Iterable[Row], settings: KpiSettings = DEFAULT_SETTINGS) -> list[Contact]:
    """Every queued contact in the rows, in arrival order of their first event.

    A transfer to a queue and a move to another queue start a new contact; a ring-no-answer requeue keeps
    the contact and its arrive. Outcomes of calls whose contact the rows do not hold are ignored.
    """
    fold = ContactFold(settings)
    for row in rows:
        fold.apply(row)
    return fold.contacts


def _contacts_in(rows: Iterable[Row], start: float, end: float, settings: KpiSettings) -> list[Contact]:
    return [c for c in contacts(rows, settings) if c.offered_in(start, end)]


# ---- queue figures -------------------------------------------------------------------------------


def _waits(group: Iterable[Contact]) -> list[float]:
    return [c.wait for c in group if c.wait is not None]


@dataclass(frozen=True, slots=True)
class QueueTally:
    """The counts and sums the queue figures are made of: folded here from contacts, or by SQL
    (`reports.store`) from the stored contacts; `queue_figures` turns either into the same figures."""

    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    deflected: int = 0
    open: int = 0
    lost: int = 0  # ended out of sight (a data gap): offered, but in neither abandon rate nor service level
    answered_in_t: int = 0
    abandoned_over_t: int = 0  # abandons (not short) that waited longer than T
    removed: int = 0  # answered, abandoned or left for a callback: Amazon Connect's "removed from queue"
    removed_in_t: int = 0
    answer_wait_sum: float = 0.0
    abandon_wait_sum: float = 0.0
    longest_wait: float | None = None
    wait_p50: float | None = None  # nearest-rank percentiles of the answered contacts' waits
    wait_p90: float | None = None
    wait_p95: float | None = None
    callbacks_offered: int = 0
    callbacks_accepted: int = 0
    overflowed: int = 0


def counts_of(contact: Contact, settings: KpiSettings = DEFAULT_SETTINGS) -> Counter[str]:
    """What one contact adds to its group's `QueueTally` counts, judged by its own queue's T (the wallboard
    adds and takes these back as contacts open and close; `tally` sums them)."""
    within = int(contact.within(settings.threshold(contact.queue)))
    counts: Counter[str] = Counter(offered=1)
    outcome = contact.outcome
    callback = outcome is Outcome.DEFLECTED and contact.deflected_to == "callback"
    if outcome is Outcome.OPEN:
        counts["open"] = 1
    elif outcome is Outcome.LOST:
        counts["lost"] = 1
    elif outcome is Outcome.ANSWERED:
        counts.update(answered=1, answered_in_t=within)
    elif outcome is Outcome.ABANDONED:
        short = int(contact.short)
        counts.update(abandoned=1, short_abandoned=short, abandoned_over_t=int(not short and not within))
    else:
        counts.update(deflected=1, overflowed=int(contact.overflowed))
        if callback:
            counts.update(callbacks_offered=1, callbacks_accepted=int(contact.callback_accepted))
    if outcome in (Outcome.ANSWERED, Outcome.ABANDONED) or callback:  # Amazon Connect's "removed from queue"
        counts.update(removed=1, removed_in_t=within)
    return counts


def tally(group: Sequence[Contact], settings: KpiSettings = DEFAULT_SETTINGS) -> QueueTally:
    """A group of contacts counted, each judged by its own queue's T."""
    counts: Counter[str] = Counter()
    for contact in group:
        counts.update(counts_of(contact, settings))
    answer_waits = _waits(c for c in group if c.outcome is Outcome.ANSWERED)
    return QueueTally(
        **counts,
        answer_wait_sum=sum(answer_waits),
        abandon_wait_sum=sum(_waits(c for c in group if c.outcome is Outcome.ABANDONED)),
        longest_wait=max(_waits(group), default=None),
        wait_p50=percentile(answer_waits, 50),
        wait_p90=percentile(answer_waits, 90),
        wait_p95=percentile(answer_waits, 95),
    )


def queue_figures(
    group: Sequence[Contact] | QueueTally, settings: KpiSettings = DEFAULT_SETTINGS
) -> dict[str, Any]:
    """The inbound figures of METRICS.md over a group of contacts (or their tally).

    Short abandons stay out of abandon rate and service level, but `sl_removed` keeps them: it is Amazon
    Connect's reading, which counts every abandon. Open contacts are offered, so they weigh in the
    denominators that count offered contacts; lost ones (ended during a data gap, outcome unknown) are
    offered too, but left out of every ratio, so a gap neither flatters nor spoils a figure.
    `longest_wait_s` is the longest wait any contact of the group ended (the live figure, from
    still-waiting contacts, belongs to the wallboard).
    """
    t = group if isinstance(group, QueueTally) else tally(group, settings)
    counted_abandons = t.abandoned - t.short_abandoned
    return {
        "offered": t.offered,
        "answered": t.answered,
        "abandoned": t.abandoned,
        "short_abandoned": t.short_abandoned,
        "deflected": t.deflected,
        "open": t.open,
        "lost": t.lost,
        "abandon_rate": _ratio(counted_abandons, t.offered - t.short_abandoned - t.deflected - t.lost),
        "service_level": _ratio(t.answered_in_t, t.answered + t.abandoned_over_t),
        "sl_answered": _ratio(t.answered_in_t, t.answered),
        "sl_removed": _ratio(t.removed_in_t, t.removed),
        "sl_offered": _ratio(t.answered_in_t, t.offered - t.short_abandoned - t.lost),
        "asa_s": _ratio(t.answer_wait_sum, t.answered),
        "wait_p50_s": t.wait_p50,
        "p90_wait_s": t.wait_p90,
        "wait_p95_s": t.wait_p95,
        "longest_wait_s": t.longest_wait,
        "time_to_abandon_avg_s": _ratio(t.abandon_wait_sum, t.abandoned),
        "callbacks_offered": t.callbacks_offered,
        "callbacks_accepted": t.callbacks_accepted,
        "overflowed": t.overflowed,
    }


def queue_summary(
    rows: Iterable[Row],
    *,
    start: float,
    end: float,
    settings: KpiSettings = DEFAULT_SETTINGS,
    gaps: Iterable[Row] = (),
    queues: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """One object per queue over the contacts that arrived in [start, end), by queue name.

    `queues` names queues to show even without contacts (the configured ones). Each object carries the
    period's `data_gaps`, so the list stays one object per queue.
    """
    by_queue: dict[str, list[Contact]] = defaultdict(list)
    for c in _contacts_in(rows, start, end, settings):
        by_queue[c.queue].append(c)
    tallies = {name: tally(group, settings) for name, group in by_queue.items()}
    return summary_of(tallies, start=start, end=end, settings=settings, gaps=gaps, queues=queues)


def summary_of(
    tallies: Mapping[str, QueueTally],
    *,
    start: float,
    end: float,
    settings: KpiSettings = DEFAULT_SETTINGS,
    gaps: Iterable[Row] = (),
    queues: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """`queue_summary` from each queue's tally, however it was counted."""
    period_gaps = gaps_in(gaps, start, end)
    return [
        {
            "queue": name,
            **queue_figures(tallies.get(name, QueueTally()), settings),
            "service_level_s": settings.threshold(name),
            "data_gaps": period_gaps,
        }
        for name in sorted(set(tallies) | set(queues))
    ]


def interval_report(
    rows: Iterable[Row],
    *,
    start: float,
    end: float,
    interval_s: float,
    settings: KpiSettings = DEFAULT_SETTINGS,
    gaps: Iterable[Row] = (),
    queues: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The queue figures per (interval, queue), every interval of [start, end) for every queue shown.

    Intervals are counted from `start` (a local midnight makes them local quarter hours even where the
    offset is not whole hours); the last one is cut at `end`. Each row carries the gaps overlapping it.
    """
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    by_slot: dict[tuple[int, str], list[Contact]] = defaultdict(list)
    for c in _contacts_in(rows, start, end, settings):
        by_slot[int((c.arrive - start) // interval_s), c.queue].append(c)
    tallies = {key: tally(group, settings) for key, group in by_slot.items()}
    return intervals_of(
        tallies, start=start, end=end, interval_s=interval_s, settings=settings, gaps=gaps, queues=queues
    )


def intervals_of(
    tallies: Mapping[tuple[int, str], QueueTally],
    *,
    start: float,
    end: float,
    interval_s: float,
    settings: KpiSettings = DEFAULT_SETTINGS,
    gaps: Iterable[Row] = (),
    queues: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """`interval_report` from each (interval number, queue)'s tally, however it was counted."""
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    gap_rows = list(gaps)
    names = sorted({name for _, name in tallies} | set(queues))
    out = []
    for slot in range(math.ceil((end - start) / interval_s)):
        slot_start = start + slot * interval_s
        slot_end = min(slot_start + interval_s, end)
        slot_gaps = gaps_in(gap_rows, slot_start, slot_end)
        for name in names:
            out.append(
                {
                    "interval_start": slot_start,
                    "interval_end": slot_end,
                    "queue": name,
                    **queue_figures(tallies.get((slot, name), QueueTally()), settings),
                    "service_level_s": settings.threshold(name),
                    "data_gaps": slot_gaps,
                }
            )
    return out


# ---- agents --------------------------------------------------------------------------------------


@dataclass(slots=True)
class Leg:
    """One agent's segment of a call, bridged to left: a transfer splits talk, each agent its own."""

    device: str
    connected_at: float
    left_at: float | None = None
    held_since: float | None = None
    holds: list[tuple[float, float]] = field(default_factory=list)
    transferred: bool = False
    call: CallKey = ("", "")

    def resume(self, at: float) -> None:
        if self.held_since is not None:
            self.holds.append((self.held_since, at))
            self.held_since = None

    def close(self, at: float) -> None:
        self.resume(at)  # a leg that ends on hold (a transfer completed from hold) ends its hold too
        self.left_at = at

    def hold_in(self, start: float, end: float) -> float:
        spans = [*self.holds] if self.held_since is None else [*self.holds, (self.held_since, INF)]
        return sum(_overlap(begin, finish, start, end) for begin, finish in spans)

    def talk_in(self, start: float, end: float) -> float:
        finish = INF if self.left_at is None else self.left_at
        return _overlap(self.connected_at, finish, start, end) - self.hold_in(start, end)


@dataclass(frozen=True, slots=True)
class Span:
    """An agent's time in one state (AgentStateChanged to the next one)."""

    state: str
    reason: str
    begin: float
    finish: float


class AgentFold:
    """Folds rows into agent legs, state spans, ring-no-answers and survey answers."""

    def __init__(self) -> None:
        self.legs: list[Leg] = []
        self.device_agent: dict[str, str] = {}  # the latest AgentStateChanged for each device wins
        self.spans: dict[str, list[Span]] = defaultdict(list)
        self.ring_no_answers: list[tuple[float, str]] = []  # (at, device)
        self.surveys: list[tuple[float, str, float]] = []  # (at, agent id or device, overall)
        self._current: dict[str, Span] = {}  # each agent's state now, open-ended
        self._on_call: dict[CallKey, Leg] = {}
        self._last_leg: dict[tuple[CallKey, str], Leg] = {}
        self._handlers: dict[str, Callable[[CallKey, Row], None]] = {
            d.CallConnected.__name__: self._connected,
            d.AgentLeftCall.__name__: self._left,
            d.CallHeld.__name__: self._held,
            d.CallResumed.__name__: self._resumed,
            d.CallTransferred.__name__: self._transferred,
            d.CallEnded.__name__: lambda key, row: self._leave(key, row["at"]),
            d.RingNoAnswer.__name__: self._ring_no_answer,
            d.AgentStateChanged.__name__: self._state_changed,
            SURVEY_ANSWERED: self._survey,
        }

    def seed_call(self, key: CallKey, legs: Sequence[Leg]) -> None:
        """Continue a call folded earlier: its agent legs so far, in order (an open one is on the call)."""
        for leg in legs:
            self.legs.append(leg)
            self._last_leg[key, leg.device] = leg
            if leg.left_at is None:
                self._on_call[key] = leg

    def seed_agent(self, agent: str, current: Span) -> None:
        """Continue an agent folded earlier: the state it is in now."""
        self._current[agent] = current

    def apply(self, row: Row) -> None:
        handler = self._handlers.get(row["kind"])
        if handler is not None:
            handler((row["server"], row["call_id"]), row)

    def agent_of(self, device: str) -> str:
        """The agent id behind a device; a device no agent state names is reported as itself."""
        return self.device_agent.get(device, device)

    def spans_of(self, agent: str) -> list[Span]:
        current = self._current.get(agent)
        return self.spans[agent] + ([current] if current is not None else [])

    def agents(self) -> set[str]:
        return (
            set(self.spans)
            | set(self._current)
            | {self.agent_of(leg.device) for leg in self.legs}
            | {self.agent_of(device) for _, device in self.ring_no_answers}
            | {self.agent_of(who) for _, who, _ in self.surveys}
        )

    def _leave(self, key: CallKey, at: float) -> None:
        leg = self._on_call.pop(key, None)
        if leg is not None:
            leg.close(at)

    def _connected(self, key: CallKey, row: Row) -> None:
        on_call = self._on_call.get(key)
        if _get(row, "adopted", False) and on_call is not None and on_call.device == _get(row, "agent"):
            return  # a resync took up a conversation the rows already hold: the same leg goes on
        self._leave(key, row["at"])  # a previous agent still on the line: transferred without a leave
        leg = Leg(str(_get(row, "agent")), row["at"], call=key)
        self.legs.append(leg)
        self._on_call[key] = leg
        self._last_leg[key, leg.device] = leg

    def _left(self, key: CallKey, row: Row) -> None:
        leg = self._on_call.get(key)
        if leg is not None and leg.device == _get(row, "agent"):
            self._leave(key, row["at"])

    def _held(self, key: CallKey, row: Row) -> None:
        leg = self._on_call.get(key)
        if leg is not None and leg.held_since is None:
            leg.held_since = row["at"]

    def _resumed(self, key: CallKey, row: Row) -> None:
        leg = self._on_call.get(key)
        if leg is not None:
            leg.resume(row["at"])

    def _transferred(self, key: CallKey, row: Row) -> None:
        leg = self._last_leg.get((key, str(_get(row, "from_agent") or _get(row, "agent"))))
        if leg is not None:
            leg.transferred = True

    def _ring_no_answer(self, key: CallKey, row: Row) -> None:
        self.ring_no_answers.append((row["at"], str(_get(row, "agent"))))

    def _state_changed(self, key: CallKey, row: Row) -> None:
        agent, at = str(_get(row, "agent")), row["at"]
        self.device_agent[str(_get(row, "device"))] = agent
        current = self._current.get(agent)
        if current is None:
            # the first change the rows hold: before it, the agent was in its `previous` state
            previous = state_name(str(_get(row, "previous", AgentState.LOGGED_OUT.value)))
            reason = "unknown" if previous == AgentState.PAUSED.value else ""
            current = Span(previous, reason, -INF, INF)
        self.spans[agent].append(replace(current, finish=at))
        self._current[agent] = Span(state_name(str(_get(row, "state"))), str(_get(row, "reason")), at, INF)

    def _survey(self, key: CallKey, row: Row) -> None:
        overall = _get(row, "overall", None)
        if overall is not None:
            self.surveys.append((row["at"], str(_get(row, "agent")), float(overall)))


def _agent_fold(rows: Iterable[Row]) -> AgentFold:
    fold = AgentFold()
    for row in rows:
        fold.apply(row)
    return fold


def state_name(value: str) -> str:
    """A state as the log holds it, in today's vocabulary: rows written before it had a direction and a
    ringing step say "on_call" (ctid.agents.LEGACY); a value no version knows is kept as it is."""
    legacy = LEGACY.get(value)
    return legacy.value if legacy is not None else value


def state_time(spans: Iterable[Span], start: float, end: float) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per state and per pause reason inside [start, end): agent time is split by the clock."""
    by_state: dict[str, float] = defaultdict(float)
    by_reason: dict[str, float] = defaultdict(float)
    for span in spans:
        length = _overlap(span.begin, span.finish, start, end)
        if length > 0:
            by_state[span.state] += length
            if span.state == AgentState.PAUSED.value:
                by_reason[span.reason] += length
    return by_state, by_reason


def _agent_row(fold: AgentFold, agent: str, start: float, end: float) -> dict[str, Any]:
    legs = [leg for leg in fold.legs if fold.agent_of(leg.device) == agent]
    handled = [leg for leg in legs if leg.left_at is not None and start <= leg.left_at < end]
    by_state, by_reason = state_time(fold.spans_of(agent), start, end)
    return agent_figures(
        agent,
        devices=sorted(dev for dev, owner in fold.device_agent.items() if owner == agent),
        handled=len(handled),
        talk=sum(leg.talk_in(start, end) for leg in legs),
        hold=sum(leg.hold_in(start, end) for leg in legs),
        transfers=sum(leg.transferred for leg in handled),
        by_state=by_state,
        by_reason=by_reason,
        ring_no_answer=sum(
            1 for at, device in fold.ring_no_answers if fold.agent_of(device) == agent and start <= at < end
        ),
        scores=[
            score for at, who, score in fold.surveys if fold.agent_of(who) == agent and start <= at < end
        ],
    )


def agent_figures(
    agent: str,
    *,
    devices: list[str],
    handled: int,
    talk: float,
    hold: float,
    transfers: int,
    by_state: Mapping[str, float],
    by_reason: Mapping[str, float],
    ring_no_answer: int,
    scores: Sequence[float],
) -> dict[str, Any]:
    """One agent's figures (METRICS.md "Agents") from the period's sums, however they were summed."""
    state: defaultdict[str, float] = defaultdict(float)
    for name, seconds in by_state.items():  # sums made from old rows may still say "on_call"
        state[state_name(name)] += seconds
    wrap = state[AgentState.WRAP_UP.value]
    ready = state[AgentState.READY.value]
    # occupancy's numerator: ringing and reserved count as working, as in the agent book's live occupancy
    occupied = sum(state[s.value] for s in sorted(OCCUPIED))
    login = sum(t for s, t in state.items() if s != AgentState.LOGGED_OUT.value)
    return {
        "agent": agent,
        "devices": devices,
        "handled": handled,
        "talk_s": talk,
        "hold_s": hold,
        "wrap_s": wrap,
        "aht_s": _ratio(talk + hold + wrap, handled),
        "aht_talk_s": _ratio(talk, handled),
        "aht_hold_s": _ratio(hold, handled),
        "aht_wrap_s": _ratio(wrap, handled),
        "login_s": login,
        "ready_s": ready,
        "ringing_s": state[AgentState.RESERVED.value] + state[AgentState.RINGING.value],
        "occupied_s": occupied,
        "pause_s": state[AgentState.PAUSED.value],
        "pause_by_reason": dict(sorted((r, t) for r, t in by_reason.items() if t > 0)),
        "occupancy": _ratio(occupied, occupied + ready),
        "utilization": _ratio(occupied, login),
        "ring_no_answer": ring_no_answer,
        "transfers_out": transfers,
        "transfer_rate": _ratio(transfers, handled),
        "csat": _mean(scores),
        "csat_top_box": _ratio(sum(s == TOP_BOX_SCORE for s in scores), len(scores)),
        "csat_responses": len(scores),
        "csat_response_rate": _ratio(len(scores), handled),
    }


def _active(row: Mapping[str, Any]) -> bool:
    """Worth a line in the period: logged in, on a call, rung or rated in it."""
    return any(row[k] for k in ("login_s", "handled", "talk_s", "hold_s", "ring_no_answer", "csat_responses"))


def agent_performance(
    rows: Iterable[Row], *, start: float, end: float, gaps: Iterable[Row] = ()
) -> list[dict[str, Any]]:
    """One object per agent active in [start, end), by agent id (METRICS.md "Agents").

    Devices map to agent ids through AgentStateChanged rows. Talk and hold come from the calls, wrap-up,
    ready, ringing, pause and login time from the agent states, all split at the period's edges by the
    clock; handled counts the agent legs that ended in the period.
    """
    fold = _agent_fold(rows)
    return active_agents(
        [_agent_row(fold, agent, start, end) for agent in sorted(fold.agents())], gaps_in(gaps, start, end)
    )


def active_agents(table: Iterable[dict[str, Any]], period_gaps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agents worth a line in the period, each with the period's data gaps."""
    return [{**row, "data_gaps": period_gaps} for row in table if _active(row)]


def _column_ranks(table: Sequence[Mapping[str, Any]], column: str, higher_first: bool) -> list[int | None]:
    """Competition ranks (1, 2, 2, 4) of one column; agents without a value get no rank."""
    values = [row[column] for row in table]

    def rank(value: float | None) -> int | None:
        if value is None:
            return None
        ahead = [o for o in values if o is not None and o != value and (o > value) == higher_first]
        return 1 + len(ahead)

    return [rank(value) for value in values]


def agent_comparison(
    rows: Iterable[Row], *, start: float, end: float, gaps: Iterable[Row] = ()
) -> list[dict[str, Any]]:
    """agent_performance ranked (`ranked`)."""
    return ranked(agent_performance(rows, start=start, end=end, gaps=gaps))


def ranked(performance: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Agents' rows ranked: most handled first, then shorter AHT; `ranks` has each column's rank."""
    table = sorted(
        performance, key=lambda a: (-a["handled"], a["aht_s"] is None, a["aht_s"] or 0.0, a["agent"])
    )
    ranks = {column: _column_ranks(table, column, higher) for column, higher in RANKED_COLUMNS.items()}
    return [
        {**row, "rank": i + 1, "ranks": {column: ranks[column][i] for column in RANKED_COLUMNS}}
        for i, row in enumerate(table)
    ]


# ---- distributions and breakdowns ----------------------------------------------------------------


def histogram(values: Iterable[float], edges: Sequence[float]) -> list[dict[str, Any]]:
    """Counts per bucket [from_s, to_s), the last one open-ended (values under the first edge: the first)."""
    counts = [0] * len(edges)
    for value in values:
        counts[max(0, bisect_right(edges, value) - 1)] += 1
    return histogram_of(counts, edges)


def histogram_of(counts: Sequence[int], edges: Sequence[float]) -> list[dict[str, Any]]:
    """A histogram's buckets from their counts, however counted."""
    return [
        {"from_s": edge, "to_s": edges[i + 1] if i + 1 < len(edges) else None, "count": counts[i]}
        for i, edge in enumerate(edges)
    ]


def distributions(
    rows: Iterable[Row],
    *,
    start: float,
    end: float,
    gaps: Iterable[Row] = (),
    talk_edges_s: Sequence[float] = TALK_EDGES_S,
    wait_edges_s: Sequence[float] = WAIT_EDGES_S,
) -> dict[str, Any]:
    """Histograms: talk per handled agent leg (whole leg, ended in the period), and the waits of contacts
    that arrived in the period, answered and abandoned apart."""
    rows = list(rows)
    fold = _agent_fold(rows)
    talks = [
        leg.talk_in(-INF, INF) for leg in fold.legs if leg.left_at is not None and start <= leg.left_at < end
    ]
    period = _contacts_in(rows, start, end, DEFAULT_SETTINGS)
    return {
        "talk": histogram(talks, talk_edges_s),
        "wait_answered": histogram(_waits(c for c in period if c.outcome is Outcome.ANSWERED), wait_edges_s),
        "wait_abandoned": histogram(
            _waits(c for c in period if c.outcome is Outcome.ABANDONED), wait_edges_s
        ),
        "data_gaps": gaps_in(gaps, start, end),
    }


def inbound_summary(
    rows: Iterable[Row],
    *,
    start: float,
    end: float,
    timezone: str,
    settings: KpiSettings = DEFAULT_SETTINGS,
    gaps: Iterable[Row] = (),
) -> dict[str, Any]:
    """Inbound contacts arrived in [start, end) by dialled number, by tier and by local hour of arrival.

    Dialer contacts are left out (their abandons are drops, METRICS.md "Outbound"); a contact whose
    arrival the rows miss counts as inbound. Every hour 0-23 is listed, hours without calls at zero.
    """
    zone = ZoneInfo(timezone)
    inbound = [
        c for c in _contacts_in(rows, start, end, settings) if c.direction != d.Direction.OUTBOUND.value
    ]

    def by(key: Callable[[Contact], Any]) -> dict[Any, QueueTally]:
        groups: dict[Any, list[Contact]] = defaultdict(list)
        for c in inbound:
            groups[key(c)].append(c)
        return {k: tally(group, settings) for k, group in groups.items()}

    return inbound_of(
        by(lambda c: c.dnis),
        by(lambda c: c.tier),
        by(lambda c: datetime.fromtimestamp(c.arrive, zone).hour),
        settings=settings,
        gaps=gaps_in(gaps, start, end),
    )


def inbound_of(
    by_dnis: Mapping[str, QueueTally],
    by_tier: Mapping[str, QueueTally],
    by_hour: Mapping[int, QueueTally],
    *,
    settings: KpiSettings,
    gaps: list[dict[str, Any]],
) -> dict[str, Any]:
    """`inbound_summary` from the tallies per dialled number, tier and local hour, however counted."""
    return {
        "by_dnis": [{"dnis": k, **queue_figures(by_dnis[k], settings)} for k in sorted(by_dnis)],
        "by_tier": [{"tier": k, **queue_figures(by_tier[k], settings)} for k in sorted(by_tier)],
        "by_hour": [{"hour": h, **queue_figures(by_hour.get(h, QueueTally()), settings)} for h in range(24)],
        "data_gaps": gaps,
    }


# ---- targets -------------------------------------------------------------------------------------


def _distance(value: float, low: float | None, high: float | None) -> float:
    """How far a value lies outside its target band (0 inside)."""
    return max(0.0, (low - value) if low is not None else 0.0, (value - high) if high is not None else 0.0)


def _trend(actual: float | None, previous: float | None) -> str | None:
    if actual is None or previous is None:
        return None
    return "up" if actual > previous else "down" if actual < previous else "flat"


def _trend_is(
    actual: float | None, previous: float | None, low: float | None, high: float | None
) -> str | None:
    """better / worse / same: a one-sided target says which way is good; a band, the distance to it."""
    trend = _trend(actual, previous)
    if trend is None or actual is None or previous is None or (low is None and high is None):
        return None
    if trend == "flat":
        return "same"
    if low is not None and high is not None:
        now, before = _distance(actual, low, high), _distance(previous, low, high)
        return "better" if now < before else "worse" if now > before else "same"
    return "better" if (trend == "up") == (low is not None) else "worse"


def kpi_targets(
    current: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    targets: Mapping[str, Mapping[str, float]],
) -> list[dict[str, Any]]:
    """Each target ({"min": x}, {"max": y} or both) against the current figures and the previous period's.

    `met` is None when the figure has no value (nothing to divide by), like the figure itself.
    """
    out = []
    for name, bounds in targets.items():
        actual = current.get(name)
        before = previous.get(name) if previous is not None else None
        low, high = bounds.get("min"), bounds.get("max")
        out.append(
            {
                "kpi": name,
                "actual": actual,
                "target": dict(bounds),
                "met": None if actual is None else _distance(actual, low, high) == 0,
                "previous": before,
                "trend": _trend(actual, before),
                "trend_is": _trend_is(actual, before, low, high),
            }
        )
    return out
