"""AMI actions against the world: each returns the messages for the asking session, as Asterisk words them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ctid.ami.message import AmiMessage
from pbxsim.calls import AttendedTransfer, Destination, OriginateCall, blind_transfer
from pbxsim.world import DEVICE_STATES, EXTENSION_STATUS

if TYPE_CHECKING:
    from pbxsim.channels import Channel
    from pbxsim.world import World

Handler = Callable[["World", AmiMessage], list[AmiMessage]]


def response(
    msg: AmiMessage, status: str, *fields: tuple[str, str], message: str | None = None
) -> AmiMessage:
    """`Response: X`, then ActionID when the action had one, then Message, then the rest."""
    out: list[tuple[str, str]] = [("Response", status)]
    if msg.action_id is not None:
        out.append(("ActionID", msg.action_id))
    if message is not None:
        out.append(("Message", message))
    out.extend(fields)
    return AmiMessage(out)


def error(msg: AmiMessage, message: str) -> list[AmiMessage]:
    return [response(msg, "Error", message=message)]


def success(msg: AmiMessage, message: str) -> list[AmiMessage]:
    return [response(msg, "Success", message=message)]


def _with_id(msg: AmiMessage, event: str, fields: list[tuple[str, str]]) -> AmiMessage:
    head: list[tuple[str, str]] = [("Event", event)]
    if msg.action_id is not None:
        head.append(("ActionID", msg.action_id))
    return AmiMessage(head + fields)


def _list(
    msg: AmiMessage, message: str, items: list[AmiMessage], complete: str, *extra: tuple[str, str]
) -> list[AmiMessage]:
    done = [("EventList", "Complete"), ("ListItems", str(len(items))), *extra]
    return [
        response(msg, "Success", ("EventList", "start"), ("Message", message)),
        *items,
        _with_id(msg, complete, done),
    ]


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def ping(world: World, msg: AmiMessage) -> list[AmiMessage]:
    return [response(msg, "Success", ("Ping", "Pong"), ("Timestamp", world.timestamp()))]


def setvar(world: World, msg: AmiMessage) -> list[AmiMessage]:
    name = msg.get("Variable") or ""
    value = msg.get("Value") or ""
    if not name:
        return error(msg, "No variable specified")
    channel_name = msg.get("Channel")
    if channel_name:
        ch = world.find_channel(channel_name)
        if ch is None:
            return error(msg, "No such channel")
        world.set_var(ch, name, value)
        return success(msg, "Variable Set")
    if name.startswith("DEVICE_STATE(Custom:") and name.endswith(")"):
        state = value.upper()
        if state not in DEVICE_STATES:
            return error(msg, "Variable not set")
        replies = success(msg, "Variable Set")
        world.set_custom_state(name[len("DEVICE_STATE(Custom:") : -1], state)
        return replies
    world.globals[name] = value
    return success(msg, "Variable Set")


def getvar(world: World, msg: AmiMessage) -> list[AmiMessage]:
    name = msg.get("Variable") or ""
    if not name:
        return error(msg, "No variable specified")
    channel_name = msg.get("Channel")
    if channel_name:
        ch = world.find_channel(channel_name)
        if ch is None:
            return error(msg, "No such channel")
        value = world.lookup(ch, name)
    else:
        value = world.globals.get(name)
    return [response(msg, "Success", ("Variable", name), ("Value", value or ""))]


def hangup(world: World, msg: AmiMessage) -> list[AmiMessage]:
    ch = world.find_channel(msg.get("Channel") or "")
    if ch is None:
        return error(msg, "No such channel")
    cause_text = (msg.get("Cause") or "16").strip()
    cause = int(cause_text) if cause_text.isdigit() else 16
    replies = success(msg, "Channel Hungup")
    world.hangup(ch, cause)
    return replies


def redirect(world: World, msg: AmiMessage) -> list[AmiMessage]:
    name = msg.get("Channel") or ""
    ch = world.find_channel(name)
    if ch is None:
        return error(msg, f"Channel does not exist: {name}")
    targets: list[tuple[Channel, str, str, int]] = []
    context, exten, prio = msg.get("Context") or "", msg.get("Exten") or "", msg.get("Priority") or "1"
    if not world.dialplan.exists(context, exten, int(prio) if prio.isdigit() else 1):
        return error(msg, "Redirect failed, extension not found")
    targets.append((ch, context, exten, int(prio) if prio.isdigit() else 1))
    extra_name = msg.get("ExtraChannel")
    if extra_name:
        extra = world.find_channel(extra_name)
        if extra is None:
            return error(msg, f"ExtraChannel does not exist: {extra_name}")
        xcontext = msg.get("ExtraContext") or context
        xexten = msg.get("ExtraExten") or exten
        xprio = msg.get("ExtraPriority") or prio
        targets.append((extra, xcontext, xexten, int(xprio) if xprio.isdigit() else 1))
    replies = success(msg, "Dual Redirect successful" if extra_name else "Redirect successful")
    world.redirect(targets)
    return replies


def originate(world: World, msg: AmiMessage) -> list[AmiMessage]:
    spec = msg.get("Channel") or ""
    if not spec:
        return error(msg, "Channel not specified")
    if msg.get("Application"):
        return error(msg, "pbxsim originates to Context/Exten/Priority only")
    context, exten = msg.get("Context") or "default", msg.get("Exten") or "s"
    prio_text = msg.get("Priority") or "1"
    priority = int(prio_text) if prio_text.isdigit() else 1
    if Destination.parse(spec) is None:
        return error(msg, "Invalid channel")
    if not world.dialplan.exists(context, exten, priority):
        return error(msg, "Extension does not exist.")
    timeout_text = msg.get("Timeout") or "30000"
    timeout = int(timeout_text) / 1000 if timeout_text.isdigit() else 30.0
    callerid = _parse_callerid(msg.get("CallerID"))
    variables: list[tuple[str, str]] = []
    for item in msg.get_all("Variable"):
        for assignment in item.split(","):
            name, sep, value = assignment.partition("=")
            if sep:
                variables.append((name.strip(), value))
    uniqueids = (msg.get("ChannelId") or "", msg.get("OtherChannelId") or "")
    call = OriginateCall(world, msg.action_id, spec, context, exten, priority, timeout, uniqueids)
    world.soon(lambda: call.start(callerid, variables))
    return success(msg, "Originate successfully queued")


def _parse_callerid(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    text = text.strip()
    if "<" in text and text.endswith(">"):
        name, _, num = text[:-1].partition("<")
        return num.strip(), name.strip().strip('"')
    return text, ""


def blindtransfer(world: World, msg: AmiMessage) -> list[AmiMessage]:
    ch = world.find_channel(msg.get("Channel") or "")
    if ch is None:
        return error(msg, "Channel specified does not exist")
    context = msg.get("Context") or ch.context
    exten = msg.get("Exten") or ""
    if not world.dialplan.exists(context, exten):
        return error(msg, "Transfer failed")
    if ch.bridge is None or ch.bridge.peer_of(ch) is None:
        return error(msg, "Transfer failed")
    replies = success(msg, "Transfer succeeded")
    blind_transfer(world, ch, context, exten)
    return replies


def atxfer(world: World, msg: AmiMessage) -> list[AmiMessage]:
    ch = world.find_channel(msg.get("Channel") or "")
    if ch is None:
        return error(msg, "Channel specified does not exist")
    exten = msg.get("Exten") or ""
    if not exten:
        return error(msg, "No extension specified")
    context = msg.get("Context") or ch.context
    if ch.bridge is None or ch.bridge.peer_of(ch) is None:
        return error(msg, "Atxfer failed")
    replies = success(msg, "Atxfer successfully queued")
    AttendedTransfer(world, ch, context, exten).start()
    return replies


def core_show_channels(world: World, msg: AmiMessage) -> list[AmiMessage]:
    items = [
        _with_id(
            msg,
            "CoreShowChannel",
            [
                *c.fields(),
                ("Application", c.app),
                ("ApplicationData", c.appdata),
                ("Duration", _duration(world.now - c.created)),
                ("BridgeId", c.bridge.uniqueid if c.bridge else ""),
            ],
        )
        for c in world.channels.values()
        if c.alive
    ]
    return _list(msg, "Channels will follow", items, "CoreShowChannelsComplete")


def status(world: World, msg: AmiMessage) -> list[AmiMessage]:
    name = msg.get("Channel")
    if name:
        one = world.find_channel(name)
        if one is None:
            return error(msg, "No such channel")
        chans = [one]
    else:
        chans = [c for c in world.channels.values() if c.alive]
    wanted = [v.strip() for v in (msg.get("Variables") or "").split(",") if v.strip()]
    items = []
    for c in chans:
        fmt = "ulaw" if c.tech == "PJSIP" else "slin"
        fields = [
            ("Event", "Status"),
            ("Privilege", "Call"),
            *c.fields(),
            ("Type", c.tech),
            ("DNID", c.dnid),
            ("EffectiveConnectedLineNum", c.conn_num),
            ("EffectiveConnectedLineName", c.conn_name),
            ("TimeToHangup", "0"),
            ("BridgeID", c.bridge.uniqueid if c.bridge else ""),
            ("Application", c.app),
            ("Data", c.appdata),
            ("Nativeformats", f"({fmt})"),
            ("Readformat", fmt),
            ("Readtrans", ""),
            ("Writeformat", fmt),
            ("Writetrans", ""),
            ("Callgroup", "0"),
            ("Pickupgroup", "0"),
            ("Seconds", str(int(world.now - c.created))),
        ]
        for var in wanted:
            value = world.lookup(c, var)
            fields.append(("Variable", f"{var}={value if value is not None else '(null)'}"))
        if msg.action_id is not None:
            fields.append(("ActionID", msg.action_id))
        items.append(AmiMessage(fields))
    count = str(len(items))
    return _list(msg, "Channel status will follow", items, "StatusComplete", ("Items", count))


def device_state_list(world: World, msg: AmiMessage) -> list[AmiMessage]:
    devices = [d for d in world.device_states if d.startswith(("PJSIP/", "Custom:"))]
    items = [
        _with_id(msg, "DeviceStateChange", [("Device", d), ("State", world.device_states[d])])
        for d in devices
    ]
    return _list(msg, "Device State Changes will follow", items, "DeviceStateListComplete")


def extension_state_list(world: World, msg: AmiMessage) -> list[AmiMessage]:
    hints = world.dialplan.hints
    if not hints:
        return error(msg, "No dialplan hints are available")
    items = []
    for hint in hints:
        state = world.extension_states.get((hint.exten, hint.context), "UNAVAILABLE")
        code, text = EXTENSION_STATUS.get(state, (4, "Unavailable"))
        items.append(
            _with_id(
                msg,
                "ExtensionStatus",
                [
                    ("Exten", hint.exten),
                    ("Context", hint.context),
                    ("Hint", hint.device),
                    ("Status", str(code)),
                    ("StatusText", text),
                ],
            )
        )
    return _list(msg, "Extension Statuses will follow", items, "ExtensionStateListComplete")


def list_commands(world: World, msg: AmiMessage) -> list[AmiMessage]:
    return [response(msg, "Success", *((name, f"{name}. (Priv: <none>)") for name in sorted(HANDLER_NAMES)))]


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "setvar": setvar,
    "getvar": getvar,
    "hangup": hangup,
    "redirect": redirect,
    "originate": originate,
    "blindtransfer": blindtransfer,
    "atxfer": atxfer,
    "coreshowchannels": core_show_channels,
    "status": status,
    "devicestatelist": device_state_list,
    "extensionstatelist": extension_state_list,
    "listcommands": list_commands,
}
HANDLER_NAMES = (
    "Atxfer",
    "BlindTransfer",
    "CoreShowChannels",
    "DeviceStateList",
    "Events",
    "ExtensionStateList",
    "Getvar",
    "Hangup",
    "ListCommands",
    "Login",
    "Logoff",
    "Originate",
    "Ping",
    "Redirect",
    "Setvar",
    "Status",
)


KNOWN_HEADERS = {
    k.lower(): k
    for k in [
        "Action",
        "ActionID",
        "Channel",
        "ExtraChannel",
        "Context",
        "Exten",
        "Priority",
        "ExtraContext",
        "ExtraExten",
        "ExtraPriority",
        "Variable",
        "Variables",
        "Value",
        "Cause",
        "Timeout",
        "CallerID",
        "Async",
        "Application",
        "Data",
        "ChannelId",
        "OtherChannelId",
        "Username",
        "Secret",
        "Events",
        "EventMask",
    ]
}


def canonical(msg: AmiMessage) -> AmiMessage:
    """AMI header names are case-insensitive: spell the known ones as the handlers expect."""
    return AmiMessage([(KNOWN_HEADERS.get(k.lower(), k), v) for k, v in msg.fields])


def handle(world: World, msg: AmiMessage) -> list[AmiMessage]:
    """Dispatch one action (Login, Logoff and Events belong to the session, not to the world)."""
    msg = canonical(msg)
    name = msg.get("Action") or ""
    handler = HANDLERS.get(name.lower())
    if handler is None:
        return error(
            msg, f"Invalid/unknown command: {name}. Use Action: ListCommands to show available commands."
        )
    return handler(world, msg)
