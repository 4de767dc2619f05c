"""The routing settings admins edit (config/routing.yaml): validation, cross-references and engine inputs."""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ctid.agents import AgentState, AgentView
from ctid.customers import phone_digits
from ctid.errors import ConfigError
from ctid.yamlconf import SourceMap, format_path, load_located, read_config_text
from routing.model import QueuePolicy, Strategy

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Tier = Literal["A", "B", "C"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CRM_PLACEHOLDERS = frozenset({"caller", "customer", "call"})  # what a queue's crm_url may name

_TIME_RANGE = re.compile(r"(?P<h1>\d\d):(?P<m1>\d\d)-(?P<h2>\d\d):(?P<m2>\d\d)")
_CLOSED_ACTION = re.compile(r"voicemail|callback|hangup|queue:.+")
# digits, optionally a leading +, with spaces and dashes for the reader anywhere
_NUMBER = re.compile(r"[\s-]*(?:\+[\s-]*)?[0-9][0-9\s-]*")


def _as_text(value: object) -> object:
    """YAML reads `200` or `4000` as a number; queue names and dialled numbers are text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _dialled_number(value: str) -> str:
    if not _NUMBER.fullmatch(value):
        raise ValueError(f"'{value}' is not a dialled number (digits, optionally a leading +)")
    return value


def _time_range(value: str) -> str:
    match = _TIME_RANGE.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"'{value}' is not a time range like 08:00-18:00")
    start = int(match["h1"]) * 60 + int(match["m1"])
    end = int(match["h2"]) * 60 + int(match["m2"])
    if int(match["m1"]) > 59 or int(match["m2"]) > 59 or start >= 24 * 60 or end > 24 * 60:
        raise ValueError(f"'{value}' has a time that does not exist (00:00 to 24:00)")
    if start >= end:
        raise ValueError(f"'{value}' ends before it starts")
    return value


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone '{value}' (write an IANA name such as Asia/Shanghai)") from None
    return value


def _closed_action(value: str) -> str:
    if not _CLOSED_ACTION.fullmatch(value):
        raise ValueError(f"'{value}' is not one of voicemail, callback, hangup, queue:<name>")
    return value


def _crm_url(value: str) -> str:
    # the desktop opens it as a link: only the web's own schemes, and only placeholders ctid fills in
    if value and not value.startswith(("https://", "http://")):
        raise ValueError(f"crm_url '{value}' does not start with https:// or http://")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"crm_url '{value}': {exc}") from None
    if unknown := fields - CRM_PLACEHOLDERS:
        raise ValueError(
            f"crm_url has unknown placeholders {sorted(unknown)}; use {{caller}}, {{customer}}, {{call}}"
        )
    return value


Name = Annotated[str, BeforeValidator(_as_text), Field(min_length=1)]
Level = Annotated[int, Field(ge=1, le=10)]
Seconds = Annotated[float, Field(gt=0)]
Fraction = Annotated[float, Field(gt=0, lt=1)]
Weight = Annotated[float, Field(ge=0)]
DialledNumber = Annotated[str, BeforeValidator(_as_text), AfterValidator(_dialled_number)]
TimeRange = Annotated[str, AfterValidator(_time_range)]
Device = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9]*/\S+$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceLevel(_Settings):
    """The share of calls to answer within threshold_s (0.8 within 20 s is "80/20")."""

    target: Annotated[float, Field(gt=0, le=1)] = 0.8
    threshold_s: Seconds = 20.0


class OverflowStep(_Settings):
    """What to do with a call that has waited after_s seconds."""

    after_s: Seconds
    action: Literal["widen", "add_queue", "callback", "voicemail"]
    widen_by: Annotated[int, Field(ge=1, le=9)] | None = None
    queue: Name | None = None

    @model_validator(mode="after")
    def _fields_match_action(self) -> Self:
        if self.action == "widen" and self.widen_by is None:
            raise ValueError("a widen step needs widen_by (how many skill levels lower to accept)")
        if self.action != "widen" and self.widen_by is not None:
            raise ValueError(f"widen_by belongs to a widen step, not {self.action}")
        if self.action == "add_queue" and self.queue is None:
            raise ValueError("an add_queue step needs queue (whose agents to add)")
        if self.action != "add_queue" and self.queue is not None:
            raise ValueError(f"queue belongs to an add_queue step, not {self.action}")
        return self


class Queue(_Settings):
    """One queue: who may take its calls, how they are chosen, and what happens to long waits."""

    skills: dict[str, Level] = {}
    strategy: Strategy = Strategy.LONGEST_IDLE
    service_level: ServiceLevel = ServiceLevel()
    ring_timeout_s: Seconds = 15.0
    wrap_up_s: Annotated[float, Field(ge=0)] = 30.0
    max_wait_s: Seconds = 600.0
    overflow: tuple[OverflowStep, ...] = ()
    hours: str | None = None
    closed_action: Annotated[str, AfterValidator(_closed_action)] = "voicemail"
    # the client's CRM beside the screen pop: {caller}, {customer} and {call} are filled in, URL-encoded
    crm_url: Annotated[str, AfterValidator(_crm_url)] = ""

    @model_validator(mode="after")
    def _one_step_of_each_kind(self) -> Self:
        # QueuePolicy has room for one widening and one added queue.
        for action in ("widen", "add_queue"):
            if sum(step.action == action for step in self.overflow) > 1:
                raise ValueError(f"overflow has more than one {action} step; routing uses one")
        return self

    @property
    def closed_queue(self) -> str | None:
        """The queue closed calls go to, when closed_action is queue:<name>."""
        return self.closed_action.removeprefix("queue:") if self.closed_action.startswith("queue:") else None


class BusinessHours(_Settings):
    """When a set of queues is open, in its own timezone."""

    timezone: Annotated[str, AfterValidator(_timezone)]
    weekly: dict[Weekday, tuple[TimeRange, ...]] = {}
    holidays: tuple[date, ...] = ()


class Agent(_Settings):
    id: Name
    name: str = Field(min_length=1)
    device: Device
    skills: dict[str, Level] = {}
    queues: tuple[Name, ...] = ()


class ValueWeights(_Settings):
    """How a customer's value score is made; cost_to_serve counts against it."""

    revenue_12m: Weight = 1.0
    tenure_years: Weight = 0.0
    cost_to_serve: Annotated[float, Field(le=0)] = 0.0


class TierThresholds(_Settings):
    """The top share of customers by value that is tier A, and (including A) tier B."""

    top_a: Fraction = 0.05
    top_b: Fraction = 0.15

    @model_validator(mode="after")
    def _a_within_b(self) -> Self:
        if self.top_a > self.top_b:
            raise ValueError(f"top_a ({self.top_a:g}) is larger than top_b ({self.top_b:g})")
        return self


class Tiers(_Settings):
    default_tier: Tier = "C"
    weights: ValueWeights = ValueWeights()
    thresholds: TierThresholds = TierThresholds()


class TierBase(_Settings):
    A: float = 100.0
    B: float = 50.0
    C: float = 10.0


class Priorities(_Settings):
    """A waiting call's priority: its tier's base, boosts, and points gained per second of waiting."""

    base: TierBase = TierBase()
    open_complaint_boost: Weight = 0.0
    lost_customer_boost: Weight = 0.0
    vip_boost: Weight = 0.0
    ageing_per_s: Weight = 1.0
    head_start_after_s: Weight = 5.0  # base and boosts count once a caller has waited this long


class RoutingConfig(_Settings):
    """Everything in config/routing.yaml."""

    queues: dict[Name, Queue]
    dnis: dict[DialledNumber, Name] = {}
    hours: dict[str, BusinessHours] = {}
    agents: tuple[Agent, ...] = ()
    tiers: Tiers = Tiers()
    priorities: Priorities = Priorities()
    pause_reasons: tuple[Annotated[str, Field(min_length=1)], ...] = ("no-answer",)
    # the codes an agent may give a call after it (ctid's customer API refuses others)
    dispositions: tuple[
        Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")], ...
    ] = ()
    default_queue: Name | None = None  # callers whose dialled number is not under dnis; first queue if unset

    @model_validator(mode="after")
    def _no_answer_pause_exists(self) -> Self:
        # ctid itself pauses an agent who lets a call ring out, with this reason.
        if "no-answer" not in self.pause_reasons:
            raise ValueError(
                "pause_reasons must include 'no-answer' (ctid pauses agents who let calls ring out)"
            )
        return self

    @model_validator(mode="after")
    def _dispositions_unique(self) -> Self:
        repeated = sorted({code for code in self.dispositions if self.dispositions.count(code) > 1})
        if repeated:
            raise ValueError(f"dispositions repeat: {', '.join(repeated)}")
        return self

    @property
    def entry_queue(self) -> str:
        """Where callers go whose dialled number routing.yaml does not list."""
        return self.default_queue or next(iter(self.queues))

    def queue_for_contact(self, dnis: str, asked: str = "") -> str:
        """The queue a contact waits in: `asked` (CTID_QUEUE) if it exists, else its dialled number's queue,
        else the entry queue: where callers whose IVR step failed, or who came while ctid was away, wait."""
        if asked in self.queues:
            return asked
        return self.queue_for_number(dnis) or self.entry_queue

    def queue_for_number(self, number: str) -> str | None:
        """The queue a dialled number (DNIS) routes to; numbers compare by their digits (`phone_digits`)."""
        wanted = phone_digits(number)
        for written, queue in self.dnis.items():
            if phone_digits(written) == wanted:
                return queue
        return None


class _WrittenKeys(BaseModel):
    """The mapping keys exactly as written (200 or "200"), to find them again in the source map."""

    model_config = ConfigDict(extra="ignore")

    queues: dict[str | int, object] = {}
    dnis: dict[str | int, object] = {}


def load_routing(path: Path | str, env: Mapping[str, str] | None = None) -> RoutingConfig:
    """Read and check a routing.yaml; raise ConfigError listing every problem as file:line:column."""
    return load_routing_checked(path, env=env)[0]


def load_routing_checked(
    path: Path | str, env: Mapping[str, str] | None = None, *, text: str | None = None
) -> tuple[RoutingConfig, list[str]]:
    """Like load_routing, and also return warnings (file:line:column: ...) that do not stop loading."""
    path = Path(path)
    if text is None:
        text = read_config_text(path)
    loaded = load_located(path, RoutingConfig, text=text, env=env)
    written = _WrittenKeys.model_validate(loaded.data)
    checker = _Checker(loaded.model, loaded.source, written)
    checker.run()
    if checker.errors:
        checker.errors.sort(key=lambda item: item[0])
        raise ConfigError(list(dict.fromkeys(line for _, line in checker.errors)))
    checker.warnings.sort(key=lambda item: item[0])
    return loaded.model, [line for _, line in checker.warnings]


_SUGGESTIONS = 50  # "did you mean" for the first problems only
_LISTED = 10  # names listed in one message


class _Checker:
    """The checks that span sections: every name refers to something that exists, every queue is served."""

    def __init__(self, cfg: RoutingConfig, source: SourceMap, written: _WrittenKeys) -> None:
        self.cfg = cfg
        self.source = source
        self.queue_keys = {str(key): key for key in written.queues}
        self.dnis_keys = list(written.dnis)
        self.errors: list[tuple[tuple[int, int], str]] = []
        self.warnings: list[tuple[tuple[int, int], str]] = []
        self._suggestions_left = _SUGGESTIONS
        # indexes, so that the checks cost agents + queues, not agents x queues
        self._members: dict[str, list[Agent]] = {}
        for agent in cfg.agents:
            for queue in dict.fromkeys(agent.queues):
                self._members.setdefault(queue, []).append(agent)
        self._agent_skills = {skill for agent in cfg.agents for skill in agent.skills}
        self._listings: dict[str, str] = {}

    def run(self) -> None:
        if self.cfg.default_queue is not None:
            problem = self.unknown_queue(self.cfg.default_queue)
            if problem:
                self.error(("default_queue",), problem)
        self._dnis()
        self._agents()
        self._unneeded_skills()
        for name, queue in self.cfg.queues.items():
            self._queue(name, queue)

    def _report(
        self, into: list[tuple[tuple[int, int], str]], path: Sequence[object], message: str, at_key: bool
    ) -> None:
        where = self.source.locate_key(path) if at_key else self.source.locate(path)
        # queue names and numbers read as integers (200, 4000) are still names: queues.200, not queues[200]
        named = path[:1] in (("queues",), ("dnis",))
        shown = format_path([str(part) if named and depth == 1 else part for depth, part in enumerate(path)])
        into.append(
            (
                (where.line, where.column),
                f"{self.source.file}:{where.line}:{where.column}: {shown}: {message}",
            )
        )

    def error(self, path: Sequence[object], message: str, *, at_key: bool = False) -> None:
        self._report(self.errors, path, message, at_key)

    def warning(self, path: Sequence[object], message: str, *, at_key: bool = False) -> None:
        self._report(self.warnings, path, message, at_key)

    def queue_path(self, name: str, *rest: object) -> tuple[object, ...]:
        return ("queues", self.queue_keys.get(name, name), *rest)

    def unknown_queue(self, name: str) -> str | None:
        if name in self.cfg.queues:
            return None
        close = self.close_match(name, self.cfg.queues)
        hint = f"did you mean '{close}'?" if close else "queues: " + self.listing("queues", self.cfg.queues)
        return f"unknown queue '{name}' ({hint})"

    def close_match(self, name: str, candidates: Iterable[str]) -> str | None:
        """The name `name` was likely meant to be; only for the first few problems, as difflib costs
        candidates x problems (a file of thousands of bad references must not take minutes)."""
        if self._suggestions_left <= 0:
            return None
        self._suggestions_left -= 1
        close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        return close[0] if close else None

    def listing(self, what: str, names: Iterable[str]) -> str:
        """Names for a message, sorted, the first ten of them: once per kind, however many errors."""
        if what not in self._listings:
            ordered = sorted(names)
            shown = ", ".join(ordered[:_LISTED])
            self._listings[what] = shown + (
                f", ... ({len(ordered)} in all)" if len(ordered) > _LISTED else ""
            )
        return self._listings[what]

    def _dnis(self) -> None:
        first: dict[str, str | int] = {}
        for key in self.dnis_keys:
            number = phone_digits(str(key))
            if number in first:
                at = self.source.locate_key(("dnis", first[number]))
                self.error(
                    ("dnis", key),
                    f"number {number} is already routed (line {at.line}, column {at.column})",
                    at_key=True,
                )
                continue
            first[number] = key
            problem = self.unknown_queue(self.cfg.dnis.get(str(key), ""))
            if problem:
                self.error(("dnis", key), problem)

    def _agents(self) -> None:
        ids: dict[str, int] = {}
        devices: dict[str, int] = {}
        for index, agent in enumerate(self.cfg.agents):
            if agent.id in ids:
                self.error(
                    ("agents", index, "id"), f"agent id '{agent.id}' is also used by agents[{ids[agent.id]}]"
                )
            ids.setdefault(agent.id, index)
            if agent.device in devices:
                self.error(
                    ("agents", index, "device"),
                    f"device '{agent.device}' is also used by agents[{devices[agent.device]}]",
                )
            devices.setdefault(agent.device, index)
            for position, queue in enumerate(agent.queues):
                problem = self.unknown_queue(queue)
                if problem:
                    self.error(("agents", index, "queues", position), problem)

    def _unneeded_skills(self) -> None:
        """An agent's skill that no queue asks for is most often a typo (`supprt`): that agent then
        silently stops getting the queue's calls, so check-config says so."""
        needed = {skill for queue in self.cfg.queues.values() for skill in queue.skills}
        listed = self.listing("skills", needed) or "none"
        for index, agent in enumerate(self.cfg.agents):
            for skill in agent.skills:
                if skill in needed:
                    continue
                close = self.close_match(skill, needed)
                hint = f"did you mean '{close}'? " if close else ""
                self.warning(
                    ("agents", index, "skills", skill),
                    f"no queue needs skill '{skill}' ({hint}queues need: {listed})",
                    at_key=True,
                )

    def _queue(self, name: str, queue: Queue) -> None:
        if queue.hours is not None and queue.hours not in self.cfg.hours:
            known = self.listing("hours", self.cfg.hours) or "none are defined"
            self.error(self.queue_path(name, "hours"), f"unknown hours '{queue.hours}' (hours: {known})")
        closed = queue.closed_queue
        if closed is not None:
            problem = self.unknown_queue(closed)
            if problem:
                self.error(self.queue_path(name, "closed_action"), problem)
        self._overflow(name, queue)
        self._served(name, queue)

    def _overflow(self, name: str, queue: Queue) -> None:
        previous: float | None = None
        ended = False
        for index, step in enumerate(queue.overflow):
            path = self.queue_path(name, "overflow", index)
            if step.queue is not None:
                problem = self.unknown_queue(step.queue)
                if step.queue == name:
                    problem = "a queue cannot overflow into itself"
                if problem:
                    self.error((*path, "queue"), problem)
            if step.after_s >= queue.max_wait_s:
                self.warning(
                    (*path, "after_s"),
                    f"never reached: callers leave the queue at max_wait_s ({queue.max_wait_s:g})",
                )
            elif previous is not None and step.after_s <= previous:
                self.warning(
                    (*path, "after_s"),
                    f"steps must be in increasing order of after_s; the step before is at {previous:g}",
                )
            elif ended:
                self.warning((*path, "after_s"), "never reached: an earlier step sends the call away")
            previous = step.after_s if previous is None else max(previous, step.after_s)
            ended = ended or step.action in ("callback", "voicemail")

    def _served(self, name: str, queue: Queue) -> None:
        members = self._members.get(name, [])
        missing = sorted(skill for skill in queue.skills if skill not in self._agent_skills)
        for skill in missing:
            self.error(self.queue_path(name, "skills", skill), f"no agent has skill {skill}", at_key=True)
        if missing:
            return
        if not members:
            self.error(self.queue_path(name), "nobody can serve this queue: no agent lists it", at_key=True)
        elif not any(_qualified(agent, queue.skills.items()) for agent in members):
            needs = ", ".join(f"{skill} {level}" for skill, level in sorted(queue.skills.items()))
            who = ", ".join(agent.id for agent in members)
            self.error(
                self.queue_path(name),
                f"nobody can serve this queue: none of its agents ({who}) has {needs} or better",
                at_key=True,
            )


def _qualified(agent: Agent, needs: Iterable[tuple[str, int]]) -> bool:
    return all(agent.skills.get(skill, 0) >= level for skill, level in needs)


def queue_policies(cfg: RoutingConfig) -> dict[str, QueuePolicy]:
    """The routing engine's view of every queue."""
    policies: dict[str, QueuePolicy] = {}
    for name, queue in cfg.queues.items():
        widen = next((step for step in queue.overflow if step.action == "widen"), None)
        add = next((step for step in queue.overflow if step.action == "add_queue"), None)
        policies[name] = QueuePolicy(
            name=name,
            skills=tuple(sorted(queue.skills.items())),
            strategy=queue.strategy,
            ring_timeout_s=queue.ring_timeout_s,
            wrap_up_s=queue.wrap_up_s,
            widen_after_s=widen.after_s if widen else None,
            widen_by=(widen.widen_by or 0) if widen else 0,
            add_queue_after_s=add.after_s if add else None,
            add_queue=(add.queue or "") if add else "",
        )
    return policies


def agent_views(
    cfg: RoutingConfig, status: AgentState = AgentState.LOGGED_OUT, status_since: float = 0.0
) -> tuple[AgentView, ...]:
    """Every configured agent as the routing engine sees them, all in one status (before live state)."""
    return tuple(
        AgentView(
            agent_id=agent.id,
            device=agent.device,
            status=status,
            status_since=status_since,
            skills=tuple(sorted(agent.skills.items())),
            queues=agent.queues,
        )
        for agent in cfg.agents
    )


def is_open(cfg: RoutingConfig, queue: str, when: datetime) -> bool:
    """Whether `queue` takes calls at `when` (timezone-aware): its weekly hours, minus holidays."""
    if when.tzinfo is None:
        raise ValueError("is_open needs a timezone-aware datetime")
    hours_name = cfg.queues[queue].hours
    if hours_name is None:
        return True
    hours = cfg.hours[hours_name]
    local = when.astimezone(ZoneInfo(hours.timezone))
    if local.date() in hours.holidays:
        return False
    minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 60e6
    for written in hours.weekly.get(WEEKDAYS[local.weekday()], ()):
        match = _TIME_RANGE.fullmatch(written.strip())
        assert match is not None  # validated when loaded
        start = int(match["h1"]) * 60 + int(match["m1"])
        end = int(match["h2"]) * 60 + int(match["m2"])
        if start <= minute < end:
            return True
    return False
