"""A customer book to write to in tests, and the bus events of a simulated call from a customer."""

from __future__ import annotations

from ctid.state import domain as d

CUSTOMERS_CSV = (
    "id,name,phones,revenue_12m,tenure_years,cost_to_serve,lifecycle,vip\n"
    "c1,Acme Ltd,+44 20 7946 0958,120000.00,6.5,8000,client,yes\n"
    "c2,Bob Stone,(415) 555-0100,900,0.5,50,lost,no\n"
)


def customer_call(
    linkedid: str, customer: str, device: str, at: float, *, wait_s: float = 12.0, talk_s: float = 90.0
) -> list[d.DomainEvent]:
    """A call from `customer` that waits in `sales`, rings `device`, is answered after `wait_s` and ends
    `talk_s` later with the agent leaving."""
    answered = at + wait_s
    return [
        d.CallArrived(
            at, linkedid, linkedid, "PJSIP/trunk-1", d.Direction.INBOUND, "442079460958", "", "200"
        ),
        d.CallVariable(at, linkedid, "CTID_CUSTOMER", customer),
        d.CallWaiting(at + 1, linkedid, linkedid, "sales", at, False),
        d.AgentRinging(answered - 2, linkedid, linkedid, device, f"{device}-1", "sales"),
        d.CallConnected(answered, linkedid, device, f"{device}-1", "sales", wait_s),
        d.AgentLeftCall(answered + talk_s, linkedid, device),
        d.CallEnded(answered + talk_s, linkedid, 16, "agent", "answered"),
    ]
