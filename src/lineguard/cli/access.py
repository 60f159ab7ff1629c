"""Who may use a station: `keys list|revoke` and `users add|list|disable|enable|role|password`.

These work on the station's database directly (run them on the station PC, or with
--db), so an admin can get in even when no admin key is left to use the API with. The
station is found as serve finds it: --data, --db, --db-schema, else LINEGUARD_DATA,
LINEGUARD_DB, LINEGUARD_DB_SCHEMA (station.data_option).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

import click

from .station import (_config, _database_shown, _folder_checked, _new, _new_schema, _schema_without_station,
                      data_option, db_options, keys_app, no_station_database, schema_slip_said)

# the station's place, as every command that opens one takes it (alarm_rules' too)
_data = data_option()
_db = db_options()


@contextmanager
def _database(data: Path, db: Optional[str], db_schema: Optional[str] = None, existing: bool = False,
              new_hint: bool = False, read_only: bool = False, new_schema: bool = False) -> Iterator:
    """The station's database, as it is; with ``existing``, a station that is not there
    (no SQLite file, no parts' table in the PostgreSQL schema) ends the command: a
    misspelt --data or --db-schema must not become a new, empty station.

    Never migrated here: a command run from another PC with --db upgraded a plant's
    database under its running stations, and the older ones could not start again. A
    database at another schema than this lineguard's ends the command, saying which; the
    upgrade is `serve`'s, which copies a SQLite database first (line.db). Only a new one
    (no tables yet: ``--new``) is made here, with the data folder; ``read_only`` never
    makes either; in a PostgreSQL schema whose name is a slip of a station's schema (or on
    the data folder of a station in another schema), only with ``new_schema``, as serve
    refuses it without --new."""
    from sqlalchemy import inspect as sql_inspect
    from sqlalchemy.exc import SQLAlchemyError

    from ..line.db import Database, SchemaTooNew, not_current_message, schema_revisions
    from ._term import fail
    cfg = _config(data, db)
    if (existing or read_only) and cfg.sqlite_path is not None and not cfg.sqlite_path.is_file():
        fail(no_station_database(cfg, "give the station's folder (--data) or --db"
                                 + ("; for a new station, add --new" if new_hint else "")))
    try:
        database = Database(cfg.database_url, schema=db_schema)
    except ValueError as exc:            # a schema name that is not one
        fail(str(exc))
    where = _database_shown(cfg.database_url, "--db")
    try:
        if (existing or read_only) and cfg.sqlite_path is None \
                and not sql_inspect(database.engine).has_table("inspections", schema=db_schema):
            # a slip of a station's schema named (keys list --db-schema walkd_bot for walkd_boot),
            # as old-records and serve say it
            fail(f"no station in {where}" + (f" schema {db_schema!r}" if db_schema else "")
                 + (schema_slip_said(database.engine, db_schema) or ": check --db and --db-schema")
                 + ("; for a new station, add --new" if new_hint else ""))
        try:
            found = database.check_schema()
        except SchemaTooNew as exc:
            fail(exc.message)
        head = schema_revisions()[0]
        if found is None and not read_only \
                and not sql_inspect(database.engine).has_table("inspections", schema=db_schema):
            # a new station's database (its first key or user before its first start), said
            # with where: LINEGUARD_DATA or LINEGUARD_DB may have chosen it, not the command line.
            # Not for a mistyped --db-schema (hd_aa for hd_a): serve's check, in its words; a key
            # made there was refused (401) by the station meant, and the typo then served
            from ..server.app import StartupError
            try:
                _schema_without_station(replace(cfg, db_schema=db_schema), new_schema, "--new-schema")
            except StartupError as exc:
                fail(str(exc))
            cfg.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)     # as the station makes it
            database.upgrade()
            from ._term import note
            note("new station", f"made its database {where}" + (f" schema {db_schema!r}" if db_schema else "")
                 + (f" (data folder {cfg.data_dir.resolve()})" if cfg.sqlite_path is None else ""))
        elif found != head:
            fail(not_current_message(found))
        # --new: the station set up here is the one the database's records point at, from now on
        _folder_checked(database, cfg.data_dir, where, claim=not existing and not read_only)
    except SQLAlchemyError as exc:      # a server down, a wrong user: one line, not a traceback
        database.dispose()
        why = (str(getattr(exc, "orig", None) or "").strip().splitlines() or [type(exc).__name__])[0]
        fail(f"could not use the database {where}: {why}; check --db (or LINEGUARD_DB) and that it runs", code=1)
    except BaseException:
        database.dispose()
        raise
    try:
        yield database
    finally:
        database.dispose()


def _refused(exc: Exception) -> None:
    """A change the station refuses (the last admin, a key or user not there): nothing was
    written, so exit 2 as every refusal (it was 1, the code of a command that failed part-way)."""
    from ._term import fail
    fail(getattr(exc, "message", str(exc)))


@keys_app.command("list")
@_data
@_db
def keys_list(data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """List the keys (id, prefix, role, name, created, revoked); never the keys themselves."""
    from sqlalchemy import select
    from ..line.orm import ApiKey
    with _database(data, db, db_schema, existing=True, read_only=True) as database, database.session() as s:
        rows = list(s.scalars(select(ApiKey).order_by(ApiKey.id)))
        click.echo("id\tprefix\trole\tname\tcreated\tstatus")
        for r in rows:
            click.echo(f"{r.id}\t{r.prefix}\t{r.role}\t{r.name or ''}\t{r.created_at:%Y-%m-%d %H:%M}\t"
                       f"{'revoked' if r.revoked else 'active'}")


@keys_app.command("revoke")
@click.argument("key_id", type=int)
@_data
@_db
def keys_revoke(key_id: int, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Revoke key KEY_ID (see `keys list`) and end its sign-in sessions. A running station
    stops accepting it within seconds (its key cache)."""
    from ..line.audit import cli_actor
    from ..line.auth import revoke_key
    from ..line.errors import StationError
    from ..line.orm import ApiKey
    with _database(data, db, db_schema, existing=True) as database:
        with database.session() as s:
            row = s.get(ApiKey, key_id)
            # a key revoked before was said "key 2 revoked" again, as if this run had done it:
            # whoever checks a leaked key's revocation is told when it was done, and by whom
            before = _revoked_when(s, key_id) if row is not None and row.revoked else None
        if before is not None:
            click.echo(f"key {key_id} was already revoked{before}: nothing changed")
            return
        try:
            with database.session() as s:
                found = revoke_key(s, key_id, by=cli_actor())
        except StationError as exc:
            _refused(exc)
        if not found:
            _refused(LookupError(f"no key with id {key_id}; `lineguard keys list` shows them"))
    click.echo(f"key {key_id} revoked")


