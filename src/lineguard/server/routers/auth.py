"""Signing in (sessions for the station's pages) and the users who may sign in."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from ...line import audit
from ...line.auth import verify_key
from ...line.errors import Conflict, InvalidRequest, StationError
from ...line.orm import User
from ...line.sessions import COOKIE, CSRF_HEADER, check_csrf, csrf_token, end_session, start_session
from ...line.shifts import parse_shift_starts, plant_zone
from ...line.sign_ins import SignInThrottle
from ...line.station import Station
from ...line.users import (authenticate, change_own_password, check_new_password, create_user, disable_user,
                           enable_user, find_user, set_password, set_role, user_to_dict)
from ..deps import DB_INT_MAX, Caller, forget_session, get_station, require, session_of
from ..schemas import ErrorOut, RequestIn, errors
from ..text_rules import no_nul

router = APIRouter()   # tags per route: a router's own would list a route under two headings in /docs


class SignInIn(RequestIn):
    # no NUL: the name tried is looked up (and a failure counted under it) in the database
    api_key: Optional[no_nul(200)] = Field(default=None, description="an API key, or:")
    username: Optional[no_nul(100)] = None
    password: Optional[str] = Field(default=None, max_length=1000)
    nul_allowed_in = frozenset({"password"})


class SessionOut(BaseModel):
    name: str
    role: str
    kind: Literal["key", "user"] = Field(description="signed in with an API key, or as a user with a password")
    csrf_token: str = Field(description=f"send it as the {CSRF_HEADER} header on every POST/PUT/PATCH/DELETE "
                                        "made with the session cookie")
    # the pages show and read every time in the plant's zone, never the browser's: an office
    # PC, a remote engineer's laptop or a tablet left on UTC sees the shifts the plant works
    timezone: str = Field(description="the plant's time zone, in which its shifts, SPC hours and days and exports "
                                      "are counted: the IANA name the station was given (--timezone, e.g. "
                                      "Europe/Berlin), or, with none given, the station PC's UTC offset now as "
                                      "+HH:MM / -HH:MM (the offset the station itself counts by)")
    shift_starts: list[str] = Field(description="when the plant's shifts start, HH:MM wall-clock times in that "
                                                "zone, earliest first")


# A password set (not one tried: that is checked against a hash, and a wrong one is a 401
# like any other) holds no NUL: the station's rule for text (text_rules.no_nul), and one
# with it could never be typed at sign-in (line.users)
_NEW_PASSWORD = no_nul(1000, min_length=1)


class UserIn(RequestIn):
    # line.users says what a user name may be (at most 100 characters among its rules): a
    # bound of 100 here answered a longer one "String should have at most 100 characters"
    username: str = Field(min_length=1, max_length=1000,
                          description="the letters a-z and A-Z, digits and . _ @ -, at most 100 characters")
    password: _NEW_PASSWORD
    role: Literal["operator", "engineer", "admin"]


class UserChange(RequestIn):
    role: Optional[Literal["operator", "engineer", "admin"]] = None
    disabled: Optional[bool] = Field(default=None, description="true disables (and signs out), false lets in again")
    password: Optional[_NEW_PASSWORD] = Field(default=None, description="a new password (a reset: the user's "
                                                                         "sessions end)")


class PasswordChange(RequestIn):
    current_password: str = Field(min_length=1, max_length=1000)
    new_password: _NEW_PASSWORD


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    disabled: bool
    created_at: Optional[str]


class UserList(BaseModel):
    items: list[UserOut]


class TooManySignIns(StationError):
    http_status = 429
    code = "too_many_sign_ins"


_429 = {429: {"model": ErrorOut, "description": "too many failed sign-ins from this name or address; wait"}}


def _throttle(request: Request) -> SignInThrottle:
    state = request.app.state
    if getattr(state, "sign_in_throttle", None) is None:
        state.sign_in_throttle = SignInThrottle(state.station.db)
    return state.sign_in_throttle


def _plant_clock(station: Station) -> dict[str, Any]:
    """The plant's time zone and shift starts, for pages to show and read times as the plant does."""
    cfg = station.config
    zone = cfg.timezone
    if not zone:
        # no zone set: the station counts shifts by this PC's zone (shifts.plant_zone), by its
        # name where it has one (pages then show times across a daylight-saving change as
        # the station counts them), else by its UTC offset now
        pc = plant_zone(None)
        zone = getattr(pc, "key", None)
        if not zone:
            off = pc.utcoffset(None) or dt.timedelta(0)
            secs = int(off.total_seconds())
            minutes = abs(secs) // 60
            zone = f"{'-' if secs < 0 else '+'}{minutes // 60:02d}:{minutes % 60:02d}"
    return {"timezone": zone, "shift_starts": [t.strftime("%H:%M") for t in parse_shift_starts(cfg.shift_starts)]}


