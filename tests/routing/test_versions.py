"""Hot reload of routing.yaml: valid versions apply and are recorded, broken ones are refused with
file:line and the running config stays, rollback restores the previous text, the file watcher reloads."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ctid.db import make_engine
from ctid.errors import ConfigError
from routing.config import RoutingConfig
from routing.versions import ReloadResult, RoutingConfigManager, RoutingConfigVersion

SAMPLE = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        self.t += 60
        return self.t


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, list[RoutingConfig], RoutingConfigManager]:
    path = tmp_path / "routing.yaml"
    shutil.copy(SAMPLE, path)
    applied: list[RoutingConfig] = []
    manager = RoutingConfigManager(
        path, applied.append, engine=make_engine(f"sqlite:///{tmp_path}/v.db"), clock=Clock()
    )
    manager.load_initial()
    return path, applied, manager


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_valid_change_applies_and_is_recorded(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    edit(path, "ring_timeout_s: 15", "ring_timeout_s: 25")
    result = manager.reload("sighup")
    assert (result.ok, result.changed, result.version) == (True, True, 2)
    assert applied[-1].queues["sales"].ring_timeout_s == 25
    assert [(v["version"], v["source"], v["current"]) for v in manager.history()] == [
        (2, "sighup", True),
        (1, "startup", False),
    ]
    again = manager.reload()
    assert (again.ok, again.changed, len(applied)) == (True, False, 2)  # same text: nothing re-applied


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ("ring_timeout_s: 15", "ring_timout_s: 15", "ring_timout_s", "unknown key 'ring_timout_s'"),
        ("    wrap_up_s: 30\n", "\twrap_up_s: 30\n", "\twrap_up_s", "tab"),
        (
            "skills: {sales: 5, mandarin: 3}",
            "skills: {sales: 5, klingon: 3}",
            "klingon",
            "no agent has skill klingon",
        ),
        ("ring_timeout_s: 15", "ring_timeout_s: -15", "ring_timeout_s: -15", "greater than 0"),
    ],
    ids=["typo", "tab", "unknown-skill", "negative-timeout"],
)
def test_a_broken_file_is_refused_with_file_and_line_and_the_old_config_stays(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
    old: str,
    new: str,
    needle: str,
    message: str,
) -> None:
    path, applied, manager = setup
    edit(path, old, new)
    result = manager.reload("file")
    assert not result.ok and result.version == 1
    assert any(f"{path}:{line_of(path, needle)}:" in e and message in e.lower() for e in result.errors), (
        result.errors
    )
    assert len(applied) == 1 and manager.current is applied[0]
    assert [v["version"] for v in manager.history()] == [1]


def test_rollback_restores_the_previous_text_and_config(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    original = path.read_text()
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 3.0")
    assert manager.reload().version == 2
    result = manager.rollback()
    assert (result.ok, result.version) == (True, 3)
    assert path.read_text() == original
    assert applied[-1].priorities.ageing_per_s == 1.0
    assert manager.history()[0]["source"] == "rollback to v1"


def test_version_at_says_which_version_routed_a_call(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, _, manager = setup
    first = manager.history()[0]["applied_at"]
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 2.0")
    manager.reload()
    second = manager.history()[0]["applied_at"]
    assert manager.version_at(first + 1)["version"] == 1  # type: ignore[index]
    assert manager.version_at(second)["version"] == 2  # type: ignore[index]
    assert manager.version_at(first - 1) is None


def test_versions_survive_a_restart(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager], tmp_path: Path
) -> None:
    path, _, manager = setup
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 2.0")
    manager.reload()
    again = RoutingConfigManager(path, lambda cfg: None, engine=make_engine(f"sqlite:///{tmp_path}/v.db"))
    again.load_initial()  # the same text as the last version: no new version
    assert [v["version"] for v in again.history()] == [2, 1] and again.current_version == 2


async def test_saving_the_file_reloads_it(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    stop = asyncio.Event()
    watcher = asyncio.create_task(manager.watch(stop))
    await asyncio.sleep(0.3)
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 4.0")
    for _ in range(60):
        if manager.current_version == 2:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await watcher
    assert applied[-1].priorities.ageing_per_s == 4.0
    assert manager.history()[0]["source"] == "file"


def test_a_file_that_is_not_utf8_is_refused_not_a_crash(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    path.write_bytes(path.read_text().replace("# Inbound", "# Inbound \u00e9", 1).encode("latin-1"))
    result = manager.reload("file")
    assert not result.ok and result.version == 1
    assert result.errors == [f"{path}: not UTF-8 text: invalid continuation byte at byte 10"]
    assert len(applied) == 1
    with pytest.raises(ConfigError, match="not UTF-8 text"):  # at start-up: a clean refusal
        RoutingConfigManager(path, applied.append).load_initial()


def test_a_version_that_cannot_be_recorded_does_not_route(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    assert manager.engine is not None
    RoutingConfigVersion.__table__.drop(manager.engine)  # type: ignore[attr-defined]
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 2.0")
    result = manager.reload()
    assert not result.ok and result.version == 1
    assert "could not record the version" in result.errors[0]
    assert applied[-1] is applied[0] and manager.current is applied[0]  # the recorded version re-applied
    assert [v["version"] for v in manager.history()] == [1]


async def test_the_watcher_outlives_a_refused_file(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, applied, manager = setup
    results: list[ReloadResult] = []
    rejected = manager._rejected  # the watcher refuses a settled file that is not UTF-8 itself
    monkeypatch.setattr(manager, "_rejected", lambda *args: results.append(rejected(*args)) or results[-1])

    async def until(done: Callable[[], bool]) -> None:
        for _ in range(60):
            if done():
                return
            await asyncio.sleep(0.05)

    stop = asyncio.Event()
    watcher = asyncio.create_task(manager.watch(stop))
    await asyncio.sleep(0.3)
    original = path.read_text()
    path.write_bytes(original.replace("# Inbound", "# Inbound \u00e9", 1).encode("latin-1"))
    await until(lambda: bool(results))
    path.write_text(original.replace("ageing_per_s: 1.0", "ageing_per_s: 4.0"))
    await until(lambda: manager.current_version == 2)
    stop.set()
    await watcher
    assert not results[0].ok
    assert applied[-1].priorities.ageing_per_s == 4.0
