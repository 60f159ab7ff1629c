"""People who sign in with a name and password, and the rule that a station keeps an admin.

Passwords are stored as a salted scrypt hash (standard library, memory-hard: about 16 MiB
and tens of milliseconds per guess), never in clear. A name that does not exist costs
the same scrypt work as a wrong password, so timing does not tell which it was.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from functools import lru_cache
from typing import Optional

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from . import audit
from .auth import ROLES
from .errors import Conflict, InvalidRequest, NotFound
from .orm import ApiKey, SignInSession, User
from .sessions import token_hash as session_token_hash

# n=2**14, r=8: 16 MiB per hash; the parameters are stored with each hash, so raising
# them later leaves older passwords readable.
_N, _R, _P = 2 ** 14, 8, 1
MIN_PASSWORD = 8
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024)
    b64 = lambda b: base64.b64encode(b).decode("ascii")  # noqa: E731
    return f"scrypt${_N}${_R}${_P}${b64(salt)}${b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    if "\x00" in password:
        # never in a password set (refused); and scrypt's HMAC pads the password with zero
        # bytes, so "secret\x00" matched "secret" (and eight NULs matched one)
        return False
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             maxmem=64 * 1024 * 1024, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # checked against when the name is unknown, so an unknown name costs a full hash too
    # (made on first use: importing this module must not cost a hash)
    return hash_password(secrets.token_urlsafe(16))


def find_user(session: Session, username: str) -> Optional[User]:
    """The user of a name as typed: exactly, else the one user whose name differs only in
    case ("Maria" for "maria"; names differing only in case are not made any more, but a
    station may hold two from before: then only the exact one)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None and username:
        alike = list(session.scalars(select(User).where(func.lower(User.username) == username.lower()).limit(2)))
        user = alike[0] if len(alike) == 1 else None
    return user


def authenticate(session: Session, username: str, password: str) -> Optional[User]:
    """The user if the name exists, is not disabled and the password matches, else None."""
    user = find_user(session, username)
    ok = check_password(password, user.password_hash if user is not None else _dummy_hash())
    if user is None or user.disabled or not ok:
        return None
    return user


def create_user(session: Session, username: str, password: str, role: str, by: Optional[str] = None) -> User:
    """A new user; InvalidRequest for a bad name, role or short password, Conflict if the name is taken."""
    if not _NAME_RE.match(username or ""):
        raise InvalidRequest(f"{username!r} is not a usable user name: the letters a-z and A-Z without accents "
                             "(jorg for jörg), digits and . _ @ -, starting with a letter or digit, at most 100 "
                             "characters")
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    _check_password_rules(password)
    same = session.scalar(select(User.username).where(func.lower(User.username) == username.lower()))
    if same is not None:
        raise Conflict(f"a user named {same!r} exists already" + (" (names are told apart without case)"
                                                                   if same != username else "") + "; pick another name")
    user = User(username=username, password_hash=hash_password(password), role=role, disabled=False)
    session.add(user)
    session.flush()
    audit.record(session, "user.added", f"user {username}", by, role=role)
    return user


def _lock_admins(session: Session) -> None:
    # Two admins removing each other at once must not both pass the count below:
    # PostgreSQL locks the admin rows until commit (SQLite has one writer anyway).
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(ApiKey.id).where(ApiKey.role == "admin", ApiKey.revoked.is_(False)).with_for_update())
        session.execute(select(User.id).where(User.role == "admin", User.disabled.is_(False)).with_for_update())


def active_admins(session: Session) -> int:
    """Admin keys not revoked plus admin users not disabled."""
    keys = session.scalar(select(func.count()).select_from(ApiKey)
                          .where(ApiKey.role == "admin", ApiKey.revoked.is_(False))) or 0
    users = session.scalar(select(func.count()).select_from(User)
                           .where(User.role == "admin", User.disabled.is_(False))) or 0
    return int(keys) + int(users)


LAST_ADMIN = ("it is the station's last active admin (keys and users together); create another admin first "
              "(`lineguard keys create --role admin` or `lineguard users add NAME --role admin`)")


def refuse_last_admin(session: Session, role: str, active: bool, what: str, doing: str = "remove") -> None:
    """Conflict if taking away this admin (``what``) would leave the station with none;
    ``doing``: the action refused, as the person asked for it ("disable": the Admin page's
    Disable said "cannot remove")."""
    if role != "admin" or not active:
        return
    _lock_admins(session)
    if active_admins(session) <= 1:
        raise Conflict(f"cannot {doing} {what}: {LAST_ADMIN}")