def _sign_in(station: Station, body: SignInIn) -> Optional[tuple[str, dict[str, str]]]:
    """(session token, who signed in) of a new session, or None when the credentials do not hold."""
    hours = station.config.session_hours
    with station.db.session() as s:
        if body.api_key:
            row = verify_key(s, body.api_key.strip())
            if row is None:
                return None
            return (start_session(s, hours, key_id=row.id),
                    {"name": row.name or f"key-{row.prefix}", "role": row.role, "kind": "key"})
        user = authenticate(s, body.username or "", body.password or "")
        if user is None:
            return None
        return start_session(s, hours, user_id=user.id), {"name": user.username, "role": user.role, "kind": "user"}


@router.post("/api/v1/session", tags=["sign-in"], summary="Sign in with an API key or a user name and password",
             response_model=SessionOut, responses={**errors(401, 422), **_429})
async def sign_in(body: SignInIn, request: Request, station: Station = Depends(get_station)) -> Response:
    if not body.api_key and not (body.username and body.password):
        raise InvalidRequest("send {\"api_key\": ...} or {\"username\": ..., \"password\": ...}")
    address = request.client.host if request.client else "?"
    throttle = _throttle(request)
    # Only passwords are throttled: a key has 190 random bits, nothing to guess, and a
    # shared PC (or a reverse proxy: one address) whose users mistyped passwords must
    # still let a key in. Keys sent as headers are not throttled either.
    password_try = not body.api_key
    if password_try:
        wait = await run_in_threadpool(throttle.attempt, body.username, address)
        if wait > 0:
            raise TooManySignIns(f"too many failed sign-ins; try again in {int(wait) + 1} s, sign in with an API "
                                 "key, or ask an admin to lift the lock (Keys and users page)",
                                 retry_after_s=int(wait) + 1)
    made = await run_in_threadpool(_sign_in, station, body)
    if made is None:
        # one message for every failure: it must not tell whether the name exists
        raise HTTPException(401, "sign-in failed: the key, or the user name and password, are not valid")
    if password_try:
        await run_in_threadpool(throttle.succeeded, body.username, address)
    token, signed_in = made
    resp = JSONResponse({**signed_in, "csrf_token": csrf_token(token), **_plant_clock(station)})
    resp.set_cookie(COOKIE, token, max_age=int(station.config.session_hours * 3600), path="/", httponly=True,
                    samesite="strict", secure=request.url.scheme == "https")
    return resp


@router.get("/api/v1/session", tags=["sign-in"], summary="Who is signed in (and the CSRF token again)",
            response_model=SessionOut, responses=errors(401))
async def who(request: Request, station: Station = Depends(get_station)) -> dict[str, Any]:
    token = request.cookies.get(COOKIE)
    hit = await run_in_threadpool(session_of, station, token) if token else None
    if hit is None:
        raise HTTPException(401, "not signed in (or the sign-in has ended); sign in with POST /api/v1/session")
    return {"name": hit[2], "role": hit[1], "kind": "key" if hit[0] is not None else "user",
            "csrf_token": csrf_token(token), **_plant_clock(station)}


@router.delete("/api/v1/session", tags=["sign-in"], status_code=204, summary="Sign out", responses=errors(403))
async def sign_out(request: Request, station: Station = Depends(get_station)) -> Response:
    token = request.cookies.get(COOKIE)
    if token and await run_in_threadpool(session_of, station, token) is not None:
        if not check_csrf(token, request.headers.get(CSRF_HEADER)):
            raise HTTPException(403, f"signing out needs the {CSRF_HEADER} header of the session")

        def end() -> None:
            with station.db.session() as s:
                end_session(s, token)
        await run_in_threadpool(end)
        forget_session(station, token)
    resp = Response(status_code=204)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")
    return resp


@router.get("/api/v1/users", tags=["users"], summary="List users (never their passwords)",
            response_model=UserList, responses=errors(401, 403))
def list_users(station: Station = Depends(get_station), caller: Caller = Depends(require("admin"))) -> dict:
    with station.db.session() as s:
        return {"items": [user_to_dict(u) for u in s.scalars(select(User).order_by(User.id))]}


@router.post("/api/v1/users", status_code=201, tags=["users"], summary="Add a user who signs in with a password",
             response_model=UserOut, responses=errors(401, 403, 409, 422))
def add_user(body: UserIn, station: Station = Depends(get_station),
             caller: Caller = Depends(require("admin"))) -> dict:
    with station.db.session() as s:
        return user_to_dict(create_user(s, body.username, body.password, body.role, by=caller.who))


@router.delete("/api/v1/users/{user_id}", tags=["users"], summary="Disable a user and end their sessions",
               response_model=UserOut, responses=errors(401, 403, 404, 409, 422))
def remove_user(user_id: int = PathParam(ge=1, le=DB_INT_MAX), station: Station = Depends(get_station),
                caller: Caller = Depends(require("admin"))) -> dict:
    with station.db.session() as s:
        out = user_to_dict(disable_user(s, user_id, by=caller.who))
    station.key_cache.clear()   # after the commit: their cached sessions stop working now
    return out


