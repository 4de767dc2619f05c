"""routing.yaml while ctid runs: hot reload, every applied version kept, history and rollback.

A change arrives by `ctid reload` (REST), SIGHUP or the file being saved (watchfiles). The file is
read, parsed and checked in a worker thread (a large file must not stall calls, AMI or /healthz), then
a valid one applies on the event loop, to callers already waiting too; an invalid one is rejected with
every error as file:line:column and the running config stays. A saved file applies only once it has
stopped changing for `settle_s` (scp and `cat >` write in place, in pieces). Each applied version is
stored with its time, so `ctid config history --at TIME` says which version routed a call, and
`ctid config rollback` restores the one before.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, Float, Integer, String, Text, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ctid.db import Base
from ctid.errors import ConfigError
from ctid.yamlconf import MAX_FILE_BYTES, decode_config_text, read_config_text
from routing.config import RoutingConfig, load_routing_checked

log = structlog.get_logger("routing.versions")


class RoutingConfigVersion(Base):
    """One routing.yaml text that ctid applied, and when."""

    __tablename__ = "routing_config_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied_at: Mapped[float] = mapped_column(Float, index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What a reload or rollback did, as `ctid reload` and the REST API report it.

    `version` is the one routing afterwards: the new one, or the old one when `ok` is false.
    """

    ok: bool
    version: int | None
    changed: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Version:
    version: int
    applied_at: float
    sha256: str
    source: str
    text: str

    def to_dict(self, current: int | None) -> dict[str, Any]:
        return {
            "version": self.version,
            "applied_at": self.applied_at,
            "applied": datetime.fromtimestamp(self.applied_at, UTC).isoformat(timespec="seconds"),
            "sha256": self.sha256[:12],
            "source": self.source,
            "current": self.version == current,
        }


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class FileSnapshot:
    """What a file held when looked at: its size, modification time and bytes (None: missing)."""

    size: int
    mtime_ns: int
    data: bytes | None

    @classmethod
    def take(cls, path: Path) -> FileSnapshot:
        try:
            with path.open("rb") as handle:
                info = os.fstat(handle.fileno())
                data = handle.read(MAX_FILE_BYTES + 1)
        except OSError:
            return cls(-1, -1, None)
        return cls(info.st_size, info.st_mtime_ns, data)


@dataclass(frozen=True, slots=True)
class Settling:
    """A file seen unchanged since `since` (monotonic seconds): it is settled once that lasts settle_s."""

    snapshot: FileSnapshot
    since: float

    def observe(self, snapshot: FileSnapshot, now: float) -> Settling:
        return self if snapshot == self.snapshot else Settling(snapshot, now)

    def settled(self, now: float, settle_s: float) -> bool:
        return now - self.since >= settle_s


