"""Fixtures for the integration tests against a real Asterisk.

They run only when CTID_TEST_ASTERISK names a launcher (run-asterisk: `start DIR CONF_DIR...`, `cli DIR CMD`,
`stop DIR`); otherwise every test here is skipped. One Asterisk and one `ctid run` process serve the whole
session; each test starts from an idle PBX and leaves one behind.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from ctid.auth import Role
from tests.asterisk.amiclient import TestAmiClient
from tests.asterisk.harness import (
    AGI_PORT,
    DESK_AGENT,
    AsteriskInstance,
    CtidHttp,
    CtidProcess,
    Pbx,
    assemble_conf_dir,
    assert_nothing_up,
    free_port,
    poll,
    port_is_free,
    write_ctid_config,
)
from tests.asterisk.tcpproxy import TcpProxy
from tests.auth_rig import bearer_for_url

LAUNCHER_ENV = "CTID_TEST_ASTERISK"
HOW_TO_ENABLE = (
    f"needs a real Asterisk: run with {LAUNCHER_ENV}=../shared/asterisk/run-asterisk "
    "(a launcher taking `start DIR CONF_DIR`, `cli DIR CMD`, `stop DIR`)"
)


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AsteriskInstance]:
    """A real Asterisk with ctid's contract dialplan and the sim-* contexts, on free ports."""
    launcher_setting = os.environ.get(LAUNCHER_ENV, "")
    if not launcher_setting:
        pytest.skip(HOW_TO_ENABLE)
    launcher = Path(launcher_setting).expanduser().resolve()
    if not (launcher.is_file() and os.access(launcher, os.X_OK)):
        pytest.fail(f"{LAUNCHER_ENV}={launcher_setting}: no executable launcher at {launcher}")
    root = tmp_path_factory.mktemp("asterisk")
    instance = AsteriskInstance(
        launcher=launcher,
        directory=root / "pbx",
        conf_dir=assemble_conf_dir(root / "conf"),
        ami_port=free_port(),
        sip_port=free_port(socket.SOCK_DGRAM),
        username="ctidtest",
        secret=secrets.token_hex(8),
    )
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="session")
def ami_proxy(asterisk: AsteriskInstance) -> Iterator[TcpProxy]:
    """ctid reaches AMI through this proxy, so a test can cut the network between them."""
    proxy = TcpProxy(asterisk.ami_port, free_port())
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture(scope="session")
def ctid(
    asterisk: AsteriskInstance, ami_proxy: TcpProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CtidProcess]:
    """`ctid run -c ctid.yaml` as a process, up and synced with Asterisk."""
    deadline = time.monotonic() + 15
    while not port_is_free(AGI_PORT) and time.monotonic() < deadline:
        time.sleep(0.2)  # another run's ctid may be shutting down
    if not port_is_free(AGI_PORT):
        pytest.fail(
            f"port {AGI_PORT} is in use; the contract dialplan calls FastAGI on 127.0.0.1:{AGI_PORT}, "
            "so ctid must listen there (is another ctid or test run going?)"
        )
    root = tmp_path_factory.mktemp("ctid")
    config = root / "ctid.yaml"
    web_port = free_port()
    write_ctid_config(
        config, ami_port=ami_proxy.port, username=asterisk.username, secret=asterisk.secret, web_port=web_port
    )
    database = f"sqlite:///{root / 'ctid.db'}"
    login = bearer_for_url(database)
    agent_login = bearer_for_url(database, f"{DESK_AGENT}-login", Role.AGENT, DESK_AGENT)
    process = CtidProcess(config, root / "ctid.log", web_port, login, agent_login)
    process.start()
    try:
        _wait_healthy(process, timeout=15.0)
        yield process
    finally:
        status = process.stop()
        if status != 0:
            print(f"ctid stopped with status {status}; its log ends:\n{process.log_tail()}")


def _wait_healthy(process: CtidProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        process.check_alive()
        try:
            with urllib.request.urlopen(process.base_url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise AssertionError(
        f"ctid not healthy after {timeout:g} s ({last}); its log ends:\n{process.log_tail()}"
    )


@pytest.fixture
async def http(ctid: CtidProcess) -> AsyncIterator[CtidHttp]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout, headers=ctid.login) as session:
        yield CtidHttp(ctid.base_url, session)


@pytest.fixture
async def ami(asterisk: AsteriskInstance) -> AsyncIterator[TestAmiClient]:
    """The test's own AMI session (the customers and the router), with its session's fd noted."""
    before = set(asterisk.ami_session_fds())
    client = TestAmiClient("127.0.0.1", asterisk.ami_port, asterisk.username, asterisk.secret)
    await client.connect()
    new = set(asterisk.ami_session_fds()) - before
    client.session_fd = new.pop() if len(new) == 1 else None
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def pbx(
    ami: TestAmiClient, http: CtidHttp, asterisk: AsteriskInstance, ctid: CtidProcess, ami_proxy: TcpProxy
) -> AsyncIterator[Pbx]:
    """The driver for a test. Afterwards every channel is hung up and ctid must agree that nothing is up,
    and ctid's log must hold no errors from this test."""
    await assert_nothing_up(http, asterisk)
    log_start = ctid.log_size()
    yield Pbx(ami)
    try:
        ctid.check_alive()
    finally:
        if asterisk.channels():
            asterisk.cli("channel request hangup all")
    try:
        await assert_nothing_up(http, asterisk)
    except AssertionError:
        # ctid still shows calls Asterisk no longer has: make it resync so the next test starts clean
        with ami_proxy.outage():
            await poll(lambda: http.get("/healthz"), lambda v: v[0] == 503, what="ctid to lose AMI")
        await poll(lambda: http.get("/healthz"), lambda v: v[0] == 200, what="ctid to resync")
        raise
    errors = ctid.log_errors(log_start)
    assert not errors, "ctid logged errors during the test:\n" + "\n".join(errors)
