"""Sign-in sessions: what a browser holds instead of an API key.

The cookie carries a random token; the database keeps only its sha256, the key or user
it was made from, and a fixed expiry (``StationConfig.session_hours``, 12 h by default:
one shift and a margin; fixed, so a request never writes to the database to extend it).
A session is checked against its key or user every time it is read from the database, so
a revoked key or a disabled user ends it even where the row was not deleted.

The CSRF token is derived from the session token (an HMAC of it), so it needs no storage
and a page can ask for it again (``GET /api/v1/session``) after a reload.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from typing import Optional

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .orm import ApiKey, SignInSession, User, utcnow

COOKIE = "lg_session"
CSRF_HEADER = "X-CSRF-Token"


def token_hash(token: str) -> str:
    """What the database keeps of a session token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token that belongs to a session token (sent back in a header, never a cookie)."""
    return hmac.new(token.encode("utf-8"), b"lineguard-csrf", hashlib.sha256).hexdigest()


def check_csrf(token: str, sent: Optional[str]) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(token), sent.strip())


def start_session(session: Session, hours: float, key_id: Optional[int] = None,
                  user_id: Optional[int] = None) -> str:
    """A new session for a key or a user; returns the token for the cookie (stored hashed)."""
    if (key_id is None) == (user_id is None):
        raise ValueError("a session is made from exactly one of a key or a user")
    # expired sessions are removed here, at sign-in, not by a background task
    session.execute(delete(SignInSession).where(SignInSession.expires_at < utcnow()))
    token = secrets.token_urlsafe(32)
    session.add(SignInSession(token_hash=token_hash(token), key_id=key_id, user_id=user_id,
                              expires_at=utcnow() + dt.timedelta(hours=hours)))
    session.flush()
    return token


def session_caller(session: Session, token: str) -> Optional[tuple[Optional[int], str, str]]:
    """(key id or None, role, name) of a live session whose key or user still stands, else None."""
    live = live_session(session, token)
    return None if live is None else live[0]


def live_session(session: Session, token: str) -> Optional[tuple[tuple[Optional[int], str, str], dt.datetime]]:
    """:func:`session_caller`'s answer and when the session ends (naive UTC), else None: a
    cache of it must not hold it past that."""
    if not token or len(token) > 200:
        return None
    row = session.scalar(select(SignInSession).where(SignInSession.token_hash == token_hash(token)))
    if row is None or row.expires_at <= utcnow():
        return None
    if row.key_id is not None:
        key = session.get(ApiKey, row.key_id)
        if key is None or key.revoked:
            return None
        return (key.id, key.role, key.name or f"key-{key.prefix}"), row.expires_at
    user = session.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    return (None, user.role, user.username), row.expires_at


def end_session(session: Session, token: str) -> None:
    session.execute(delete(SignInSession).where(SignInSession.token_hash == token_hash(token)))