def _revoked_when(s, key_id: int) -> str:
    """" (at 2025-03-04 10:12 UTC, by NAME)" from the change log's last revocation of the key,
    or "" where the log holds none (a key revoked before the log was kept)."""
    from sqlalchemy import select
    from ..line.orm import ChangeLogEntry
    entry = s.scalar(select(ChangeLogEntry).where(ChangeLogEntry.action == "key.revoked",
                                                  ChangeLogEntry.subject.startswith(f"key {key_id} (", autoescape=True))
                     .order_by(ChangeLogEntry.id.desc()).limit(1))
    if entry is None:
        return ""
    return f" (at {entry.at:%Y-%m-%d %H:%M} UTC, by {entry.actor or 'someone unrecorded'})"


def _new_password(prompt: str, from_stdin: bool) -> str:
    """A password to set, read from stdin's first line or asked for twice; one the station
    refuses (too short, a NUL read with a script's or PLC string's terminator) ends the
    command (exit 2) before the database is opened, so a --new station is not made for it."""
    from ..line.errors import InvalidRequest
    from ..line.users import check_new_password
    from ._term import fail
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = _asked_twice(prompt)
    try:
        check_new_password(password)
    except InvalidRequest as exc:
        fail(exc.message)
    return password


def _asked_twice(prompt: str) -> str:
    """A password typed twice, asked again while the two differ. Input that ends first (a
    script piping two lines that differ) ends the command saying so, exit 2: click's Abort
    for it was reported as Ctrl-C (exit 130). Ctrl-C itself stays Ctrl-C."""
    from ._term import fail
    differed = False
    while True:
        try:
            first = click.prompt(prompt, hide_input=True)
            again = click.prompt("Repeat for confirmation", hide_input=True)
        except click.exceptions.Abort as exc:
            if not isinstance(exc.__context__, EOFError):
                raise
            fail("the input ended before the password was typed twice alike"
                 + (" (the two passwords given differ)" if differed else "")
                 + ": type it twice at the prompt, or give it on the first line of standard input "
                   "with --password-stdin")
        if first == again:
            return first
        differed = True
        click.echo("The two passwords differ: type it again.", err=True)


@click.group(name="users")
def users_app() -> None:
    """People who sign in to the station's pages with a name and password."""


