"""Prometheus metrics of ctid: `ctid_` prefix, base units, bounded labels (never a number or a call id)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class AmiEventCounts(Collector):
    """`ctid_ami_events_total{server,event}`, read at scrape time from plain per-connection counts.

    Counting in a dict on the hot path costs a fraction of a Prometheus counter's locked increment. The label
    set is bounded at the source: a connection counts any name outside ctid.ami.client.COUNTED_EVENTS as
    `other`, so a server that invents names adds one series, not one per name.
    """

    def __init__(self) -> None:
        self.sources: dict[str, Callable[[], Mapping[str, int]]] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("ctid_ami_events", "AMI events received", labels=["server", "event"])
        for server, counts in list(self.sources.items()):
            for event, count in sorted(counts().items()):
                family.add_metric([server, event], count)
        yield family


AMI_EVENTS = AmiEventCounts()
REGISTRY.register(AMI_EVENTS)
AMI_CONNECTED = Gauge("ctid_ami_connected", "1 while the AMI session to a server is logged in", ["server"])
AMI_RECONNECTS = Counter(
    "ctid_ami_reconnects_total", "AMI reconnections after a lost or failed session", ["server"]
)
AMI_ACTION_SECONDS = Histogram(
    "ctid_ami_action_seconds",
    "AMI action round trip, send to response",
    ["server", "action"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
AMI_MALFORMED = Counter("ctid_ami_malformed_total", "Malformed AMI lines or blocks skipped", ["server"])
CALLS_ACTIVE = Gauge("ctid_calls_active", "Calls Asterisk has up now, by state", ["state"])
DOMAIN_EVENTS = Counter("ctid_domain_events_total", "Domain events derived from AMI", ["kind"])
AGI_SESSIONS = Counter("ctid_agi_sessions_total", "FastAGI sessions served", ["script", "outcome"])
CALLS_WAITING = Gauge("ctid_calls_waiting", "Contacts waiting in a queue now", ["queue"])
LONGEST_WAIT = Gauge("ctid_longest_wait_seconds", "Wait of the longest-waiting contact in a queue", ["queue"])
AGENTS = Gauge("ctid_agents", "Agents of a queue by state", ["queue", "state"])
ROUTING_DECISION_SECONDS = Histogram(
    "ctid_routing_decision_seconds",
    "One routing pass: queue rules and decide() over every waiting contact",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1),
)
ROUTING_COMMANDS = Counter("ctid_routing_commands_total", "Routing commands sent", ["command", "outcome"])
# outcome: ok, refused (Asterisk said Error), timeout, not_connected, failed
COMMAND_RESULTS = Counter(
    "ctid_commands_total", "Commands carried out over AMI, by command and outcome", ["command", "outcome"]
)
SERVICE_LEVEL = Gauge("ctid_service_level_ratio", "Service level today (METRICS.md), by queue", ["queue"])
ABANDON_RATIO = Gauge("ctid_abandon_ratio", "Abandon rate today (METRICS.md), by queue", ["queue"])
WAIT_SECONDS = Histogram(
    "ctid_wait_seconds",
    "Queue wait of contacts that left the queue (answered or abandoned)",
    ["queue", "outcome"],
    buckets=(5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600),
)
HANDLE_SECONDS = Histogram(
    "ctid_handle_seconds",
    "An agent's time on a contact, answer to leaving it (talk and hold)",
    ["queue"],
    buckets=(30, 60, 120, 180, 240, 300, 450, 600, 900, 1800),
)
# the push hub's topics: registered names (every `agent:<id>` counted under `agent:`), so the set is bounded
PUSH_SUBSCRIBERS = Gauge("ctid_push_subscribers", "Browsers subscribed to a push topic now", ["topic"])
PUSH_MESSAGES = Counter("ctid_push_messages_total", "Messages published to a push topic", ["topic"])
PUSH_CLOSED = Counter(
    "ctid_push_closed_total", "Subscribers the push hub closed, by topic and reason", ["topic", "reason"]
)
