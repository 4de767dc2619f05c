"""The ACD driving pbxsim's world through ctid's own state model: priorities, ring-no-answer, wrap-up."""

from __future__ import annotations

from ctid.agents import AgentBook, AgentRecord, AgentState
from ctid.ami.events import decode_event, relevant
from ctid.ami.message import AmiMessage
from ctid.state import CallStateModel
from ctid.state import domain as d
from pbxsim import Endpoint, World, scripted_peer
from routing.acd import Acd
from routing.model import QueuePolicy

TIERS = {"13800000001": "C", "13800000002": "A"}


class Site:
    """pbxsim's world, ctid's model and the ACD wired as the daemon wires them, in virtual time."""

    def __init__(self, phones: list[Endpoint], ring_timeout_s: float = 5.0) -> None:
        peer = scripted_peer({"inbound": ['SET VARIABLE CTID_QUEUE "sales"']})
        trunk = Endpoint("trunk", "", "", "ctid-inbound", answer_after=None)
        self.world = World(seed=3, endpoints=(*phones, trunk), agi_peer=peer)
        self.model = CallStateModel()
        records = [AgentRecord(f"agent-{p.name}", p.device, queues=("sales",)) for p in phones]
        self.acd = Acd(
            {"sales": QueuePolicy("sales", ring_timeout_s=ring_timeout_s, wrap_up_s=10)},
            AgentBook(records, wrap_up_s=10),
            priority_of=lambda tier, customer: {"A": 100.0, "B": 50.0}.get(tier, 10.0),
        )
        self.events: list[d.DomainEvent] = []
        self.n = 0

    def ready(self, *agent_ids: str) -> None:
        for agent_id in agent_ids:
            self.acd.agents.set_state(agent_id, AgentState.READY, self.world.now)

    def feed(self, messages: list[AmiMessage]) -> None:
        for msg in messages:
            if relevant(msg):
                event = decode_event(msg)
                for domain_event in self.model.apply(event, event.ts or self.world.now):
                    self.events.append(domain_event)
                    self.acd.apply(domain_event, self.world.now)

    def action(self, name: str, **headers: str) -> None:
        self.n += 1
        result = self.world.handle_action(
            AmiMessage([("Action", name), ("ActionID", f"t{self.n}"), *headers.items()])
        )
        self.feed(result.events)

    def call(self, number: str) -> str:
        channel = self.world.sip_call("trunk", "4000", cid_num=number, cid_name=number).name
        self.run(0.5)
        # the IVR would set the tier from the customer record; here the test plays that part
        self.action("Setvar", Channel=channel, Variable="CTID_TIER", Value=TIERS.get(number, "C"))
        return channel

    def run(self, seconds: float) -> None:
        end = self.world.now + seconds
        while self.world.now < end:
            self.feed(self.world.advance(min(end, self.world.now + 0.25)))
            for offer in self.acd.step(self.world.now):
                self.action("Setvar", Channel=offer.channel, Variable="CTID_AGENT_DIAL", Value=offer.device)
                self.action(
                    "Setvar",
                    Channel=offer.channel,
                    Variable="CTID_RING_TIMEOUT",
                    Value=f"{offer.ring_timeout_s:g}",
                )
                self.action(
                    "Redirect", Channel=offer.channel, Context="ctid-connect", Exten="s", Priority="1"
                )

    def connected(self) -> list[tuple[str, str]]:
        return [(e.linkedid, e.agent) for e in self.events if isinstance(e, d.CallConnected)]


def test_a_tier_a_caller_arriving_after_a_tier_c_caller_is_connected_first() -> None:
    site = Site([Endpoint("1001", "1001", "Agent 1001")])
    c_caller = site.call("13800000001")
    site.run(3)
    a_caller = site.call("13800000002")
    site.run(1)
    site.ready("agent-1001")
    site.run(4)
    (first,) = site.connected()
    assert site.model.calls[first[0]].contact_channel == a_caller
    assert c_caller in {w.channel for w in site.acd.waiting.values()}


def test_ring_no_answer_pauses_the_agent_and_the_call_reaches_the_next_one() -> None:
    deaf = Endpoint("1001", "1001", "Agent 1001", answer_after=None)
    site = Site([deaf, Endpoint("1002", "1002", "Agent 1002")], ring_timeout_s=3)
    site.ready("agent-1001")
    site.run(1)
    site.ready("agent-1002")  # 1001 has been idle longer: offered first
    site.call("13800000001")
    site.run(10)
    rna = [e for e in site.events if isinstance(e, d.RingNoAnswer)]
    assert [e.agent for e in rna] == ["PJSIP/1001"]
    assert [agent for _, agent in site.connected()] == ["PJSIP/1002"]
    paused = site.acd.agents.agents["agent-1001"]
    assert (paused.status, paused.pause_reason) == (AgentState.PAUSED, "no-answer")
    waits = [e for e in site.events if isinstance(e, d.CallWaiting)]
    assert waits[1].requeued and waits[1].arrived_at == waits[0].arrived_at


def test_after_the_call_the_agent_wraps_up_then_takes_the_next_caller() -> None:
    site = Site([Endpoint("1001", "1001", "Agent 1001")])
    site.ready("agent-1001")
    first = site.call("13800000001")
    site.run(4)
    second = site.call("13800000001")
    site.run(2)
    channel = site.world.find_channel(first)
    assert channel is not None
    site.world.hangup(channel, 16)
    site.run(1)
    assert site.acd.agents.agents["agent-1001"].status is AgentState.WRAP_UP
    site.run(12)  # wrap-up is 10 s
    linked = [link for link, _ in site.connected()]
    assert len(linked) == 2 and site.model.calls[linked[1]].contact_channel == second
