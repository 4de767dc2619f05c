"""What ctid asks of Asterisk, as plain immutable commands, and the AMI actions that carry each one out.

Pure: components (routing, and later the dialer and screen pops) decide commands; `ctid.executor` sends
their actions to the server the caller names and answers with a typed result. The contexts and variables
used here are the dialplan contract (config/asterisk/extensions_ctid.conf).

Asterisk's AMI has no action that holds a channel or plays a prompt on it (a phone's hold is a SIP
re-INVITE, which ctid observes as Hold/Unhold events), so `Hold` and `PlayMessage` Redirect the channel to a
context of the contract that does it (`ctid-hold`: MusicOnHold; `ctid-message`: Playback of CTID_MESSAGE),
and `Unhold` Redirects it back to where it should go next (by default the agent's line, `ctid-connect`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ctid import dialplan

AmiAction = tuple[str, dict[str, str]]

# where each action of routing.yaml sends a contact (config/asterisk/extensions_ctid.conf)
SEND_CONTEXTS = {"voicemail": dialplan.VOICEMAIL, "callback": dialplan.CALLBACK}


@dataclass(frozen=True, slots=True)
class Command:
    """Base of what ctid asks an Asterisk server to do; `linkedid` names the call it is about ('' if none)."""

    @property
    def kind(self) -> str:
        """The command's name, a bounded metric label."""
        return type(self).__name__


@dataclass(frozen=True, slots=True)
class OfferCall(Command):
    """Setvar CTID_AGENT_DIAL / CTID_RING_TIMEOUT on the contact, then Redirect it to ctid-connect."""

    linkedid: str
    channel: str
    agent_id: str
    device: str
    ring_timeout_s: float
    queue: str
    priority: float = field(default=0.0)


@dataclass(frozen=True, slots=True)
class SendTo(Command):
    """Move a waiting contact out of the queue: to voicemail, a callback offer, or hang it up.

    `action` is one of routing.yaml's closed/overflow actions: voicemail, callback, hangup.
    """

    linkedid: str
    channel: str
    queue: str
    action: str
    reason: str  # closed, overflow, max_wait


@dataclass(frozen=True, slots=True)
class MoveToQueue(Command):
    """Put a waiting contact in another queue (closed_action queue:<name>); Asterisk's records follow."""

    linkedid: str
    channel: str
    queue: str
    reason: str


@dataclass(frozen=True, slots=True)
class SetVariable(Command):
    """Set a channel variable (CTID_QUEUE when ctid chose the contact's queue, ...)."""

    channel: str
    name: str
    value: str
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Originate(Command):
    """Dial `channel` (PJSIP/1001, Local/0612345678@ctid-dial) and run it at context/exten once it answers.

    ctid chooses the new channel's Uniqueid (and the Local channel's other half's), so the call is known by
    its ids before Asterisk says anything about it: Newchannel and OriginateResponse carry them, and the
    call's linkedid is `uniqueid`. Asynchronous: the response only says Asterisk queued it.
    """

    channel: str
    context: str
    exten: str
    uniqueid: str
    other_uniqueid: str = ""
    priority: int = 1
    timeout_s: float = 30.0
    caller_id: str = ""
    variables: tuple[tuple[str, str], ...] = ()

    @property
    def linkedid(self) -> str:
        return self.uniqueid


@dataclass(frozen=True, slots=True)
class Redirect(Command):
    """Send a channel to context,exten,priority of the dialplan."""

    channel: str
    context: str
    exten: str = "s"
    priority: int = 1
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Hangup(Command):
    channel: str
    cause: int = 16  # normal clearing
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Hold(Command):
    """Put a channel on music on hold (ctid-hold), with CTID_MOH's class if given."""

    channel: str
    moh_class: str = ""
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class Unhold(Command):
    """Take a held channel out of ctid-hold to where it goes next (the agent's line by default)."""

    channel: str
    context: str = dialplan.CONNECT
    exten: str = "s"
    linkedid: str = ""


@dataclass(frozen=True, slots=True)
class PlayMessage(Command):
    """Play a recorded prompt (`sound`, a file name without extension) to a channel (ctid-message); the
    channel then waits again in ctid-wait."""

    channel: str
    sound: str
    linkedid: str = ""


def new_uniqueid() -> str:
    """A fresh channel Uniqueid for Originate: unique across servers and restarts, within Asterisk's limit."""
    return f"ctid-{uuid.uuid4().hex}"


def _setvar(channel: str, name: str, value: str) -> AmiAction:
    return ("Setvar", {"Channel": channel, "Variable": name, "Value": value})


def _redirect(channel: str, context: str, exten: str = "s", priority: int = 1) -> AmiAction:
    return ("Redirect", {"Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority)})


def _originate(command: Originate) -> AmiAction:
    headers = {
        "Channel": command.channel,
        "Context": command.context,
        "Exten": command.exten,
        "Priority": str(command.priority),
        "Timeout": str(round(command.timeout_s * 1000)),
        "Async": "true",
        "ChannelId": command.uniqueid,
    }
    if command.other_uniqueid:
        headers["OtherChannelId"] = command.other_uniqueid
    if command.caller_id:
        headers["CallerID"] = command.caller_id
    if command.variables:
        headers["Variable"] = ",".join(f"{name}={value}" for name, value in command.variables)
    return ("Originate", headers)


def ami_actions(command: Command) -> list[AmiAction]:
    """The AMI actions, in order, that carry out one command."""
    if isinstance(command, OfferCall):
        return [
            _setvar(command.channel, dialplan.AGENT_DIAL_VAR, command.device),
            _setvar(command.channel, dialplan.RING_TIMEOUT_VAR, f"{command.ring_timeout_s:g}"),
            _redirect(command.channel, dialplan.CONNECT),
        ]
    # CTID_SENT_TO first: the AMI stream then says why the contact left its queue (CallDeflected.reason)
    if isinstance(command, MoveToQueue):
        return [
            _setvar(command.channel, dialplan.SENT_TO_VAR, f"queue:{command.reason}"),
            _setvar(command.channel, dialplan.QUEUE_VAR, command.queue),
        ]
    if isinstance(command, SendTo):
        sent_to = _setvar(command.channel, dialplan.SENT_TO_VAR, f"{command.action}:{command.reason}")
        if command.action == "hangup":
            return [sent_to, ("Hangup", {"Channel": command.channel, "Cause": "16"})]
        return [sent_to, _redirect(command.channel, SEND_CONTEXTS[command.action])]
    if isinstance(command, SetVariable):
        return [_setvar(command.channel, command.name, command.value)]
    if isinstance(command, Originate):
        return [_originate(command)]
    if isinstance(command, Redirect):
        return [_redirect(command.channel, command.context, command.exten, command.priority)]
    if isinstance(command, Hangup):
        return [("Hangup", {"Channel": command.channel, "Cause": str(command.cause)})]
    if isinstance(command, Hold):
        moh = [_setvar(command.channel, dialplan.MOH_VAR, command.moh_class)] if command.moh_class else []
        return [*moh, _redirect(command.channel, dialplan.HOLD)]
    if isinstance(command, Unhold):
        return [_redirect(command.channel, command.context, command.exten)]
    if isinstance(command, PlayMessage):
        return [
            _setvar(command.channel, dialplan.MESSAGE_VAR, command.sound),
            _redirect(command.channel, dialplan.MESSAGE),
        ]
    raise TypeError(f"no AMI form for {type(command).__name__}")
