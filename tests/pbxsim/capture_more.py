"""Capture more scenarios from a real Asterisk, in the transcript format of ../shared/asterisk/transcripts.

Run against an instance started with ../shared/asterisk/run-asterisk and ../shared/asterisk/conf (it answers
FastAGI on 127.0.0.1:4573, where that dialplan points):

    python -m tests.pbxsim.capture_more AMI_PORT tests/pbxsim/captures [SCENARIO...]

The files it wrote are kept in tests/pbxsim/captures/ and replayed against pbxsim by test_more_captures.py.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from ctid.ami.message import AmiMessage
from ctid.ami.parser import AmiParser

AGI_PORT = 4573
AGI_SCRIPTS = {
    "inbound": ['SET VARIABLE CTID_QUEUE "sales"'],
    "survey": ["GET VARIABLE CTID_QUEUE", 'SET VARIABLE CTID_SURVEY_SCORE "5"'],
}


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

    async def action(self, name: str, **headers: str | list[str]) -> AmiMessage:
        aid = self.send(name, **headers)
        return await self.wait(lambda m: m.is_response and m.action_id == aid)

    async def wait(
        self, pred: Callable[[AmiMessage], bool], after: int = 0, timeout: float = 20
    ) -> AmiMessage:
        async def find() -> AmiMessage:
            while True:
                for m in self.messages[after:]:
                    if pred(m):
                        return m
                self.arrived.clear()
                await self.arrived.wait()

        return await asyncio.wait_for(find(), timeout)


def ev(name: str, **fields: str) -> Callable[[AmiMessage], bool]:
    return lambda m: m.is_event and m.name == name and all(m.get(k) == v for k, v in fields.items())


async def inbound(ami: Client, number: str, name: str, patience: int) -> tuple[str, str]:
    mark = len(ami.messages)
    await ami.action(
        "Originate",
        Channel=f"Local/p{patience}@sim-callers",
        Context="ctid-inbound",
        Exten="4000",
        Priority="1",
        CallerID=f'"{name}" <{number}>',
        Async="true",
        Timeout="30000",
    )
    e = await ami.wait(ev("Newexten", Context="ctid-wait", CallerIDNum=number), after=mark)
    return e["Channel"], e["Uniqueid"]


async def connect_agent(ami: Client, chan: str, dial: str, ring_timeout: str = "15") -> None:
    await ami.action("Setvar", Channel=chan, Variable="CTID_AGENT_DIAL", Value=dial)
    await ami.action("Setvar", Channel=chan, Variable="CTID_RING_TIMEOUT", Value=ring_timeout)
    await ami.action("Redirect", Channel=chan, Context="ctid-connect", Exten="s", Priority="1")


async def sc_abandon_while_ringing(ami: Client) -> None:
    """The customer (patience 4 s) hangs up while agent 9001's phone rings: DialEnd CANCEL."""
    chan, uid = await inbound(ami, "13800001212", "周杰", 4)
    await connect_agent(ami, chan, "Local/9001@sim-phones")
    await ami.wait(ev("Hangup", Uniqueid=uid), timeout=15)
    await asyncio.sleep(0.5)


async def sc_redirect_back_to_queue(ami: Client) -> None:
    """ctid takes a connected caller back to ctid-wait (Redirect of the bridged caller); later hangs up."""
    chan, uid = await inbound(ami, "13800003434", "Zoë Ångström", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    await ami.wait(ev("BridgeEnter", Uniqueid=uid))
    await asyncio.sleep(1.0)
    mark = len(ami.messages)
    await ami.action("Redirect", Channel=chan, Context="ctid-wait", Exten="s", Priority="1")
    await ami.wait(ev("MusicOnHoldStart", Uniqueid=uid), after=mark)
    await asyncio.sleep(1.0)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(ev("Hangup", Uniqueid=uid))
    await asyncio.sleep(0.5)


async def sc_dual_redirect(ami: Client) -> None:
    """Both legs of a connected call are redirected to ctid-wait (Redirect with ExtraChannel)."""
    chan, uid = await inbound(ami, "13800005656", "李娜", 3600)
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    end = await ami.wait(ev("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    agent = end["DestChannel"]
    await ami.wait(ev("BridgeEnter", Uniqueid=uid))
    await asyncio.sleep(1.0)
    await ami.action(
        "Redirect",
        Channel=agent,
        ExtraChannel=chan,
        Context="ctid-wait",
        Exten="s",
        Priority="1",
        ExtraContext="ctid-wait",
        ExtraExten="s",
        ExtraPriority="1",
    )
    await asyncio.sleep(1.0)
    await ami.action("Hangup", Channel=agent, Cause="16")
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(ev("Hangup", Uniqueid=uid))
    await asyncio.sleep(0.5)


async def sc_agent_unavailable(ami: Client) -> None:
    """ctid dials an agent whose SIP phone is not registered (PJSIP/1002): CHANUNAVAIL, back to waiting."""
    chan, uid = await inbound(ami, "13800007878", "王芳", 3600)
    mark = len(ami.messages)
    await connect_agent(ami, chan, "PJSIP/1002")
    await ami.wait(ev("Newexten", Uniqueid=uid, Context="ctid-wait"), after=mark)
    await asyncio.sleep(0.5)
    await ami.action("Hangup", Channel=chan, Cause="16")
    await ami.wait(ev("Hangup", Uniqueid=uid))
    await asyncio.sleep(0.5)


async def sc_survey(ami: Client) -> None:
    """CTID_SURVEY=yes: when the agent hangs up, the caller goes to the survey over FastAGI."""
    chan, uid = await inbound(ami, "13800009090", "刘洋", 3600)
    await ami.action("Setvar", Channel=chan, Variable="CTID_SURVEY", Value="yes")
    await connect_agent(ami, chan, "Local/1001@sim-phones")
    end = await ami.wait(ev("DialEnd", DialStatus="ANSWER", Uniqueid=uid))
    await ami.wait(ev("BridgeEnter", Uniqueid=uid))
    await asyncio.sleep(1.0)
    await ami.action("Hangup", Channel=end["DestChannel"], Cause="16")
    await ami.wait(ev("Hangup", Uniqueid=uid))
    await asyncio.sleep(0.5)


SCENARIOS: dict[str, Callable[[Client], Awaitable[None]]] = {
    "abandon-while-ringing": sc_abandon_while_ringing,
    "redirect-back-to-queue": sc_redirect_back_to_queue,
    "dual-redirect": sc_dual_redirect,
    "agent-unavailable": sc_agent_unavailable,
    "survey": sc_survey,
}


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
    for name, play in SCENARIOS.items():
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
