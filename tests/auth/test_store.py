"""Users and tokens in SQL: passwords only as argon2 hashes, tokens only as digests, disabled means out."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import Engine, text

from ctid.auth import Role, User
from ctid.auth.store import UserError, UserStore, create_demo_users, create_schema
from ctid.db import make_engine


@pytest.fixture()
def engine() -> Engine:
    engine = make_engine("sqlite://")
    create_schema(engine)
    return engine


@pytest.fixture()
def users(engine: Engine) -> UserStore:
    ticks = itertools.count(1000)
    return UserStore(engine, lambda: float(next(ticks)))


def test_a_password_is_stored_only_as_an_argon2_hash_and_checked(users: UserStore, engine: Engine) -> None:
    users.add("ann", "agent", "correct horse", agent_id="a1")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    assert users.check_password("ann", "correct horse") == User("ann", Role.AGENT, "a1")
    assert users.check_password("ann", "Correct horse") is None
    assert users.check_password("nobody", "correct horse") is None


def test_a_new_password_replaces_the_old(users: UserStore) -> None:
    users.add("sue", "supervisor", "first password")
    users.set_password("sue", "second password")
    assert users.check_password("sue", "first password") is None
    assert users.check_password("sue", "second password") is not None


@pytest.mark.parametrize(
    ("name", "role", "password", "agent_id", "message"),
    [
        ("a b", "agent", "long enough", "a1", "user name"),
        ("ann", "root", "long enough", "", "role is one of"),
        ("ann", "public", "long enough", "", "role is one of"),
        ("ann", "agent", "long enough", "", "needs --agent"),
        ("ann", "supervisor", "long enough", "a1", "needs --agent"),
        ("ann", "admin", "short", "", "at least 8"),
    ],
)
def test_a_bad_user_is_refused(
    users: UserStore, name: str, role: str, password: str, agent_id: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        users.add(name, role, password, agent_id)
    assert users.users() == []


def test_a_user_is_added_once(users: UserStore) -> None:
    users.add("ada", "admin", "long enough")
    with pytest.raises(UserError, match="exists"):
        users.add("ada", "admin", "other password")
    with pytest.raises(UserError, match="no user"):
        users.set_password("nobody", "long enough")


def test_a_token_is_kept_as_a_digest_and_names_its_user(users: UserStore, engine: Engine) -> None:
    users.add("ada", "admin", "long enough")
    token = users.issue_token("ada")
    with engine.connect() as connection:
        digest, last_used = connection.execute(text("SELECT digest, last_used FROM api_tokens")).one()
    assert token not in digest and len(token) >= 40 and last_used is None
    assert users.token_user(token) == User("ada", Role.ADMIN)
    assert users.token_user(token + "x") is None
    with engine.connect() as connection:
        assert connection.execute(text("SELECT last_used FROM api_tokens")).scalar_one() is not None


def test_a_disabled_user_cannot_log_in_and_their_tokens_are_revoked(users: UserStore) -> None:
    users.add("sue", "supervisor", "long enough")
    token = users.issue_token("sue")
    users.disable("sue")
    assert users.check_password("sue", "long enough") is None
    assert users.token_user(token) is None
    assert users.active("sue") is None
    with pytest.raises(UserError):
        users.issue_token("sue")
    assert [u.disabled for u in users.users()] == [True]


def test_demo_users_get_fresh_passwords_on_every_run(engine: Engine) -> None:
    first = create_demo_users(engine, ["alice", "bob"], lambda: 1.0)
    assert [(name, role) for name, role, _ in first] == [
        ("supervisor", "supervisor"),
        ("admin", "admin"),
        ("alice", "agent"),
        ("bob", "agent"),
    ]
    second = create_demo_users(engine, ["alice", "bob"], lambda: 2.0)
    users = UserStore(engine, lambda: 3.0)
    for (name, _, old), (_, _, new) in zip(first, second, strict=True):
        assert old != new and len(new) >= 16
        assert users.check_password(name, old) is None and users.check_password(name, new) is not None
    assert users.check_password("alice", second[2][2]) == User("alice", Role.AGENT, "alice")
