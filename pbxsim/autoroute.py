"""A naive stand-in router that drives the world directly: waiting callers go to the first free agent.

It is not ctid's routing: benchmarks and the demo use it to make realistic AMI traffic (answered, held,
transferred calls) without depending on the code they measure.
"""

from __future__ import annotations

import itertools

from ctid import dialplan
from ctid.ami.message import AmiMessage
from pbxsim.world import World


class AutoRouter:
    """Connects each caller who starts waiting in ctid-wait to a free agent phone (Setvar + Redirect)."""

    def __init__(self, world: World, agents: list[str]) -> None:
        self.world = world
        self.free = list(agents)
        self.busy: dict[str, str] = {}  # agent -> caller channel
        self._ids = itertools.count(1)

    def action(self, name: str, **headers: str) -> list[AmiMessage]:
        """Run an action on the world; returns the events it caused."""
        msg = AmiMessage([("Action", name), ("ActionID", f"autoroute-{next(self._ids)}"), *headers.items()])
        return self.world.handle_action(msg).events

    def observe(self, events: list[AmiMessage]) -> list[AmiMessage]:
        """Look at the world's new events; returns the events the router's own actions caused."""
        caused: list[AmiMessage] = []
        for ev in events:
            if ev.name == "Hangup" and ev["Channel"].startswith("PJSIP/"):
                agent = ev["Channel"].split("/")[1].rsplit("-", 1)[0]
                if agent in self.busy:
                    del self.busy[agent]
                    self.free.append(agent)
            if ev.name == "Newexten" and ev.get("Application") == "MusicOnHold" and self.free:
                agent = self.free.pop(0)
                caller = ev["Channel"]
                self.busy[agent] = caller
                caused += self.action(
                    "Setvar", Channel=caller, Variable=dialplan.AGENT_DIAL_VAR, Value=f"PJSIP/{agent}"
                )
                caused += self.action(
                    "Redirect", Channel=caller, Context=dialplan.CONNECT, Exten="s", Priority="1"
                )
        if caused:
            caused += self.observe(caused)
        return caused

    def run(self, seconds: float, step: float = 1.0) -> list[AmiMessage]:
        """Advance the world by `seconds` of virtual time, routing as it goes; returns every event."""
        out: list[AmiMessage] = []
        end = self.world.now + seconds
        while self.world.now < end:
            events = self.world.advance(min(end, self.world.now + step))
            out += events
            out += self.observe(events)
        return out