class RoutingConfigManager:
    """Owns the running routing config: validates, applies (through `apply`) and records versions."""

    def __init__(
        self,
        path: Path,
        apply: Callable[[RoutingConfig], None],
        *,
        engine: Engine | None = None,
        clock: Callable[[], float] = time.time,
        settle_s: float = 0.5,
    ) -> None:
        self.path = path
        self.apply = apply
        self.engine = engine
        self.clock = clock
        self.settle_s = settle_s  # a saved file applies once unchanged this long
        self._busy: asyncio.Lock | None = None  # one asynchronous reload or rollback at a time
        self._warnings: list[str] = []  # those of the running version
        self.current: RoutingConfig | None = None
        self.current_version: int | None = None
        self._versions: list[_Version] = []
        if engine is not None:
            Base.metadata.create_all(engine, tables=[RoutingConfigVersion.__table__])  # type: ignore[list-item]
            with Session(engine) as session:
                rows = session.scalars(select(RoutingConfigVersion).order_by(RoutingConfigVersion.version))
                self._versions = [_Version(r.version, r.applied_at, r.sha256, r.source, r.text) for r in rows]

    # ---- applying ---------------------------------------------------------------------------------

    def load_initial(self) -> RoutingConfig:
        """The file at start-up: ConfigError if invalid (ctid does not start on a broken config)."""
        text = self._read()
        cfg, warnings = load_routing_checked(self.path, text=text)
        self.apply(cfg)
        self._applied(cfg, text, "startup")
        self._warnings = warnings
        return cfg

    def reload(self, source: str = "manual") -> ReloadResult:
        """Re-read the file; apply it if valid and changed, else keep the running config (blocking: CLI and
        tests; the daemon uses reload_async)."""
        try:
            text = self._read()
        except ConfigError as exc:
            return self._rejected(exc.errors, source)
        return self._try(text, source)

    async def reload_async(self, source: str = "manual", text: str | None = None) -> ReloadResult:
        """reload, with reading, parsing and checking in a worker thread and only applying on the loop.

        `text` is what to apply instead of re-reading the file (the watcher's settled content).
        """
        async with self._lock():
            try:
                if text is None:
                    text = await asyncio.to_thread(self._read)
                if self.current is not None and _digest(text) == self._latest_digest():
                    # already routing (a SIGHUP and the watcher for one save): not parsed a second time
                    return ReloadResult(True, self.current_version, False, [], list(self._warnings))
                parsed = await asyncio.to_thread(self._parse, text)
            except ConfigError as exc:
                return self._rejected(exc.errors, source)
            return self._commit(*parsed, source)

    def _read(self) -> str:
        """The file's text; the manager reads it itself because the exact text is what a version records."""
        return read_config_text(self.path)  # bounded in size; Latin-1 is refused, not a crashed reload

    def _parse(self, text: str | None) -> tuple[str, RoutingConfig, list[str]]:
        """Read (unless given) and check a text: no state is touched, so it runs in any thread."""
        text = self._read() if text is None else text
        cfg, warnings = load_routing_checked(self.path, text=text)
        return text, cfg, warnings

    def _lock(self) -> asyncio.Lock:
        if self._busy is None:
            self._busy = asyncio.Lock()
        return self._busy

    def _rollback_target(self) -> _Version | None:
        earlier = [v for v in self._versions if v.sha256 != self._latest_digest()]
        return earlier[-1] if earlier else None

    def rollback(self) -> ReloadResult:
        """Restore the version before the current one: the file is rewritten to it and it applies."""
        target = self._rollback_target()
        if target is None:
            return ReloadResult(False, self.current_version, False, ["no earlier version to roll back to"])
        result = self._try(target.text, f"rollback to v{target.version}")
        if result.ok:
            self._write_file(target.text)
        return result

    async def rollback_async(self) -> ReloadResult:
        """rollback, parsing the earlier text in a worker thread."""
        async with self._lock():
            target = self._rollback_target()
            if target is None:
                return ReloadResult(
                    False, self.current_version, False, ["no earlier version to roll back to"]
                )
            source = f"rollback to v{target.version}"
            try:
                parsed = await asyncio.to_thread(self._parse, target.text)
            except ConfigError as exc:
                return self._rejected(exc.errors, source)
            result = self._commit(*parsed, source)
            if result.ok:
                await asyncio.to_thread(self._write_file, target.text)
            return result

    def _try(self, text: str, source: str) -> ReloadResult:
        try:
            _, cfg, warnings = self._parse(text)
        except ConfigError as exc:
            return self._rejected(exc.errors, source)
        return self._commit(text, cfg, warnings, source)

    def _commit(self, text: str, cfg: RoutingConfig, warnings: list[str], source: str) -> ReloadResult:
        """Apply a checked config and record it (on the loop: apply changes live routing state)."""
        if self.current is not None and _digest(text) == self._latest_digest():
            return ReloadResult(True, self.current_version, False, [], warnings)
        previous = self.current
        try:
            self.apply(cfg)
        except Exception as exc:  # the new config could not be applied: the old one stays in force
            if previous is not None:
                self.apply(previous)
            return self._rejected([f"{self.path}: could not apply: {exc}"], source)
        try:
            version = self._applied(cfg, text, source)
        except SQLAlchemyError as exc:
            # a version nobody could look up later must not route calls: the recorded one goes on routing
            if previous is not None:
                self.apply(previous)
            return self._rejected([f"{self.path}: could not record the version: {exc}"], source)
        self._warnings = warnings
        log.info("routing_config_applied", version=version, source=source, warnings=len(warnings))
        return ReloadResult(True, version, True, [], warnings)

    def _rejected(self, errors: list[str], source: str) -> ReloadResult:
        log.warning("routing_config_rejected", source=source, errors=errors, running=self.current_version)
        return ReloadResult(False, self.current_version, False, errors)

    def _latest_digest(self) -> str:
        current = next((v for v in self._versions if v.version == self.current_version), None)
        return current.sha256 if current is not None else ""

    def _applied(self, cfg: RoutingConfig, text: str, source: str) -> int:
        """Record `cfg` as the running version; stored first, so a database error changes nothing here."""
        digest = _digest(text)
        if self._versions and self._versions[-1].sha256 == digest:  # same text as last time ctid ran
            self.current = cfg
            self.current_version = self._versions[-1].version
            return self.current_version
        entry = _Version(len(self._versions) + 1, self.clock(), digest, source, text)
        if self.engine is not None:
            with Session(self.engine) as session, session.begin():
                session.add(RoutingConfigVersion(**asdict(entry)))
        self._versions.append(entry)
        self.current = cfg
        self.current_version = entry.version
        return entry.version

    def _write_file(self, text: str) -> None:
        """Replace the file in one step, so an editor or the watcher never sees half of it."""
        handle, temp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temp, self.path)

    # ---- reading ----------------------------------------------------------------------------------

    def history(self) -> list[dict[str, Any]]:
        return [v.to_dict(self.current_version) for v in reversed(self._versions)]

    def version_at(self, ts: float) -> dict[str, Any] | None:
        """The version in force at `ts`: the last one applied at or before it."""
        found = next((v for v in reversed(self._versions) if v.applied_at <= ts), None)
        return found.to_dict(self.current_version) if found is not None else None

    def text(self) -> str:
        current = next((v for v in self._versions if v.version == self.current_version), None)
        return current.text if current is not None else ""

    # ---- watching ---------------------------------------------------------------------------------

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Reload when the file is saved (editors replace files: the directory is watched), once settled."""
        from watchfiles import awatch

        target = self.path.resolve()
        async for changes in awatch(target.parent, stop_event=stop, debounce=300, step=50, recursive=False):
            if not any(Path(changed).resolve() == target for _, changed in changes):
                continue
            snapshot = await self._settled(stop)
            if snapshot is None:  # stopping
                return
            try:
                text = decode_config_text(self.path, snapshot.data) if snapshot.data is not None else None
            except ConfigError as exc:
                self._rejected(exc.errors, "file")
                continue
            if text is not None and self.current is not None and _digest(text) == self._latest_digest():
                continue  # our own rollback, or a save that changed nothing
            await self.reload_async("file", text)

    async def _settled(self, stop: asyncio.Event | None) -> FileSnapshot | None:
        """The file once it has not changed for settle_s; None if `stop` is set first."""
        loop = asyncio.get_running_loop()
        step = min(0.1, self.settle_s / 4) if self.settle_s > 0 else 0.0
        settling = Settling(await asyncio.to_thread(FileSnapshot.take, self.path), loop.time())
        while not settling.settled(loop.time(), self.settle_s):
            if stop is not None and stop.is_set():
                return None
            await asyncio.sleep(step)
            settling = settling.observe(await asyncio.to_thread(FileSnapshot.take, self.path), loop.time())
        return settling.snapshot