def refuse_no_admin_left(session: Session, what: str, doing: str = "remove") -> None:
    """After the change is written (flushed): Conflict if no active admin is left.

    The check before the change (``refuse_last_admin``) gives the message early, but on
    SQLite it reads outside any transaction: two admins removed at once both counted two.
    Read after the write, in the writer's transaction, the second one sees the first's
    commit (SQLite lets one writer at a time; PostgreSQL holds the admin rows)."""
    session.flush()
    if active_admins(session) == 0:
        raise Conflict(f"cannot {doing} {what}: {LAST_ADMIN}")


def disable_user(session: Session, user_id: int, by: Optional[str] = None) -> User:
    """Disable a user and end their sessions; NotFound, or Conflict for the last admin."""
    user = _user(session, user_id)
    refuse_last_admin(session, user.role, not user.disabled, f"user {user.username!r}", doing="disable")
    if not user.disabled:
        audit.record(session, "user.disabled", f"user {user.username}", by, role=user.role)
    was_active = not user.disabled
    user.disabled = True
    if user.role == "admin" and was_active:
        refuse_no_admin_left(session, f"user {user.username!r}", doing="disable")
    session.execute(delete(SignInSession).where(SignInSession.user_id == user.id))
    return user


def _user(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def check_new_password(password: str, current: Optional[str] = None) -> None:
    """InvalidRequest for a password that may not be set (too short, only spaces, or the
    ``current`` one again). Asked before a user's own change is throttled: a right current
    password with an unusable new one is no wrong guess."""
    _check_password_rules(password)
    if current is not None and password == current:
        raise InvalidRequest("the new password is the current one; choose another")


def _check_password_rules(password: str) -> None:
    if "\x00" in password:
        # hashed, so no database refuses it; but one read from a script, file or PLC string
        # with its terminator can never be typed on the sign-in page: its user was locked out
        raise InvalidRequest("the password holds a NUL character (U+0000), which cannot be typed at sign-in; set "
                             "it without (a password read from a script or PLC string may need its terminator "
                             "removed)")
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"the password is too short: use at least {MIN_PASSWORD} characters")
    if not password.strip():
        raise InvalidRequest("the password is only spaces: use letters, digits or signs too")


def enable_user(session: Session, user_id: int, by: Optional[str] = None) -> User:
    """Let a disabled user sign in again (with the password they had; reset it if it was
    forgotten or is the reason they were disabled)."""
    user = _user(session, user_id)
    if user.disabled:
        audit.record(session, "user.enabled", f"user {user.username}", by, role=user.role)
    user.disabled = False
    return user


def set_role(session: Session, user_id: int, role: str, by: Optional[str] = None) -> User:
    """Give a user another role; their open sessions have it from their next request.
    Conflict when it would take the station's last admin away."""
    if role not in ROLES:
        raise InvalidRequest(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    user = _user(session, user_id)
    if role == user.role:
        return user
    if user.role == "admin":
        refuse_last_admin(session, user.role, not user.disabled, f"the admin role of user {user.username!r}")
    audit.record(session, "user.role_changed", f"user {user.username}", by, role=role, before=user.role)
    was_admin, user.role = user.role == "admin", role
    if was_admin and not user.disabled:
        refuse_no_admin_left(session, f"the admin role of user {user.username!r}")
    return user


def set_password(session: Session, user_id: int, password: str, by: Optional[str] = None,
                 keep_session: Optional[str] = None) -> User:
    """A new password for a user (an admin's reset, or their own change) and the end of
    their sessions: whoever knew the old password is signed out. ``keep_session`` (a
    session token) keeps the one the user changed it from."""
    _check_password_rules(password)
    user = _user(session, user_id)
    user.password_hash = hash_password(password)
    ends = delete(SignInSession).where(SignInSession.user_id == user.id)
    if keep_session:
        ends = ends.where(SignInSession.token_hash != session_token_hash(keep_session))
    session.execute(ends)
    audit.record(session, "user.password_set", f"user {user.username}", by)
    return user


def change_own_password(session: Session, user_id: int, current: str, new: str, keep_session: str) -> User:
    """A signed-in user's own change: the current password must be given (a session left
    open on a shared PC must not be enough to take the account over)."""
    user = _user(session, user_id)
    if user.disabled or not check_password(current, user.password_hash):
        raise InvalidRequest("the current password is not right; nothing was changed")
    check_new_password(new, current)
    return set_password(session, user_id, new, by=f"{user.username} (user)", keep_session=keep_session)


def user_to_dict(user: User) -> dict:
    from .station import _iso
    return {"id": user.id, "username": user.username, "role": user.role, "disabled": user.disabled,
            "created_at": _iso(user.created_at)}
