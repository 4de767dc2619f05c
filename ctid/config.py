"""The settings of the ctid daemon (config/ctid.yaml), their validation and `ctid check-config`."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from ctid.errors import ConfigError
from ctid.yamlconf import load_model

Port = Annotated[int, Field(ge=1, le=65535)]
# a port ctid listens on; 0 lets the system pick a free one (tests, side-by-side instances)
ListenPort = Annotated[int, Field(ge=0, le=65535)]
Seconds = Annotated[float, Field(gt=0)]
# Written into logs and metric labels, so kept to characters that need no quoting.
ServerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
Url = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9+.-]*://")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AsteriskServer(_Settings):
    """One Asterisk server ctid holds an AMI connection to."""

    name: ServerName
    host: str = Field(min_length=1)
    port: Port = 5038
    username: str = Field(min_length=1)
    secret: SecretStr = Field(min_length=1)
    tls: bool = False
    connect_timeout_s: Seconds = 5.0
    action_timeout_s: Seconds = 10.0
    reconnect_min_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0
    ping_interval_s: Seconds = 20.0
    # a channel without an event for this long is checked against CoreShowChannels; gone ones are reaped
    stale_channel_s: Seconds = 4 * 3600.0

    @model_validator(mode="after")
    def _backoff_bounds_ordered(self) -> Self:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s ({self.reconnect_min_s:g}) is larger than reconnect_max_s "
                f"({self.reconnect_max_s:g})"
            )
        return self


class Listener(_Settings):
    """An address ctid listens on."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: ListenPort


class AgiListener(Listener):
    """The FastAGI server Asterisk's dialplan connects to (`AGI(agi://host:4573/...)`), and what one client
    may cost it: sessions beyond `max_sessions` are closed at once, a session whose header is too large or
    too slow, or whose replies stop for `idle_timeout_s`, is ended."""

    port: ListenPort = 4573
    # None: a quarter of the process's open-file limit, at most 512 (see ivr.fastagi.default_max_sessions)
    max_sessions: int | None = Field(default=None, ge=1, le=100_000)
    header_max_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    header_timeout_s: Seconds = 5.0
    # the longest wait for Asterisk's reply to one command, prompts and digit collection included
    idle_timeout_s: Seconds = 60.0


class TlsFiles(_Settings):
    """A PEM certificate (chain) and its private key: ctid serves HTTPS itself."""

    cert: Path
    key: Path


class WebListener(Listener):
    """The HTTP server: agent desktop, wallboard, REST API and /metrics. Every route but /healthz needs a
    login (and /metrics, unless `metrics_public`); session cookies are `Secure` when ctid serves TLS or
    sits behind a `trusted_proxy` that does."""

    port: ListenPort = 8080
    tls: TlsFiles | None = None
    metrics_public: bool = False
    trusted_proxy: bool = False
    # a file holding a bearer token (`ctid user token NAME`) for `ctid reload` and `ctid config`
    token_file: Path | None = None

    @property
    def secure_cookies(self) -> bool:
        return self.tls is not None or self.trusted_proxy


