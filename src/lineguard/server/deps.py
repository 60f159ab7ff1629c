"""Dependencies shared by the routers: the station and API-key checks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPBearer

from ..line.auth import role_allows, verify_key
from ..line.station import Station


async def get_station(request: Request) -> Station:
    # async: a plain function dependency would cost a worker-thread hop per request.
    return request.app.state.station


# Ids, versions and cursors are 32-bit INTEGER columns in PostgreSQL (64-bit in
# SQLite): a larger number can name nothing, and is refused at the edge (422) rather
# than passed to the database driver, which fails on it (a 500).
DB_INT_MAX = 2 ** 31 - 1


@dataclass
class Caller:
    key_id: Optional[int]
    role: Optional[str]
    name: str


def _key_from(request: Request) -> Optional[str]:
    key = request.headers.get("x-api-key")
    if key:
        return key.strip()
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return None


# Declared so the OpenAPI document names how a key is sent (either header works); the
# check itself is below. auto_error=False: a missing key gets our own 401 message.
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey",
                              description="an API key (`lineguard keys create`)")
api_key_bearer = HTTPBearer(auto_error=False, scheme_name="Bearer", description="the same key as a bearer token")


def require(role: str) -> Callable[..., Caller]:
    """Dependency: the caller must present a valid key of ``role`` or higher."""

    async def dep(request: Request, station: Station = Depends(get_station),
                  _key: Optional[str] = Security(api_key_header), _bearer: Any = Security(api_key_bearer)) -> Caller:
        key = _key_from(request)
        if not key:
            raise HTTPException(401, f"this action needs an API key with role {role} or higher: send it in the "
                                     "X-API-Key header (create one with `lineguard keys create`)",
                                headers={"WWW-Authenticate": "Bearer"})
        hit = station.key_cache.get(key)
        if hit is None:
            hit = await run_in_threadpool(_verify, station, key)
        if hit is None:
            raise HTTPException(401, "the API key is unknown or revoked; ask an admin for a new one",
                                headers={"WWW-Authenticate": "Bearer"})
        key_id, have, name = hit
        if not role_allows(have, role):
            raise HTTPException(403, f"a {have} key cannot do this; it needs role {role} or higher")
        return Caller(key_id, have, name)

    return dep


async def reader(request: Request, station: Station = Depends(get_station)) -> Optional[Caller]:
    """Read access: open on the plant LAN by default, else an operator key."""
    if station.config.open_reads:
        return None
    return await require("operator")(request, station, None, None)


def _verify(station: Station, key: str) -> Optional[tuple[int, str, str]]:
    gen = station.key_cache.generation()
    with station.db.session() as s:
        row = verify_key(s, key)
    if row is None:
        return None
    station.key_cache.put(key, row, gen)
    return row.id, row.role, row.name or f"key-{row.prefix}"
