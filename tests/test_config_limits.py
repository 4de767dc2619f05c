"""Config files are hostile input: nested aliases, deep nesting and huge files are refused quickly, with
file:line:column, in ctid.yaml and routing.yaml alike, before any expanded value is built."""

from __future__ import annotations

import itertools
import string
import time
import tracemalloc
from pathlib import Path

import pytest

from ctid.config import load_config
from ctid.errors import ConfigError
from ctid.yamlconf import MAX_ALIAS_NODES, MAX_DEPTH, MAX_FILE_BYTES
from routing.config import load_routing_checked

ROUTING = """\
queues:
  sales: {skills: {sales: 3}}
agents:
  - {id: alice, name: Alice, device: PJSIP/1001, skills: {sales: 5}, queues: [sales]}
"""
CTID = """\
asterisk:
  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}
"""


def laughs(levels: int) -> str:
    """The "billion laughs": each level a list of nine aliases of the level before (9**levels nodes)."""
    names = string.ascii_lowercase
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for previous, current in itertools.pairwise(names[:levels]):
        lines.append(f"{current}: &{current} [" + ", ".join([f"*{previous}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def error_of(path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_routing_checked(path, env={}, text=text)
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value.errors[0]


# --- aliases -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("levels", [9, 10])
def test_nested_aliases_are_refused_at_the_alias_that_crosses_the_bound(levels: int) -> None:
    text = ROUTING + laughs(levels)
    started = time.perf_counter()
    error = error_of(Path("conf/routing.yaml"), text)
    assert time.perf_counter() - started < 0.5
    # a..c add 90 + 819 + 7380 nodes; the first *d inside e crosses 10,000 (line 9 of the file)
    assert error == (
        f"conf/routing.yaml:9:8: alias '*d' expands the document beyond {MAX_ALIAS_NODES} nodes "
        "(aliases may repeat small parts, not multiply the file)"
    )


def test_ctid_yaml_is_bounded_too(tmp_path: Path) -> None:
    path = tmp_path / "ctid.yaml"
    path.write_text(CTID + "x-laughs:\n" + "".join("  " + line + "\n" for line in laughs(9).splitlines()))
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert caught.value.errors == [
        f"{path}:8:10: alias '*d' expands the document beyond {MAX_ALIAS_NODES} nodes "
        "(aliases may repeat small parts, not multiply the file)"
    ]


def test_anchors_shared_by_many_agents_still_load() -> None:
    first = (
        "  - {<<: &agent {queues: [sales, support]}, id: a0, name: Agent 0, device: PJSIP/2000,"
        " skills: &skills {sales: 5, support: 4}}\n"
    )
    others = "".join(
        f"  - {{<<: *agent, id: a{n}, name: Agent {n}, device: PJSIP/{2000 + n}, skills: *skills}}\n"
        for n in range(1, 200)
    )
    text = (
        "queues:\n  sales: {skills: {sales: 3}}\n  support: {skills: {support: 3}}\nagents:\n"
        + first
        + others
    )
    config, warnings = load_routing_checked(Path("conf/routing.yaml"), env={}, text=text)
    assert len(config.agents) == 200 and warnings == []
    assert config.agents[199].skills == {"sales": 5, "support": 4}
    assert config.agents[199].queues == ("sales", "support")


def test_an_alias_inside_its_own_anchor_is_refused_where_it_is_written() -> None:
    text = ROUTING + "x-loop: &loop\n  again: [1, *loop]\n"
    assert error_of(Path("conf/routing.yaml"), text) == (
        "conf/routing.yaml:6:14: alias '*loop' refers to a node that contains it"
    )


def test_nesting_beyond_the_bound_is_refused_where_it_starts() -> None:
    # ruamel's scanner is quadratic in the depth of `[`: 1,000 of them took 6 s, 500,000 would never end
    text = ROUTING + "x-deep: " + "[" * 100_000 + "]" * 100_000 + "\n"
    started = time.perf_counter()
    error = error_of(Path("conf/routing.yaml"), text)
    assert time.perf_counter() - started < 0.5
    column = len("x-deep: ") + MAX_DEPTH + 1  # the first `[` beyond the bound
    assert error == f"conf/routing.yaml:5:{column}: nested more than {MAX_DEPTH} levels deep"


def test_block_nesting_beyond_the_bound_is_refused_where_it_starts() -> None:
    text = ROUTING + "".join(f"{'  ' * depth}k{depth}:\n" for depth in range(100))
    # the document's own mapping is the first level; key k62 opens the 65th
    assert error_of(Path("conf/routing.yaml"), text) == (
        f"conf/routing.yaml:{5 + MAX_DEPTH - 1}:{2 * MAX_DEPTH - 1}: nested more than {MAX_DEPTH} levels deep"
    )


# --- size ----------------------------------------------------------------------------------------------


def huge(lines: int) -> str:
    return ROUTING + "".join(f"# comment line {n:07d} {'.' * 80}\n" for n in range(lines))


def test_a_file_over_the_size_limit_is_refused_with_the_line_where_the_limit_falls(tmp_path: Path) -> None:
    text = huge(12_000)
    data = text.encode()
    assert len(data) > MAX_FILE_BYTES
    before = data[:MAX_FILE_BYTES]
    line = before.count(b"\n") + 1
    column = len(before) - before.rfind(b"\n")
    expected = f"file too large: config files are limited to {MAX_FILE_BYTES} bytes (1 MiB)"
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as from_disk:
        load_routing_checked(path, env={})
    assert from_disk.value.errors == [f"{path}:{line}:{column}: {expected}"]
    assert error_of(Path("conf/routing.yaml"), text) == f"conf/routing.yaml:{line}:{column}: {expected}"
    ctid_yaml = tmp_path / "ctid.yaml"
    ctid_yaml.write_text(CTID + huge(12_000))
    with pytest.raises(ConfigError, match=r"ctid\.yaml:\d+:\d+: file too large"):
        load_config(ctid_yaml, env={})


def test_a_file_exactly_at_the_limit_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ctid.yamlconf.MAX_FILE_BYTES", 1000)
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING + "#" * (999 - len(ROUTING)) + "\n")
    assert path.stat().st_size == 1000
    assert load_routing_checked(path, env={})[0].queues
    path.write_text(ROUTING + "#" * (1000 - len(ROUTING)) + "\n")
    with pytest.raises(ConfigError, match="file too large"):
        load_routing_checked(path, env={})


def test_an_aliased_text_with_references_is_one_string_however_often_it_is_used() -> None:
    # 2,000 uses of a 100 KB `${...}` text: interpolated once, not into 200 MB of copies (900 MB at 9,000)
    big = "${GREETING:-" + "x" * 100_000 + "}"
    text = ROUTING + f'x-big: &big "{big}"\n' + "x-uses: [" + ", ".join(["*big"] * 2_000) + "]\n"
    tracemalloc.start()
    try:
        with pytest.raises(ConfigError) as caught:  # x-big and x-uses are unknown keys: refused when built
            load_routing_checked(Path("conf/routing.yaml"), env={}, text=text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [error.split(": ", 2)[1] for error in caught.value.errors] == ["x-big", "x-uses"]
    assert peak < 40 * 2**20, peak
