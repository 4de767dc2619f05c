"""Who may do what: roles, each route's policy, the decision for one request, browser sessions, and the
slowing of repeated failed logins. Pure: the clock is passed in, nothing here does I/O."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum


class Role(StrEnum):
    """What a user may do; each role may do all the ones before it (`PUBLIC`: no login needed)."""

    PUBLIC = "public"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)


USER_ROLES = (Role.AGENT, Role.SUPERVISOR, Role.ADMIN)  # the roles a user can be given


@dataclass(frozen=True, slots=True)
class Policy:
    """Who may call one route: at least `role`; and when `own` names a path parameter (an agent id), an
    agent only with their own agent id there (supervisors and admins with any)."""

    role: Role
    own: str = ""


@dataclass(frozen=True, slots=True)
class User:
    """A logged-in user as requests see it (`request["user"]`)."""

    name: str
    role: Role
    agent_id: str = ""  # the agent a user of role `agent` is


class Decision(Enum):
    ALLOW = 200
    LOGIN = 401  # no (valid) login
    FORBIDDEN = 403  # logged in, but not allowed


def allowed(user: User | None, policy: Policy, params: Mapping[str, str]) -> Decision:
    """May `user` (None: not logged in) call a route under `policy` with these path parameters?"""
    if policy.role is Role.PUBLIC:
        return Decision.ALLOW
    if user is None:
        return Decision.LOGIN
    if user.role.rank < policy.role.rank:
        return Decision.FORBIDDEN
    if (
        policy.own
        and user.role is Role.AGENT
        and (not user.agent_id or params.get(policy.own) != user.agent_id)
    ):
        return Decision.FORBIDDEN
    return Decision.ALLOW


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a secret sent by a client (a CSRF token) with the one expected."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


# ---- browser sessions ---------------------------------------------------------------------------------

SESSION_IDLE_S = 8 * 3600.0  # a session unused this long is over (a shift with a long break)
SESSION_MAX_S = 12 * 3600.0  # and every session ends this long after its login


@dataclass(slots=True)
class Session:
    user: str
    csrf: str  # sent back in X-CSRF-Token on every state-changing request
    created: float
    last_seen: float


@dataclass
class Sessions:
    """Browser sessions, in memory (ctid runs as one process; a restart asks everyone to log in again),
    keyed by a random id that only the session cookie carries."""

    idle_s: float = SESSION_IDLE_S
    max_s: float = SESSION_MAX_S
    _by_id: dict[str, Session] = field(default_factory=dict)

    def open(self, user: str, now: float) -> tuple[str, Session]:
        """A new session for `user`; sessions over by `now` are dropped first (memory stays bounded)."""
        self._by_id = {k: s for k, s in self._by_id.items() if not self._over(s, now)}
        session_id = secrets.token_urlsafe(32)
        session = Session(user, secrets.token_urlsafe(32), now, now)
        self._by_id[session_id] = session
        return session_id, session

    def get(self, session_id: str, now: float) -> Session | None:
        """The live session with this id (its idle time restarts), or None: unknown or expired."""
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if self._over(session, now):
            del self._by_id[session_id]
            return None
        session.last_seen = now
        return session

    def _over(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.idle_s or now - session.created > self.max_s

    def close(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._by_id)


# ---- failed logins ------------------------------------------------------------------------------------

FREE_FAILURES = 3  # failures in a row before logins for that user or address are slowed
MAX_DELAY_S = 15 * 60.0


@dataclass(slots=True)
class _Failures:
    count: int
    last: float


@dataclass
class LoginThrottle:
    """Slows password guessing: after `free` failed logins in a row for a user name, or from an address,
    the next attempt for it waits 1 s, then 2, 4, ... up to `max_delay_s`; a good login clears its user's
    and its address's count. Attempts while a key waits are refused unchecked."""

    free: int = FREE_FAILURES
    max_delay_s: float = MAX_DELAY_S
    _failures: dict[str, _Failures] = field(default_factory=dict)

    @staticmethod
    def keys(user: str, address: str) -> tuple[str, str]:
        return (f"user:{user.casefold()}", f"address:{address}")

    def wait_s(self, user: str, address: str, now: float) -> float:
        """How long until a login for `user` from `address` is checked again (0: now)."""
        return max(self._wait_s(key, now) for key in self.keys(user, address))

    def _wait_s(self, key: str, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None or failures.count < self.free:
            return 0.0
        delay = min(2.0 ** (failures.count - self.free), self.max_delay_s)
        return max(0.0, failures.last + delay - now)

    def failed(self, user: str, address: str, now: float) -> None:
        for key in self.keys(user, address):
            failures = self._failures.setdefault(key, _Failures(0, now))
            failures.count += 1
            failures.last = now
        self._forget_old(now)

    def succeeded(self, user: str, address: str) -> None:
        for key in self.keys(user, address):
            self._failures.pop(key, None)

    def _forget_old(self, now: float) -> None:
        """Keys quiet for longer than the longest delay are dropped: memory stays bounded by recent keys."""
        if len(self._failures) > 10_000:
            horizon = now - 2 * self.max_delay_s
            self._failures = {k: f for k, f in self._failures.items() if f.last >= horizon}
