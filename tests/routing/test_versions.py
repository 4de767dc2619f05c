"""Hot reload of routing.yaml: valid versions apply and are recorded, broken ones are refused with
file:line and the running config stays, rollback restores the previous text, the file watcher reloads."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ctid.db import make_engine
from ctid.errors import ConfigError
from routing.config import RoutingConfig, load_routing_checked
from routing.versions import (
    FileSnapshot,
    ReloadResult,
    RoutingConfigManager,
    RoutingConfigVersion,
    Settling,
)

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


# --- a file being written, a file that is slow to parse ----------------------------------------------------


def test_a_file_settles_only_once_unchanged_for_the_settle_time() -> None:
    written = FileSnapshot(size=10, mtime_ns=1, data=b"queues: {}")
    settling = Settling(written, since=100.0)
    assert not settling.settled(100.4, settle_s=0.5)
    assert settling.observe(written, 100.4) is settling and settling.settled(100.5, settle_s=0.5)
    # the same size and time but other bytes (a coarse mtime): still changing
    rewritten = FileSnapshot(size=10, mtime_ns=1, data=b"queues: []")
    settling = settling.observe(rewritten, 100.45)
    assert settling.since == 100.45 and not settling.settled(100.9, settle_s=0.5)
    assert settling.observe(FileSnapshot(-1, -1, None), 101.0).since == 101.0  # gone: changing too


async def until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)


async def test_a_file_written_in_place_in_two_halves_is_applied_only_whole(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    full = path.read_text().replace("ageing_per_s: 1.0", "ageing_per_s: 4.0")
    half = full[: full.index("  - {id: erin")]
    half_config, _ = load_routing_checked(path, text=half)  # the first half alone is a valid file...
    assert "erin" not in [agent.id for agent in half_config.agents]  # ...that drops an agent
    stop = asyncio.Event()
    watcher = asyncio.create_task(manager.watch(stop))
    await asyncio.sleep(0.3)
    with path.open("w", encoding="utf-8") as out:  # as `cat > routing.yaml` or scp: in place, in pieces
        out.write(half)
        out.flush()
        os.fsync(out.fileno())
        await asyncio.sleep(manager.settle_s / 2)
        out.write(full[len(half) :])
    await until(lambda: manager.current_version == 2)
    await asyncio.sleep(manager.settle_s + 0.5)  # time enough for a stray third version to show
    stop.set()
    await watcher
    assert [(v["version"], v["source"]) for v in manager.history()] == [(2, "file"), (1, "startup")]
    assert manager.text() == full
    assert all("erin" in [agent.id for agent in config.agents] for config in applied)
    assert applied[-1].priorities.ageing_per_s == 4.0


async def test_a_file_replaced_by_rename_is_applied_once_settled(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    stop = asyncio.Event()
    watcher = asyncio.create_task(manager.watch(stop))
    await asyncio.sleep(0.3)
    temporary = path.with_name(".routing.yaml.new")
    temporary.write_text(path.read_text().replace("ageing_per_s: 1.0", "ageing_per_s: 3.0"))
    os.replace(temporary, path)
    await until(lambda: manager.current_version == 2)
    stop.set()
    await watcher
    assert applied[-1].priorities.ageing_per_s == 3.0 and len(applied) == 2


def many_agents(count: int) -> str:
    return "queues:\n  sales: {skills: {sales: 3}}\nagents:\n" + "".join(
        f"  - {{id: a{n}, name: Agent {n}, device: PJSIP/{2000 + n}, skills: {{sales: 5}},"
        " queues: [sales]}\n"
        for n in range(count)
    )


async def test_a_slow_reload_is_parsed_off_the_loop_and_applied_on_it(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    shutil.copy(SAMPLE, path)
    threads: list[threading.Thread] = []
    manager = RoutingConfigManager(path, lambda cfg: threads.append(threading.current_thread()))
    manager.load_initial()
    path.write_text(many_agents(600))  # about a second of parsing, several on a busy machine
    loop = asyncio.get_running_loop()
    gaps: list[float] = []
    reloading = asyncio.create_task(manager.reload_async("api"))

    async def heartbeat() -> None:
        last = loop.time()
        while not reloading.done():
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    started = loop.time()
    await heartbeat()
    took = loop.time() - started
    result = await reloading
    assert (result.ok, result.version) == (True, 2)
    assert manager.current is not None and len(manager.current.agents) == 600
    assert threads == [threading.main_thread()] * 2  # applied on the loop's thread, at start-up and now
    # parsed in a thread: the loop kept turning all along (parsed on the loop, it would have turned once or
    # twice, and the longest gap would be the whole reload). Counted relative to the reload, since a loaded
    # machine stretches both; the apply itself runs on the loop, hence a half and not less.
    assert len(gaps) >= 10 and max(gaps) < took / 2, (len(gaps), max(gaps), took)


async def test_nested_aliases_are_refused_on_reload_and_the_old_config_stays(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    original = path.read_text()
    nested = ["x-a: &a [x, x, x, x, x, x, x, x, x]"]
    nested += [f"x-{b}: &{b} [" + ", ".join([f"*{a}"] * 9) + "]" for a, b in itertools.pairwise("abcdefghi")]
    path.write_text(original + "\n".join(nested) + "\n")
    started = time.perf_counter()
    result = await manager.reload_async("file")
    assert time.perf_counter() - started < 2.0  # 57 s and 2.8 GB before the bound
    assert not result.ok and result.version == 1
    line = len(original.splitlines()) + 5
    assert result.errors == [
        f"{path}:{line}:10: alias '*d' expands the document beyond 10000 nodes "
        "(aliases may repeat small parts, not multiply the file)"
    ]
    assert len(applied) == 1 and manager.current is applied[0]


async def test_rollback_async_restores_the_previous_text(
    setup: tuple[Path, list[RoutingConfig], RoutingConfigManager],
) -> None:
    path, applied, manager = setup
    original = path.read_text()
    edit(path, "ageing_per_s: 1.0", "ageing_per_s: 3.0")
    assert (await manager.reload_async()).version == 2
    result = await manager.rollback_async()
    assert (result.ok, result.version) == (True, 3)
    assert path.read_text() == original and applied[-1].priorities.ageing_per_s == 1.0
