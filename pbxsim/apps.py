"""The dialplan applications pbxsim runs, each emitting what the real one does, in the same order."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TYPE_CHECKING

from ctid import dialplan
from pbxsim.channels import Block, Channel, ChannelState
from pbxsim.dialplan import split_args

if TYPE_CHECKING:
    from pbxsim.world import Timer, World


class Flow(Enum):
    NEXT = "next"  # go on with the next priority
    JUMP = "jump"  # the application moved the channel (Goto)
    BLOCK = "block"  # the channel waits inside the application
    STOP = "stop"  # the channel hung up or left the dialplan


# seconds of the prompts the dialplan plays (from the GSM files of the reference build)
PROMPT_SECONDS = {
    "hello": 0.8,
    "demo-congrats": 30.28,
    "one-moment-please": 1.6,
    dialplan.ABANDON_PROMPT: 3.0,
}
ANSWER_MEDIA_WAIT = 0.5  # Answer() waits this long for a first voice frame
FRAME = 0.02
SIP_ANSWER_WAIT = 0.01


class TimedBlock(Block):
    """Waiting for a timer (Wait, Playback, AMD, Busy, Answer's media wait)."""

    def __init__(
        self, world: World, ch: Channel, seconds: float, done: Callable[[], None] | None = None
    ) -> None:
        self.world = world
        self.ch = ch
        self.done = done
        self.timer: Timer = world.schedule(seconds, self._fire)

    def _fire(self) -> None:
        if self.ch.block is not self or not self.ch.alive:
            return
        if self.done is not None:
            self.done()
        if self.ch.block is self and self.ch.alive:
            self.world.resume(self.ch)

    def stop(self, reason: str) -> None:
        self.timer.cancel()


class AnswerWait(TimedBlock):
    """Answer() on a channel that was not up waits for the first voice frame, at most half a second."""

    def hurry(self) -> None:
        due = self.world.now + FRAME
        if due < self.timer.when:
            self.timer.cancel()
            self.timer = self.world.schedule(FRAME, self._fire)


class PlaybackBlock(TimedBlock):
    def __init__(self, world: World, ch: Channel, seconds: float) -> None:
        super().__init__(world, ch, seconds, self._finished)

    def _finished(self) -> None:
        self.world.set_var(self.ch, "PLAYBACKSTATUS", "SUCCESS")

    def stop(self, reason: str) -> None:
        super().stop(reason)
        self._finished()


class MusicBlock(Block):
    def __init__(self, world: World, ch: Channel) -> None:
        self.world = world
        self.ch = ch

    def stop(self, reason: str) -> None:
        self.world.emit_channel("MusicOnHoldStop", self.ch)


class ForeverBlock(Block):
    """Echo(), or anything that only ends when the channel does."""


def run(world: World, ch: Channel, app: str, data: str) -> Flow:
    handler = APPLICATIONS.get(app.lower())
    if handler is None:
        return Flow.NEXT  # an application pbxsim does not know does nothing
    return handler(world, ch, data)


def _answer(world: World, ch: Channel, data: str) -> Flow:
    if not world.answer(ch):
        return Flow.NEXT
    wait = SIP_ANSWER_WAIT if ch.tech == "PJSIP" else ANSWER_MEDIA_WAIT
    ch.block = AnswerWait(world, ch, wait)
    return Flow.BLOCK


def _wait(world: World, ch: Channel, data: str) -> Flow:
    try:
        seconds = float(data or 0)
    except ValueError:
        seconds = 0.0
    ch.block = TimedBlock(world, ch, seconds)
    return Flow.BLOCK


def _ringing(world: World, ch: Channel, data: str) -> Flow:
    world.indicate_ringing(ch)
    return Flow.NEXT


def _busy(world: World, ch: Channel, data: str) -> Flow:
    ch.hangup_cause = 17
    world.indicate_busy(ch)
    if not ch.alive:
        return Flow.STOP
    seconds = float(data) if data else 0.0

    def end() -> None:
        ch.block = None
        world.hangup(ch, 17, soft=False)

    ch.block = TimedBlock(world, ch, seconds, end)
    return Flow.BLOCK


def _echo(world: World, ch: Channel, data: str) -> Flow:
    ch.block = ForeverBlock()
    return Flow.BLOCK


def _music(world: World, ch: Channel, data: str) -> Flow:
    klass = split_args(data)[0] or "default"
    ch.block = MusicBlock(world, ch)
    world.emit_channel("MusicOnHoldStart", ch, [("Class", klass)])
    world.media_started(ch)
    return Flow.BLOCK


def _playback(world: World, ch: Channel, data: str) -> Flow:
    files = split_args(data)[0].split("&")
    seconds = sum(PROMPT_SECONDS.get(f, 1.0) for f in files)
    if ch.state != ChannelState.UP:
        world.answer(ch)
    ch.block = PlaybackBlock(world, ch, seconds)
    return Flow.BLOCK


def _hangup(world: World, ch: Channel, data: str) -> Flow:
    cause = int(data) if data.strip().isdigit() else 16
    world.hangup(ch, cause)
    return Flow.STOP


def _set(world: World, ch: Channel, data: str) -> Flow:
    name, _, value = data.partition("=")
    name = name.strip()
    if name.startswith("DEVICE_STATE(Custom:") and name.endswith(")"):
        world.set_custom_state(name[len("DEVICE_STATE(Custom:") : -1], value)
    elif name.startswith("__") or name.startswith("_"):
        world.set_var(ch, name.lstrip("_"), value)
    else:
        world.set_var(ch, name, value)
    return Flow.NEXT


def _goto(world: World, ch: Channel, data: str) -> Flow:
    return Flow.JUMP if world.goto(ch, data) else Flow.NEXT


def _gotoif(world: World, ch: Channel, data: str) -> Flow:
    cond, _, labels = data.partition("?")
    yes, _, no = labels.partition(":")
    target = yes if cond.strip() not in ("", "0") else no
    if not target:
        return Flow.NEXT
    return Flow.JUMP if world.goto(ch, target) else Flow.NEXT


def _noop(world: World, ch: Channel, data: str) -> Flow:
    return Flow.NEXT


AMD_HUMAN = (2.1, "HUMAN", "HUMAN-800-800")
AMD_MACHINE = (2.63, "MACHINE", "MAXWORDS-3-2")
AMD_NOTSURE = (5.1, "NOTSURE", "TOOLONG-4900")


def amd_result(ch: Channel) -> tuple[float, str, str]:
    """What AMD hears, from the callee on the other half of the Local channel (as the captures showed)."""
    callee = ch.partner
    if callee is None:
        return AMD_NOTSURE
    fate = callee.variables.get("SIM_FATE")
    if fate == "person":
        return AMD_HUMAN
    if fate == "machine" or callee.exten[:1].lower() == "m":
        return AMD_MACHINE
    return AMD_NOTSURE  # the `h` callees of the captures: a short hello that AMD called TOOLONG


def _amd(world: World, ch: Channel, data: str) -> Flow:
    delay, status, cause = amd_result(ch)

    def done() -> None:
        world.set_var(ch, "AMDSTATUS", status)
        world.set_var(ch, "AMDCAUSE", cause)

    ch.block = TimedBlock(world, ch, delay, done)
    return Flow.BLOCK


def _agi(world: World, ch: Channel, data: str) -> Flow:
    from pbxsim.agi import AgiBlock, AgiSession

    url = split_args(data)[0]
    if not url.startswith("agi://"):
        world.set_var(ch, "AGISTATUS", "FAILURE")
        return Flow.NEXT
    session = AgiSession(world, ch, url)
    ch.block = AgiBlock(session)
    world.agi_opened(session)
    return Flow.BLOCK


def _dial(world: World, ch: Channel, data: str) -> Flow:
    from pbxsim.calls import start_dial

    return Flow.BLOCK if start_dial(world, ch, data) else Flow.NEXT


APPLICATIONS: dict[str, Callable[[World, Channel, str], Flow]] = {
    "answer": _answer,
    "wait": _wait,
    "ringing": _ringing,
    "busy": _busy,
    "echo": _echo,
    "musiconhold": _music,
    "playback": _playback,
    "hangup": _hangup,
    "set": _set,
    "goto": _goto,
    "gotoif": _gotoif,
    "noop": _noop,
    "amd": _amd,
    "agi": _agi,
    "dial": _dial,
}
