"""ctid.yaml's web settings for logins: /metrics public on request, HTTPS from a certificate and key with
Secure cookies, and a trusted reverse proxy's client address."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from ctid.auth import Role
from ctid.config import TlsFiles, WebListener, load_config
from ctid.control import control_command
from ctid.state import domain as d
from ctid.web import make_app, start_web
from routing.component import RoutingApi
from routing.versions import RoutingConfigManager
from tests.auth_rig import add_user, fake_auth

SAMPLE_ROUTING = Path(__file__).resolve().parents[2] / "config" / "routing.yaml"


def fake_ctid(auth: Any) -> Any:
    return SimpleNamespace(components=[auth], calls=lambda: [], health=lambda: {"ok": True})


async def metrics_status(settings: WebListener) -> int:
    auth, _ = fake_auth(settings=settings)
    async with TestClient(TestServer(make_app(fake_ctid(auth)))) as client:
        return (await client.get("/metrics")).status


async def test_metrics_need_a_login_unless_the_config_makes_them_public() -> None:
    assert await metrics_status(WebListener()) == 401
    assert await metrics_status(WebListener(metrics_public=True)) == 200


def test_the_web_settings_load_from_ctid_yaml(tmp_path: Path) -> None:
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        "web: {host: 0.0.0.0, port: 8443, tls: {cert: /etc/ctid/cert.pem, key: /etc/ctid/key.pem},"
        " metrics_public: true, token_file: /etc/ctid/token}\n"
    )
    web = load_config(config).web
    assert web.tls == TlsFiles(cert=Path("/etc/ctid/cert.pem"), key=Path("/etc/ctid/key.pem"))
    assert web.metrics_public and web.secure_cookies and web.token_file == Path("/etc/ctid/token")
    default = WebListener()
    assert default.host == "127.0.0.1" and not default.secure_cookies and not default.metrics_public
    assert WebListener(trusted_proxy=True).secure_cookies


@pytest.fixture()
def certificate(tmp_path: Path) -> TlsFiles:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert=cert, key=key)


async def test_with_a_certificate_ctid_serves_https_and_its_cookies_are_secure(certificate: TlsFiles) -> None:
    auth, _ = fake_auth(settings=WebListener(tls=certificate))
    password = add_user(auth.users.engine, "sue", Role.SUPERVISOR)
    runner, port = await start_web(fake_ctid(auth), "127.0.0.1", 0, certificate)
    context = ssl.create_default_context(cafile=str(certificate.cert))
    context.check_hostname = False
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=context) as response:
                assert response.status == 200
            body = {"user": "sue", "password": password}
            async with http.post(f"https://127.0.0.1:{port}/login", json=body, ssl=context) as response:
                assert response.status == 200 and response.cookies["ctid_session"]["secure"]
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("trusted", "address"), [(True, "203.0.113.7"), (False, "127.0.0.1")])
async def test_the_client_address_comes_from_a_trusted_proxy_only(trusted: bool, address: str) -> None:
    auth, published = fake_auth(settings=WebListener(trusted_proxy=trusted))
    password = add_user(auth.users.engine, "sue", Role.SUPERVISOR)
    async with TestClient(TestServer(make_app(fake_ctid(auth)))) as client:
        forwarded = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the first one a client can forge
        response = await client.post("/login", json={"user": "sue", "password": password}, headers=forwarded)
        assert response.status == 200
    (login,) = [event for _, event in published if isinstance(event, d.UserLoggedIn)]
    assert login.address == address


async def test_ctid_config_history_reaches_a_daemon_serving_https(
    certificate: TlsFiles, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    routing_file = tmp_path / "routing.yaml"
    shutil.copy(SAMPLE_ROUTING, routing_file)
    manager = RoutingConfigManager(routing_file, lambda cfg: None)
    manager.load_initial()
    auth, _ = fake_auth(settings=WebListener(tls=certificate))
    add_user(auth.users.engine, "ops")
    token_file = tmp_path / "token"
    token_file.write_text(auth.users.issue_token("ops"))
    daemon: Any = SimpleNamespace(components=[auth, RoutingApi(service=None, versions=manager)])  # type: ignore[arg-type]
    runner, port = await start_web(daemon, "127.0.0.1", 0, certificate)
    config = tmp_path / "ctid.yaml"
    config.write_text(
        "asterisk:\n  - {name: pbx1, host: 127.0.0.1, username: ctid, secret: s3cret}\n"
        f"web: {{port: {port}, token_file: {token_file},"
        f" tls: {{cert: {certificate.cert}, key: {certificate.key}}}}}\n"
    )
    try:
        assert await asyncio.to_thread(control_command, str(config), "history") == 0
    finally:
        await runner.cleanup()
    assert capsys.readouterr().out.startswith("* v1")
