"""Carries out commands on an Asterisk server over AMI and answers each caller with a typed result.

The one sender of AMI actions for the components: a command's actions go in order to the server the caller
names, and stop at the first one Asterisk refuses. An Originate's later OriginateResponse is matched to it
by ActionID (or by the Uniqueid ctid chose), for whoever waits for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from ctid.ami.events import AmiEvent, OriginateResponse
from ctid.ami.message import AmiMessage
from ctid.commands import Command, Originate, ami_actions
from ctid.errors import AmiActionError, AmiError, AmiNotConnected, AmiTimeout
from ctid.metrics import COMMAND_RESULTS

log = structlog.get_logger("ctid.executor")

UNMATCHED_KEPT = 256  # OriginateResponses kept for an Originate whose response is still being read


class AmiSender(Protocol):
    """What the executor needs of a connection (ctid.ami.client.AmiConnection)."""

    async def action(self, action: str, timeout: float | None = None, **headers: Any) -> AmiMessage: ...


@dataclass(frozen=True, slots=True)
class CommandSucceeded:
    command: Command
    server: str
    uniqueid: str = ""  # an Originate's channel, as ctid chose it
    action_id: str = ""  # an Originate's ActionID, which its OriginateResponse carries
    # an Originate's OriginateResponse, once it comes (CommandExecutor.originate_response)
    originated: asyncio.Future[OriginateResponse] | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class CommandFailed:
    """Asterisk refused an action (`reason` refused, `message` its Message), or the link failed under it
    (`reason` timeout or not_connected); the actions after `action` were not sent."""

    command: Command
    server: str
    action: str
    message: str
    reason: str = "refused"
    response: Mapping[str, str] = field(default_factory=dict)  # Asterisk's answer, empty for a lost link

    @property
    def ok(self) -> bool:
        return False


CommandResult = CommandSucceeded | CommandFailed


class CommandExecutor:
    """Sends commands' AMI actions through the named server's connection."""

    def __init__(self, connection_of: Callable[[str], AmiSender]) -> None:
        self._connection_of = connection_of
        # (server, ActionID or Uniqueid) -> the waiter of an Originate's OriginateResponse
        self._originates: dict[tuple[str, str], asyncio.Future[OriginateResponse]] = {}
        # OriginateResponses that came before their action's response was read (both in one read off the
        # socket): (server, ActionID) -> the event, the newest UNMATCHED_KEPT only
        self._early: dict[tuple[str, str], OriginateResponse] = {}

    async def execute(self, server: str, command: Command) -> CommandResult:
        result = await self._send(server, command)
        COMMAND_RESULTS.labels(command.kind, "ok" if result.ok else getattr(result, "reason", "failed")).inc()
        if isinstance(result, CommandFailed):
            log.warning(
                "command_failed",
                server=server,
                command=command.kind,
                linkedid=getattr(command, "linkedid", ""),
                action=result.action,
                reason=result.reason,
                message=result.message,
            )
        return result

    async def _send(self, server: str, command: Command) -> CommandResult:
        action_id = ""
        waiter: asyncio.Future[OriginateResponse] | None = None
        if isinstance(command, Originate):  # registered first: its OriginateResponse may come at once
            waiter = asyncio.get_running_loop().create_future()
            self._originates[(server, command.uniqueid)] = waiter
        for name, headers in ami_actions(command):
            fields: dict[str, Any] = headers  # header names never clash with action()'s timeout
            try:
                response = await self._connection_of(server).action(name, **fields)
            except AmiActionError as exc:
                return self._failed(command, server, name, exc.message, "refused", exc.response, waiter)
            except AmiTimeout as exc:
                return self._failed(command, server, name, str(exc), "timeout", {}, waiter)
            except (AmiNotConnected, KeyError) as exc:  # a link that is down, or a server ctid does not know
                return self._failed(command, server, name, str(exc) or server, "not_connected", {}, waiter)
            except AmiError as exc:
                return self._failed(command, server, name, str(exc), "failed", {}, waiter)
            except Exception as exc:  # a bug below never leaves the caller waiting for an answer
                log.exception("command_crashed", server=server, command=command.kind, action=name)
                return self._failed(
                    command, server, name, str(exc) or type(exc).__name__, "failed", {}, waiter
                )
            if response.get("Response") != "Success":
                message = response.get("Message", "")
                return self._failed(command, server, name, message, "refused", response.headers, waiter)
            action_id = response.get("ActionID", "")
        if isinstance(command, Originate):
            assert waiter is not None
            if action_id:
                self._originates[(server, action_id)] = waiter
                early = self._early.pop((server, action_id), None)
                if early is not None:
                    waiter.set_result(early)
            waiter.add_done_callback(lambda _: self._forget(server, command.uniqueid, action_id))
            return CommandSucceeded(command, server, command.uniqueid, action_id, waiter)
        return CommandSucceeded(command, server)

    def _failed(
        self,
        command: Command,
        server: str,
        action: str,
        message: str,
        reason: str,
        response: Mapping[str, str],
        waiter: asyncio.Future[OriginateResponse] | None,
    ) -> CommandFailed:
        if waiter is not None and isinstance(command, Originate):
            waiter.cancel()
            self._forget(server, command.uniqueid, "")
        return CommandFailed(command, server, action, message, reason, dict(response))

    def _forget(self, server: str, uniqueid: str, action_id: str) -> None:
        self._originates.pop((server, uniqueid), None)
        if action_id:
            self._originates.pop((server, action_id), None)

    # ---- originate correlation --------------------------------------------------------------------

    def on_ami_event(self, server: str, event: AmiEvent) -> None:
        """Feed the server's events: an OriginateResponse settles the Originate it answers."""
        if not isinstance(event, OriginateResponse):
            return
        for key in (event.action_id, event.uniqueid):
            waiter = self._originates.get((server, key)) if key else None
            if waiter is not None:
                if not waiter.done():
                    waiter.set_result(event)
                return
        if event.action_id:
            self._early[(server, event.action_id)] = event
            if len(self._early) > UNMATCHED_KEPT:
                del self._early[next(iter(self._early))]

    def forget_server(self, server: str) -> None:
        """The server's link is lost: its pending OriginateResponses will never come."""
        for key in [k for k in self._originates if k[0] == server]:
            self._originates.pop(key).cancel()
        for key in [k for k in self._early if k[0] == server]:
            del self._early[key]

    async def originate_response(self, result: CommandSucceeded, timeout: float) -> OriginateResponse | None:
        """The OriginateResponse of a queued Originate (its `success`, `reason`), or None if none came in
        `timeout` seconds (a lost link, or a call still ringing)."""
        waiter = result.originated
        if waiter is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, asyncio.CancelledError):
            return None
