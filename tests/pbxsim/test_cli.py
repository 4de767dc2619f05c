"""The `pbxsim` command starts a working AMI server with traffic, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import re
import signal
import sys

from pbxsim.cli import build_parser, parse_start
from tests.pbxsim.driver import REAL_TIMEOUT


def test_options() -> None:
    args = build_parser().parse_args(["--no-traffic", "--agents", "2001-2003", "--speed", "50"])
    assert (args.traffic, args.agents, args.speed, args.ami_port, args.agi_port) == (
        False,
        "2001-2003",
        50.0,
        5038,
        4573,
    )
    assert parse_start("2026-11-23T09:00:00Z") == 1_795_392_000.0 + 9 * 3600


async def test_pbxsim_command_serves_ami_with_traffic() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pbxsim.cli",
        "--ami-port",
        "0",
        "--agi-port",
        "1",
        "--speed",
        "200",
        "--volume",
        "30",
        "--start",
        "2026-11-23T10:00:00Z",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), REAL_TIMEOUT)).decode()
        port = int(re.search(r"AMI on [\d.]+:(\d+)", line)[1])  # type: ignore[index]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await reader.readline() == b"Asterisk Call Manager/13.0.0\r\n"
        writer.write(b"Action: Login\r\nUsername: ctid\r\nSecret: ctid\r\n\r\n")
        seen = b""
        while b"Event: Newchannel" not in seen or b"Context: ctid-wait" not in seen:
            seen += await asyncio.wait_for(reader.read(65536), REAL_TIMEOUT)
        assert b"Message: Authentication accepted" in seen
        assert b"Channel: PJSIP/trunk-" in seen
        writer.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), REAL_TIMEOUT) == 0
