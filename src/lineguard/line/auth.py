"""API keys with roles: operator < engineer < admin.

A key looks like ``lg_<prefix>_<secret>``. Only the sha256 of the whole key is stored;
the prefix finds the row without scanning, and the hash comparison is constant-time.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit
from .orm import ApiKey

ROLES = ("operator", "engineer", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}


def role_allows(have: str, need: str) -> bool:
    return _RANK.get(have, -1) >= _RANK[need]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, role: str, name: Optional[str] = None,
               by: Optional[str] = None) -> tuple[ApiKey, str]:
    """Make a key; returns (row, the key in clear). The clear key is shown once, never stored.
    ``by``: who made it, for the change log."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(4)
    key = f"lg_{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(prefix=prefix, key_hash=_hash(key), role=role, name=name, revoked=False)
    session.add(row)
    session.flush()
    audit.record(session, "key.created", f"key {row.id} ({name or 'key-' + prefix})", by, role=role)
    return row, key


def verify_key(session: Session, key: str) -> Optional[ApiKey]:
    """The key's row if the key is valid and not revoked, else None."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "lg":
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or row.revoked:
        return None
    if not hmac.compare_digest(row.key_hash, _hash(key)):
        return None
    return row


def revoke_key(session: Session, key_id: int, by: Optional[str] = None) -> bool:
    """Revoke a key and end the sessions signed in with it; False if there is no such key.

    Raises :class:`~lineguard.line.errors.Conflict` for the station's last active admin.
    """
    from sqlalchemy import delete
    from .orm import SignInSession
    from .users import refuse_last_admin, refuse_no_admin_left
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    what = f"key {row.id} ({row.name or 'key-' + row.prefix})"
    refuse_last_admin(session, row.role, not row.revoked, what)
    was_active = not row.revoked
    if was_active:
        audit.record(session, "key.revoked", what, by, role=row.role)
    row.revoked = True
    if row.role == "admin" and was_active:
        refuse_no_admin_left(session, what)
    session.execute(delete(SignInSession).where(SignInSession.key_id == row.id))
    return True


class KeyCache:
    """Keys verified recently, so a read (a part image, a line view's poll) does not cost a
    database read to authorise.

    Only valid keys are cached, by the sha256 of the key (never the key in clear), for
    ``ttl_s`` seconds. Revoking a key through this station clears the cache at once;
    the TTL bounds how long a key revoked by another process sharing the database
    keeps reading (server.deps reads the database for every change and admin call).
    """

    def __init__(self, ttl_s: float = 5.0):
        import threading
        self.ttl_s = ttl_s
        self._hits: dict[str, tuple[float, int, str, str]] = {}
        self._gen = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Optional[tuple[int, str, str]]:
        """(key id, role, name) of a key verified less than ``ttl_s`` ago, else None."""
        import time
        hit = self._hits.get(_hash(key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1], hit[2], hit[3]

    def get_entry(self, key: str) -> Optional[tuple]:
        """What :meth:`put_entry` stored for ``key`` less than ``ttl_s`` ago, else None."""
        import time
        hit = self._hits.get(_hash(key))
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1:]

    def put_entry(self, key: str, entry: tuple, gen: int, until_s: Optional[float] = None) -> None:
        """Remember any verified credential (e.g. a session token) like :meth:`put` does a key;
        ``until_s``: seconds it still holds (a session's end), if fewer than ``ttl_s``."""
        import time
        keep = self.ttl_s if until_s is None else min(self.ttl_s, until_s)
        if keep <= 0:
            return
        with self._lock:
            if gen != self._gen:
                return
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[_hash(key)] = (time.monotonic() + keep, *entry)

    def drop(self, key: str) -> None:
        with self._lock:
            self._gen += 1
            self._hits.pop(_hash(key), None)

    def generation(self) -> int:
        return self._gen

    def put(self, key: str, row: ApiKey, gen: int) -> None:
        """Remember a key verified by a read that started at generation ``gen``."""
        import time
        with self._lock:
            if gen != self._gen:     # revoked while we were reading: do not cache
                return
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[_hash(key)] = (time.monotonic() + self.ttl_s, row.id, row.role,
                                      row.name or f"key-{row.prefix}")

    def clear(self) -> None:
        with self._lock:
            self._gen += 1
            self._hits.clear()