@router.patch("/api/v1/users/{user_id}", tags=["users"],
              summary="Change a user: role, let in again or disable, reset the password",
              response_model=UserOut, responses=errors(401, 403, 404, 409, 422))
def change_user(body: UserChange, request: Request, user_id: int = PathParam(ge=1, le=DB_INT_MAX),
                station: Station = Depends(get_station), caller: Caller = Depends(require("admin"))) -> dict:
    if body.role is None and body.disabled is None and body.password is None:
        raise InvalidRequest("send at least one of role, disabled, password")
    # one transaction: a refused part (the last admin) leaves the others undone too
    with station.db.session() as s:
        user = None
        if body.password is not None:
            target = s.get(User, user_id)
            # an admin who resets their own password stays signed in where they did it
            own = (request.cookies.get(COOKIE) if caller.key_id is None and target is not None
                   and target.username == caller.name else None)
            user = set_password(s, user_id, body.password, by=caller.who, keep_session=own)
        if body.role is not None:
            user = set_role(s, user_id, body.role, by=caller.who)
        if body.disabled is True:
            user = disable_user(s, user_id, by=caller.who)
        elif body.disabled is False:
            user = enable_user(s, user_id, by=caller.who)
        out = user_to_dict(user)
    station.key_cache.clear()   # after the commit: cached sessions take the new role, or end, now
    if body.password is not None or body.disabled is False:
        _throttle(request).forget_name(out["username"])   # a reset also lifts the name's lock-out
    return out


@router.put("/api/v1/session/password", status_code=204, tags=["sign-in"],
            summary="Change your own password (signed in as a user; other sessions of yours end)",
            responses={**errors(401, 403, 409, 422), **_429})
async def change_password(body: PasswordChange, request: Request, station: Station = Depends(get_station),
                          caller: Caller = Depends(require("operator"))) -> Response:
    token = request.cookies.get(COOKIE)
    if caller.key_id is not None or not token:
        raise Conflict("only a user signed in with a name and password has a password to change; "
                       "an API key is replaced instead (create a new one, revoke the old)")
    # refused before the throttle: a right current password with an unusable new one is no guess
    check_new_password(body.new_password, body.current_password)
    # the current password is a guess like any sign-in: throttled the same way
    address = request.client.host if request.client else "?"
    throttle = _throttle(request)
    wait = await run_in_threadpool(throttle.attempt, caller.name, address)
    if wait > 0:
        raise TooManySignIns(f"too many wrong passwords; try again in {int(wait) + 1} s", retry_after_s=int(wait) + 1)

    def change() -> None:
        with station.db.session() as s:
            user = find_user(s, caller.name)
            uid = user.id if user is not None else None
            if uid is None:
                raise HTTPException(401, "your user is gone; sign in again")
            change_own_password(s, uid, body.current_password, body.new_password, keep_session=token)
    await run_in_threadpool(change)
    await run_in_threadpool(throttle.succeeded, caller.name, address)
    station.key_cache.clear()
    return Response(status_code=204)


class SignInLock(BaseModel):
    kind: Literal["name", "address"]
    value: str = Field(description="the user name tried, or the client address")
    failures: int
    wait_s: int = Field(description="seconds until it lifts by itself")


class SignInLocks(BaseModel):
    items: list[SignInLock]


@router.get("/api/v1/sign-in-locks", tags=["users"], summary="Names and addresses locked out after failed sign-ins",
            response_model=SignInLocks, responses=errors(401, 403))
async def sign_in_locks(request: Request, caller: Caller = Depends(require("admin"))) -> dict:
    return {"items": await run_in_threadpool(_throttle(request).locks)}


@router.delete("/api/v1/sign-in-locks", tags=["users"], summary="Lift every sign-in lock-out now",
               responses=errors(401, 403))
def lift_sign_in_locks(request: Request, station: Station = Depends(get_station),
                       caller: Caller = Depends(require("admin"))) -> dict:
    locks = _throttle(request).locks()
    if locks:     # none lifted, none logged: the log holds changes made
        with station.db.session() as s:
            # The station's users whose lock-outs were lifted are named ("names": 1 said whose
            # to nobody); any other name tried is only counted: a password typed into the name
            # field would stay in the log
            tried = [find_user(s, d["value"]) for d in locks if d["kind"] == "name"]
            users = sorted({u.username for u in tried if u is not None})[:50]
            audit.record(s, "sign_in.locks_lifted", "sign-in lock-outs" + (f" of {', '.join(users)}" if users else ""),
                         caller.who, addresses=[d["value"] for d in locks if d["kind"] == "address"][:50],
                         names=len(tried), users=users or None)
    _throttle(request).lift()
    return {"lifted": len(locks)}
