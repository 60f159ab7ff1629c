"""Dependencies shared by the routers: the station, and the key and session checks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from fastapi import Depends, HTTPException, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader, HTTPBearer

from ..line.auth import role_allows, verify_key
from ..line.errors import InvalidRequest
from ..line.orm import utcnow
from ..line.sessions import COOKIE, CSRF_HEADER, check_csrf, live_session
from ..line.station import Station


async def get_station(request: Request) -> Station:
    # async: a plain function dependency would cost a worker-thread hop per request.
    return request.app.state.station


# Ids, versions and cursors are 32-bit INTEGER columns in PostgreSQL (64-bit in
# SQLite): a larger number can name nothing, and is refused at the edge (422) rather
# than passed to the database driver, which fails on it (a 500).
DB_INT_MAX = 2 ** 31 - 1


def _query_names(dependant: Any) -> Iterator[str]:
    for sub in dependant.dependencies:      # the filters first, then the page's own (limit, cursor)
        yield from _query_names(sub)
    for field in dependant.query_params:
        yield field.alias


def known_query_only(request: Request) -> None:
    """Dependency: refuses a query parameter the endpoint does not declare (its own and its
    dependencies'), naming it and the known ones: a filter misspelt (?seriall=, ?part=,
    ?lnie=) was ignored, and the answer covered every part, alarm or line as if they all
    matched. Declared after the sign-in check (401 first) and the filters (a time they
    cannot use is said first)."""
    route = request.scope.get("route")
    if route is None or not request.query_params:     # nothing to check: the fields are not walked
        return
    known = tuple(dict.fromkeys(_query_names(route.dependant)))     # a few dozen fields: read each time
    unknown = [k for k in dict.fromkeys(request.query_params) if k not in known]
    if unknown:
        raise InvalidRequest(f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(unknown)}; this endpoint takes {', '.join(known)}")


@dataclass
class Caller:
    key_id: Optional[int]
    role: Optional[str]
    name: str

    @property
    def who(self) -> str:
        """Who made a change, as the change log and the models' "by" say it: a key's name
        is free text (two keys may share one), so a key is named with its id; a signed-in
        user (a unique name) as a user."""
        return f"{self.name} (key {self.key_id})" if self.key_id is not None else f"{self.name} (user)"


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


_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _fresh(request: Request, role: str) -> bool:
    """Whether the credential is read from the database, not the key cache: for every
    change and every admin call. The cache is cleared only in the process that revoked a
    key or disabled a user; one revoked by `lineguard keys revoke` or by another server
    process on the database went on for seconds, and minted a new admin key. Reads keep
    the cache (a part image or a line view costs no database read to authorise) and
    lapse within its ttl_s."""
    if request.method == "POST" and request.url.path == _PARTS_PATH and role != "admin":
        # a part sent for judging: the line's hot path, authorised twice (the upload's early
        # check and the route's) and kept on the cache; a revoked key sends parts for ttl_s
        # more at most, never a change of the station's settings, keys or users
        return False
    return request.method not in _SAFE_METHODS or role == "admin"


_PARTS_PATH = "/api/v1/inspections"


def require(role: str) -> Callable[..., Caller]:
    """Dependency: the caller must present a valid key, or a signed-in session, of ``role`` or higher.

    A key (header) is checked first and is all a machine ever sends, so a part upload
    costs what it did before sessions existed. The session cookie is looked at only
    when no key is sent; with it, a request that changes something must also carry
    the session's CSRF token in ``X-CSRF-Token`` (a cookie is sent by the browser on
    its own; the header only by the station's own pages).
    """

    async def dep(request: Request, station: Station = Depends(get_station),
                  _key: Optional[str] = Security(api_key_header), _bearer: Any = Security(api_key_bearer)) -> Caller:
        key = _key_from(request)
        if not key:
            token = request.cookies.get(COOKIE)
            if token:
                return await _session_caller(request, station, token, role)
            raise HTTPException(401, f"this action needs an API key with role {role} or higher: send it in the "
                                     "X-API-Key header (create one with `lineguard keys create`), or sign in "
                                     "(POST /api/v1/session)",
                                headers={"WWW-Authenticate": "Bearer"})
        hit = None if _fresh(request, role) else station.key_cache.get(key)
        if hit is None:
            hit = await run_in_threadpool(_verify, station, key)
        if hit is None:
            raise HTTPException(401, await run_in_threadpool(_unknown_key_message, station),
                                headers={"WWW-Authenticate": "Bearer"})
        key_id, have, name = hit
        if not role_allows(have, role):
            raise HTTPException(403, f"{_a(have)} {have} key cannot do this; it needs role {role} or higher")
        return Caller(key_id, have, name)

    return dep


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"       # "an operator key", "an admin key"


async def _session_caller(request: Request, station: Station, token: str, role: str) -> Caller:
    hit = None if _fresh(request, role) else station.key_cache.get_entry(_SESSION + token)
    if hit is None:
        hit = await run_in_threadpool(session_of, station, token, True)
    if hit is None:
        raise HTTPException(401, "your sign-in has ended (expired, signed out, or its key or user was revoked); "
                                 "sign in again", headers={"WWW-Authenticate": "Bearer"})
    if request.method not in _SAFE_METHODS and not check_csrf(token, request.headers.get(CSRF_HEADER)):
        raise HTTPException(403, f"a signed-in request that changes something must carry the {CSRF_HEADER} "
                                 "header with the csrf_token the sign-in answered (GET /api/v1/session gives it "
                                 "again; a sign-in since, in another tab too, gives a new one)")
    key_id, have, name = hit
    if not role_allows(have, role):
        raise HTTPException(403, f"a signed-in {have} cannot do this; it needs role {role} or higher")
    return Caller(key_id, have, name)


async def reader(request: Request, station: Station = Depends(get_station)) -> Optional[Caller]:
    """Read access: an operator key or session, unless the station opens reads (``--open-reads``)."""
    if station.config.open_reads:
        return None
    return await require("operator")(request, station, None, None)


async def credential_lapsed(request: Request, station: Station, role: str) -> Optional[str]:
    """Why the key or session ``request`` came with no longer lets it act as ``role``, or
    None while it still does: the check of :func:`require`, asked again.

    For a response that outlives the check made when it began (the live event stream,
    open for a shift). Cheap enough
    to ask every few seconds: a key or session verified in the last seconds is in the
    key cache, which revoking, disabling, signing out and a new password clear.
    """
    try:
        await require(role)(request, station, None, None)
    except HTTPException as exc:
        return str(exc.detail)
    return None


_SESSION = "session:"   # session tokens share the key cache, apart from keys by this prefix


def session_of(station: Station, token: str, fresh: bool = False) -> Optional[tuple[Optional[int], str, str]]:
    """(key id or None, role, name) of a live session token, from the cache or (``fresh``:
    always) the database."""
    if not fresh:
        hit = station.key_cache.get_entry(_SESSION + token)
        if hit is not None:
            return hit
    gen = station.key_cache.generation()
    with station.db.session() as s:
        live = live_session(s, token)
    if live is None:
        _forget_lapsed(station, _SESSION + token)
        return None
    hit, expires_at = live
    # never cached past the session's end: it was taken for up to ttl_s after it
    station.key_cache.put_entry(_SESSION + token, hit, gen, until_s=(expires_at - utcnow()).total_seconds())
    return hit


def _forget_lapsed(station: Station, cache_key: str) -> None:
    """A credential the database no longer takes leaves this process's cache too, so the reads
    after the change that found it out are refused as well. Dropped only where it is cached:
    each drop stops verifications in flight from caching, and a guesser's keys are never there."""
    if station.key_cache.get_entry(cache_key) is not None:
        station.key_cache.drop(cache_key)


