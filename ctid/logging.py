"""Set up structlog once for ctid: one format for every line, secrets redacted, phone numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]

_LEVELS: Mapping[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

REDACTED = "***"
_SECRET_KEY = re.compile(r"secret|passw|token|authoriz|api_?key|credential", re.IGNORECASE)
# Compared lower-cased, so AMI header names (CallerIDNum, ConnectedLineNum) are covered as well.
_NUMBER_KEYS = frozenset(
    {
        "caller",
        "caller_num",
        "callerid",
        "calleridnum",
        "number",
        "phone",
        "connected_num",
        "connectedlinenum",
    }
)
# Caller-ID names come from anyone who can dial in: personal data, and hostile text (control characters).
_NAME_KEYS = frozenset({"caller_name", "calleridname", "connected_name", "connectedlinename"})
_KEPT_DIGITS = 4
_DIGIT = re.compile(r"\d")

# The handler configure_logging installed last, so calling it again replaces rather than duplicates it.
_installed_handler: logging.Handler | None = None
# Read at each event rather than fixed in the processor chain: loggers bound before a reconfiguration keep
# the chain they were bound with.
_mask_numbers = True


def mask_number(num: str) -> str:
    """Hide all but the last four digits of a phone number; four digits or fewer (extensions) stay as is."""
    digits = len(_DIGIT.findall(num))
    if digits <= _KEPT_DIGITS:
        return num
    to_hide = digits - _KEPT_DIGITS

    def hide(match: re.Match[str]) -> str:
        nonlocal to_hide
        if to_hide == 0:
            return match.group(0)
        to_hide -= 1
        return "*"

    return _DIGIT.sub(hide, num)


def mask_name(name: str) -> str:
    """A caller-ID name down to its first character (never a control character) and one star per other."""
    if not name:
        return name
    first = name[0] if name[0].isprintable() else "?"
    return first + "*" * (len(name) - 1)


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace the value of any key named like a secret, password, token or authorization with `***`."""
    for key, value in event_dict.items():
        event_dict[key] = REDACTED if _SECRET_KEY.search(key) else _redact_nested(value)
    return event_dict


def mask_phone_numbers(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Mask caller/number keys with mask_number and caller-ID names with mask_name, unless logging is
    configured at debug level."""
    if not _mask_numbers:
        return event_dict
    for key, value in event_dict.items():
        event_dict[key] = _masked(key, value)
    return event_dict


def configure_logging(
    fmt: LogFormat | str = "auto", level: LogLevel | str = "info", stream: TextIO | None = None
) -> None:
    """Send structlog and standard-library logging to `stream` (stderr) as JSON lines or console text."""
    global _installed_handler, _mask_numbers
    if fmt not in ("auto", "json", "console"):
        raise ValueError(f"unknown log format {fmt!r}: use auto, json or console")
    if level not in _LEVELS:
        raise ValueError(f"unknown log level {level!r}: use debug, info, warning or error")
    out = sys.stderr if stream is None else stream
    console = fmt == "console" or (fmt == "auto" and _is_tty(out))

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        redact_secrets,
        mask_phone_numbers,
    ]
    _mask_numbers = _LEVELS[level] > logging.DEBUG

    renderer: list[Processor]
    if console:
        renderer = [structlog.dev.ConsoleRenderer(colors=_is_tty(out))]
    else:
        renderer = [
            structlog.processors.format_exc_info,
            _essentials_first,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
    formatter = structlog.stdlib.ProcessorFormatter(
        # Lines from the standard library (panoramisk, asyncio...) get the same fields, `extra=` included.
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    if _installed_handler is not None:
        root.removeHandler(_installed_handler)
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    _installed_handler = handler

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later configure_logging (another level, another stream) must reach existing loggers.
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A logger named after its component, e.g. get_logger("ctid.ami")."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def bind_call(
    logger: structlog.stdlib.BoundLogger,
    *,
    linkedid: str,
    uniqueid: str | None = None,
    agent: str | None = None,
) -> structlog.stdlib.BoundLogger:
    """The logger with a call's identifiers bound, so every line about the call can be found by linkedid."""
    context: dict[str, str] = {"linkedid": linkedid}
    if uniqueid is not None:
        context["uniqueid"] = uniqueid
    if agent is not None:
        context["agent"] = agent
    return logger.bind(**context)


def _essentials_first(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, logger and event at the start of each JSON line, where a reader looks first."""
    ordered = {
        key: event_dict.pop(key) for key in ("timestamp", "level", "logger", "event") if key in event_dict
    }
    ordered.update(event_dict)
    return ordered


def _is_tty(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _redact_nested(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            k: REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else _redact_nested(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact_nested(item) for item in value]
    return value


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_number(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return mask_number(str(value))
    return _mask_nested(value)


def _masked(key: object, value: Any) -> Any:
    if isinstance(key, str):
        lowered = key.lower()
        if lowered in _NUMBER_KEYS:
            return _mask_value(value)
        if lowered in _NAME_KEYS and isinstance(value, str):
            return mask_name(value)
    return _mask_nested(value)


def _mask_nested(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _masked(k, v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_nested(item) for item in value]
    return value
