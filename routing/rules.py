"""Queue rules that send waiting contacts away rather than to an agent (pure).

Closed hours (the queue's `closed_action`), overflow steps that offer a callback or voicemail, and the
queue's `max_wait_s`. `queue:<name>` moves the contact to another queue; everything else leaves it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ctid.commands import Command, MoveToQueue, SendTo
from routing.config import RoutingConfig, is_open
from routing.model import WaitingCall

LEAVING = ("callback", "voicemail", "hangup")


def _command(call: WaitingCall, action: str, reason: str) -> Command:
    if action.startswith("queue:"):
        return MoveToQueue(call.linkedid, call.channel, action.removeprefix("queue:"), reason)
    return SendTo(call.linkedid, call.channel, call.queue, action, reason)


def queue_rules(cfg: RoutingConfig, waiting: Iterable[WaitingCall], now: float) -> list[Command]:
    """What to do now with each waiting contact that its queue's rules send away, in arrival order."""
    when = datetime.fromtimestamp(now, UTC)
    open_now: dict[str, bool] = {}
    out: list[Command] = []
    for call in sorted(waiting, key=lambda c: (c.arrived_at, c.linkedid)):
        queue = cfg.queues.get(call.queue)
        if queue is None:
            continue
        if call.queue not in open_now:
            open_now[call.queue] = is_open(cfg, call.queue, when)
        if not open_now[call.queue]:
            out.append(_command(call, queue.closed_action, "closed"))
            continue
        waited = now - call.arrived_at
        step = next(
            (s for s in queue.overflow if s.action in LEAVING and waited >= s.after_s),
            None,
        )
        if step is not None:
            out.append(_command(call, step.action, "overflow"))
        elif waited >= queue.max_wait_s:
            last = next((s.action for s in reversed(queue.overflow) if s.action in LEAVING), None)
            fallback = queue.closed_action if queue.closed_action != "hangup" else "voicemail"
            out.append(_command(call, last or fallback, "max_wait"))
    return out
