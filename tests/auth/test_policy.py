"""Who may call what, sessions that end, and failed logins that slow down: the pure rules, no I/O."""

from __future__ import annotations

import pytest

from ctid.auth import Decision, LoginThrottle, Policy, Role, Sessions, User, allowed

ANN = User("ann", Role.AGENT, "a1")
SUE = User("sue", Role.SUPERVISOR)
ADA = User("ada", Role.ADMIN)


def test_roles_are_ordered_public_agent_supervisor_admin() -> None:
    assert [r.rank for r in (Role.PUBLIC, Role.AGENT, Role.SUPERVISOR, Role.ADMIN)] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("user", "role", "expected"),
    [
        (None, Role.PUBLIC, Decision.ALLOW),
        (None, Role.AGENT, Decision.LOGIN),
        (None, Role.ADMIN, Decision.LOGIN),
        (ANN, Role.AGENT, Decision.ALLOW),
        (ANN, Role.SUPERVISOR, Decision.FORBIDDEN),
        (SUE, Role.SUPERVISOR, Decision.ALLOW),
        (SUE, Role.ADMIN, Decision.FORBIDDEN),
        (ADA, Role.ADMIN, Decision.ALLOW),
        (ADA, Role.AGENT, Decision.ALLOW),
    ],
)
def test_a_user_may_call_routes_of_their_role_and_below(
    user: User | None, role: Role, expected: Decision
) -> None:
    assert allowed(user, Policy(role), {}) is expected


def test_an_agent_uses_an_own_route_only_with_their_own_agent_id() -> None:
    own = Policy(Role.AGENT, own="agent_id")
    assert allowed(ANN, own, {"agent_id": "a1"}) is Decision.ALLOW
    assert allowed(ANN, own, {"agent_id": "a2"}) is Decision.FORBIDDEN
    assert allowed(User("nobody", Role.AGENT, ""), own, {"agent_id": ""}) is Decision.FORBIDDEN
    assert allowed(SUE, own, {"agent_id": "a2"}) is Decision.ALLOW  # supervisors act for any agent
    assert allowed(None, own, {"agent_id": "a1"}) is Decision.LOGIN


def test_a_session_ends_when_idle_or_too_old() -> None:
    sessions = Sessions(idle_s=100.0, max_s=1000.0)
    idle, _ = sessions.open("ann", now=0.0)
    assert sessions.get(idle, 99.0) is not None
    assert sessions.get(idle, 199.0) is not None  # each use restarts the idle time
    assert sessions.get(idle, 300.0) is None
    assert sessions.get(idle, 300.0) is None and len(sessions) == 0  # gone for good
    busy, _ = sessions.open("ann", now=0.0)
    for t in range(50, 1000, 50):
        assert sessions.get(busy, float(t)) is not None
    assert sessions.get(busy, 1001.0) is None  # used all along, but over its lifetime


def test_opening_a_session_drops_those_that_are_over() -> None:
    sessions = Sessions(idle_s=100.0, max_s=1000.0)
    for _ in range(5):
        sessions.open("ann", now=0.0)
    sessions.open("sue", now=150.0)
    assert len(sessions) == 1


def test_each_session_has_its_own_id_and_csrf_token_and_closes_alone() -> None:
    sessions = Sessions()
    first, one = sessions.open("ann", 0.0)
    second, two = sessions.open("ann", 0.0)
    assert first != second and one.csrf != two.csrf and len(first) >= 40
    sessions.close(first)
    assert sessions.get(first, 1.0) is None and sessions.get(second, 1.0) is two


def test_ten_wrong_passwords_in_a_row_wait_longer_and_longer() -> None:
    throttle = LoginThrottle(free=3, max_delay_s=60.0)
    now = 0.0
    waits = []
    for _ in range(10):
        now += throttle.wait_s("ann", "10.0.0.1", now)  # the guesser waits as long as asked, no longer
        throttle.failed("ann", "10.0.0.1", now)
        waits.append(throttle.wait_s("ann", "10.0.0.1", now))
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert now >= 60  # ten guesses took over a minute, not milliseconds


def test_the_wait_holds_for_the_user_from_any_address_and_for_the_address_with_any_user() -> None:
    throttle = LoginThrottle(free=3)
    for _ in range(4):
        throttle.failed("ann", "10.0.0.1", 0.0)
    assert throttle.wait_s("ANN", "10.9.9.9", 0.5) > 0  # user names compare without case
    assert throttle.wait_s("bob", "10.0.0.1", 0.5) > 0
    assert throttle.wait_s("bob", "10.9.9.9", 0.5) == 0


def test_a_good_login_clears_the_count() -> None:
    throttle = LoginThrottle(free=3)
    for _ in range(5):
        throttle.failed("ann", "10.0.0.1", 0.0)
    throttle.succeeded("ann", "10.0.0.1")
    assert throttle.wait_s("ann", "10.0.0.1", 0.0) == 0
