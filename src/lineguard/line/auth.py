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

from .orm import ApiKey

ROLES = ("operator", "engineer", "admin")
_RANK = {r: i for i, r in enumerate(ROLES)}


def role_allows(have: str, need: str) -> bool:
    return _RANK.get(have, -1) >= _RANK[need]


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_key(session: Session, role: str, name: Optional[str] = None) -> tuple[ApiKey, str]:
    """Make a key; returns (row, the key in clear). The clear key is shown once, never stored."""
    if role not in _RANK:
        raise ValueError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
    prefix = secrets.token_hex(4)
    key = f"lg_{prefix}_{secrets.token_urlsafe(24)}"
    row = ApiKey(prefix=prefix, key_hash=_hash(key), role=role, name=name, revoked=False)
    session.add(row)
    session.flush()
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


def revoke_key(session: Session, key_id: int) -> bool:
    row = session.get(ApiKey, key_id)
    if row is None:
        return False
    row.revoked = True
    return True
