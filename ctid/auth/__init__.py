"""Logins and roles: who may call each route (`Policy`, `allowed`), users and API tokens in SQL, browser
sessions, and the slowing of failed logins. The web side is `ctid.auth.component`."""

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
from ctid.auth.store import UserError, UserInfo, UserStore, create_demo_users, create_schema

__all__ = [
    "USER_ROLES",
    "Decision",
    "LoginThrottle",
    "Policy",
    "Role",
    "Session",
    "Sessions",
    "User",
    "UserError",
    "UserInfo",
    "UserStore",
    "allowed",
    "create_demo_users",
    "create_schema",
]
