"""The SIP endpoints a simulated site has: agents' phones and the customer or carrier trunks that call in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ctid import dialplan


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A PJSIP endpoint; `answer_after` is how long its phone rings before answering (None: never)."""

    name: str
    callerid_num: str
    callerid_name: str
    context: str = "sim-phones"
    registered: bool = True
    answer_after: float | None = 2.0

    @property
    def device(self) -> str:
        return f"PJSIP/{self.name}"


def agent_phones(numbers: Iterable[str], registered: bool = True) -> tuple[Endpoint, ...]:
    """Agents' desk phones `PJSIP/1001`..., calling in sim-phones, shown as "Agent 1001" <1001>."""
    return tuple(Endpoint(n, n, f"Agent {n}", "sim-phones", registered) for n in numbers)


def parse_agents(spec: str) -> tuple[str, ...]:
    """`1001-1010,2001` → ("1001", ..., "1010", "2001")."""
    out: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        first, sep, last = part.partition("-")
        if sep:
            width = len(first)
            out.extend(str(n).zfill(width) for n in range(int(first), int(last) + 1))
        else:
            out.append(first)
    return tuple(out)


def reference_site() -> tuple[Endpoint, ...]:
    """The endpoints of ../shared/asterisk/conf/pjsip.conf, none registered (as during the resync capture)."""
    return (
        *agent_phones(["1001", "1002", "1003", "1004"], registered=False),
        Endpoint("customer", "13800008888", "陈静", dialplan.INBOUND, registered=False, answer_after=None),
    )


def call_center_site(agents: Iterable[str], trunk: str = "trunk") -> tuple[Endpoint, ...]:
    """Registered agent phones plus a carrier trunk whose callers enter ctid-inbound."""
    return (
        *agent_phones(agents),
        Endpoint(trunk, "", "", dialplan.INBOUND, registered=True, answer_after=None),
    )
