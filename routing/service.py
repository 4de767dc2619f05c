"""The ACD inside the daemon: domain events in, commands out to `execute` (ctid's CommandExecutor).

Thin around the pure parts: `Acd` (waiting contacts, agent states, `decide`) and `queue_rules` (closed
hours, overflow out, max wait). It keeps which server each call is on, runs a routing pass after every
batch of events and once a second (ageing, overflow steps, wrap-up ends), and has each command carried
out on the call's server; an offer that fails (Asterisk refused it, or the link was lost) is undone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog

from ctid import dialplan
from ctid.agents import (
    STAFFED,
    AgentBook,
    AgentRecord,
    AgentState,
    AgentStateError,
)
from ctid.bus import from_server
from ctid.clock import Clock
from ctid.commands import Command, MoveToQueue, OfferCall, SendTo, SetVariable
from ctid.component import Ticker
from ctid.customers import CustomerValue, Tier
from ctid.executor import CommandFailed, CommandResult
from ctid.metrics import (
    AGENTS,
    CALLS_WAITING,
    HANDLE_SECONDS,
    LONGEST_WAIT,
    ROUTING_COMMANDS,
    ROUTING_DECISION_SECONDS,
)
from ctid.state import domain as d
from routing.acd import Acd
from routing.config import RoutingConfig, queue_policies
from routing.engine import effective_priority
from routing.rules import queue_rules
from routing.value import PriorityRules, base_priority

log = structlog.get_logger("routing.service")

# (server, command) -> how it went (ctid.executor.CommandExecutor.execute)
Execute = Callable[[str, Command], Awaitable[CommandResult]]
TICK_S = 0.25
DEFAULT_HANDLE_S = 240.0  # a queue's talk time until its own calls say otherwise
HANDLE_EMA = 0.1  # weight of the newest call in a queue's running talk time


def priority_rules(cfg: RoutingConfig) -> PriorityRules:
    p = cfg.priorities
    return PriorityRules(
        base={Tier.A: p.base.A, Tier.B: p.base.B, Tier.C: p.base.C},
        open_complaint_boost=p.open_complaint_boost,
        lost_customer_boost=p.lost_customer_boost,
        vip_boost=p.vip_boost,
        ageing_per_s=p.ageing_per_s,
        head_start_after_s=p.head_start_after_s,
        unknown_tier=Tier(cfg.tiers.default_tier),
    )


def agent_records(cfg: RoutingConfig, now: float) -> list[AgentRecord]:
    """routing.yaml's agents, logged out since `now` (ctid's start or the reload that added them)."""
    return [
        AgentRecord(
            a.id,
            a.device,
            name=a.name,
            skills=tuple(sorted(a.skills.items())),
            queues=tuple(a.queues),
            since=now,
        )
        for a in cfg.agents
    ]


@dataclass(slots=True)
class _Sent:
    server: str
    command: Command


class RoutingService:
    """One site's inbound routing, fed by the bus, acting through `execute`."""

    def __init__(
        self,
        cfg: RoutingConfig,
        agents: AgentBook,
        execute: Execute,
        clock: Clock,
        *,
        flush_agents: Callable[[], None] | None = None,
    ) -> None:
        self.execute = execute
        # publishes and saves what routing changed in the book (ctid.agents' component); None: dropped
        self.flush_agents = flush_agents
        self.clock = clock
        self.values: dict[str, CustomerValue] = {}  # customer id -> value figures, filled by the IVR
        self.book = agents  # shared: routing.yaml's agents are configured into it here
        self.book.configure(agent_records(cfg, clock.now()))
        self.cfg = cfg
        self.rules = priority_rules(cfg)
        self.acd = Acd(
            queue_policies(cfg),
            self.book,
            priority_of=self._priority_of,
            ageing_per_s=self.rules.ageing_per_s,
            head_start_after_s=self.rules.head_start_after_s,
            default_tier=cfg.tiers.default_tier,
        )
        self.server_of: dict[str, str] = {}  # linkedid -> the server the call is on
        self.handle_s: dict[str, float] = {}  # queue -> running average talk time, for estimated waits
        self._talking: dict[str, tuple[str, float]] = {}  # linkedid -> (queue, connected at)
        self._kicked = False
        self._tasks: set[asyncio.Task[None]] = set()
        # a pass each tick even without events: waits age, overflow steps fall due, wrap-ups end
        self.ticker = Ticker("routing", TICK_S, self._pass)

    # ---- configuration ----------------------------------------------------------------------------

    def _priority_of(self, tier: str, customer: str) -> float:
        known = tier if tier in ("A", "B", "C") else None
        return base_priority(Tier(known) if known else None, self.values.get(customer), self.rules)

    def apply_config(self, cfg: RoutingConfig) -> None:
        """A new routing.yaml: queues, priorities and agents change at once, for callers already waiting too.

        Agents keep their live state; new agents start logged out; removed agents are dropped once idle.
        """
        self.cfg = cfg
        self.rules = priority_rules(cfg)
        self.book.configure(agent_records(cfg, self.clock.now()))
        self.acd.default_tier = cfg.tiers.default_tier
        self.acd.reconfigure(
            queue_policies(cfg), self._priority_of, self.rules.ageing_per_s, self.rules.head_start_after_s
        )
        self.kick()

    # ---- events in --------------------------------------------------------------------------------

    def on_event(self, server: str, event: d.DomainEvent) -> None:
        # only an Asterisk server's events say where a call is; a component's (our own agent states) do not
        if event.linkedid and from_server(server):
            if isinstance(event, d.CallEnded):
                self.server_of.pop(event.linkedid, None)
            else:
                self.server_of[event.linkedid] = server
        if isinstance(event, d.AgentStateChanged):
            self.kick()  # an agent may be free now (restored, released by a resync, set by another component)
            return
        if isinstance(event, d.QueueAssigned):
            self._spawn(self._set_queue_variable(server, event))
        if isinstance(event, d.CallConnected):
            self._talking[event.linkedid] = (event.queue, event.at)
        elif isinstance(event, d.AgentLeftCall | d.CallEnded) and event.linkedid in self._talking:
            queue, since = self._talking.pop(event.linkedid)
            talk = max(0.0, event.at - since)
            HANDLE_SECONDS.labels(queue).observe(talk)
            previous = self.handle_s.get(queue)
            self.handle_s[queue] = talk if previous is None else previous + HANDLE_EMA * (talk - previous)
        self.acd.apply(event, event.at)
        self._publish_changes()
        self.kick()

    def set_agent_state(self, agent_id: str, status: AgentState, reason: str = "") -> dict[str, Any]:
        """An agent's own change (ready, paused with a reason, logged out); raises AgentStateError."""
        if status is AgentState.PAUSED and reason not in self.cfg.pause_reasons:
            raise AgentStateError(
                f"unknown pause reason '{reason}' (pause_reasons: {', '.join(self.cfg.pause_reasons)})"
            )
        now = self.clock.now()
        agent = self.book.set_state(agent_id, status, now, reason)
        log.info("agent_state", agent=agent_id, status=status.value, reason=reason)
        self._publish_changes()
        self.kick()
        return agent.to_dict(now)

    # ---- routing passes ---------------------------------------------------------------------------

    def _publish_changes(self) -> None:
        if self.flush_agents is not None:
            self.flush_agents()
        else:  # nobody keeps them (replays, tests of the parts): the book does not hoard them either
            self.book.take_changes()
            self.book.take_saved()

    def kick(self) -> None:
        """Route soon: once for a whole batch of events, not once per event."""
        if self._kicked:
            return
        self._kicked = True
        try:
            asyncio.get_running_loop().call_soon(self._pass)
        except RuntimeError:  # no loop (replays, tests of the pure parts): the caller runs step()
            self._kicked = False

    def route_now(self) -> None:
        """One routing pass at once (simulations drive time themselves instead of the ticker)."""
        self._pass()

    def _pass(self) -> None:
        self._kicked = False
        for server, command in self.step(self.clock.now()):
            self._spawn(self._execute(server, command))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(work)
        except RuntimeError:  # no loop (replays, tests of the pure parts): nothing is sent
            work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _set_queue_variable(self, server: str, event: d.QueueAssigned) -> None:
        """ctid chose the contact's queue: CTID_QUEUE on the channel says so, so Asterisk's records agree."""
        bound = log.bind(linkedid=event.linkedid, uniqueid=event.uniqueid, server=server)
        command = SetVariable(event.channel, dialplan.QUEUE_VAR, event.queue, linkedid=event.linkedid)
        result = await self.execute(server, command)
        if isinstance(
            result, CommandFailed
        ):  # a lost link: the resync reads CTID_QUEUE back and chooses again
            bound.warning("queue_variable_failed", error=result.message, reason=result.reason)
        # the dialplan named no queue, or one routing.yaml lacks: its IVR step failed or ctid was away
        bound.warning("call_queue_assigned", queue=event.queue, asked=event.asked, ok=result.ok)

    def step(self, now: float) -> list[tuple[str, Command]]:
        """One routing pass: queue rules first (closed, overflow out, max wait), then offers to agents."""
        started = time.perf_counter()
        self.book.tick(now)
        out: list[tuple[str, Command]] = []
        for command in queue_rules(self.cfg, list(self.acd.waiting.values()), now):
            assert isinstance(command, SendTo | MoveToQueue)
            server = self.server_of.get(command.linkedid)
            if server is not None and self.acd.take(command.linkedid) is not None:
                out.append((server, command))
        for offer in self.acd.step(now):
            server = self.server_of.get(offer.linkedid)
            if server is None:
                self.acd.offer_failed(offer, now)
            else:
                out.append((server, offer))
        ROUTING_DECISION_SECONDS.observe(time.perf_counter() - started)
        self._publish_changes()
        return out

    async def _execute(self, server: str, command: Command) -> None:
        name = command.kind
        bound = log.bind(linkedid=getattr(command, "linkedid", ""), server=server, command=name)
        result = await self.execute(server, command)
        ok = result.ok
        if isinstance(result, CommandFailed):  # refused, or a lost link or a timeout: the call did not move
            bound.warning(
                "routing_command_failed", action=result.action, reason=result.reason, error=result.message
            )
        ROUTING_COMMANDS.labels(name, "ok" if ok else "failed").inc()
        if isinstance(command, OfferCall):
            bound.info("call_offered", agent=command.agent_id, queue=command.queue, ok=ok)
            if not ok:
                self.acd.offer_failed(command, self.clock.now())
                self._publish_changes()
                self.kick()
        else:
            bound.info("call_sent_away", queue=getattr(command, "queue", ""), ok=ok)

    def start(self) -> None:
        self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- live view --------------------------------------------------------------------------------

    def queues(self, now: float | None = None) -> list[dict[str, Any]]:
        """Per queue: waiting contacts (wait, priority), agents by state, longest wait, estimated wait."""
        now = self.clock.now() if now is None else now
        views = {a.agent_id: a for a in self.book.views(now)}
        waiting_by_queue: dict[str, list[dict[str, Any]]] = {name: [] for name in self.cfg.queues}
        pending = [*self.acd.waiting.values()]
        for call in sorted(pending, key=lambda c: c.arrived_at):
            waiting_by_queue.setdefault(call.queue, []).append(
                {
                    "linkedid": call.linkedid,
                    "tier": call.tier,
                    "wait_s": round(now - call.arrived_at, 3),
                    "priority": round(
                        effective_priority(call, now, self.acd.ageing_per_s, self.acd.head_start_after_s), 3
                    ),
                }
            )
        out = []
        for name, queue in self.cfg.queues.items():
            members = [
                views[a.agent_id]
                for a in self.book.agents.values()
                if name in a.queues and a.agent_id in views
            ]
            states: dict[str, int] = {s.value: 0 for s in AgentState}
            for agent in members:
                states[agent.status.value] += 1
            waiting = sorted(waiting_by_queue.get(name, []), key=lambda w: -w["priority"])
            staffed = sum(states[s.value] for s in STAFFED)
            out.append(
                {
                    "queue": name,
                    "strategy": queue.strategy.value,
                    "waiting": waiting,
                    "calls_waiting": len(waiting),
                    "longest_wait_s": max((w["wait_s"] for w in waiting), default=0.0),
                    "agents": states,
                    "agent_ids": sorted(a.agent_id for a in members),
                    "estimated_wait_s": estimated_wait(
                        len(waiting), staffed, self.handle_s.get(name, DEFAULT_HANDLE_S) + queue.wrap_up_s
                    ),
                    "service_level": {
                        "target": queue.service_level.target,
                        "threshold_s": queue.service_level.threshold_s,
                    },
                }
            )
        return out

    def export_metrics(self) -> None:
        for queue in self.queues():
            name = queue["queue"]
            CALLS_WAITING.labels(name).set(queue["calls_waiting"])
            LONGEST_WAIT.labels(name).set(queue["longest_wait_s"])
            for state, count in queue["agents"].items():
                AGENTS.labels(name, state).set(count)


def estimated_wait(waiting: int, staffed: int, handle_s: float) -> float | None:
    """A new caller's expected wait: the callers ahead, served by the staffed agents, one handle time each.

    None when nobody is staffed: no estimate is honest then.
    """
    if staffed == 0:
        return None
    return round(waiting * handle_s / staffed, 1)
