"""`ctid reload`, `ctid config history`, `ctid config rollback`: asking the running daemon over its HTTP API.

The daemon is found at the web address of the ctid.yaml it runs with; only the standard library is used,
so these work from any shell on the machine. They log in with an admin's bearer token (`ctid user token
NAME`): the environment's CTID_TOKEN, else the file ctid.yaml names in `web.token_file`.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from ctid.config import load_config
from ctid.errors import ConfigError


def _call(config_path: str, method: str, path: str) -> tuple[int, Any]:
    web = load_config(Path(config_path)).web
    host = "127.0.0.1" if web.host in ("0.0.0.0", "::") else web.host
    scheme = "https" if web.tls else "http"
    token = os.environ.get("CTID_TOKEN") or (web.token_file.read_text().strip() if web.token_file else "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"{scheme}://{host}:{web.port}{path}", method=method, headers=headers)
    context = None
    if web.tls:  # trust exactly ctid's own certificate, whatever name it was issued for
        context = ssl.create_default_context(cafile=str(web.tls.cert))
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return exc.code, json.loads(body)
        except ValueError:
            return exc.code, body.decode("utf-8", "replace")


def _at(text: str) -> float:
    """Seconds since the epoch, or an ISO time (local time when it names no zone)."""
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text).timestamp()


def control_command(config_path: str, what: str, at: str | None = None) -> int:
    """Run one control command; 0 done, 1 refused (errors on stderr), 2 daemon or config unreachable."""
    try:
        if what == "reload":
            status, body = _call(config_path, "POST", "/api/routing/reload")
        elif what == "rollback":
            status, body = _call(config_path, "POST", "/api/routing/rollback")
        else:
            status, body = _call(
                config_path, "GET", "/api/routing/history" + (f"?at={_at(at)}" if at else "")
            )
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"ctid is not reachable ({exc}); is `ctid run -c {config_path}` running?", file=sys.stderr)
        return 2
    if status in (401, 403):
        print(
            f"ctid refused ({status}): give an admin's token (`ctid user token NAME`) in CTID_TOKEN "
            "or in the file ctid.yaml names in web.token_file",
            file=sys.stderr,
        )
        return 1
    if what == "history":
        if status != 200:
            print(body, file=sys.stderr)
            return 1
        for entry in body if isinstance(body, list) else [body]:
            mark = "*" if entry["current"] else " "
            print(f"{mark} v{entry['version']}  {entry['applied']}  {entry['sha256']}  {entry['source']}")
        return 0
    if not isinstance(body, dict) or not body.get("ok"):
        errors = body.get("errors", [body]) if isinstance(body, dict) else [body]
        print(
            f"rejected; version {body.get('version') if isinstance(body, dict) else '?'} keeps routing",
            file=sys.stderr,
        )
        for line in errors:
            print(line, file=sys.stderr)
        return 1
    for warning in body.get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"version {body['version']} routing" + ("" if body.get("changed") else " (unchanged)"))
    return 0