class LogSettings(_Settings):
    """How ctid writes its logs (see ctid.logging.configure_logging)."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class Threshold(_Settings):
    """Where a wallboard figure turns amber (warn) and red (alarm)."""

    warn: float = Field(ge=0)
    alarm: float = Field(ge=0)


class WallboardSettings(_Settings):
    """The supervisors' wallboard: its day (for "today") and the colours of the queue tiles.

    Waits, waiting callers and abandon rate are bad when high; service level when low.
    """

    timezone: str = "UTC"
    longest_wait_s: Threshold = Threshold(warn=30, alarm=60)
    waiting: Threshold = Threshold(warn=3, alarm=8)
    abandon_rate: Threshold = Threshold(warn=0.05, alarm=0.10)
    service_level: Threshold = Threshold(warn=0.80, alarm=0.70)
    short_abandon_s: float = Field(default=5.0, ge=0)


class TargetBand(_Settings):
    """A KPI target: at least `min`, at most `max`, or between them."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _a_bound(self) -> TargetBand:
        if self.min is None and self.max is None:
            raise ValueError("give min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self


def _default_targets() -> dict[str, TargetBand]:
    return {
        "service_level": TargetBand(min=0.80),
        "abandon_rate": TargetBand(max=0.05),
        "asa_s": TargetBand(max=30.0),
        "occupancy": TargetBand(min=0.75, max=0.85),
    }


class ReportSettings(_Settings):
    """The `kpi` report's targets (any queue-summary figure, or occupancy), against the actuals."""

    targets: dict[str, TargetBand] = Field(default_factory=_default_targets)

    def target_bounds(self) -> dict[str, dict[str, float]]:
        return {
            name: {k: v for k, v in (("min", band.min), ("max", band.max)) if v is not None}
            for name, band in self.targets.items()
        }


class CtidConfig(_Settings):
    """Everything in config/ctid.yaml."""

    asterisk: tuple[AsteriskServer, ...]
    agi: AgiListener = AgiListener()
    web: WebListener = WebListener()
    # Database and Redis URLs may carry a password, so they stay out of repr() and str().
    database: Url = Field(default="sqlite:///ctid.db", repr=False)
    # where the interaction log keeps events while the database is unreachable (replayed in order after)
    spool: str = "ctid-spool.jsonl"
    # Sharing state between instances through Redis is not built yet: refused rather than silently ignored.
    redis: Url | None = Field(default=None, repr=False)
    log: LogSettings = LogSettings()
    # routing.yaml (queues, agents, priorities), relative to this file; none: ctid watches but does not route
    routing: str | None = None
    wallboard: WallboardSettings = WallboardSettings()
    reports: ReportSettings = ReportSettings()

    @field_validator("redis")
    @classmethod
    def _redis_not_yet_supported(cls, url: str | None) -> None:
        if url is not None:
            raise ValueError(
                "not supported yet: ctid runs as one instance with its state in process; "
                "remove the key or set it to null"
            )
        return None

    @field_validator("asterisk")
    @classmethod
    def _servers_named_uniquely(cls, servers: tuple[AsteriskServer, ...]) -> tuple[AsteriskServer, ...]:
        if not servers:
            raise ValueError("list at least one Asterisk server")
        seen: dict[str, int] = {}
        for index, server in enumerate(servers):
            if server.name in seen:
                raise ValueError(
                    f"server name '{server.name}' is used twice (asterisk[{seen[server.name]}] "
                    f"and asterisk[{index}])"
                )
            seen[server.name] = index
        return servers


def load_config(path: Path | str, env: Mapping[str, str] | None = None) -> CtidConfig:
    """Read and validate a ctid.yaml; raise ConfigError listing every problem as file:line:column."""
    path = Path(path)
    config = load_model(path, CtidConfig, env=env)
    if config.routing is not None and not Path(config.routing).is_absolute():
        config = config.model_copy(update={"routing": str(path.parent / config.routing)})
    return config


def check_config_command(paths: Sequence[str], *, env: Mapping[str, str] | None = None) -> int:
    """`ctid check-config PATH...`: print `OK path` per valid file, every error to stderr; 0 if all valid."""
    if not paths:
        print("check-config: give at least one file to check", file=sys.stderr)
        return 1
    status = 0
    for path in paths:
        try:
            load_config(path, env=env)
        except ConfigError as exc:
            for line in exc.errors:
                print(line, file=sys.stderr)
            status = 1
        else:
            print(f"OK {path}")
    return status


# --- which kind of file `ctid check-config` was given ------------------------------------------------------

# a key at the start of a line (block style): plain, or quoted as "..." or '...'
_TOP_LEVEL_KEY = re.compile(
    r"""^(?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'"""
    r"""|(?P<plain>[^\s#'"\-\[\]{}?:,&*!|>%@`][^:#\n]*?))\s*:(?:[ \t]|$)"""
)
_UNKNOWN_TYPO = re.compile(
    r"^.*?:\d+:\d+: (?P<path>\S+): unknown key '(?P<key>[^']*)' \(did you mean '(?P<near>[^']*)'\?\)$"
)
_MISSING = re.compile(r"^.*?:\d+:\d+: (?P<path>\S+): required key is missing$")


def top_level_keys(text: str) -> list[str]:
    """The keys of a document's top-level mapping as written in block style (the first occurrence of each).

    Read line by line, not parsed: it must cost nothing on a hostile file (the loader refuses those after).
    """
    keys: dict[str, None] = {}
    for line in text.splitlines():
        match = _TOP_LEVEL_KEY.match(line)
        if match is not None:
            keys[(match["dq"] or match["sq"] or match["plain"] or "").strip()] = None
    return list(keys)


@dataclass(frozen=True, slots=True)
class FileKind:
    """What check-config makes of a file: `kind` when one kind has the most top-level keys in common with it,
    else None and `problem`, one line saying which kinds it could be."""

    kind: str | None
    problem: str = ""


def file_kind(path: str, keys: Sequence[str], kinds: Mapping[str, frozenset[str]]) -> FileKind:
    """Score the file's top-level `keys` against each kind's keys: the most in common wins."""
    scores = {kind: sum(1 for key in keys if key in known) for kind, known in kinds.items()}
    best = max(scores.values(), default=0)
    leaders = [kind for kind, score in scores.items() if score == best]
    if best > 0 and len(leaders) == 1:
        return FileKind(leaders[0])
    names = " or a ".join(kinds)
    if best == 0:
        hints = []
        for key in keys:
            for kind, known in kinds.items():
                close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
                if close:
                    hints.append(f"'{key}' (did you mean '{close[0]}' of a {kind}?)")
                    break
        detail = "; unknown: " + ", ".join(hints) if hints else ""
        listed = "; ".join(f"{kind}: {', '.join(sorted(known))}" for kind, known in kinds.items())
        return FileKind(
            None, f"{path}: could be a {names}, but has none of their top-level keys ({listed}){detail}"
        )
    shared = "; ".join(f"{kind}: {', '.join(key for key in keys if key in kinds[kind])}" for kind in leaders)
    return FileKind(
        None,
        f"{path}: could be a {' or a '.join(leaders)}: as many top-level keys of each ({shared}); "
        "keep the keys of one kind",
    )


def fold_typos(errors: Sequence[str]) -> list[str]:
    """Drop "K: required key is missing" where the same mapping has an unknown key that is a typo of K:
    the typo's own line ("unknown key 'queuse' (did you mean 'queues'?)") already says all there is."""
    typos: set[str] = set()
    for line in errors:
        match = _UNKNOWN_TYPO.match(line)
        if match is not None and match["path"].endswith(match["key"]):
            typos.add(match["path"][: len(match["path"]) - len(match["key"])] + match["near"])
    return [
        line for line in errors if (missing := _MISSING.match(line)) is None or missing["path"] not in typos
    ]
