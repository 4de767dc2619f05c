"""Routing commands as the AMI actions that carry them out (the dialplan contract, ARCHITECTURE.md).

Pure: the daemon sends these over AMI; the benchmark hands the same actions to pbxsim's world.
"""

from __future__ import annotations

from routing.model import Command, MoveToQueue, OfferCall, SendTo

AmiAction = tuple[str, dict[str, str]]

# where each action of routing.yaml sends a contact (config/asterisk/extensions_ctid.conf)
SEND_CONTEXTS = {"voicemail": "ctid-voicemail", "callback": "ctid-callback"}


def _setvar(channel: str, name: str, value: str) -> AmiAction:
    return ("Setvar", {"Channel": channel, "Variable": name, "Value": value})


def _redirect(channel: str, context: str) -> AmiAction:
    return ("Redirect", {"Channel": channel, "Context": context, "Exten": "s", "Priority": "1"})


def ami_actions(command: Command) -> list[AmiAction]:
    """The AMI actions, in order, that carry out one routing command."""
    if isinstance(command, OfferCall):
        return [
            _setvar(command.channel, "CTID_AGENT_DIAL", command.device),
            _setvar(command.channel, "CTID_RING_TIMEOUT", f"{command.ring_timeout_s:g}"),
            _redirect(command.channel, "ctid-connect"),
        ]
    # CTID_SENT_TO first: the AMI stream then says why the contact left its queue (CallDeflected.reason)
    if isinstance(command, MoveToQueue):
        return [
            _setvar(command.channel, "CTID_SENT_TO", f"queue:{command.reason}"),
            _setvar(command.channel, "CTID_QUEUE", command.queue),
        ]
    if isinstance(command, SendTo):
        sent_to = _setvar(command.channel, "CTID_SENT_TO", f"{command.action}:{command.reason}")
        if command.action == "hangup":
            return [sent_to, ("Hangup", {"Channel": command.channel, "Cause": "16"})]
        return [sent_to, _redirect(command.channel, SEND_CONTEXTS[command.action])]
    raise TypeError(f"no AMI form for {type(command).__name__}")