def forget_session(station: Station, token: str) -> None:
    station.key_cache.drop(_SESSION + token)


def _unknown_key_message(station: Station) -> str:
    """Why a key is not taken. A station with no keys at all is most often a new data folder
    (a mistyped --data): "ask an admin for a new one" sent people to the wrong fix."""
    from sqlalchemy import func, select

    from ..line.orm import ApiKey
    with station.db.session() as s:
        any_key = s.scalar(select(func.count()).select_from(ApiKey)) or 0
    schema = getattr(station.db, "schema", None)
    if not any_key and schema:
        # its keys are in its schema: a mistyped --db-schema is a new, empty station as a --data is
        return (f"this station (schema {schema} of its database) has no API keys yet (a new --db-schema?): check "
                f"the station's --db-schema, or create one with `lineguard keys create --db URL --db-schema {schema}`")
    if not any_key:
        return ("this station has no API keys yet (a new data folder?): check the station's --data, or create "
                "one with `lineguard keys create --data DIR`")
    return "the API key is unknown or revoked; ask an admin for a new one"


def _verify(station: Station, key: str) -> Optional[tuple[int, str, str]]:
    gen = station.key_cache.generation()
    with station.db.session() as s:
        row = verify_key(s, key)
    if row is None:
        _forget_lapsed(station, key)
        return None
    station.key_cache.put(key, row, gen)
    return row.id, row.role, row.name or f"key-{row.prefix}"
