"""Users and their API tokens in SQL: argon2 password hashes, tokens kept only as SHA-256 digests."""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Boolean, Engine, Float, ForeignKey, String, insert, select, update
from sqlalchemy.orm import Mapped, mapped_column

from ctid.auth.policy import USER_ROLES, Role, User
from ctid.db import Base
from ctid.errors import CtidError

HASHER = PasswordHasher()
NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_PASSWORD = 8
TOKEN_TOUCH_S = 60.0  # a token's last use is written at most this often


class UserError(CtidError):
    """A user that cannot be added or changed as asked (bad name, role, password; unknown user)."""


class UserRow(Base):
    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    agent_id: Mapped[str] = mapped_column(String(64), default="")
    password_hash: Mapped[str] = mapped_column(String(256))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the token
    user: Mapped[str] = mapped_column(String(64), ForeignKey("users.name"), index=True)
    created: Mapped[float] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


def create_schema(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[UserRow.__table__, ApiToken.__table__])  # type: ignore[list-item]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as `ctid user list` shows it (never the hash)."""

    name: str
    role: str
    agent_id: str
    disabled: bool


class UserStore:
    """The users table and its tokens; every method is one short transaction."""

    def __init__(self, engine: Engine, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.clock = clock

    def add(self, name: str, role: str, password: str, agent_id: str = "") -> User:
        if not NAME.fullmatch(name):
            raise UserError("a user name is 1 to 64 letters, digits, or . _ @ -")
        try:
            chosen = Role(role)
        except ValueError:
            chosen = Role.PUBLIC
        if chosen not in USER_ROLES:
            raise UserError(f"the role is one of {', '.join(USER_ROLES)}")
        if (chosen is Role.AGENT) != bool(agent_id):
            raise UserError("an agent user needs --agent (their agent id); other roles take none")
        _check_password(password)
        now = self.clock()
        with self.engine.begin() as connection:
            if connection.scalar(select(UserRow.name).where(UserRow.name == name)) is not None:
                raise UserError(f"user {name} exists")
            connection.execute(
                insert(UserRow).values(
                    name=name,
                    role=chosen.value,
                    agent_id=agent_id,
                    password_hash=HASHER.hash(password),
                    disabled=False,
                    created=now,
                    updated=now,
                )
            )
        return User(name, chosen, agent_id)

    def set_password(self, name: str, password: str) -> None:
        _check_password(password)
        self._update(name, password_hash=HASHER.hash(password))

    def disable(self, name: str) -> None:
        """No more logins for `name`; their tokens are revoked (sessions end at their next request)."""
        self._update(name, disabled=True)
        with self.engine.begin() as connection:
            connection.execute(update(ApiToken).where(ApiToken.user == name).values(revoked=True))

    def _update(self, name: str, **values: object) -> None:
        with self.engine.begin() as connection:
            found = connection.execute(
                update(UserRow).where(UserRow.name == name).values(updated=self.clock(), **values)
            )
        if found.rowcount != 1:
            raise UserError(f"no user {name}")

    def users(self) -> list[UserInfo]:
        with self.engine.connect() as connection:
            rows = connection.execute(select(UserRow).order_by(UserRow.name)).all()
        return [UserInfo(r.name, r.role, r.agent_id, r.disabled) for r in rows]

    def check_password(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs and they are not disabled; None otherwise (a hash is computed
        for an unknown name too, so the answer takes as long either way)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(UserRow).where(UserRow.name == name)).one_or_none()
        stored = row.password_hash if row is not None else _dummy_hash()
        try:
            HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        return User(row.name, Role(row.role), row.agent_id)

    def active(self, name: str) -> User | None:
        """The user `name` as it is now, unless unknown or disabled (a session checks it on each request)."""
        with self.engine.connect() as connection:
            row = connection.execute(select(UserRow).where(UserRow.name == name)).one_or_none()
        return None if row is None or row.disabled else User(row.name, Role(row.role), row.agent_id)

    def issue_token(self, name: str) -> str:
        """A new bearer token for `name`: returned once, only its digest is stored."""
        if self.active(name) is None:
            raise UserError(f"no active user {name}")
        token = secrets.token_urlsafe(32)
        with self.engine.begin() as connection:
            connection.execute(
                insert(ApiToken).values(
                    digest=_digest(token), user=name, created=self.clock(), last_used=None, revoked=False
                )
            )
        return token

    def token_user(self, token: str) -> User | None:
        """The active user a bearer token belongs to, or None (unknown, revoked, user disabled)."""
        now = self.clock()
        digest = _digest(token)
        query = (
            select(UserRow.name, UserRow.role, UserRow.agent_id, ApiToken.last_used)
            .join(ApiToken, ApiToken.user == UserRow.name)
            .where(ApiToken.digest == digest, ApiToken.revoked.is_(False), UserRow.disabled.is_(False))
        )
        with self.engine.connect() as connection:
            found = connection.execute(query).one_or_none()
        if found is None:
            return None
        name, role, agent_id, last_used = found
        if last_used is None or now - last_used > TOKEN_TOUCH_S:
            with self.engine.begin() as connection:
                connection.execute(update(ApiToken).where(ApiToken.digest == digest).values(last_used=now))
        return User(name, Role(role), agent_id)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")


@functools.cache
def _dummy_hash() -> str:
    """What an unknown user's password is checked against, made once, when first needed."""
    return HASHER.hash(secrets.token_urlsafe(16))


def create_demo_users(
    engine: Engine, agent_ids: Iterable[str], clock: Callable[[], float]
) -> list[tuple[str, str, str]]:
    """For `ctid demo`: a supervisor, an admin and one user per agent (named as the agent), each with a
    fresh random password, also those left by an earlier demo: (name, role, password), to print once."""
    create_schema(engine)
    store = UserStore(engine, clock)
    wanted = [("supervisor", Role.SUPERVISOR, ""), ("admin", Role.ADMIN, "")]
    wanted += [(agent_id, Role.AGENT, agent_id) for agent_id in agent_ids]
    existing = {user.name for user in store.users()}
    made = []
    for name, role, agent_id in wanted:
        password = secrets.token_urlsafe(12)
        if name in existing:
            store.set_password(name, password)
        else:
            store.add(name, role, password, agent_id)
        made.append((name, role.value, password))
    return made