@users_app.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["operator", "engineer", "admin"]),
              help="operator (review), engineer (also models, thresholds), admin (also keys and users).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input "
              "(scripts); otherwise it is asked for twice, without echo.")
@_data
@_db
@_new
@_new_schema
def users_add(name: str, role: str, password_stdin: bool, data: Path, db: Optional[str],
              db_schema: Optional[str], new: bool, new_schema: bool = False) -> None:
    """Add user NAME with a password (stored as a salted scrypt hash, never in clear)."""
    from ..line.errors import StationError
    from ..line.audit import cli_actor
    from ..line.users import create_user
    if not new:
        # the station's database looked for before the password is asked: one typed twice was
        # thrown away with "no station database" when --data was a slip or --new was left off
        with _database(data, db, db_schema, existing=True, new_hint=True, read_only=True):
            pass
    password = _new_password("password", password_stdin)
    with _database(data, db, db_schema, existing=not new, new_hint=True, new_schema=new_schema) as database:
        try:
            with database.session() as s:
                user = create_user(s, name, password, role, by=cli_actor())
                uid = user.id
        except StationError as exc:
            _refused(exc)
    click.echo(f"user {name} ({role}) added with id {uid}")


@users_app.command("list")
@_data
@_db
def users_list(data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """List the users (id, name, role, created, status)."""
    from sqlalchemy import select
    from ..line.orm import User
    with _database(data, db, db_schema, existing=True, read_only=True) as database, database.session() as s:
        click.echo("id\tusername\trole\tcreated\tstatus")
        for u in s.scalars(select(User).order_by(User.id)):
            click.echo(f"{u.id}\t{u.username}\t{u.role}\t{u.created_at:%Y-%m-%d %H:%M}\t"
                       f"{'disabled' if u.disabled else 'active'}")


def _change_user(data: Path, db: Optional[str], db_schema: Optional[str], name: str, change,
                 lift_lock: bool = False) -> None:
    """Run ``change(session, user_id, by)`` on user NAME in one transaction; refusals end the command.
    ``lift_lock``: the name's sign-in lock-out ends too (a reset, a user let in again), as the
    API's change does: its failures are rows in the database every station counts from, so
    the running stations see it at once (it said "try again in 297 s" after a reset)."""
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    from ..line.sign_ins import SignInThrottle
    from ..line.users import find_user
    with _database(data, db, db_schema, existing=True) as database:
        try:
            with database.session() as s:
                user = find_user(s, name)
                if user is None:
                    raise LookupError(f"no user named {name!r}; `lineguard users list` shows them")
                username = user.username
                change(s, user.id, cli_actor())
        except (StationError, LookupError) as exc:
            _refused(exc)
        if lift_lock:
            SignInThrottle(database).forget_name(username)


@users_app.command("disable")
@click.argument("name")
@_data
@_db
def users_disable(name: str, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Disable user NAME and end their sign-in sessions (the record stays: reviews name them)."""
    from ..line.users import disable_user
    _change_user(data, db, db_schema, name, lambda s, uid, by: disable_user(s, uid, by=by))
    click.echo(f"user {name} disabled")


@users_app.command("enable")
@click.argument("name")
@_data
@_db
def users_enable(name: str, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Let disabled user NAME sign in again (with their old password: `users password` resets
    it); a lock-out of the name after failed sign-ins is lifted too."""
    from ..line.users import enable_user
    _change_user(data, db, db_schema, name, lambda s, uid, by: enable_user(s, uid, by=by), lift_lock=True)
    click.echo(f"user {name} enabled")


@users_app.command("role")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["operator", "engineer", "admin"]),
              help="The user's new role; open sessions have it from their next request.")
@_data
@_db
def users_role(name: str, role: str, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Give user NAME another role (the station's last admin keeps theirs)."""
    from ..line.users import set_role
    _change_user(data, db, db_schema, name, lambda s, uid, by: set_role(s, uid, role, by=by))
    click.echo(f"user {name} is now {role}")


@users_app.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the new password from the first line of standard "
              "input (scripts); otherwise it is asked for twice, without echo.")
@_data
@_db
def users_password(name: str, password_stdin: bool, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Reset user NAME's password (a forgotten one); their sign-in sessions end, and a
    lock-out of the name after failed sign-ins is lifted at once."""
    from ..line.users import set_password
    password = _new_password("new password", password_stdin)
    _change_user(data, db, db_schema, name, lambda s, uid, by: set_password(s, uid, password, by=by),
                 lift_lock=True)
    click.echo(f"password of user {name} reset; their sessions ended and a sign-in lock-out, if any, lifted")
