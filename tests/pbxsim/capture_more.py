"""Capture more scenarios from a real Asterisk, in the transcript format of ../shared/asterisk/transcripts.

Run against an instance started with ../shared/asterisk/run-asterisk and ../shared/asterisk/conf (it answers
FastAGI on 127.0.0.1:4573, where that dialplan points):

    python -m tests.pbxsim.capture_more AMI_PORT tests/pbxsim/captures [SCENARIO...]

The files it wrote are kept in tests/pbxsim/captures/ and replayed against pbxsim by test_more_captures.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser
from tests.pbxsim.test_more_captures import AGI_SCRIPTS, PLAYS  # the same scenarios pbxsim is tested on

AGI_PORT = 4573


class Log:
    def __init__(self, title: str) -> None:
        self.lines = [
            f"# {title}",
            "# captured with tests/pbxsim/capture_more.py from ../shared/asterisk (conf/)",
        ]
        self.lines.append(
            "# '>>> ' = sent by ctid's side, '<<< ' = sent by Asterisk; an empty marker line ends a message"
        )

    def save(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n", "utf-8")


class Client:
    def __init__(self, port: int, log: Log) -> None:
        self.port, self.log = port, log
        self.messages: list[AmiMessage] = []
        self.n = 0
        self.arrived = asyncio.Event()

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        banner = (await self.reader.readline()).decode().rstrip("\r\n")
        self.log.lines.append(f"<<< {banner}")
        self.task = asyncio.create_task(self._read())
        await self.action("Login", Username="ctid", Secret="ctid", Events="on")

    async def _read(self) -> None:
        parser = AmiParser(expect_banner=False)
        buf = b""
        while data := await self.reader.read(65536):
            buf += data
            *lines, buf = buf.split(b"\r\n")
            for raw in lines:
                line = raw.decode("utf-8")
                self.log.lines.append(f"<<< {line}" if line else "<<< ")
                self.messages.extend(parser.feed(raw + b"\r\n"))
            self.arrived.set()

    def send(self, name: str, **headers: str | list[str]) -> str:
        self.n += 1
        aid = f"{name.lower()}-{self.n}"
        lines = [f"Action: {name}", f"ActionID: {aid}"]
        for key, value in headers.items():
            lines += [f"{key}: {v}" for v in ([value] if isinstance(value, str) else value)]
        self.log.lines += [f">>> {line}" for line in lines] + [">>> "]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return aid

    async def action(self, name: str, **headers: str) -> AmiMessage:
        aid = self.send(name, **headers)
        return await self.wait(lambda m: m.is_response and m.action_id == aid)

    def mark(self) -> int:
        return len(self.messages)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def wait(
        self, pred: Callable[[AmiMessage], bool], after: int = 0, within: float = 20
    ) -> AmiMessage:
        async def find() -> AmiMessage:
            while True:
                for m in self.messages[after:]:
                    if pred(m):
                        return m
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(find(), within)


async def agi_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    env = {}
    while line := (await reader.readline()).decode().rstrip("\n"):
        key, _, value = line.partition(": ")
        env[key] = value
    for command in AGI_SCRIPTS.get(env.get("agi_network_script", ""), []):
        writer.write((command + "\n").encode())
        await writer.drain()
        reply = (await reader.readline()).decode()
        if not reply.startswith("200"):
            break
    writer.close()


async def main(port: int, out: Path, only: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    agi = await asyncio.start_server(agi_handler, "127.0.0.1", AGI_PORT)
    for name, play in PLAYS.items():
        if only and name not in only:
            continue
        log = Log(f"{name}: {' '.join((play.__doc__ or '').split())}")
        ami = Client(port, log)
        await ami.connect()
        await play(ami)
        await ami.action("Logoff")
        await asyncio.sleep(0.2)
        ami.writer.close()
        log.save(out / f"{name}.ami.txt")
        print(f"{name}: {len(log.lines)} lines")
    agi.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
