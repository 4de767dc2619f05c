"""`ctid user add/passwd/disable/list/token`: managing ctid's users in the database of a ctid.yaml.

Each change is an `AdminAction` in the interaction log, by the operating-system user who ran it. Passwords
are read from the terminal (twice) or one line of standard input, or generated and printed once; they are
never logged.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, insert

from ctid.auth.policy import USER_ROLES
from ctid.auth.store import UserError, UserStore, create_schema
from ctid.bus import AUTH
from ctid.cli import EXIT_INVALID, open_config_database
from ctid.state.domain import AdminAction


def add_user_commands(sub: Any) -> None:
    """Register `ctid user ...` on the `ctid` command's subparsers."""
    user = sub.add_parser("user", help="add, change, disable and list ctid's users; issue API tokens")
    commands = user.add_subparsers(dest="user_command", required=True)

    def command(name: str, help: str, run: Callable[[argparse.Namespace, UserStore], str]) -> Any:
        parser = commands.add_parser(name, help=help)
        parser.add_argument("-c", "--config", default="config/ctid.yaml")
        parser.set_defaults(func=lambda args: _run(args, run))
        return parser

    add = command("add", "add a user (the password is asked for twice)", _add)
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=[r.value for r in USER_ROLES])
    add.add_argument("--agent", default="", help="the agent id of an agent user (from routing.yaml)")
    for parser in (add, command("passwd", "set a user's password", _passwd)):
        if parser is not add:
            parser.add_argument("name")
        how = parser.add_mutually_exclusive_group()
        how.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        how.add_argument("--generate", action="store_true", help="make a random password, printed once")
    command("disable", "disable a user: no login, tokens revoked", _disable).add_argument("name")
    command("list", "list the users", _list)
    command("token", "issue a bearer token for API clients, printed once", _token).add_argument("name")


def _run(args: argparse.Namespace, run: Callable[[argparse.Namespace, UserStore], str]) -> int:
    engine = open_config_database(args.config)
    if isinstance(engine, int):
        return engine
    try:
        create_schema(engine)
        action = run(args, UserStore(engine, time.time))
        if action:
            _log_admin_action(engine, f"user {action}", args.name)
    except UserError as exc:
        print(f"ctid user {args.user_command}: {exc}", file=sys.stderr)
        return EXIT_INVALID
    finally:
        engine.dispose()
    return 0


def _password(args: argparse.Namespace) -> str:
    if args.generate:
        password = secrets.token_urlsafe(12)
        print(f"password for {args.name}: {password}")
        return password
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != password:
        raise UserError("the two passwords differ")
    return password


def _add(args: argparse.Namespace, users: UserStore) -> str:
    user = users.add(args.name, args.role, _password(args), args.agent)
    print(f"added {user.name} ({user.role.value}{f', agent {user.agent_id}' if user.agent_id else ''})")
    return "add"


def _passwd(args: argparse.Namespace, users: UserStore) -> str:
    users.set_password(args.name, _password(args))
    print(f"password of {args.name} changed")
    return "passwd"


def _disable(args: argparse.Namespace, users: UserStore) -> str:
    users.disable(args.name)
    print(f"{args.name} disabled; their tokens are revoked")
    return "disable"


def _list(args: argparse.Namespace, users: UserStore) -> str:
    for user in users.users():
        state = " (disabled)" if user.disabled else ""
        print(f"{user.name}\t{user.role}\t{user.agent_id or '-'}{state}")
    return ""


def _token(args: argparse.Namespace, users: UserStore) -> str:
    print(users.issue_token(args.name))
    return "token"


def _log_admin_action(engine: Engine, action: str, target: str) -> None:
    """The change, by the operating-system user, straight into the interaction log's table."""
    from reports.log import InteractionEvent, event_row, upgrade_database

    upgrade_database(engine)
    event = AdminAction(time.time(), "", f"os:{getpass.getuser()}", action, target, 0)
    with engine.begin() as connection:
        connection.execute(
            insert(InteractionEvent).values(event_id=f"cli:{uuid.uuid4()}", **event_row(AUTH, event))
        )
