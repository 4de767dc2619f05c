"""The agent book as a ctid component: its states saved across restarts, restored at start and settled by
the first resync, and every change to it published on the bus (origin `agents`) for the log and the
wallboard, and to browsers: each agent's own topic (`agent:<id>`, whose snapshot is the agent's state) and
the supervisors' (`supervisor`). Components that change the book (routing, later the dialer) call `flush`
after they do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import structlog

from ctid.agents.book import AgentBook, restore_agents
from ctid.agents.store import AgentStateStore
from ctid.bus import AGENTS, EventBus
from ctid.clock import Clock
from ctid.component import Component, Context
from ctid.push import AGENT_TOPIC, SUPERVISOR_TOPIC, Kind, PushHub
from ctid.state import domain as d

if TYPE_CHECKING:
    from ctid.state import CallStateModel

log = structlog.get_logger("ctid.agents")


def agents_component(ctx: Context) -> AgentsComponent:
    component = AgentsComponent(ctx.agents, AgentStateStore(ctx.engine), ctx.bus, ctx.clock, ctx.servers)
    component.push_to(ctx.hub)
    return component


class AgentsComponent(Component):
    name = AGENTS

    def __init__(
        self, book: AgentBook, store: AgentStateStore, bus: EventBus, clock: Clock, servers: tuple[str, ...]
    ) -> None:
        self.book = book
        self.store = store
        self.bus = bus
        self.clock = clock
        # the servers whose first resync settles the agents restored on a call
        self._first_sync_pending = set(servers)
        self.hub: PushHub | None = None

    def push_to(self, hub: PushHub) -> None:
        """Agents' state changes go to browsers too: each to its agent's topic and to the supervisors'."""
        hub.topic(AGENT_TOPIC, Kind.EVENTS, snapshot=self._agent_snapshot)
        hub.topic(SUPERVISOR_TOPIC, Kind.EVENTS)
        self.hub = hub

    def _agent_snapshot(self, topic: str) -> str | None:
        agent = self.book.agents.get(topic.removeprefix(AGENT_TOPIC))
        if agent is None:
            return None
        return json.dumps({"kind": "AgentState", **agent.to_dict(self.clock.now())})

    def flush(self) -> None:
        """Publish the book's state changes since the last flush and save the agents they moved."""
        changes = self.book.take_changes()
        if changes:
            self.bus.publish(AGENTS, list(changes))
            if self.hub is not None:
                self._push(self.hub, changes)
        saved = self.book.take_saved()
        if saved:
            self.store.save(saved)

    @staticmethod
    def _push(hub: PushHub, changes: list[d.AgentStateChanged]) -> None:
        for change in changes:
            message = json.dumps(change.to_dict())
            hub.publish(AGENT_TOPIC + change.agent, message)
            hub.publish(SUPERVISOR_TOPIC, message)

    async def start(self) -> None:
        """Agents keep their states across a restart (the agents configured by now, as routing.yaml says);
        those saved on a call wait for the first resync."""
        saved = await self.store.load()
        restored = restore_agents(saved or {}, list(self.book.agents.values()), self.clock.now())
        self.book.adopt(restored)
        log.info("agent_states_restored", saved=saved is not None, **restored.counts)
        if not self._first_sync_pending:  # no Asterisk server: no resync will come to settle them
            self.book.confirm_calls({}, self.clock.now())
        self.flush()
        self.store.start()

    def synced(self, server: str, models: Mapping[str, CallStateModel]) -> None:
        """Agents restored on a call keep it only if their phone is on one: settled by the first resync of
        the server that lists their phone, and once every server has resynced, for all."""
        if server not in self._first_sync_pending:
            return
        self._first_sync_pending.discard(server)
        model = models[server]
        devices: set[str] | None = {*model.devices, *model.agents}
        if not self._first_sync_pending:
            devices = None
        on_call = {
            device: phone.call
            for each in models.values()
            for device, phone in each.agents.items()
            if phone.call
        }
        released = self.book.confirm_calls(on_call, self.clock.now(), devices)
        self.flush()
        log.info("agent_calls_confirmed", server=server, on_call=len(on_call), released=released)

    async def close(self) -> None:
        await self.store.close()  # after everything that changes agents
