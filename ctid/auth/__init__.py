"""Logins and roles: who may call each route (`Policy`, `allowed`), users and API tokens in SQL, browser
sessions, and the slowing of failed logins. The door is pure: the SQL store is `ctid.auth.store`, the web
side `ctid.auth.component`."""

from ctid.auth.policy import (
    USER_ROLES,
    Decision,
    LoginThrottle,
    Policy,
    Role,
    Session,
    Sessions,
    User,
    allowed,
)

__all__ = [
    "USER_ROLES",
    "Decision",
    "LoginThrottle",
    "Policy",
    "Role",
    "Session",
    "Sessions",
    "User",
    "allowed",
]
