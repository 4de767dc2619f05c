"""What tests running a whole ctid share: a minimal ctid.yaml for one Asterisk, and waiting on a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

FAST_RECONNECT = "reconnect_min_s: 0.05, reconnect_max_s: 0.2"


def write_ctid_yaml(tmp_path: Path, ami_port: int, server_options: str = FAST_RECONNECT) -> Path:
    """ctid.yaml for one Asterisk (pbx1) on `ami_port`, AGI and web on free ports, SQLite in tmp_path."""
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n"
        f"  - {{name: pbx1, host: 127.0.0.1, port: {ami_port}, username: ctid, secret: ctid, "
        f"{server_options}}}\n"
        "agi: {host: 127.0.0.1, port: 0}\n"
        "web: {host: 127.0.0.1, port: 0}\n"
        f"database: sqlite:///{tmp_path}/ctid.db\n"
        f"spool: {tmp_path}/spool.jsonl\n"
    )
    return config


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)
