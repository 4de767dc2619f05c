"""Prometheus metrics of ctid: `ctid_` prefix, base units, bounded labels (never a number or a call id)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

AMI_EVENTS = Counter("ctid_ami_events_total", "AMI events received", ["server", "event"])
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
