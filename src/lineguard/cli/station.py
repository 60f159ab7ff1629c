"""Station verbs: serve, keys, watch, camera, sweep, backup, restore, undo-upgrade, parts."""
from __future__ import annotations

import datetime as dt
import functools
import os
import shlex
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import click

from ..line.schema_names import SCHEMA_NAME_RULE
from .core import PathArg, precision_option, runtime_option


@click.group(name="keys")
def keys_app() -> None:
    """API keys of a station (operator < engineer < admin)."""


class UtcTime(click.ParamType):
    """A day or a time in ISO 8601 (:func:`lineguard.line.shifts.read_time`): a time is the
    naive UTC time it names, the ``Z`` or offset a plant copies from an export or the API
    understood (click's DateTime refused both, and a time without seconds); a day alone
    stays a date, for the command to place in the plant's day once --timezone is known
    (:func:`lineguard.line.shifts.plant_instant`)."""

    name = "time"

    def convert(self, value, param, ctx):
        if isinstance(value, dt.date):
            return value
        from ..line.shifts import read_time
        try:
            return read_time(value, "")       # click names the option itself
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _retention(ok_sample_rate: float):
    from ..line.config import RetentionPolicy
    return RetentionPolicy(ok_sample_rate=ok_sample_rate)


def _shift_starts(text: str) -> tuple[str, ...]:
    from ..line.config import shift_starts_from_text
    return shift_starts_from_text(text)


# A command-line option -> (the StationConfig field it sets, how its value becomes the
# field's); the other station options are named as their fields
_OPTION_FIELDS = {
    "data": ("data_dir", Path), "db": ("db_url", None), "webhook": ("webhook_url", None),
    "mqtt": ("mqtt_url", None), "webhook_timeout": ("webhook_timeout_s", None),
    "max_upload_mb": ("max_upload_bytes", lambda mb: int(mb * 1024 * 1024)),
    "max_megapixels": ("max_image_pixels", lambda mp: int(mp * 1e6)),
    "ok_sample_rate": ("retention", _retention),
    "power_safe": ("sqlite_synchronous", lambda on: "FULL" if on else "NORMAL"),
    "shift_starts": ("shift_starts", _shift_starts),
}


# options whose variable counts in another unit (the table's, as StationConfig keeps it)
_ENV_UNITS = {"max_upload_mb": "bytes", "max_megapixels": "pixels"}


def _env_in_help(*skip: str):
    """Each option of a station started here names its LINEGUARD_* variable in --help, from
    line.config's table (the variables themselves are read there, see _station_config);
    not the ``skip`` ones (watch's --data: LINEGUARD_DATA does not make it inspect here)."""
    def named(command: click.Command) -> click.Command:
        from ..line.config import env_var_of
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in skip:
                continue
            var = env_var_of(_OPTION_FIELDS.get(param.name, (param.name, None))[0])
            if var:
                unit = _ENV_UNITS.get(param.name)
                param.help = f"{param.help or ''} [env: {var}{', in ' + unit if unit else ''}]".strip()
        return command
    return named


def _fields(options: dict) -> dict:
    """Options (by their parameter names) as StationConfig's fields; None: not set."""
    out = {}
    for name, value in options.items():
        field, convert = _OPTION_FIELDS.get(name, (name, None))
        out[field] = None if value is None else convert(value) if convert else value
    return out


def _config(data: Path, db: Optional[str], **options):
    """A station's settings from these values alone: the commands that only look for a
    station's database (keys, backup, parts), given the --data and --db that
    :func:`data_option` resolved (the variables already read there)."""
    from ..line.config import StationConfig
    try:
        cfg = StationConfig(**{k: v for k, v in _fields({"data": data, "db": db, **options}).items()
                               if v is not None})
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    _not_a_backup(cfg)
    return cfg


def _not_a_backup(cfg) -> None:
    """The command ends (exit 2) before anything opens the database when --data (or a
    SQLite --db) is a backup folder: opened, even read, its database was changed."""
    from ..line.data_folders import BackupFolderAsData, refuse_backup_folder
    from ._term import fail
    try:
        refuse_backup_folder(cfg.data_dir, cfg.sqlite_path)
    except BackupFolderAsData as exc:
        fail(exc.message)


# The commands that open a station's folder or database to look after it, not to run it
# (keys, users, alarm-rules, alarm-causes, parts, old-records, sweep, backup, restore),
# find it as serve does: the option given, else its LINEGUARD_* variable, else the
# default. They read their options alone: on a station set up with
# LINEGUARD_DATA=/srv/line3, `lineguard users add` made a new, empty station in ./station,
# or was refused naming ./station. Only these three variables: a setting of the running
# station (a bad LINEGUARD_MAX_BATCH) must not lock its admin out.
_LOCATION = (("data", "LINEGUARD_DATA", "folder"), ("db", "LINEGUARD_DB", "database"),
             ("db_schema", "LINEGUARD_DB_SCHEMA", "schema"))


def data_option(help_text: str = "Station folder.", default: Optional[Path] = Path("./station"),
                unless: Optional[str] = None, postgresql_folder: bool = True):
    """--data, with LINEGUARD_DATA; and the station's place resolved before the command
    runs, --db and --db-schema too where it has them (:func:`db_options`), so its body
    gets the folder and database serve would open. ``unless``: the command's flag that,
    given, wants no folder (restore --check): no variable is read then. ``postgresql_folder``
    False: the command says itself what a PostgreSQL station's folder given without --db
    gets (backup, undo-upgrade: its pg_dump), not :func:`station_place_checked`'s refusal."""
    def add(f):
        @functools.wraps(f)
        def run(**kw):
            if not (unless and kw.get(unless)):
                kw.update(_station_location(kw, default, postgresql_folder))
            return f(**kw)
        shown = f"; default {os.path.join('.', default)}" if default is not None else ""
        return click.option("--data", type=PathArg, default=None,
                            help=f"{help_text} [env: LINEGUARD_DATA{shown}]")(run)
    return add


def _schema_given(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """--db-schema checked as it is read, by every command that takes it (serve, watch,
    camera, keys, users, parts...): a name PostgreSQL cannot keep as written ends the command
    (exit 2) in the one sentence of line.db, before anything is opened. `serve --db-schema
    hI-walk` ended in a traceback, and `hI_walk` ran the station in another's schema (hi_walk)."""
    from ..line.schema_names import schema_name_problem
    from ._term import fail
    if value is not None:
        why = schema_name_problem(value, "--db-schema")
        if why is not None:
            fail(why)
    return value


def db_options(schema: bool = True,
               db_help: str = "The station's database URL (default: the SQLite database in --data)."):
    """--db (LINEGUARD_DB) and, with ``schema``, --db-schema (LINEGUARD_DB_SCHEMA): read by
    :func:`data_option`, which every command taking them has too."""
    def add(f):
        if schema:
            f = click.option("--db-schema", default=None, callback=_schema_given,
                             help=f"The station's PostgreSQL schema, where it has its own; {SCHEMA_NAME_RULE}. "
                                  "[env: LINEGUARD_DB_SCHEMA]")(f)
        return click.option("--db", default=None, help=f"{db_help} [env: LINEGUARD_DB]")(f)
    return add


def _station_location(given: dict, default: Optional[Path], postgresql_folder: bool = True) -> dict:
    """The station's folder, database and schema (those of the command's options in
    ``given``; None: not given): each option given, else its variable, else the default.
    Says which came from the environment and where they point (the database without its
    password): the variable must not send a command, `--new` above all, somewhere the
    admin did not see. A value that cannot be one ends the command (exit 2) naming its
    variable; a LINEGUARD_* variable nothing reads is warned about, as serve does."""
    from ..line.config import EnvSettingError, env_settings, unknown_env_warnings
    from ._term import fail, note
    for line in unknown_env_warnings():
        note("warning", line)
    mine = [(name, var, what) for name, var, what in _LOCATION if name in given]
    try:       # an empty variable is unset, as for serve
        found = env_settings({var: os.environ[var] for _n, var, _w in mine if var in os.environ})
    except EnvSettingError as exc:
        fail(str(exc))
    out: dict = {}
    used: list[str] = []
    for name, var, what in mine:
        if given[name] is not None:
            out[name] = given[name]
        elif var in found:
            out[name] = found[var][1]
            used.append(var)
        else:
            out[name] = default if name == "data" else None
    db_shown = _database_shown(out.get("db"), "LINEGUARD_DB" if "LINEGUARD_DB" in used else "--db")
    if "LINEGUARD_DB_SCHEMA" in used:       # --db-schema itself was checked as it was read
        from ..line.schema_names import schema_name_problem
        why = schema_name_problem(out["db_schema"], "LINEGUARD_DB_SCHEMA")
        if why is not None:
            fail(why)
    if used:
        shown = {"LINEGUARD_DATA": lambda: str(Path(out["data"]).resolve()), "LINEGUARD_DB": lambda: db_shown,
                 "LINEGUARD_DB_SCHEMA": lambda: out["db_schema"]}
        note("note", "the station from the environment: " + ", ".join(
            f"{what} {shown[var]()} ({var})" for _n, var, what in mine if var in used))
    if "LINEGUARD_DB" in used and out.get("data") is not None and (Path(out["data"]) / "lineguard.db").is_file():
        note("warning", f"the database is LINEGUARD_DB's, not the SQLite station in {out['data']} (lineguard.db): "
                        "its parts, keys and users are not this one's; unset LINEGUARD_DB (or give --db) for it")
    if "db" in given:       # a command that opens the station's database (restore makes a folder of its own)
        station_place_checked(out.get("data"), out.get("db"), out.get("db_schema"),
                              schema_var="LINEGUARD_DB_SCHEMA" in used, postgresql_folder=postgresql_folder,
                              db_given=out.get("db") is not None and "LINEGUARD_DB" not in used)
    return out


def station_place_checked(data: Optional[Path], db: Optional[str], db_schema: Optional[str],
                          schema_var: bool = False, postgresql_folder: bool = True, db_given: bool = False) -> None:
    """A command's folder, database and schema checked before anything is opened or made
    (:func:`lineguard.line.data_folders.station_place_problem`, which ``python -m
    lineguard.server`` calls too): exit 2 with its reason, its note said."""
    from ..line.data_folders import PlaceRefused, station_place_problem
    from ._term import fail, note
    if db is not None and db.strip().lower().startswith("sqlite"):
        _database_shown(db, "--db")     # one that cannot be a database ends here, in its own words
    try:
        said = station_place_problem(data, db, db_schema, schema_var=schema_var,
                                     postgresql_folder=postgresql_folder, db_given=db_given)
    except PlaceRefused as exc:
        fail(str(exc))
    if said:
        note("note", said)


def station_said(data: Optional[Path], db: Optional[str], db_schema: Optional[str]) -> tuple[str, bool]:
    """The station's place as a command given next takes it, for a hint to copy (` --data
    DIR --db URL --db-schema NAME`, each quoted for a shell): those of this command's options
    given, on its command line or by their LINEGUARD_* variable (:func:`data_option`), not a
    default. `keys create --data ./station-old` named `lineguard keys revoke 4` alone, and
    copied, it revoked key 4 of ./station. The database never with its password: ``***`` in
    its place (the second value says one was hidden: the admin gives it again), or
    ``"$LINEGUARD_DB"`` where that variable gave the URL."""
    from click.core import ParameterSource

    from ..line.config import without_password
    ctx = click.get_current_context(silent=True)

    def by(name: str, var: str) -> Optional[str]:
        """How the option ``name`` was given: "line", "env", or None (its default)."""
        if ctx is not None and ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE:
            return "line"
        return "env" if os.environ.get(var) else None
    said, hidden = "", False
    if data is not None and by("data", "LINEGUARD_DATA"):
        said += f" --data {shlex.quote(str(data))}"
    how = by("db", "LINEGUARD_DB")
    if db and how == "env":       # the shell gives it again, password and all
        said += ' --db "$LINEGUARD_DB"'
    elif db:
        shown = without_password(db)
        said, hidden = said + f" --db {shlex.quote(shown)}", shown != db
    if db_schema:
        said += f" --db-schema {shlex.quote(db_schema)}"
    return said, hidden


# after a hint naming the database without its password
_PASSWORD_WHERE = " (with the database password where *** stands)"


def _database_shown(url: Optional[str], by: str) -> Optional[str]:
    """A database URL as the commands print it: without its password; one that cannot be a
    station's database ends the command (exit 2) in line.db's one sentence naming ``by``,
    not in a traceback, its password never shown."""
    if url is None:
        return None
    from ..line.config import without_password
    from ..line.db import database_url_problem
    from ._term import fail
    # read as the database will be: one that cannot be one (a port that is not a number,
    # libpq's key=value words, another kind of database) ends here, before anything is made
    problem = database_url_problem(url, by)
    if problem is not None:
        fail(problem)
    return without_password(url)


def _station_config(serve: bool = True, **options):
    """The settings of a station started here (``serve``; ``watch``/``camera --data``): the
    options given on the command line, over the LINEGUARD_* environment (line.config's one
    table, as uvicorn importing the app reads it), over the defaults. ``serve`` built its
    settings from its options alone: LINEGUARD_BACKUP_TO, _SESSION_HOURS, _AUDIT_SAMPLE_RATE
    and the others were dropped without a word, and a station set up that way made no
    backups. An option left at its default is not given: the variable decides. A value
    the station cannot take, from either, ends the command (exit 2) saying which."""
    from click.core import ParameterSource

    from ..line.config import EnvSettingError, StationConfig
    from ._term import fail, note
    ctx = click.get_current_context(silent=True)

    def given(name: str) -> bool:
        # an option this command lacks (camera has no --max-upload-mb) is given by the caller
        if ctx is None or name not in ctx.params:
            return True
        return ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, ParameterSource.DEFAULT_MAP)
    try:
        overrides = _fields({name: value for name, value in options.items() if given(name)})
        cfg = StationConfig.from_env(warn=lambda line: note("warning", line), serve=serve, **overrides)
    except EnvSettingError as exc:
        fail(str(exc))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    _say_environment(cfg, {k for k, v in overrides.items() if v is not None}, serve)
    if cfg.db_url:
        _database_shown(cfg.db_url, "--db" if overrides.get("db_url") is not None else "LINEGUARD_DB")
    station_place_checked(cfg.data_dir, cfg.db_url, cfg.db_schema,
                          schema_var=cfg.db_schema is not None and overrides.get("db_schema") is None,
                          db_given=overrides.get("db_url") is not None)
    _not_a_backup(cfg)
    _check_disk_floor(cfg, overrides.get("min_free_gb") is not None)
    return cfg


def _check_disk_floor(cfg, option_given: bool) -> None:
    """--min-free-gb (LINEGUARD_MIN_FREE_GB) against the data disk, before the station
    opens: one at or above the disk's size ends the start (exit 2), one above the free
    space now is said, since its images start going at once (line.config.disk_floor_check)."""
    from ..line.config import start_disk_floor
    from ._term import fail, note
    try:
        said = start_disk_floor(cfg, option_given)      # python -m lineguard.server runs it too
    except ValueError as exc:
        fail(str(exc))
    if said:
        note("warning", said)


def _say_environment(cfg, given: set, serve: bool = True) -> None:
    """Name the settings the environment gave (never their values: a database URL may hold
    a password), so a LINEGUARD_* variable left in a shell is seen; and warn when the
    database came from LINEGUARD_DB while the data folder holds a SQLite station of its own
    (a station started there went to an empty PostgreSQL database without a word)."""
    from ..line.config import SERVE_ONLY, env_settings
    from ._term import note
    # the variables this process does not read are not parsed here either: a value only
    # serve refuses (LINEGUARD_PLC_IMAGES=/cam/a:/cam/b) stopped a watcher here
    used = sorted(env_settings(skip=set(given) | (set() if serve else set(SERVE_ONLY))))
    if used:
        note("note", f"settings from the environment: {', '.join(used)}")
    if "LINEGUARD_DB" in used and cfg.db_url and (Path(cfg.data_dir) / "lineguard.db").is_file():
        note("warning", f"the database is LINEGUARD_DB's, not the SQLite station in {cfg.data_dir} "
                        "(lineguard.db): its parts, keys and models are not this station's; unset LINEGUARD_DB "
                        "to start that one")


# the options of a station wherever it runs, and their defaults (see line.config)
_STATION_DEFAULTS = {"max_megapixels": 26.0, "ok_sample_rate": 1.0, "audit_sample_rate": 0.02, "min_free_gb": 2.0,
                     "ok_image_days": None, "keep_records_days": None, "archive_records_to": None,
                     "archive_images": "ng",
                     "alarm_ng_run": 5, "alarm_ng_rate": 0.10, "alarm_window": 100,
                     "alarm_photo_run": 3, "alarm_no_verdict_run": 3, "alarm_drift_parts": 100,
                     "alarm_escalate_min": 10.0,
                     "alarm_escalate_again_min": 0.0}


def station_options(f):
    """The largest image a station decodes, and which part images it keeps for how long:
    the same options wherever a station runs (``serve``, and ``watch``/``camera``
    inspecting in their own process)."""
    options = (
        click.option("--max-megapixels", type=click.FloatRange(min=0, min_open=True),
                     default=_STATION_DEFAULTS["max_megapixels"], show_default=True,
                     help="Most pixels an image may decode to (checked before decoding; larger JPEGs are decoded "
                          "at a reduced scale when that fits, other formats refused)."),
        click.option("--ok-sample-rate", type=click.FloatRange(0, 1), default=_STATION_DEFAULTS["ok_sample_rate"],
                     show_default=True,
                     help="Share of OK part images kept, 0 to 1 (0.1: one in ten; NG and REVIEW images are "
                          "always kept)."),
        click.option("--audit-sample-rate", type=click.FloatRange(0, 1),
                     default=_STATION_DEFAULTS["audit_sample_rate"], show_default=True,
                     help="Share of parts kept at random whatever their verdict (the audit sample retraining may "
                          "learn from, with the parts reviewed as good)."),
        click.option("--min-free-gb", type=click.FloatRange(min=0), default=_STATION_DEFAULTS["min_free_gb"],
                     show_default=True,
                     help="Keep this much free on the data disk: below it the oldest parts' images are deleted "
                          "(OK parts' first; reviewed parts and the audit sample never; records stay). 0: never."),
        click.option("--ok-image-days", type=click.FloatRange(min=0, min_open=True),
                     default=_STATION_DEFAULTS["ok_image_days"],
                     help="Delete OK parts' images older than this many days (default: keep while there is "
                          "room)."),
        click.option("--keep-records-days", type=click.FloatRange(min=30),
                     default=_STATION_DEFAULTS["keep_records_days"],
                     help="Delete parts' records (and their images) older than this many days, at least 30; "
                          "reviewed parts, the audit sample and test-part checks stay (default: keep every record, "
                          "the quality record)."),
        click.option("--archive-records-to", type=PathArg,
                     default=_STATION_DEFAULTS["archive_records_to"],
                     help="With --keep-records-days: write the records to this folder (CSV, the parts export's "
                          "columns) before they are deleted; a batch that cannot be written is not deleted."),
        click.option("--archive-images", type=click.Choice(["none", "ng", "all"]),
                     default=_STATION_DEFAULTS["archive_images"], show_default=True,
                     help="With --archive-records-to: whose part images go there with the records: the parts not "
                          "passed (ng: NG and REVIEW, the evidence of each reject), every part's (all) or none."),
        click.option("--alarm-ng-run", type=click.IntRange(min=0),
                     default=_STATION_DEFAULTS["alarm_ng_run"], show_default=True,
                     help="Raise a line alarm when this many parts in a row (2 to 10000) at a station are not passed "
                          "(NG or REVIEW); 0: off. Latched until acknowledged (the app, the API, the PLC's AlarmAck)."),
        click.option("--alarm-ng-rate", type=click.FloatRange(0, 1),
                     default=_STATION_DEFAULTS["alarm_ng_rate"], show_default=True,
                     help="Raise a line alarm when this share of a station's last --alarm-window parts is NG "
                          "(0.1: 10%); 0: off."),
        click.option("--alarm-window", type=click.IntRange(10, 100_000),
                     default=_STATION_DEFAULTS["alarm_window"], show_default=True,
                     help="Parts the NG-rate alarm looks back over."),
        click.option("--alarm-photo-run", type=click.IntRange(min=0),
                     default=_STATION_DEFAULTS["alarm_photo_run"], show_default=True,
                     help="Raise a line alarm (check the camera) when this many photos (2 to 10000) of the last 2N-1 at a station are "
                          "unlike the model's good photos (too dark, too bright, flat, blurred); such parts then "
                          "count toward no other alarm. 0: off (they count as REVIEW parts)."),
        click.option("--alarm-no-verdict-run", type=click.IntRange(min=0),
                     default=_STATION_DEFAULTS["alarm_no_verdict_run"], show_default=True,
                     help="Raise a line alarm when the PLC link answers this many parts in a row (2 to 10000) NG without a "
                          "verdict (no verdict within --inspection-window-ms, no image, a model or storage fault): "
                          "good parts are being scrapped. 0: off."),
        click.option("--alarm-drift-parts", type=click.IntRange(min=0),
                     default=_STATION_DEFAULTS["alarm_drift_parts"], show_default=True,
                     help="Raise a line alarm when a station's part scores drift away from those its model gave "
                          "first (a lens getting dirty, a lamp ageing, a camera out of focus), before parts are "
                          "rejected or defects passed: groups of this many parts (20 to 10000), each compared with "
                          "the model's first 5 groups there, two in a row moved. 0: off."),
        click.option("--alarm-escalate-min", type=click.FloatRange(min=0),
                     default=_STATION_DEFAULTS["alarm_escalate_min"], show_default=True,
                     help="Escalate a line alarm left unacknowledged this many minutes (0.5 to 1440), once (MQTT/webhook "
                          "change 'escalated', for a supervisor's pager; the line view marks it). Stored on each "
                          "alarm this process raises, so every process on the database escalates it alike. "
                          "0: never."),
        click.option("--alarm-escalate-again-min", type=click.FloatRange(min=0),
                     default=_STATION_DEFAULTS["alarm_escalate_again_min"], show_default=True,
                     help="Escalate an escalated alarm again every this many minutes (1 to 1440) while it stays "
                          "unacknowledged (each with its level: 2, 3, ..., for the next person up); 0: once."),
    )
    for option in reversed(options):
        f = option(f)
    return f


def db_wait_option(command: str, given: str):
    """--db-wait of a command that opens a station here (serve; watch and camera with
    --data): one option, one meaning, one helper (:func:`_open_when_the_database_answers`),
    so a hot folder or camera PC switched on with the line waits for its database as the
    station server does."""
    return click.option(
        "--db-wait", type=click.FloatRange(min=0), default=None, metavar="SECONDS",
        help=f"{given}: how long {command} waits at start-up for it to take connections (a PC switched on "
             "before the database's), trying again every 1 s to 15 s and saying so every minute; then exit 75. "
             "Default: for as long as it takes; 0: exit 2 at once. A refused password or user, a missing "
             "database or a newer schema is never waited for (exit 2).")


def station_log() -> None:
    """The log of a station run by this command (serve; watch and camera inspecting here,
    --data, and their own with --server), on stderr: INFO and up, each line with its time, logger and level. Without it
    the station in watch's or camera's process said its WARNING lines alone: a part
    inspected again with another photo, the database taking writes again, a sink delivering
    again were dropped, where serve's log says them. Alembic's INFO stays out: its plugin
    list at every start is noise. So is httpx's line for each request (watch and camera with
    --server send every part through it; its URL may hold a password), where no one set it."""
    import logging
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if logging.getLogger("httpx").level == logging.NOTSET:
        logging.getLogger("httpx").setLevel(logging.WARNING)


@_env_in_help()
@click.command()
@click.option("--data", type=PathArg, default=Path("./station"), show_default=True,
              help="Station folder: database (SQLite) and stored images.")
@click.option("--model", type=PathArg, default=None,
              help="A model (.lgm, or an exported .onnx) to make active at start-up: a file new to the station "
                   "is registered and activated; one already registered is activated only when no version of "
                   "the product/line is active (a restart keeps a later retrain, tuned version or rollback).")
@click.option("--product", default=None, help="Product the --model inspects.")
@click.option("--new-product", is_flag=True,
              help="--product (and each --recipe's product) is a new product even where its name is one keying "
                   "slip from a known one (cell-ba beside cell-ab); without it such a name is refused as a typo.")
@click.option("--line", default="", help="Limit --model to one line (default: every line of the product).")
@click.option("--db", default=None, help="Database URL, e.g. postgresql://user@host/db (default SQLite).")
@click.option("--db-schema", default=None, callback=_schema_given,
              help="With a PostgreSQL --db: the station's own schema (several stations in one database); the same "
                   f"--db-schema the keys, users and parts commands take; {SCHEMA_NAME_RULE}.")
@db_wait_option("serve", "With a database server (--db postgresql://...)")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for the plant network).")
@click.option("--port", type=int, default=8000, show_default=True)
@click.option("--max-upload-mb", type=float, default=32.0, show_default=True, help="Largest image accepted.")
@station_options
@click.option("--backup-to", type=PathArg, default=None,
              help="Back the station up into this folder (best on another disk): its database and every file it "
                   "names, every --backup-every-h hours (SQLite stations; see `lineguard backup`).")
@click.option("--backup-every-h", type=click.FloatRange(min=0, min_open=True), default=24.0, show_default=True,
              help="Hours between the station's backups (with --backup-to).")
@click.option("--webhook", default=None, help="POST every result to this URL.")
@click.option("--mqtt", default=None, help="Publish results to this broker, e.g. mqtt://127.0.0.1:1883.")
@click.option("--webhook-timeout", type=click.FloatRange(min=0, min_open=True), default=10.0, show_default=True,
              metavar="SECONDS",
              help="How long the --webhook receiver may take to answer a message; a slower answer counts as "
                   "failed and the message is sent again after a backoff.")
@click.option("--max-batch", type=int, default=16, show_default=True,
              help="Parts judged together when several wait for the model (exported .onnx models; a .lgm "
                   "model judges one part at a time). 1 turns batching off.")
@click.option("--batch-window-ms", type=float, default=0.0, show_default=True,
              help="Hold a lone part this long for others to batch with (0: never hold a part back).")
@runtime_option
@precision_option
@click.option("--modbus-port", type=int, default=None,
              help="Run the PLC handshake over Modbus TCP on this port (502 is the standard one; needs root). "
                   "The register map is in the README.")
@click.option("--opcua-port", type=int, default=None,
              help="Run the PLC handshake over OPC UA (Machine Vision style) on this port (4840 is the standard "
                   "one). The node layout is in the README.")
@click.option("--plc-images", "plc_images", multiple=True, metavar="[LINK=]DIR",
              help="With --modbus-port / --opcua-port: the folder the link's camera saves into; a PLC trigger "
                   "inspects its photo there. With both ports (two lines, two cameras) give each link its own: "
                   "--plc-images modbus=DIR1 --plc-images opcua=DIR2 (in LINEGUARD_PLC_IMAGES separated as in "
                   "PATH: modbus=DIR1:opcua=DIR2).")
@click.option("--plc-camera", default=None, metavar="SOURCE",
              help="With a PLC port, instead of --plc-images: a camera (RTSP/HTTP URL, USB index), a video file "
                   "(played at its recorded rate) or an image folder; a PLC trigger inspects the next frame. "
                   "One camera is one line's: not with both --modbus-port and --opcua-port. "
                   "A lost stream is reconnected; meanwhile triggers are answered NG (no image) and /health says why.")
@click.option("--plc-camera-fps", type=float, default=None,
              help="With --plc-camera: frames per second of an image folder (default 1) or a video file "
                   "(default: its recorded rate).")
@click.option("--plc-host", default=None,
              help="With a PLC port: the address the PLC link listens on (default --host): keep the unsecured "
                   "Modbus/OPC UA server on the machine network's address while the pages serve the plant's.")
@click.option("--plc-image-wait-ms", type=click.FloatRange(0, 5000), default=250.0, show_default=True,
              help="With --plc-images: how long a trigger waits for its photo when none has come since the "
                   "previous trigger (a camera that saves a little after the trigger); then NG, no image.")
@click.option("--recipe", "recipes", multiple=True, metavar="ID=PRODUCT",
              help="With a PLC port: a RecipeId the PLC may write and the product it selects (repeat it); "
                   "default 1=--product. In LINEGUARD_RECIPE separated by ',': 1=cell,2=frame.")
@click.option("--plc-line", default=None, help="With a PLC port: the line PLC-triggered parts are recorded on "
              "(default --line).")
@click.option("--plc-station", default=None,
              help="With a PLC port: the station PLC-triggered parts are recorded at (default plc; with both links "
                   "NAME-modbus and NAME-opcua), as alarm rules, the gallery and the reports name it.")
@click.option("--inspection-window-ms", type=float, default=1000.0, show_default=True,
              help="With a PLC port: a part without a verdict this long after its trigger is answered NG "
                   "(ResultCode 10).")
@click.option("--peer", "peers", multiple=True, metavar="NAME=URL",
              help="Another station of the plant (repeat it for each): the Plant page and GET /api/v1/plant show "
                   "its status, faults and alarms beside this station's, read from its /health (no key needed), "
                   "e.g. --peer line2=http://10.0.0.12:8000. In LINEGUARD_PEERS separated by ','.")
@click.option("--open-reads", is_flag=True,
              help="Let anyone who reaches the station read inspections and part images without a key or "
                   "sign-in (dashboards on a closed network). Off by default: part images are the plant's IP.")
@click.option("--power-safe", is_flag=True, help="SQLite: fsync every inspection before answering (survives power "
              "loss, ~7 ms more per part; the default survives a crash or kill -9 of the station).")
@click.option("--report-slots", type=click.IntRange(min=1), default=2, show_default=True,
              help="SPC charts, shift reports and exports run at once; the others wait their turn (up to 30 s, "
                   "then 503), so parts sent meanwhile are not held up behind them. Exports (held for their "
                   "whole download) take all but one of them.")
@click.option("--shift-starts", default=None, metavar="HH:MM,...",
              help="When the plant's shifts start, e.g. 06:00,18:00 (default 06:00,14:00,22:00): the shift report, "
                   "SPC by shift and day, the line view's counts and the test parts' due shifts.")
@click.option("--timezone", default=None,
              help="The plant's time zone, an IANA name such as Europe/Berlin (default: this PC's): its shifts, "
                   "days and hours, and the plant_time of exports.")
@click.option("--new", is_flag=True,
              help="Make a new, empty station at --data even where a folder of nearly the same name beside it "
                   "(another case, a trailing space) holds one; without it such a --data is refused as a typo. "
                   "Likewise on PostgreSQL: a --db-schema holding no station where a schema of nearly the same "
                   "name holds one, or where --data is the folder of a station in another schema. "
                   "Otherwise no --new is needed: serve says it made a new station.")
def serve(data: Path, model: Optional[Path], product: Optional[str], new_product: bool, line: str, db: Optional[str],
          db_schema: Optional[str], db_wait: Optional[float], host: str,
          port: int, max_upload_mb: float, max_megapixels: float, ok_sample_rate: float, webhook: Optional[str], mqtt: Optional[str],
          webhook_timeout: float, max_batch: int, batch_window_ms: float, runtime: Optional[str], precision: Optional[str],
          modbus_port: Optional[int], opcua_port: Optional[int], plc_images: tuple[str, ...],
          plc_camera: Optional[str], plc_camera_fps: Optional[float], plc_host: Optional[str],
          plc_image_wait_ms: float,
          recipes: tuple[str, ...],
          plc_line: Optional[str], plc_station: Optional[str], peers: tuple[str, ...],
          inspection_window_ms: float, open_reads: bool, power_safe: bool, report_slots: int,
          audit_sample_rate: float,
          min_free_gb: float, ok_image_days: Optional[float], keep_records_days: Optional[float],
          archive_records_to: Optional[Path], archive_images: str, backup_to: Optional[Path], backup_every_h: float, alarm_ng_run: int, alarm_ng_rate: float, alarm_window: int,
          alarm_photo_run: int, alarm_no_verdict_run: int, alarm_drift_parts: int, alarm_escalate_min: float,
          alarm_escalate_again_min: float, shift_starts: Optional[str], timezone: Optional[str],
          new: bool = False) -> None:
    """Run the inspection station: REST API (docs at /docs), storage, metrics."""
    from ..server.app import PortRefused, bind_port, create_app, open_station, run_server
    from ._term import fail
    station_log()
    cfg = _station_config(line=line, product=product, new_product=new_product, plc_line=plc_line,
                          plc_station=plc_station,
                          modbus_port=modbus_port,
                          opcua_port=opcua_port, plc_images=plc_images, plc_image_wait_ms=plc_image_wait_ms,
                          inspection_window_ms=inspection_window_ms, data=data, db=db, db_schema=db_schema, max_upload_mb=max_upload_mb,
                          max_megapixels=max_megapixels, ok_sample_rate=ok_sample_rate, webhook=webhook, mqtt=mqtt,
                          webhook_timeout=webhook_timeout, max_batch=max_batch, batch_window_ms=batch_window_ms,
                          runtime=runtime, precision=precision, open_reads=open_reads, power_safe=power_safe,
                          report_slots=report_slots, audit_sample_rate=audit_sample_rate, min_free_gb=min_free_gb,
                          ok_image_days=ok_image_days, backup_to=backup_to, backup_every_h=backup_every_h,
                          keep_records_days=keep_records_days, archive_records_to=archive_records_to,
                          archive_images=archive_images, alarm_ng_run=alarm_ng_run, alarm_ng_rate=alarm_ng_rate,
                          alarm_window=alarm_window, alarm_photo_run=alarm_photo_run,
                          alarm_no_verdict_run=alarm_no_verdict_run, alarm_drift_parts=alarm_drift_parts,
                          alarm_escalate_min=alarm_escalate_min,
                          alarm_escalate_again_min=alarm_escalate_again_min, shift_starts=shift_starts,
                          timezone=timezone, plc_camera=plc_camera, plc_camera_fps=plc_camera_fps,
                          plc_host=plc_host, recipes=recipes, peers=peers)
    if cfg.backup_to is not None:
        # `lineguard backup --to`'s refusals of a folder that can never hold the station's
        # backups (inside its own data folder...), at the start: the first backup comes 5
        # minutes later at the earliest, and its fault was the first sign
        from ..line.backup import BackupError, check_backup_place
        try:
            check_backup_place(cfg.data_dir, cfg.backup_to)
        except BackupError as exc:
            fail(f"{'--backup-to' if backup_to is not None else 'LINEGUARD_BACKUP_TO'} {cfg.backup_to}: {exc}")
    # the model's and the PLC links' settings as given, else from their LINEGUARD_* variables
    # (checked there: a line or product name every part would be refused for ends the start)
    line, product, plc_line = cfg.line, cfg.product, cfg.plc_line
    plc_station = (cfg.plc_station or "").strip() or "plc"
    modbus_port, opcua_port, plc_images = cfg.modbus_port, cfg.opcua_port, cfg.plc_images
    plc_camera, plc_camera_fps, plc_host, recipes = cfg.plc_camera, cfg.plc_camera_fps, cfg.plc_host, cfg.recipes
    plc_image_wait_ms, inspection_window_ms = cfg.plc_image_wait_ms, cfg.inspection_window_ms
    if model is not None and not model.exists():
        stored = _stored_model_for_missing_file(cfg, model, product, line)
        if stored is None:
            fail(f"--model {model}: no such model file")
        from ._term import note
        note("warning", stored)
        model = None
    try:
        plc_recipes, plc_folders = serve_settings_checked(
            model is not None, product, line, plc_line, modbus_port, opcua_port, plc_images, plc_camera, recipes,
            plc_image_wait_ms, inspection_window_ms)
    except ServeSettingRefused as exc:
        fail(str(exc))
    if model is not None:
        _check_model_file(model)
    # before anything is made or opened: a taken --port made a new station's folder (and
    # migrated, registered --model) and only then ended in uvicorn's raw "[Errno 98]"
    _check_ports(host, port, plc_host or host, modbus_port, opcua_port)
    # a new station is made only where none is (said at start), never quietly beside one
    new_station = _new_station_here(cfg, new)
    # Everything that can be wrong with the settings (database URL, model file) is found
    # before the banner, and said in one line with exit code 2, not a traceback.
    # a --model file already registered does not undo a later activation: one line says which stays
    in_schema: list[Optional[str]] = [None]     # on a database server: said once it answers

    def open_it():
        in_schema[0] = _new_station_in_schema(cfg, new)
        return open_station(cfg, str(model) if model else None, product, line, say=click.echo)
    # a start refused once the station's folder was made (its --model unusable past its first
    # bytes, a recipe's product, the port taken meanwhile) left a new station behind: the next
    # `keys create` took it without --new. What this start made goes again; never a folder
    # that was there before it
    made = _not_there_yet(cfg.data_dir)
    made_as: Optional[tuple[int, int]] = None      # the folder this start made, as the disk knows it
    served = False
    said_new = opened = False
    try:
        station = _open_when_the_database_answers(cfg, db_wait, open_it)
        opened = True
        made_as = _folder_identity(made) if made is not None else None
        new_station = new_station or in_schema[0]
        plcs: list = []
        grabber = None
        web: list = []
        try:
            _check_recipe_products(station, plc_recipes, cfg.new_product)
            # the port is bound now, before the station's threads start: one taken since the
            # check (another station starting meanwhile, a --db-wait) ends here as it would have
            # there, with the station closed. Bound, not listening: refused, not left unanswered,
            # until the server listens (after the PLC links and models are ready).
            try:
                web = bind_port(host, port)
            except PortRefused as exc:
                fail(str(exc), code=PORT_REFUSED)
            # the active models loaded beside the start: one whose file was lost or damaged is a
            # /health fault from the first second, not found by the line's first part
            threading.Thread(target=station.load_active_models, name="model-load", daemon=True).start()
            if modbus_port is not None or opcua_port is not None:
                from ..line.config import without_password
                from ..line.plc_handshake import newest_image_source
                if plc_camera is not None:
                    from ..line.sources.frames import FrameGrabber

                    def camera_fault(why: Optional[str]) -> None:
                        if why is None:
                            station.faults.pop("camera", None)
                        else:
                            station.faults["camera"] = why
                    try:
                        grabber = FrameGrabber(plc_camera, fps=plc_camera_fps, on_fault=camera_fault)
                        # a trigger's frame waited for three quarters of the window at most, a
                        # quarter left to judge it: the 2 s default outlasted a 1 s window, and a
                        # camera that sent nothing was a timeout (ResultCode 10), not no image (11)
                        grabber.trigger_wait_s = 0.75 * inspection_window_ms / 1000
                        # a video file or image folder plays once, from when the links go ready
                        # (_release_plcs_when_up): started here, it played out while the
                        # station warmed up, and every trigger was answered NO_IMAGE
                        if grabber.kind not in ("file", "folder"):
                            grabber.start()
                    except (RuntimeError, ValueError) as exc:
                        fail(str(exc))
                wanted = []
                if modbus_port is not None:
                    from ..line.plc_modbus import ModbusStation
                    wanted.append((ModbusStation, modbus_port, "Modbus TCP"))
                if opcua_port is not None:
                    from ..line.plc_opcua import OpcUaStation
                    wanted.append((OpcUaStation, opcua_port, "OPC UA"))
                # each link its own camera folder (two links are two lines, two cameras: on one
                # folder each link's parts were judged on the other line's photos)
                for cls, plc_port, name in wanted:
                    try:
                        images = (grabber.image_source() if grabber is not None else
                                  newest_image_source(plc_folders[cls.protocol], wait_s=plc_image_wait_ms / 1000))
                        plcs.append(cls(station, images, plc_recipes, line=plc_line or line,
                                        station_name=plc_station if len(wanted) == 1 else
                                        f"{plc_station}-{cls.protocol}",
                                        host=plc_host or host, port=plc_port, window_ms=inspection_window_ms))
                        if len(wanted) > 1:
                            plcs[-1].hs.fault_key = f"plc-{cls.protocol}"
                        # not ready until the whole station is started (see _release_plcs_when_up)
                        plcs[-1].start(hold=True)
                    except (RuntimeError, ValueError) as exc:
                        # its port taken since the check: the check's line and exit code
                        _check_port(plc_host or host, plc_port, f"--{cls.protocol}-port")
                        fail(str(exc))
                    # the camera's URL without its password: this line goes to the journal
                    images_from = without_password(plc_camera) if grabber is not None else plc_folders[cls.protocol]
                    click.echo(f"PLC handshake: {name} on {plc_host or host}:{plc_port}, recipes {plc_recipes}, "
                               f"images from {images_from}")
                # always the list, one link or two: its users (/health, the line view) read each
                # link's snapshot (a list of two was read as one link: the line view's 500)
                station.plc = plcs
                played = grabber if grabber is not None and grabber.kind in ("file", "folder") else None
                threading.Thread(target=_release_plcs_when_up, args=(plcs, station, plc_recipes, plc_line or line,
                                                                      host, port),
                                 kwargs={"played": played}, name="plc-release", daemon=True).start()
            # said here, past every check that can refuse the start and so remove the folder
            # again: said at the opening, `--plc-camera ./nonexist` printed "new station: ...
            # created it. No keys or users yet: create them with ...", then its error, and the
            # folder was gone
            if new_station:
                click.echo(new_station)
                said_new = True
            click.echo(f"lineguard station on http://{host}:{port}  (operator app: http://{host}:{port}/app/, "
                       f"API docs: http://{host}:{port}/docs, data: {cfg.data_dir})")
            if cfg.open_reads:
                click.echo("reads are open: anyone who reaches this port can see inspections and part images")
            served = True       # from here the station's folder is its own, whatever ends it
            try:
                run_server(create_app(cfg, station=station), host=host, port=port, log_level="info", sockets=web)
            except PortRefused as exc:          # taken between the bind and the listen
                served = False
                fail(str(exc), code=PORT_REFUSED)
        finally:
            # every link drops TriggerReady first, then all wait out their part in inspection
            # under one deadline: closed one after the other, the second link took parts
            # while the first waited, and the stop's wait added up
            from ..line.plc_handshake import stop_deadline
            for plc in plcs:
                plc.begin_stop()
            deadline = stop_deadline()
            for plc in plcs:
                plc.close(deadline=deadline)
            if grabber is not None:
                grabber.close()
            station.close()
            for sock in web:
                sock.close()
    finally:
        if made is not None and not served:
            _remove_what_this_start_made(made, cfg, made_as)
        if not served and new_station and opened:
            # a SQLite station's folder this start made, removed again: nothing of it is left
            gone = cfg.sqlite_path is not None and made is not None and not made.exists()
            if gone and said_new:       # the port taken between the bind and the listen
                click.echo(f"note: {made} was removed again: the start was refused, no station is there", err=True)
            elif not gone and not said_new:
                # what this start made stays (a database in a folder that was there, a schema,
                # a folder another process serves in): the next start finds a station, so it is
                # said now or never
                click.echo(new_station, err=True)


def _check_model_file(model: Path) -> None:
    """--model refused (exit 2) for what its file alone shows (line.registry.model_file_fault:
    its first bytes, header and length), before the station's folder and database are made:
    `serve --model odd/notimg.png` made a new station, migrated, and only then refused it."""
    from ..line import registry
    from ._term import fail
    if model.is_dir():
        fail(f"--model {model} is a folder: give the model file (.lgm, or an exported .onnx)")
    try:
        size = model.stat().st_size
    except OSError as exc:
        fail(f"--model {model}: cannot be read ({exc.strerror or exc})")
    # as the station's loader reads files: lineguard's own formats, or (a test's) another
    fault = registry.model_file_fault(model, size, getattr(registry.default_loader, "reads_model_files", False))
    if fault is not None:
        fail(f"--model {model}: not a usable lineguard model: {fault}; give a .lgm file saved by `lineguard train` "
             "(or Inspector.save), or an .onnx from `lineguard export`")


def _not_there_yet(data_dir: Path) -> Optional[Path]:
    """The outermost folder of ``data_dir`` (itself or one above it) that is not there yet,
    so that a start making it made it; None where ``data_dir`` is there."""
    path = Path(data_dir).absolute()
    if path.exists():
        return None
    while not path.parent.exists() and path.parent != path:
        path = path.parent
    return path


def _folder_identity(path: Path) -> Optional[tuple[int, int]]:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _only_this_start_in(db_path: Optional[Path]) -> bool:
    """Whether the SQLite station at ``db_path`` holds nothing but what this process's start
    made: no part, key or user, and no run of another process (a second start on the same
    new folder that went on serving in it)."""
    import sqlite3
    if db_path is None or not db_path.is_file():
        return True
    try:
        con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for table in ("inspections", "api_keys", "users"):
            if table in tables and con.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone():
                return False
        if "station_runs" in tables and con.execute("SELECT 1 FROM station_runs WHERE pid IS NOT ? LIMIT 1",
                                                    (os.getpid(),)).fetchone():
            return False
        return True
    except sqlite3.Error:
        return False
    finally:
        con.close()


def _remove_what_this_start_made(made: Path, cfg, made_as: Optional[tuple[int, int]] = None) -> None:
    """Remove ``made`` (:func:`_not_there_yet`), the folder a refused start made. A SQLite
    station's whole, only while it is the very folder this start made (``made_as``, its
    identity once opened: a drive mounted over it since is another) and its database holds
    nothing but this start's (another start on the same new folder may serve in it now).
    A PostgreSQL station's only while empty: once its schema claimed the folder
    (line.data_folders), a folder made again under that name would be refused as another
    station's, so one holding the claim is left for the next start to use."""
    import shutil
    if not made.exists():
        return
    if cfg.sqlite_path is not None:
        if made_as is not None and _folder_identity(made) != made_as:
            return
        if not _only_this_start_in(cfg.sqlite_path):
            click.echo(f"note: {made} is kept: another process uses the station made there", err=True)
            return
        shutil.rmtree(made, ignore_errors=True)
        return
    for folder in sorted((p for p in made.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [made]:
        try:
            folder.rmdir()
        except OSError:
            return          # something is in it: kept


# The README's exit code 3, "stopped by the machine, not the command": a port taken (or an
# address not this PC's, a port below 1024 without the right) is no mistake in the command
# line (the same command starts once the port is free), unlike the settings refused with 2.
PORT_REFUSED = 3


def _check_port(host: str, port: int, option: str) -> None:
    """End serve with the one line of :class:`PortRefused` (exit 3) unless ``host``:``port``
    can be listened on now; a check only, nothing stays bound."""
    from ..server.app import PortRefused, bind_port
    from ._term import fail
    try:
        bound = bind_port(host, port, option)
    except PortRefused as exc:
        fail(str(exc), code=PORT_REFUSED)
    for sock in bound:
        sock.close()


def _check_ports(host: str, port: int, plc_host: str, modbus_port: Optional[int], opcua_port: Optional[int]) -> None:
    """Every port serve will listen on, checked before it makes or opens a station: a port
    out of range or given twice is refused as a mistake (exit 2), one this PC will not let
    it listen on as the machine's (exit 3, :func:`_check_port`)."""
    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a TCP port (1..65535)", param_hint="--port")
    anywhere = ("0.0.0.0", "::", "")
    for plc_port, option in ((modbus_port, "--modbus-port"), (opcua_port, "--opcua-port")):
        # two listeners on one port bind side by side until the second listens: said here
        if plc_port == port and (plc_host == host or plc_host in anywhere or host in anywhere):
            raise click.BadParameter(f"{plc_port} is the web server's --port too: give each its own",
                                     param_hint=option)
    _check_port(host, port, "--port")
    for plc_port, option in ((modbus_port, "--modbus-port"), (opcua_port, "--opcua-port")):
        if plc_port is not None:
            _check_port(plc_host, plc_port, option)


# A database server that does not take connections at start-up (a station PC switched on
# with the line, the database's PC minutes later) is waited for: tried again after 1 s,
# doubling to 15 s, the wait said again every minute. Serve gave up at once before (exit 2),
# and the station stayed down until someone typed the command again. Exit 75 (EX_TEMPFAIL)
# where --db-wait runs out: not the 2 of settings that no waiting mends.
_DB_RETRY_FIRST_S, _DB_RETRY_MOST_S, _DB_WAIT_SAID_EVERY_S = 1.0, 15.0, 60.0
# a try at a server that takes the connection and never answers is given up on after this
# (line.db.PG_LINK's connect_timeout, which the opening itself waits)
_DB_TRY_S = 10.0
DB_WAIT_RAN_OUT = 75


class _StopWaiting(BaseException):
    """SIGTERM or Ctrl-C while serve, watch or camera waits for its station's database (raised
    in the main thread, as KeyboardInterrupt is: the wait ends cleanly, not with a traceback
    or "Aborted!")."""


def _span(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds} s" if seconds < 120 else f"{seconds // 60} min {seconds % 60} s"


# what is not done while each command waits (serve's: a monitor sees the station down,
# which it is, and the PLC's connection is refused, not left unanswered)
_NOT_MEANWHILE = {"serve": "Nothing is served meanwhile: no /health, no PLC link",
                  "watch": "Nothing is inspected meanwhile: the files dropped in the hot folder wait there",
                  "camera": "Nothing is inspected meanwhile: the camera is opened once the station has started"}


def _open_when_the_database_answers(cfg, db_wait: Optional[float], open_it, command: str = "serve"):
    """The station ``open_it()`` opens (raising StartupError where it cannot); where its
    database server does not take connections (yet), once it does. A refusal no waiting
    mends (a wrong password or user, no such database, a schema a newer lineguard wrote)
    ends ``command`` (serve, watch, camera) at once (exit 2), as every start-up error did;
    so does --db-wait 0. Nothing runs while it waits (see _NOT_MEANWHILE)."""
    import signal
    import time

    from ..line.db import knock, not_up_yet, server_address
    from ..server.app import StartupError
    from ._term import fail, note
    # the wait counts from the first try: a silent server's first try took 10 s (20 s with
    # the schema check) before --db-wait began to count, and --db-wait 12 ended at 43 s
    began = time.monotonic()
    if db_wait is not None and cfg.sqlite_path is not None:
        # taken without a word, as if a SQLite station could wait for its file to appear
        note("note", f"--db-wait applies to a database server (--db postgresql://...); this station's database is "
                     f"the SQLite file {cfg.sqlite_path}, opened at once")
    try:
        return open_it()
    except StartupError as exc:
        why = None if cfg.sqlite_path is not None or db_wait == 0 else not_up_yet(exc.__cause__)
        if why is None:
            fail(str(exc))
    where = server_address(cfg.database_url)
    # a stop while it waits ends the wait; one while the station opens (a migration may be
    # running) is kept until it has opened, then closes it: a station half made left threads
    stop_asked: list[int] = []
    waiting = True

    def on_stop(signum, _frame):
        stop_asked.append(signum)
        if waiting:
            raise _StopWaiting()
    main = threading.current_thread() is threading.main_thread()
    before = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGTERM, signal.SIGINT)} if main else {}
    station = None
    try:
        # said once the stop is in hand: a SIGTERM sent on reading it ends the wait cleanly
        how_long = "for as long as it takes" if db_wait is None else f"for up to {_span(db_wait)}"
        note("waiting", f"the database server {where} does not take connections yet ({why}): the station starts "
                        f"once it does ({how_long}; Ctrl-C or SIGTERM stops). {_NOT_MEANWHILE[command]}")
        said, pause = began, _DB_RETRY_FIRST_S
        while station is None:
            waited = time.monotonic() - began
            if db_wait is not None and waited >= db_wait:
                fail(f"the database server {where} did not take connections in {_span(db_wait)} ({why}): check that "
                     "it runs and that this PC reaches it (host, port, firewall); --db-wait left out waits for as "
                     "long as it takes", code=DB_WAIT_RAN_OUT)
            time.sleep(pause if db_wait is None else min(pause, db_wait - waited))
            pause = min(pause * 2, _DB_RETRY_MOST_S)
            # the last try given only what is left of --db-wait (libpq's 2 s at least)
            left = _DB_TRY_S if db_wait is None else min(_DB_TRY_S, db_wait - (time.monotonic() - began))
            err = knock(cfg.database_url, timeout_s=left)
            now = None if err is None else not_up_yet(err)
            if now is None:       # it answered, or refused for good: opening says which, as at once
                waiting = False
                try:
                    station = open_it()
                except StartupError as exc:
                    now = not_up_yet(exc.__cause__)
                    if now is None:
                        fail(str(exc))
                waiting = not stop_asked
                if stop_asked:
                    raise _StopWaiting()
                if station is not None:
                    break
            why = now
            if time.monotonic() - said >= _DB_WAIT_SAID_EVERY_S:
                said = time.monotonic()
                note("waiting", f"still no connection to the database server {where} after "
                                f"{_span(said - began)} ({why})")
    except _StopWaiting:
        if station is not None:
            station.close()
        note("stopped", f"{command} stopped while waiting for the database server {where}: the station did not start")
        raise SystemExit(0)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
    note("note", f"the database server {where} took the connection after {_span(time.monotonic() - began)}: "
                 "starting the station")
    return station


def _station_lookalike(data: Path) -> Optional[Path]:
    """A folder beside ``data`` whose name differs from its own only by case or trailing
    spaces, dots or slashes, and that holds a station's database; None if there is none."""
    def plain(name: str) -> str:
        return name.rstrip(" ./\\").casefold()
    try:
        beside = list(data.parent.iterdir())
    except OSError:
        return None
    for other in sorted(beside):
        if other.name != data.name and plain(other.name) == plain(data.name) and (other / "lineguard.db").is_file():
            return other
    return None


def no_station_database(cfg, then: str) -> str:
    """A command's refusal where its data folder holds no station: a near-namesake beside
    it holding one is named (./Station for ./station), as serve names it; ``then`` says
    what to give instead."""
    twin = _station_lookalike(cfg.data_dir.resolve())
    text = f"no station database at {cfg.sqlite_path}"
    if twin is not None:
        text += f", but {twin} beside it holds a station (a mistyped --data?): give --data {twin}; otherwise"
    return f"{text}: {then}"


def _stored_model_for_missing_file(cfg, model: Path, product: Optional[str], line: str) -> Optional[str]:
    """What serve says going on without a missing --model file, or None to refuse it.

    After a restore on a new PC, a unit's --model outside the data folder is not there,
    while the restored station holds that model: refused, the station was started again
    every 10 s, for ever. It goes on with the version active for the product when a version
    was registered from a file of that name (this command line ran on this station before);
    a name never registered (a new model's path mistyped, its share not mounted) is still
    refused, as is a station on PostgreSQL (not looked at before it opens)."""
    import sqlite3
    path = cfg.sqlite_path
    if not product or path is None or not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT version, note, active FROM model_versions WHERE product = ? AND line = ?",
                              (product, line or "")).fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    active = next((version for version, _note, on in rows if on), None)
    if active is None or not any(n == f"from {model.name}" for _v, n, _on in rows):
        return None
    where = product + (f"/{line}" if line else "")
    return (f"--model {model}: no such file; this station holds {where} v{active} active in its data folder (and a "
            f"version registered from {model.name}), and goes on with it. Put the file back, or leave --model out "
            "of the command line (the unit): the station keeps its models in its data folder. A model withdrawn on "
            "purpose is withdrawn by activating another version, not by removing its file")


def _new_station_here(cfg, new: bool) -> Optional[str]:
    """What ``serve`` says when it is about to make a new station (SQLite: no database in
    the data folder yet), or None for a station that is there. A mistyped --data (./Station
    for ./station) started a new, empty station without a word: the line's key then got 401
    "unknown or revoked" and its parts went into another database. The first start of a
    station must still work without a flag (the demo, the README's first ``serve``), so a
    new folder is made and said; only one beside a near-namesake holding a station is
    refused, unless ``--new``."""
    from ._term import fail
    if cfg.sqlite_path is None or cfg.sqlite_path.is_file():
        return None          # a station is there (or a database server's, which serve reports itself)
    data = cfg.data_dir.resolve()
    twin = _station_lookalike(data)
    if twin is not None and not new:
        fail(f"--data {data} holds no station, but {twin} beside it does (a mistyped --data?): start with "
             f"--data {twin}; or, for a new, empty station at {data} after all, add --new")
    made = (f"no data folder at {data} yet; created it" if not data.exists()
            else f"no station's database at {cfg.sqlite_path} yet; made one")
    said = shlex.quote(str(data))      # a folder with a space in its name, copied, was two words
    text = (f"new station: {made}. No keys or users yet: create them with `lineguard keys create --role admin "
            f"--data {said}` / `lineguard users add NAME --role admin --data {said}`")
    if twin is not None:
        text += f" (a station stays at {twin}, beside it)"
    return text


def _new_station_in_schema(cfg, new: bool) -> Optional[str]:
    """:func:`_new_station_here` for a database server: what ``serve`` says when the
    PostgreSQL schema holds no station yet, or None. A mistyped --db-schema (hd_aa for
    hd_a) started a new, empty station, without a word, on station A's data folder: the
    line's key then got 401 and its parts went into the new schema. Refused, unless
    ``--new`` (see :func:`_schema_without_station`); else made and said, naming the
    schemas that hold stations."""
    from ..line.db import schemas_shown
    others = _schema_without_station(cfg, new)
    if others is None:
        return None
    here = cfg.db_schema or "public"
    where = f"schema {here}" if cfg.db_schema else "the public schema (no --db-schema)"
    shown = _database_shown(cfg.database_url, "--db")
    # as the shell takes them: a URL's ?sslmode=...&... was cut at the & when copied
    said, hidden = station_said(None, cfg.db_url, cfg.db_schema)
    said += f" --data {shlex.quote(str(cfg.data_dir.resolve()))}"
    return (f"new station in {where} of {shown}; "
            + (f"this database holds stations in: {schemas_shown(others)}. " if others
               else "no other station in this database. ")
            + f"No keys or users yet: create them with `lineguard keys create --role admin{said}` / "
              f"`lineguard users add NAME --role admin{said}`" + (_PASSWORD_WHERE if hidden else ""))


def _schema_without_station(cfg, new: bool, flag: Optional[str] = "--new") -> Optional[list[str]]:
    """None where the station's PostgreSQL schema holds a station (or the station is a
    SQLite one, or the database cannot be read: the opening says why in its own words);
    else the other schemas that hold stations. A schema holding none whose name is a slip
    of a station's schema (line.db.typo_of: hd_aa for hd_a), or whose data folder is a
    station's in another schema, is refused (StartupError, naming the one meant) unless
    ``new``; ``flag``: the option that says it is new after all (serve's --new, keys
    create's --new-schema), None where there is none (watch and camera never make a
    station). One check for every command that opens a station's schema, so each refuses
    the same typo in the same words. Run before each try at opening the station: a server
    not up yet is waited for by the opening, and this check run again."""
    if cfg.sqlite_path is not None:
        return None
    from sqlalchemy.exc import SQLAlchemyError

    from ..line.data_folders import claimed_in_other_schemas
    from ..line.db import Database, not_up_yet, station_schemas, typo_of
    from ..line.errors import StationError
    from ..server.app import StartupError, _db_problem
    try:
        db = Database(cfg.database_url, schema=cfg.db_schema)
    except (SQLAlchemyError, ImportError, ValueError):
        return None
    try:
        if db.revision() is not None:
            return None               # a station is there (one a newer lineguard wrote: opening says so)
        stations = station_schemas(db.engine)
        claimed = claimed_in_other_schemas(db, cfg.data_dir)
    except (SQLAlchemyError, ImportError) as exc:
        if type(getattr(exc, "orig", None)).__name__ == "ConnectionTimeout" and not_up_yet(exc) is not None:
            # said now, as the opening would say it: a server that takes the connection and
            # never answers cost this check's 10 s and then the opening's, 20 s a try
            raise StartupError(_db_problem(cfg, exc)) from exc
        return None
    except StationError as exc:       # the folder's id file damaged
        raise StartupError(exc.message) from exc
    finally:
        db.dispose()
    here = cfg.db_schema or "public"
    where = f"schema {here}" if cfg.db_schema else "the public schema (no --db-schema)"
    slip = typo_of(here, stations)
    if (slip or claimed) and not new:
        meant = claimed[0] if claimed else slip
        why = ([f"schema {slip} holds one"] if slip else []) + (
            [f"the data folder {cfg.data_dir.resolve()} is the station's in schema {claimed[0]}"] if claimed else [])
        fix = f"--db-schema {meant}" if meant != "public" else "no --db-schema (the public schema's station)"
        raise StartupError(
            f"{where} of this database holds no station, but {' and '.join(why)} (a mistyped --db-schema?): start "
            f"with {fix}" + (f"; or, for a new, empty station in {where} after all, add {flag}" if flag else "")
            + (" (and give it a --data of its own: that folder keeps the other station's models and photos)"
               if claimed and flag else ""))
    return [s for s in stations if s != here]


def _no_station_in_schema(cfg) -> None:
    """StartupError where watch or camera --data would open a PostgreSQL schema that holds no
    station: a mistyped --db-schema (hd_aa for hd_a) made a new, empty station there, in
    serve's words (:func:`_schema_without_station`); any other such schema too, as a SQLite
    --data with no station is refused: a new station has no model, and every part would be
    refused."""
    others = _schema_without_station(cfg, False, None)
    if others is None:
        return
    from ..line.db import schemas_shown
    from ..server.app import StartupError
    where = f"schema {cfg.db_schema}" if cfg.db_schema else "the public schema (no --db-schema)"
    raise StartupError(
        f"{where} of {_database_shown(cfg.database_url, '--db')} holds no station: give the --db-schema of a "
        "station that has its model" + (f" (this database holds stations in: {schemas_shown(others)})" if others
                                        else "") + ", or start one there first (`lineguard serve --db URL "
        "--db-schema NAME --model ...` once)")


def _release_plcs_when_up(plcs: list, station: object, recipes: dict[int, str], line: str, host: str, port: int,
                          wait_s: float = 120.0, played: Optional[Any] = None) -> None:
    """Raise TriggerReady (OPC UA: Operational/Ready) on every PLC link once the station is
    started: the web server answering on its port and each recipe's model warmed. The
    first link listened seconds before the second and the web server finished starting,
    and the first parts after a restart took 400-800 ms against 40 ms (one good part
    rejected on timeout). Past ``wait_s`` without the web server the links go ready all
    the same (the line must not wait on the pages) and the log says so. ``played``: a
    recorded camera (video file, image folder) for --plc-camera, started just before the
    links go ready: it plays once, and played from the start it was over before the first
    trigger."""
    import logging
    import socket
    import time
    log = logging.getLogger("lineguard.plc")
    target = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection((target, port), timeout=1.0):
                break
        except OSError:
            if time.monotonic() >= deadline:
                log.warning("the web server did not answer on %s:%s within %.0f s: the PLC links go ready all the "
                            "same", target, port, wait_s)
                break
            time.sleep(0.1)
    warm = getattr(station, "warm_up", None)
    if warm is not None:
        for product in sorted(set(recipes.values())):
            warm(product, line)        # once more, with everything else started
    if played is not None:             # a recorded camera (file, folder): its first frame as the line starts
        played.start()
    for plc in plcs:
        plc.hs.release()


def _check_recipe_products(station: Any, recipes: dict[int, str], new_product: bool = False) -> None:
    """Say at start each recipe whose product the station has no model of: only an INFO
    line ("not warmed up: unknown product") said it, and every part of it was refused. One
    that is a slip of a known product ("tiel" beside "tile": close_names.typos_of) is a typo:
    the start is refused (exit 2), unless ``new_product`` (--new-product). Any other (a
    sibling's name, cell-b beside cell-a) is warned about only, with the close names: a new
    product's recipe may be set up before its model is uploaded. A fresh station (no model
    yet) is never refused."""
    from ..line.close_names import close_names, did_you_mean, listed, typos_of
    from ._term import fail, note
    models = getattr(station, "models", None)
    known = models.products() if models is not None and recipes else []
    if not known:
        return
    for rid, product in sorted(recipes.items()):
        if product in known:
            continue
        typos = typos_of(product, known)
        close = typos or close_names(product, known)
        said = (f"--recipe {rid}={product}: the station has no model for product {product!r}"
                + (f"; {did_you_mean(close)}" if close else ".") + f" It knows: {listed(known)}.")
        if typos and not new_product:
            fail(f"{said} Product names are compared exactly, case too. If {product!r} IS a new product, start "
                 "serve again with --new-product")
        note("warning", f"{said} Its parts cannot be judged until a model of {product!r} is uploaded "
                        "(POST /api/v1/models" + (" with new_product=true" if typos else "") + ")")


class _NotGiven(click.BadParameter):
    """A PLC setting serve's command line leaves out, refused in serve's words: ``fields``,
    the settings (StationConfig's fields) any one of which, set by its LINEGUARD_* variable,
    gives it; ``stand_in``: values that let the later checks go on as if it were given
    (None: they cannot)."""

    def __init__(self, message: str, param_hint: str, fields: tuple[str, ...],
                 stand_in: Optional[dict] = None):
        super().__init__(message, param_hint=param_hint)
        self.fields, self.stand_in = fields, stand_in


class ServeSettingRefused(ValueError):
    """Serve's settings that cannot start a station, in serve's words (exit 2); ``fields``
    as :class:`_NotGiven`'s (empty: the values given are at fault, whatever else is set)."""

    def __init__(self, message: str, fields: tuple[str, ...] = (), stand_in: Optional[dict] = None):
        super().__init__(message)
        self.fields, self.stand_in = fields, stand_in


def serve_settings_checked(model: bool, product: Optional[str], line: str, plc_line: Optional[str],
                           modbus_port: Optional[int], opcua_port: Optional[int], plc_images: tuple[str, ...],
                           plc_camera: Optional[str], recipes: tuple[str, ...], plc_image_wait_ms: float,
                           inspection_window_ms: float, folders_here: bool = True
                           ) -> tuple[dict[int, str], dict[str, Path]]:
    """Serve's settings checked against each other, needing nothing of this PC but, with
    ``folders_here``, the camera folders: (the PLC links' recipe table, each link's camera
    folder). ``model``: a --model is given. A click.BadParameter or ServeSettingRefused says
    what is wrong. One check for serve and for `service-unit -- serve ...`, which wrote a
    unit for settings serve refused at every start (no line for the PLC's parts, no
    product for recipe 1), started again every 10 s, for ever."""
    if model and not product:
        raise ServeSettingRefused("--model needs --product: name the product the model inspects",
                                  ("product",), {"product": "product"})
    plc_recipes = _plc_settings(modbus_port, opcua_port, plc_images, recipes, plc_line or line, product,
                                plc_camera)
    from ..line.config import check_part_name
    for rid, recipe_product in plc_recipes.items():
        try:       # a recipe's product names the parts it triggers, as --product does
            check_part_name("product", recipe_product, f"--recipe {rid}={recipe_product[:40]}")
        except ValueError as exc:
            raise ServeSettingRefused(str(exc)) from None
    plc_folders = _plc_image_folders(modbus_port, opcua_port, plc_images, plc_camera, folders_here)
    if plc_folders and plc_image_wait_ms >= inspection_window_ms:
        raise ServeSettingRefused(
            f"--plc-image-wait-ms {plc_image_wait_ms:g} leaves no time to judge the part inside "
            f"--inspection-window-ms {inspection_window_ms:g}: wait less, or widen the window",
            ("plc_image_wait_ms", "inspection_window_ms"))
    return plc_recipes, plc_folders


def _plc_settings(modbus_port: Optional[int], opcua_port: Optional[int], plc_images: tuple[str, ...],
                  recipes: tuple[str, ...], line: str, product: Optional[str],
                  plc_camera: Optional[str] = None) -> dict[int, str]:
    """The recipe table of the PLC handshake, or a BadParameter saying what to give."""
    if modbus_port is None and opcua_port is None:
        if plc_images or recipes or plc_camera:
            raise _NotGiven("--plc-images and --recipe need --modbus-port or --opcua-port", "--modbus-port",
                            ("modbus_port", "opcua_port"))
        return {}
    for value, hint in ((modbus_port, "--modbus-port"), (opcua_port, "--opcua-port")):
        if value is not None and not 0 < value < 65536:
            raise click.BadParameter(f"{value} is not a TCP port (1..65535)", param_hint=hint)
    if modbus_port is not None and modbus_port == opcua_port:
        raise click.BadParameter("--modbus-port and --opcua-port must differ", param_hint="--opcua-port")
    if plc_camera is not None and plc_images:
        raise click.BadParameter("give --plc-images or --plc-camera, not both", param_hint="--plc-camera")
    if plc_camera is None and not plc_images:
        raise _NotGiven("give --plc-images DIR, the folder the camera saves part images into "
                        "(or --plc-camera SOURCE)", "--plc-images", ("plc_images", "plc_camera"))
    if not line:
        raise _NotGiven("name the line PLC-triggered parts are on: --plc-line or --line", "--plc-line",
                        ("plc_line", "line"), {"plc_line": "line"})
    table: dict[int, str] = {}
    for item in recipes:
        rid, sep, prod = item.partition("=")
        if not sep or not rid.strip().isdigit() or not prod.strip() or int(rid) > 65535:
            raise click.BadParameter(f"{item!r}: write ID=PRODUCT with ID 0..65535, e.g. 1=cell",
                                     param_hint="--recipe")
        if int(rid) in table and table[int(rid)] != prod.strip():
            # the last one won without a word: recipe 1=cell went, and cell's parts had no recipe
            raise click.BadParameter(f"recipe {int(rid)} given twice ({int(rid)}={table[int(rid)]} and {item.strip()}): "
                                     "give each recipe ID once", param_hint="--recipe")
        table[int(rid)] = prod.strip()
    if not table:
        if not product:
            raise _NotGiven("give --recipe ID=PRODUCT (or --product for recipe 1)", "--recipe",
                            ("recipes", "product"), {"product": "product"})
        table[1] = product
    return table


_PLC_LINKS = ("modbus", "opcua")
_BOTH_LINKS_HOW = ("give each link the folder of its own camera: --plc-images modbus=DIR1 --plc-images opcua=DIR2 "
                   "(or run one link per station)")


def _plc_image_folders(modbus_port: Optional[int], opcua_port: Optional[int], plc_images: tuple[str, ...],
                       plc_camera: Optional[str], here: bool = True) -> dict[str, Path]:
    """Each running PLC link's camera folder ({"modbus": DIR, "opcua": DIR}), or a
    BadParameter saying how to give them. Two links are two lines with a camera each: on
    one folder (or one --plc-camera) each link's parts were judged on the other line's
    photos, so that is refused. ``here``: each must be a folder of this PC (not for a unit
    written for another PC)."""
    running = [p for p, port in zip(_PLC_LINKS, (modbus_port, opcua_port)) if port is not None]
    if not running:
        return {}
    if plc_camera is not None:
        if len(running) > 1:
            raise click.BadParameter("--plc-camera is one camera, one line's: it cannot serve both --modbus-port "
                                     "and --opcua-port; " + _BOTH_LINKS_HOW, param_hint="--plc-camera")
        return {}
    folders: dict[str, Path] = {}
    for item in plc_images:
        link, sep, rest = item.partition("=")
        named = sep and link.strip().lower() in _PLC_LINKS
        if named:
            link = link.strip().lower()
            if link not in running:
                raise click.BadParameter(f"{item!r} names the {link} link, which does not run: give "
                                         f"--{link}-port too, or name "
                                         f"{' or '.join(running)}", param_hint="--plc-images")
        elif len(running) > 1:
            raise click.BadParameter(f"{item!r} names no link, and both --modbus-port and --opcua-port run: "
                                     + _BOTH_LINKS_HOW, param_hint="--plc-images")
        else:
            link, rest = running[0], item
        if link in folders:
            raise click.BadParameter(f"two folders for the {link} link ({folders[link]} and {rest}): give one",
                                     param_hint="--plc-images")
        folder = Path(rest).expanduser()
        if here and not folder.is_dir():
            raise click.BadParameter(f"{folder} is not a folder: give --plc-images DIR, the folder the camera "
                                     "saves part images into (or --plc-camera SOURCE)", param_hint="--plc-images")
        folders[link] = folder
    missing = [p for p in running if p not in folders]
    if missing:
        raise _NotGiven(f"no camera folder for the {' and '.join(missing)} link: " + _BOTH_LINKS_HOW,
                        "--plc-images", ("plc_images",))
    if len(folders) > 1 and len({f.resolve() for f in folders.values()}) < len(folders):
        raise click.BadParameter(f"both links on one folder ({folders['modbus']}): each link's parts would be "
                                 "judged on the other line's photos; " + _BOTH_LINKS_HOW, param_hint="--plc-images")
    return folders


# a new station's first key or user is made before it ever started: asked for by name
_new = click.option("--new", is_flag=True, help="Make the station's database here if there is none yet (a new station, "
                    "before its first start); without it a misspelt --data or --db is refused, not made a new, empty "
                    "station.")
# with --new on PostgreSQL: the new station's --db-schema is meant though it is one keying
# slip from a station's schema (serve's --new says the same); without it, refused as a typo
_new_schema = click.option("--new-schema", is_flag=True,
                           help="With --new: make the new station in --db-schema even where its name is one keying "
                                "slip from a station's schema (hd_aa beside hd_a) or --data is the folder of a "
                                "station in another schema; without it such a --db-schema is refused as a typo.")


@keys_app.command("create")
@click.option("--role", required=True, help="operator (inspect, review), engineer (models), admin (keys).")
@data_option()
@db_options()
@click.option("--name", default=None, help="Who or what uses the key (shown in reviews and logs).")
@_new
@_new_schema
def keys_create(role: str, data: Path, db: Optional[str], name: Optional[str], new: bool,
                db_schema: Optional[str], new_schema: bool = False) -> None:
    """Create an API key and print it (it is stored hashed and cannot be shown again)."""
    from ..line.audit import cli_actor
    from ..line.auth import ROLES, create_key
    from .access import _database
    if role not in ROLES:
        raise click.BadParameter(f"use one of {', '.join(ROLES)}", param_hint="--role")
    with _database(data, db, db_schema, existing=not new, new_hint=True, new_schema=new_schema) as database, \
            database.session() as s:
        row, key = create_key(s, role, name, by=cli_actor())
        key_id = row.id
    click.echo(key)
    # on stderr: stdout stays the key alone, for KEY=$(lineguard keys create ...)
    from ._term import note
    where, hidden = station_said(data, db, db_schema)
    note("note", f"{role} key {key_id}{f' ({name})' if name else ''}: shown this once, the station keeps only its "
                 f"hash; keep it now (the camera PC's or script's settings). `lineguard keys list{where}` shows its "
                 f"id and name, `lineguard keys revoke {key_id}{where}` ends it" + (_PASSWORD_WHERE if hidden else ""))


# watch and camera inspecting here (--data) in a station whose database is a PostgreSQL schema
_watcher_db_schema = click.option("--db-schema", default=None, callback=_schema_given,
                                  help="With --data and a PostgreSQL --db: the station's own schema (as serve "
                                       f"--db-schema); {SCHEMA_NAME_RULE}.")


# watch's and camera's two ways to a station: one of them
_SERVER_HELP = "The station server the parts are sent to, e.g. http://127.0.0.1:8000 (or --data, not both)."
_API_KEY_HELP = "Operator key for --server. [env: LINEGUARD_API_KEY]"
_DATA_HELP = "Inspect in this process with the station folder DIR (or --server, not both)."


def _submitter(source: str, line: str, station: str, product: str, server: Optional[str],
               api_key: Optional[str], data: Optional[Path], db: Optional[str], webhook: Optional[str] = None,
               mqtt: Optional[str] = None, keeping: Optional[dict] = None, max_upload_mb: Optional[float] = None,
               db_schema: Optional[str] = None, db_wait: Optional[float] = None,
               ready: Optional[Callable[[], None]] = None):
    """Where parts go: a station server (``--server``) or a station in this process
    (``--data``), set by ``keeping`` (the :func:`station_options`) and ``max_upload_mb``.
    The station in this process must have an active model for ``product``, else the
    command ends here (exit 2): every part would be refused. Its database server not
    taking connections yet is waited for as serve waits (``db_wait``: --db-wait).
    ``ready``: the command's own check of what it reads (camera's source), asked once the
    station is checked and before its run is written: a source refused left a run, and the
    line view said "camera L1/cam stopped and started again" of a command that never ran."""
    from ..line.sources import local_submitter, remote_submitter
    keeping = keeping or {}
    if server:
        check_server_options(server, data, db, db_schema)
        if not api_key:
            raise click.BadParameter("a station server needs an operator key (--api-key or LINEGUARD_API_KEY)",
                                     param_hint="--api-key")
        if webhook or mqtt:
            raise click.BadParameter("with --server the station publishes results itself; give --webhook/--mqtt "
                                     "to `lineguard serve`, or use --data to inspect (and publish) here",
                                     param_hint="--webhook/--mqtt")
        changed = [f"--{name.replace('_', '-')}" for name, value in keeping.items()
                   if value != _STATION_DEFAULTS[name]]
        if changed:
            raise click.BadParameter("with --server the station decodes and keeps images and raises alarms by its "
                                     "own settings; give "
                                     f"{', '.join(changed)} to `lineguard serve`, or use --data to inspect here",
                                     param_hint=changed[0])
        if db_wait is not None:
            # a station on another PC waits for its own database (serve --db-wait); this
            # command waits for the station by itself (files kept, frames said as lost)
            raise click.BadParameter("with --server the station waits for its database itself (give --db-wait to "
                                     "`lineguard serve`); it applies with --data and a --db server",
                                     param_hint="--db-wait")
        # the station's own settings: its INFO lines (a camera delivering frames again, the
        # heartbeat working again) were dropped with --server, where --data said them
        station_log()
        _check_station_takes(server, api_key, line, product)
        if ready is not None:
            ready()
        return remote_submitter(server, api_key, line, station, product), None
    from ._term import fail
    if data is None and db is None:
        raise click.BadParameter("give --server URL --api-key KEY, or --data DIR to inspect in this process")
    from sqlalchemy.exc import SQLAlchemyError

    from ..line.errors import StationError
    from ..line.station import Station
    from ..server.app import StartupError, _db_problem
    # the station in this process logs as serve's does, from its first line (the wait for
    # its database, its start) to a part inspected again with another photo
    station_log()
    # the station's settings as serve takes them, LINEGUARD_* variables too; with its own
    # schema (without it a watcher of a station in one read public)
    cfg = _station_config(serve=False, data=data, db=db, db_schema=db_schema, max_upload_mb=max_upload_mb,
                          webhook=webhook, mqtt=mqtt, **keeping)
    if cfg.sqlite_path is not None and not cfg.sqlite_path.is_file():
        # a misspelt --data would start a new, empty station with no model, and every part
        # would be refused into failed/
        fail(no_station_database(cfg, "give the folder of a station that has its model (`lineguard serve --data "
                                      "DIR --model ...` once), or --db"))
    # Inspecting here publishes like the server does: through the station's outbox, so
    # results a stopped watcher did not deliver go out at its next start.
    def open_here():
        # its refusals as serve's open_station words them (StartupError, the cause kept:
        # the wait tells a server not up yet from a refusal by it); a database that could
        # not be reached was a traceback and exit 1, and a hot folder PC booted with the
        # line lost its watcher until someone started it again
        _no_station_in_schema(cfg)
        try:
            return Station(cfg)
        except StationError as exc:         # another data folder keeps this database's files
            raise StartupError(exc.message) from exc
        except (SQLAlchemyError, ImportError) as exc:
            raise StartupError(_db_problem(cfg, exc)) from exc
    st = _open_when_the_database_answers(cfg, db_wait, open_here, "watch" if source == "folder" else source)
    try:
        # a --db URL may hold a password: not printed
        _check_product(st, product, line, str(data) if data is not None else "--db")
        if ready is not None:
            ready()
        # the run named as the station stores the line's parts: `--line l1` made a run "watch
        # l1/s1" beside parts of L1/S1, the line view's stops and starts another station's
        line_as, station_as = st.names_as_stored(line, station)
        st.record_start(f"{'watch' if source == 'folder' else source} {line_as}/{station_as}")
    except BaseException:
        st.close()
        raise
    return local_submitter(st, line, station, product, source), st


def check_server_options(server: str, data: Optional[Path], db: Optional[str], db_schema: Optional[str]) -> None:
    """End the command (exit 2) when watch's or camera's --server cannot be sent to as given:
    with --data, --db or --db-schema beside it, or not a station's address (see
    _check_station_url). service-unit asks it of the command line it writes a unit for: a unit
    refused at every start was written without a word."""
    from ._term import fail
    here = [flag for flag, value in (("--data", data), ("--db", db), ("--db-schema", db_schema))
            if value is not None]
    if here:
        # the part went to --server (recorded with source api) and --data was never
        # opened: one of the two was a slip, and the watcher did not say which it took
        fail(f"--server and {', '.join(here)} given: --server sends the parts to a station server, "
             "--data inspects them in this process; give one")
    _check_station_url(server)


# how long watch's and camera's check at start waits for the station's answer: a station PC
# off is waited for as the parts are (said, not ended), not held for a minute first
_START_CHECK_S = (3.0, 15.0)       # connect, answer


def _check_station_takes(server: str, api_key: str, line: str, product: str) -> None:
    """End watch or camera (exit 2) when the station at --server refuses what every part would
    be refused for: the key (HTTP 401, 403) or the product (no active model for it on the
    line, with the product meant), as --data ends for the product: started so, every part was
    "the station cannot take frames (HTTP 404: unknown product 'CELL' ...)" and waited for,
    for ever. Asked of its model list (GET /api/v1/models: an operator key's read). A station
    that does not answer (down, restarting) or answers something else (an older one, a
    proxy's error page) is not a refusal: the parts wait for it, as they did, and the first
    part's answer says the rest."""
    import httpx

    from ..line.config import without_password
    from ._term import fail, note
    url = server.rstrip("/")
    shown = without_password(url)
    try:
        r = httpx.get(f"{url}/api/v1/models", headers={"X-API-Key": api_key},
                      timeout=httpx.Timeout(_START_CHECK_S[1], connect=_START_CHECK_S[0]))
    except httpx.HTTPError as exc:
        note("note", f"the station at {shown} does not answer now ({type(exc).__name__}: {exc}): the key and "
                     f"--product {product} are checked by its first answer; the parts wait for it meanwhile")
        return
    said = r.text[:300]
    try:
        body = r.json()
        said = (body.get("error") or {}).get("message") or body.get("detail") or said
    except (ValueError, AttributeError):
        body = None
    if r.status_code in (401, 403):
        fail(f"the station at {shown} refuses the operator key (HTTP {r.status_code}: {said}); give an operator "
             "key it keeps (--api-key or LINEGUARD_API_KEY; `lineguard keys create --role operator` on the "
             "station's PC makes one)")
    items = body.get("items") if r.status_code == 200 and isinstance(body, dict) else None
    if not isinstance(items, list):
        return     # not a model list (an older station, a proxy): the first part's answer tells
    try:
        versions = [(str(m["product"]), str(m["line"]), bool(m["active"])) for m in items]
    except (KeyError, TypeError):
        return
    refused = _product_refused(versions, product, line, shown)
    if refused:
        fail(refused)


def _check_station_url(server: str) -> None:
    """End the command (exit 2) when --server is not a station's address (http(s)://HOST[:PORT],
    a proxy's path kept): `--server 127.0.0.1:8000` started, and every part then failed to
    be sent ("Request URL is missing an 'http://' or 'https://' protocol"), the watcher
    saying the station could not take parts and trying again for ever. Not taken as
    http://: the station may be behind https."""
    from urllib.parse import urlsplit

    from ..line.config import without_password
    from ._term import fail
    try:
        parts = urlsplit(server)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        parts, port_ok = None, False
    if parts is not None and parts.scheme in ("http", "https") and parts.hostname and port_ok \
            and not any(c.isspace() or not c.isprintable() for c in server):
        return
    shown = without_password(server)[:120]
    bare = shown.strip()
    if parts is not None and parts.scheme not in ("http", "https") and "://" not in bare:
        fix = f"http://{bare} (or https://{bare} for a station behind https)"
    else:
        fix = "http://HOST:PORT, e.g. http://10.0.0.5:8000 (the address its pages are on)"
    fail(f"--server {shown!r} is not a station's address: write it as {fix}")


def _part_names(line: str, station: str, product: str) -> tuple[str, str, str]:
    """watch's and camera's --line, --station and --product as the station stores them
    (surrounding spaces dropped, as a part's fields are), or the command ends (exit 2) when
    one is a name the station refuses on every part (empty, longer than a part's field, a
    control or invisible character): started with one, a hot folder moved every good part
    to failed/ and a camera dropped every frame, where serve refuses such a name at start."""
    from ..line.config import check_part_name
    from ._term import fail
    names = []
    for field_name, value in (("line", line), ("station", station), ("product", product)):
        try:
            check_part_name(field_name, value, f"--{field_name} {value[:40]!r}")
        except ValueError as exc:
            fail(str(exc))
        names.append(value.strip())
    return names[0], names[1], names[2]


def _check_product(st, product: str, line: str, where: str) -> None:
    """End the command (exit 2) when the station has no active model for ``product`` on
    ``line``: every part would be refused (a hot folder's good parts all moved to failed/,
    a camera's frames dropped one by one), naming the products it has and the one meant."""
    from ..line.errors import NoActiveModel
    from ._term import fail
    try:
        st.models.active_for(product, line)
        return
    except NoActiveModel:
        pass
    refused = _product_refused([(m.product, m.line, m.active) for m in st.models.list()], product, line, where)
    if refused:
        fail(refused, code=2)


def _product_refused(versions: list[tuple[str, str, bool]], product: str, line: str, where: str) -> Optional[str]:
    """Why a station whose model versions are ``versions`` ((product, line, active) each)
    refuses every part of ``product`` on ``line``, naming the product meant; None when it
    has an active model for it there. One wording for --data and --server."""
    from ..line.close_names import close_names
    # the station finds a line in any case ("l1" is its L1: Station._line_as_stored)
    here = ("", (line or "").strip().casefold())
    if any(p == product and active and (ln or "").casefold() in here for p, ln, active in versions):
        return None
    active = sorted({p for p, ln, on in versions if on and (ln or "").casefold() in here})
    known = sorted({p for p, _ln, _on in versions})
    if product in known:
        msg = (f"the station at {where} has product {product!r} but no active model for it on line {line!r}; "
               f"activate a version (its models page, or POST /api/v1/models/{product}/activate).")
    else:
        msg = f"the station at {where} has no model for product {product!r}."
        # product names are compared exactly: 'CELL' is not 'cell' (the helper a part's refusal uses)
        close = close_names(product, active)
        if close:
            msg += f" Did you mean --product {close[0]}?"
    if active:
        msg += f" Products with an active model there for line {line!r}: {', '.join(active)}."
    else:
        msg += (f" It has no active model for line {line!r}: start it once with `lineguard serve --data DIR "
                "--model FILE.lgm --product NAME`.")
    return msg


def _watch_status_path(st, folder: Path, line: str, station: str) -> Optional[Path]:
    """Where a hot folder's watcher keeps its status (files waiting, the oldest's wait,
    behind or not, the station taking parts or not): inspecting here (--data), in the
    station's data folder (``watchers/``), where the station's /health can read it; with
    --server, in the hot folder (``.lineguard-watch-status.json``, the watcher's default):
    the station may be on another PC."""
    if st is None:
        return None
    import hashlib
    import re
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{line}-{station}")[:80]
    # two watchers of one line and station name on two folders each keep their own
    digest = hashlib.sha256(os.fsencode(str(folder.resolve()))).hexdigest()[:8]
    return Path(st.config.data_dir) / "watchers" / f"{safe}-{digest}.json"


def part_line(name: object, r: dict) -> str:
    """A part's line as watch and camera print it: name, verdict, score, record id, and
    what is off about its photo where the photo check doubted it (a dim lamp, a blurred
    lens: a REVIEW with a score that passes read like a fault of the model)."""
    doubts = r.get("photo_issues") or []
    why = f"\tphoto: {'; '.join(str(d) for d in doubts)}" if doubts else ""
    return f"{name}\t{r.get('verdict')}\tscore={r.get('score'):.4g}\tid={r.get('id')}{why}"


@_env_in_help("data")
@click.command()
@click.argument("folder", type=PathArg)
@click.option("--line", required=True, help="Line the parts come from.")
@click.option("--station", default="watch", show_default=True, help="Station name.")
@click.option("--product", required=True, help="Product (selects the active model).")
@click.option("--server", default=None, help=_SERVER_HELP)
@click.option("--api-key", envvar="LINEGUARD_API_KEY", default=None, help=_API_KEY_HELP)
@click.option("--data", type=PathArg, default=None, help=_DATA_HELP)
@click.option("--db", default=None, help="With --data: the station's database URL if not its SQLite file.")
@_watcher_db_schema
@db_wait_option("watch", "With --data and a database server (--db postgresql://...)")
@click.option("--settle", type=float, default=1.0, show_default=True,
              help="Seconds a file must stay unchanged before it is taken.")
@click.option("--poll", type=float, default=0.5, show_default=True, help="Seconds between folder scans.")
@click.option("--incomplete-after", type=float, default=60.0, show_default=True,
              help="Seconds an image that looks cut short (a paused copy) or is still empty is waited for before "
                   "it is refused.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=32.0, show_default=True,
              help="Largest image file taken: a larger one goes to failed/ unread. With --data the station in this "
                   "process takes the same limit; with --server give the server's own --max-upload-mb if it was "
                   "raised (the server does not tell it).")
@click.option("--webhook", default=None, help="With --data: POST every result to this URL (through the outbox).")
@click.option("--mqtt", default=None, help="With --data: publish results to this broker, e.g. mqtt://127.0.0.1:1883.")
@station_options
def watch(folder: Path, line: str, station: str, product: str, server: Optional[str], api_key: Optional[str],
          data: Optional[Path], db: Optional[str], db_schema: Optional[str], db_wait: Optional[float],
          settle: float, poll: float,
          incomplete_after: float, max_upload_mb: float, webhook: Optional[str], mqtt: Optional[str],
          **keeping) -> None:
    """Inspect every new image dropped into a folder; done files go to done/, refused ones to failed/.

    Takes what the station takes: PNG, JPEG, BMP, TIFF, WebP and GIF files (by suffix);
    other files are left in the folder and logged once each. The image size and keeping
    options apply with --data (a station in this process).

    A watcher behind the line (a file ready has waited 30 s) and a station that cannot take
    parts are said when they start and end; its state is kept in a status file (with --data
    in DIR/watchers/, else .lineguard-watch-status.json in the folder); with --server it is
    also sent to the station every 5 s (its /health then sees this watcher)."""
    from ..line.sources.folder import FolderInUse, FolderWatcher, StationHeartbeat
    from ._term import fail
    line, station, product = _part_names(line, station, product)
    if not folder.is_dir():
        fail(f"{folder}: the hot folder does not exist (or is not a folder); create it or fix the path")
    submit, st = _submitter("folder", line, station, product, server, api_key, data, db, webhook, mqtt, keeping,
                            max_upload_mb=max_upload_mb, db_schema=db_schema, db_wait=db_wait)
    if st is not None:
        # the status file and its "line" as the station stores the parts (`--line l1` wrote
        # "line": "l1" beside parts kept as L1), as the watcher's run is named
        line, station = st.names_as_stored(line, station)

    def show(path, r):
        from ..line.sources.folder import shown_name      # a name cannot print a forged line
        click.echo(part_line(shown_name(path.name), r))

    # a station on another PC has no data folder shared with this one: it hears of this
    # watcher (behind, its parts not taken, stopped) from its heartbeat, sent with the same key
    heartbeat = StationHeartbeat(server, api_key) if server else None
    try:
        w = FolderWatcher(folder, submit, settle_s=settle, poll_s=poll, on_result=show,
                          incomplete_after_s=incomplete_after,
                          # the station here may take its limit from LINEGUARD_MAX_UPLOAD_BYTES
                          max_bytes=st.config.max_upload_bytes if st is not None else int(max_upload_mb * 1024 * 1024),
                          status_path=_watch_status_path(st, folder, line, station),
                          status_info={"line": line, "station": station, "product": product,
                                       "inspects": "--server" if server else "here"},
                          heartbeat=heartbeat)
        if st is not None:
            # the model's first part pays for its loading and set-up (3.2 s on a commutator
            # model, booked as station_decode in that part's timings and the line view's p95):
            # paid now, before the first file, as camera --data does; nothing is stored
            st.warm_up(product, line)
    except BaseException:
        if st is not None:
            st.close()
        raise
    click.echo(f"watching {folder} (Ctrl-C to stop)", err=True)
    import signal
    # SIGTERM (systemd stop, docker stop, a service manager) ends it as Ctrl-C does: the file
    # in hand is finished, the station closed and the summary said
    try:
        old_term = signal.signal(signal.SIGTERM, lambda signum, frame: w.stop())
    except ValueError:      # not the main thread (embedded): no handler of ours
        old_term = None
    try:
        w.run()
    except KeyboardInterrupt:
        pass
    except FolderInUse as exc:
        # another watcher takes this folder's files: two split the parts between them and
        # moved files from under each other (refused before a file is taken)
        fail(str(exc), code=2)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
        if heartbeat is not None:
            heartbeat.close()      # the last status (stopped): the station forgets this watcher
        if st is not None:
            st.close()
    # a stop loses no file (those not taken stay in the folder for the next start), so it
    # ends with exit 0 whatever the station's state; the last line says how many wait, as
    # the log does when the station could not take them
    click.echo(f"done: {w.counts['done']}, failed: {w.counts['failed']}"
               + (f", ignored (not an image the station takes): {w.counts['ignored']}" if w.counts["ignored"] else "")
               + (f", judged but left in the folder (it cannot be moved: see the log): {len(w.not_moved)}"
                  if w.not_moved else "")
               + (f", waiting in the folder for the next start: {w.waiting}" if w.waiting else ""),
               err=True)


@_env_in_help("data")
@click.command()
@click.option("--source", envvar="LINEGUARD_CAMERA_SOURCE", default=None,
              help="RTSP/HTTP URL, USB camera index (0, 1, ...), a video file, an image sequence (DIR/%04d.png, "
                   "at 25 fps) or a folder of images (those in it at the start, in name order, played once at "
                   "--max-fps: each one inspected; for a folder that receives images use `lineguard watch`). "
                   "[env: LINEGUARD_CAMERA_SOURCE, where a camera URL with its password goes]")
@click.option("--line", required=True)
@click.option("--station", default="cam", show_default=True)
@click.option("--product", required=True)
@click.option("--mode", type=click.Choice(["free", "trigger"]), default="free", show_default=True,
              help="free: continuous at --max-fps; trigger: inspect when Enter is pressed.")
@click.option("--max-fps", type=float, default=2.0, show_default=True,
              help="Most parts per second in free-run mode; a folder of images plays at this rate.")
@click.option("--max-parts", type=click.IntRange(min=1), default=None,
              help="Stop after this many frames taken for inspection, inspected or refused (frames skipped by "
                   "--max-fps do not count; in trigger mode: triggers).")
@click.option("--server", default=None, help=_SERVER_HELP)
@click.option("--api-key", envvar="LINEGUARD_API_KEY", default=None, help=_API_KEY_HELP)
@click.option("--data", type=PathArg, default=None, help=_DATA_HELP)
@click.option("--db", default=None, help="With --data: the station's database URL if not its SQLite file.")
@_watcher_db_schema
@db_wait_option("camera", "With --data and a database server (--db postgresql://...)")
@click.option("--webhook", default=None, help="With --data: POST every result to this URL (through the outbox).")
@click.option("--mqtt", default=None, help="With --data: publish results to this broker, e.g. mqtt://127.0.0.1:1883.")
@click.option("--give-up-after", type=click.FloatRange(min=0, min_open=True), default=None,
              help="A live camera that stops delivering frames is reopened (0.5 to 5 s backoff) for ever; with this, "
                   "the command ends (exit 1) after this many seconds without frames.")
@station_options
def camera(source: Optional[str], line: str, station: str, product: str, mode: str, max_fps: float,
           max_parts: Optional[int], server: Optional[str], api_key: Optional[str], data: Optional[Path],
           db: Optional[str],
           db_schema: Optional[str], webhook: Optional[str], mqtt: Optional[str], db_wait: Optional[float] = None,
           give_up_after: Optional[float] = None, **keeping) -> None:
    """Inspect frames from a camera, free-running (rate-limited) or on trigger.

    While the station cannot take frames (--server down or unreachable, its disk full) a
    live camera's frames are dropped and counted, a recorded source (video file, image
    sequence or folder) waits for the station; the outage is said when it starts and when
    it ends. A run that ends by itself (the file played, --max-parts, Ctrl-D in trigger mode)
    with frames not inspected for it ends with exit 1; a stop asked for (SIGTERM, Ctrl-C) ends
    with exit 0, the frames lost said in its last line. The image size and keeping options
    apply with --data (a station in this process)."""
    import signal

    from ..line.sources.camera import CameraLost, CameraSource, NoFrame
    from ._term import fail
    if not source:
        # not required of the option: a unit's camera URL comes from its env file
        raise click.UsageError("Missing option '--source': give the camera (--source rtsp://cam/..., a USB index, a "
                               "file or folder), or LINEGUARD_CAMERA_SOURCE=... in the environment (where a camera "
                               "URL with its password goes)")
    line, station, product = _part_names(line, station, product)

    def show(r):
        click.echo(part_line(r.get("part_id"), r))

    def not_yet(*_a: Any) -> Any:      # parts go to the station once it is checked
        raise RuntimeError("no station yet")
    opened: list = []

    def open_camera() -> None:
        try:
            opened.append(CameraSource(source, not_yet, station_name=station, mode=mode, max_fps=max_fps,
                                       on_result=show, give_up_after_s=give_up_after))
        except (RuntimeError, ValueError) as exc:
            raise click.BadParameter(str(exc)) from exc
    try:
        submit, st = _submitter("camera", line, station, product, server, api_key, data, db, webhook, mqtt, keeping,
                                db_schema=db_schema, db_wait=db_wait, ready=open_camera)
    except BaseException:
        for cam in opened:
            cam.close()
        raise
    if not opened:        # a submitter that did not ask for it (a stand-in's): opened here
        open_camera()
    cam = opened[0]
    cam.submit = submit
    if st is not None:
        # the model's first part pays for its set-up (seconds): paid now, not by the first
        # frames of a live camera (lost meanwhile) or a trigger's part
        st.warm_up(product, line)

    # how the run was asked to stop (SIGTERM, Ctrl-C); empty while it was not
    stop_asked: list[str] = []

    def on_stop(signum, frame):
        # SIGTERM (a service stopped) and Ctrl-C end the run the same way: the frame in hand
        # finished or counted as lost (Ctrl-C's KeyboardInterrupt out of a recorded source's
        # wait left it uncounted), summary said, station closed
        again = bool(stop_asked)
        stop_asked.append("SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")
        cam.stop()
        if mode == "trigger" or again:
            raise KeyboardInterrupt   # the trigger loop waits on stdin; a second one: out now
    old_handlers = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):
            # a Ctrl-C ignored where it was started (a background job, nohup) stays ignored
            if signal.getsignal(sig) is not signal.SIG_IGN:
                old_handlers[sig] = signal.signal(sig, on_stop)
    except ValueError:      # not the main thread (embedded): no handler of ours
        pass
    gave_up = None
    try:
        if mode == "free":
            cam.run_free(max_parts=max_parts)
        else:
            cam.start_grabbing()
            click.echo("press Enter to inspect a part, Ctrl-D to stop", err=True)
            n = 0
            for _ in sys.stdin:
                n += 1
                try:
                    if cam.trigger() is None and cam.in_outage:
                        # the operator pressed for this part: said for each one (the log says
                        # the outage once)
                        click.echo(f"error: trigger {n} not inspected: the station cannot take frames "
                                   f"({cam.in_outage})", err=True)
                except NoFrame as exc:
                    # never judged on an older frame: the part is not inspected, and said so
                    click.echo(f"error: trigger {n} not inspected: {exc}", err=True)
                if max_parts is not None and n >= max_parts:
                    break
    except KeyboardInterrupt:
        if not stop_asked:
            stop_asked.append("Ctrl-C")
    except CameraLost as exc:
        gave_up = str(exc)
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        cam.close()
        if st is not None:
            st.close()
    # frames skipped by --max-fps or refused are parts never judged: said, not left silent
    click.echo(cam.summary(), err=True)
    if gave_up:
        fail(gave_up, code=1)
    if cam.lost:
        lost = (f"{cam.lost} frame{'s were' if cam.lost != 1 else ' was'} not inspected: the station could not "
                f"take {'them' if cam.lost != 1 else 'it'} (see above)")
        if stop_asked:
            # a stop asked for (systemctl stop, docker stop, Ctrl-C) is the end the plant wanted:
            # exit 1 made systemd show the unit as failed after a normal stop (a recorded source
            # stopped while it waited for the station loses the frame in hand). The frames lost
            # are said here, as the last line, and in the log above
            click.echo(f"stopped ({stop_asked[0]}): {lost}", err=True)
            return
        # a run that ended by itself with parts never judged because the station could not
        # take them: a script sees it in the exit status, not only in the log
        fail(lost, code=1)


@click.command("old-records")
@click.option("--keep-days", type=click.FloatRange(min=30), required=True,
              help="Records of parts older than this many days (at least 30) are the ones looked at.")
@click.option("--delete", "delete_now", is_flag=True,
              help="Delete them now (archived first with --archive-to); without it nothing is deleted.")
@click.option("--archive-to", type=PathArg, default=None,
              help="With --delete: write them (CSV) and the rejected parts' images to this folder first.")
@click.option("--archive-images", type=click.Choice(["none", "ng", "all"]), default="ng", show_default=True,
              help="With --archive-to: whose part images go there.")
@click.option("--timezone", envvar="LINEGUARD_TIMEZONE", default=None,
              help="The plant's time zone for the archive's plant_time (IANA name; default: this PC's).")
@data_option()
@db_options()
def old_records(keep_days: float, delete_now: bool, archive_to: Optional[Path], archive_images: str,
                timezone: Optional[str], data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """What keeping parts' records only KEEP_DAYS days would delete, and what stays.

    Before a plant sets `serve --keep-records-days` (records are its quality record),
    this shows how many parts' records and PLC answers are older, by verdict, and what
    stays however old (reviewed parts, the audit sample, test-part checks). --delete
    deletes them now, as the station's daily run does (safe while the station runs),
    in the change log under the account that ran it."""
    import math

    from ..line.audit import cli_actor, record as log_change
    from ..line.imagestore import ContentStore
    from ..line.record_keeper import RecordKeeper
    from ..line.shifts import plant_zone
    from ._term import fail
    if archive_to is not None and not delete_now:
        raise click.UsageError("--archive-to archives what --delete deletes: give both, or neither to look")
    if not math.isfinite(keep_days):
        raise click.BadParameter("give a number of days, at least 30", param_hint="--keep-days")
    try:
        zone = plant_zone(timezone)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timezone") from None
    # a wrong folder would make every image look deleted for room: none archived, the real files orphaned
    database = _station_with_images(data, db, db_schema, "give the station's folder (--data) or --db", "delete")
    if database is None:
        return
    try:
        from sqlalchemy import inspect as sql_inspect
        if not sql_inspect(database.engine).has_table("records_kept", schema=db_schema):
            fail("this station's database is older than this version: start the station with it once (that "
                 "upgrades it), then run this again")
        keeper = RecordKeeper(database, ContentStore(data / "images"), keep_days, archive=archive_to,
                              archive_images=archive_images, zone=zone)
        keeper.again = "then run this command again"
        look = keeper.preview()
        v = look["verdicts"]
        click.echo(f"records of parts older than {keep_days:g} days (before {look['cutoff']}):")
        click.echo(f"  would go: {look['parts']} parts' records"
                   + (f" ({look['first']} to {look['last']}: {v['OK']} OK, {v['NG']} NG, {v['REVIEW']} REVIEW; "
                      f"{look['with_image']} with an image)" if look["parts"] else "")
                   + f", {look['signals']} PLC answers")
        k = look["kept"]
        click.echo(f"  stay however old: {k['reviewed']} reviewed, {k['audit_sample']} in the audit sample, "
                   f"{k['test_part_checks']} test-part check(s)")
        if not delete_now:
            click.echo("nothing deleted: --delete deletes them now (a station with --keep-records-days does it daily)")
            return
        failed: Optional[BaseException] = None
        try:
            keeper.run_once()
        except (Exception, KeyboardInterrupt) as exc:   # what went before it is logged and said all the same
            failed = exc
        done = keeper.last or {"cutoff": look["cutoff"], "parts": 0, "signals": 0, "files": 0}
        click.echo(f"deleted {done['parts']} parts' records ({done['files']} files) and {done['signals']} PLC answers"
                   + (f"; archived to {archive_to}" if archive_to and (done["parts"] or done["signals"]) else ""))
        if done["parts"] or done["signals"]:
            try:
                with database.session() as s:
                    log_change(s, "records.deleted", f"records before {done['cutoff']}", cli_actor(),
                               keep_days=keep_days, parts=done["parts"], signals=done["signals"],
                               files=done["files"], archive=str(archive_to.resolve()) if archive_to else None,
                               stopped_by=None if failed is None else f"{type(failed).__name__}: {failed}"[:300])
            except Exception as exc:  # noqa: BLE001 - the deletion stands; say it was not logged
                fail(f"the change log could not be written ({type(exc).__name__}: {exc}); note this deletion "
                     "by hand for the quality record", code=1)
        if failed is not None:
            # said once: the keeper's fault already ends in what to do and "run this command
            # again"; and "what was deleted" only where something was
            problem = keeper.archive_problem if isinstance(failed, OSError) else None
            why = f"{type(failed).__name__}: {failed}"
            if done["parts"] or done["signals"]:
                fail("stopped before the end: " + (keeper.faults["records"] if problem else
                                                   f"{why}; run it again once that is put right")
                     + " (what was deleted is in the change log)", code=1)
            if problem:
                fail(f"nothing was deleted: {problem[0]}: {problem[1]}, then run this command again", code=1)
            fail(f"nothing was deleted: {why}; run this command again once that is put right", code=1)
        if done.get("images_unreadable"):
            fail(keeper.faults["records_image"], code=1)
    finally:
        database.dispose()


@click.command()
@data_option()
@db_options()
@click.option("--dry-run", is_flag=True, help="Count the files no part's record names; delete nothing.")
@click.option("--min-age-minutes", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Leave files younger than this alone (a station running on the folder may be about to name "
                   "them).")
def sweep(data: Path, db: Optional[str], db_schema: Optional[str], dry_run: bool, min_age_minutes: float) -> None:
    """Delete the image files no part's record names (left by crashes and power cuts).

    A running station does this itself 10 minutes after start and then daily
    (LINEGUARD_STORE_SWEEP_H); this is for a stopped station, or to see what a sweep
    frees (--dry-run). Nothing is deleted when the database cannot be these images'
    (it holds no part, is older than the newest images, or names few of them)."""
    from ..line.imagestore import ContentStore
    from ..line.sweep import StoreSweep
    from ._term import fail
    images = data / "images"
    database = _station_with_images(data, db, db_schema, "give the station's --db (with no database every image "
                                                          "would look unnamed)", "sweep")
    if database is None:
        return
    try:
        report = StoreSweep(database, ContentStore(images), min_age_s=min_age_minutes * 60).run(dry_run=dry_run)
    finally:
        database.dispose()
    click.echo(f"{report.files} files, {report.young} younger than {min_age_minutes:g} min left alone; "
               f"{report.unnamed} named by no part's record ({report.unnamed_bytes / 1e6:.1f} MB)")
    if report.refused:
        fail(report.refused)
    if dry_run:
        click.echo("dry run: nothing deleted" + (f" (e.g. {', '.join(report.examples)})" if report.examples else ""))
    else:
        click.echo(f"deleted {report.deleted}" + (f", {report.failed} could not be deleted (see the log)"
                                                  if report.failed else ""))
        if report.failed:
            raise SystemExit(1)


@click.command()
@data_option(postgresql_folder=False)     # its own words for a PostgreSQL station's folder: pg_dump
@click.option("--to", "dest", type=PathArg, required=True,
              help="Backup folder (best on another disk); a later backup into it copies only new files.")
@db_options(db_help="The station's database URL, if not the SQLite one in --data (a PostgreSQL station is told "
                   "its pg_dump).")
@click.option("--verify", is_flag=True, help="Also read back every file the backup holds already and copy the "
              "damaged ones again (a station's own backups do this weekly).")
def backup(data: Path, dest: Path, db: Optional[str], db_schema: Optional[str], verify: bool) -> None:
    """Copy a station's database and every file it names (part images, maps, models) to a folder.

    Safe while the station runs (SQLite's online backup). Restore (and check) it with
    `lineguard restore`; a station run from the backup folder itself makes later
    backups into it refuse. A PostgreSQL station is backed up with pg_dump, then a copy of
    its whole data folder (images/, models/, .lineguard-folder). Exit 0: backed up; 1: the
    backup stopped (a full or missing backup disk, the station's database failing half-way:
    the folder keeps what it held before), or it was made but some of the station's own files
    are damaged (listed; not copied over the backup's copies); 2: refused, nothing written
    (another backup into that folder running now, not a SQLite station, a folder holding no backup of this station, a backup folder as
    --data, a station database that cannot be read)."""
    import sqlite3

    from ..line.backup import BackupError, backup_station, damaged_at_station_message, failure_message
    from ..line.data_folders import postgresql_station_of
    from ._term import counted, fail, note
    db_path = _config(data, db).sqlite_path
    if db is None and postgresql_station_of(data) is not None:
        db_path = None       # a PostgreSQL station's folder (its id, no lineguard.db): told its pg_dump
    if db_path is None:
        # the records alone are not the station: its models/ (the active model's file), images/ and the
        # folder's id (.lineguard-folder, which the database names) must come with them
        fail("only a SQLite station is backed up here. For a PostgreSQL station: dump its database first with "
             + (f"`pg_dump -Fc -n {db_schema} -f station.dump` (its schema alone; pg_restore reads no plain dump; "
                "chmod 600 the dump: it holds the password and key hashes)" if db_schema else
                "`pg_dump -Fc` (pg_restore reads no plain dump; with --db-schema, that schema alone: `pg_dump -Fc "
                "-n SCHEMA`; chmod 600 the dump: it holds the password and key hashes)")
             + f", then copy the whole data folder {data} (images/, models/ and .lineguard-folder), e.g. "
             f"`cp -a {data} /backup/`; restore in the same order (pg_restore, then the folder back in place)")
    had = (dest / "lineguard.db").is_file()
    try:
        report = backup_station(data, dest, db_path, verify=verify)
    except BackupError as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:     # a full or missing backup disk: failed, not refused
        # said only where there is one: a first backup that failed leaves none
        kept = "the backup folder still holds the previous backup whole" if had else \
            "there is no backup in the folder yet"
        # the disk is named only when it is the disk's error (failure_message)
        fail(failure_message(exc, kept), code=1)
    if report.same_disk:
        note("note", f"{dest} is on the station's own disk: a disk that fails takes the backup with it, and the "
                     "backup's growth takes the room the disk keeper frees by deleting part images; back up to "
                     "another disk or a share")
    click.echo(f"backed up {counted(report.parts, 'part')} and {counted(report.models, 'new model file')} to "
               f"{dest}: {counted(report.files_copied, 'file')} copied ({report.bytes_copied / 1e6:.1f} MB), "
               f"{report.files_there} already there, in {report.seconds:.1f} s"
               + (f"; {counted(report.gone, 'part')} whose image the station deleted meanwhile "
                  f"{'is' if report.gone == 1 else 'are'} kept in the backup without it" if report.gone else "")
               + (f"; reference photos: {report.reference_copied} copied" if report.reference_copied else ""))
    if report.reference_missing:
        # exist nowhere else once the PC that trained the first model is gone: said now, not
        # first at a restore that drops their rows
        click.echo(f"warning: {report.reference_missing} reference photo(s) of good parts are missing from the "
                   f"station's data folder ({data.resolve() / 'reference'}) and are not in the backup: "
                   + ", ".join(report.reference_missing_keys)
                   + ". Add them again (lineguard reference add) or remove their entries (lineguard reference "
                   "list, lineguard reference remove ID)", err=True)
    if verify:
        click.echo(f"read back {counted(report.verified, 'file')} the backup held: {report.repaired} damaged, "
                   "copied again")
    if report.damaged_at_station:
        # the backup itself is whole (its manifest written); the station is not: exit 1
        fail(damaged_at_station_message(report, data.resolve(), dest.resolve()), code=1)


@click.command()
@click.option("--from", "src", type=PathArg, required=True, help="The backup folder (`lineguard backup --to`).")
@data_option("The new station folder to restore into (absent or empty); with --check none is.", default=None,
             unless="check")
@click.option("--check", is_flag=True, help="Only read the backup as a restore would and say what is damaged.")
def restore(src: Path, data: Optional[Path], check: bool) -> None:
    """Bring a station back from its backup, every file checked, or check a backup (--check).

    The database's integrity is checked and every file its records name is read back
    (part images and models against the SHA-256 they are named by, maps against their
    PNG checksums). A part whose image is missing or damaged comes back with its image
    recorded as not kept. The new folder appears only once whole; the backup is never
    changed. Exit 0: whole; 1: restored or checked, but some files were missing or
    damaged (listed); 2: refused, nothing written; 3: stopped (a full disk), nothing
    put in place."""
    import sqlite3

    from ..line.restore import RestoreError, check_backup, restore_station
    from ._term import counted, fail
    if check and data is not None:
        fail("give either --data NEW_FOLDER to restore into or --check to only check the backup, not both")
    if not check and data is None:
        fail("give --data NEW_FOLDER to restore into, or --check to only check the backup")
    try:
        report = check_backup(src) if check else restore_station(src, data)
    except RestoreError as exc:
        fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        fail(f"the {'check' if check else 'restore'} stopped ({type(exc).__name__}: {exc}); nothing was put in "
             "place: check the disks (room left, the backup disk mounted) and run it again", code=3)
    click.echo(f"{'checked' if check else 'restored'} the backup made {report.made_at or 'at an unknown time'}: "
               f"{counted(report.parts, 'part')}, {counted(report.files, 'file')} read "
               f"({report.bytes / 1e6:.1f} MB), "
               f"{counted(report.models, 'model version')}, in {report.seconds:.1f} s")
    for line in report.notes:
        click.echo(f"note: {line}", err=True)
    for line in report.examples:
        click.echo(f"  {line}", err=True)
    if report.missing or report.damaged:
        n = report.parts_without_image
        click.echo(f"in the backup {report.missing} named files are missing and {report.damaged} damaged: {n} "
                   f"part{'' if n == 1 else 's'} {'would come' if check else 'came'} back with the image recorded "
                   "as not kept (their records and verdicts are whole)", err=True)
    if report.reference_lost:
        click.echo(f"reference photo(s) lost: {report.reference_lost} ("
                   + ("their rows would be dropped" if check else "their rows dropped")
                   + ": add them again, lineguard reference add)", err=True)
    if report.models_damaged:
        click.echo(f"model versions whose file is missing or damaged (add them again to use them): "
                   f"{', '.join(report.models_damaged)}", err=True)
    for name in report.models_damaged_active:
        # the one the station judges with: said, or the first sign was every part refused
        click.echo(f"{name} is the active model: the station refuses every part it judges until its file is "
                   "back. Add the same model file again (`lineguard serve --model FILE`, the Models page or POST "
                   "/api/v1/models), or activate another version", err=True)
    if not check:
        click.echo(f"start the station on it: lineguard serve --data {data.resolve()}")
        if os.environ.get("LINEGUARD_DB") or os.environ.get("LINEGUARD_DB_SCHEMA"):
            # serve reads them: the advice above started a station on that database, empty of
            # what was restored, beside the restored folder
            set_here = [v for v in ("LINEGUARD_DB", "LINEGUARD_DB_SCHEMA") if os.environ.get(v)]
            click.echo(f"warning: {' and '.join(set_here)} {'is' if len(set_here) == 1 else 'are'} set here, and "
                       "serve would open that database instead of the restored station's own (lineguard.db in "
                       f"{data.resolve()}): unset {' and '.join(set_here)} before starting it, e.g. `env "
                       + " ".join(f"-u {v}" for v in set_here) + f" lineguard serve --data {data.resolve()}`",
                       err=True)
    if not report.whole:
        raise SystemExit(1)


@click.command("undo-upgrade")
@data_option(postgresql_folder=False)     # its own words for a PostgreSQL station's folder: pg_dump
@db_options(db_help="The station's database URL, if not the SQLite one in --data.")
def undo_upgrade(data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Go back to the copy of a SQLite station's database taken before its upgrade.

    A newer lineguard copies lineguard.db to lineguard.db.before-<revision> before it
    migrates it; the older version cannot run on the migrated one. This checks that copy
    (it opens, is whole, is at the revision its name says), then, only while no process has
    the database open (SQLite's exclusive lock, waited for 2 s, and no station run with a
    sign of life in the last 30 s), moves lineguard.db with its -wal and -shm into a new
    folder beside it (upgraded-<revision>-<time>: the parts recorded since the upgrade stay
    there, never deleted) and puts the copy in place. The copy stays. A station on another
    PC over a network share may not show its lock: stop it first. Exit 0: done (or the
    database is at the copy's schema already); 2: refused, nothing moved (no copy, a
    damaged copy, the database in use, a PostgreSQL station); 3: stopped by the disk
    (room, permissions: the database left in place) or by a database that appeared meanwhile
    (said where each is)."""
    from ..line.undo_upgrade import UndoRefused, UndoStopped, next_step
    from ..line.undo_upgrade import undo_upgrade as put_back
    from ._term import fail
    db_path = _config(data, db).sqlite_path
    if db_path is not None and db is None and not db_path.exists() and (data / ".lineguard-folder").is_file():
        # a PostgreSQL station's folder (its id, no lineguard.db): was told of no copy "beside
        # lineguard.db", a file that never was there
        db_path = None
    if db_path is None:
        # no copy is made of a PostgreSQL database at its upgrade (line.db): its dump is the way back
        fail((f"{data} holds no lineguard.db (the folder of a station on PostgreSQL?): " if db is None else "")
             + "a PostgreSQL station has no copy from before its upgrade here (none is made): go back with the "
             "`pg_dump -Fc` taken before the upgrade"
             + (f" (of schema {db_schema}: -n {db_schema})" if db_schema else "")
             + ", restored by pg_restore into an empty database (or schema) while every station on it is stopped, "
             "then start the older lineguard with --db pointing at it")
    try:
        report = put_back(db_path)
    except UndoRefused as exc:
        fail(str(exc))
    except UndoStopped as exc:
        fail(str(exc), code=3)
    except OSError as exc:
        fail(f"stopped ({exc.strerror or exc}): the database was left in place; check the disk (room left, "
             "permissions) and run it again", code=3)
    where = f"--data {data.resolve()}" if db is None else f"--db {db}"
    if report.nothing_to_do:
        click.echo(f"{db_path} is at schema {report.copy_revision} already, as the copy {report.copy.name}: nothing "
                   "was moved")
        return
    click.echo(f"moved the upgraded database (schema {report.upgraded_revision or 'unknown'}) to "
               f"{report.moved_to}: {', '.join(report.moved)}")
    click.echo(f"put {report.copy.name} (schema {report.copy_revision}) in place of {db_path}; the copy stays")
    n = report.parts_since
    click.echo(f"{n} part{'' if n == 1 else 's'} recorded since the upgrade {'is' if n == 1 else 'are'} in the "
               f"moved database only")
    if n:
        # their image files stay in the station's folder, named by no record of the copy: the
        # older station's store sweep deletes such files (it holds off only past 50 newer ones)
        click.echo("their photos and maps stay in the station's image folder, named by the moved database only: "
                   "the older station's daily sweep deletes files no record names, so copy that folder aside "
                   "first to keep them")
    click.echo(f"next: {next_step(report, where)}")


@click.command("parts")
@data_option()
@db_options()
@click.option("--out", type=PathArg, required=True,
              help="The file to write: .xlsx for a workbook (ids stay text, times are times) or .csv.")
@click.option("--line", default=None, help="Only this line's parts (typed in any case).")
@click.option("--product", default=None, help="Only this product's parts (typed in any case).")
@click.option("--lot", default=None, help="Only the parts of this lot.")
@click.option("--verdict", type=click.Choice(["OK", "NG", "REVIEW"], case_sensitive=False), default=None,
              help="Only parts judged so (typed in any case).")
@click.option("--parts", "kind", type=click.Choice(["all", "own", "test"]), default="all", show_default=True,
              help="own: the line's own parts only; test: the test parts' checks only (red rabbits).")
@click.option("--since", type=UtcTime(), default=None,
              help="Inclusive: a day, the plant's (2026-12-01: from 00:00 in --timezone), or a time, UTC unless "
                   "it carries its offset (2026-12-01 06:00, 2026-12-01T06:00:00Z, 2026-12-01T06:00+01:00).")
@click.option("--until", type=UtcTime(), default=None,
              help="Exclusive, written as --since; a day holds all of that day (up to the next day's 00:00 in "
                   "--timezone), so --since 2026-12-01 --until 2026-12-01 is that one day.")
@click.option("--timezone", envvar="LINEGUARD_TIMEZONE", default=None,
              help="The plant's time zone for the days and the plant_time column (e.g. Europe/Berlin; default: "
                   "the station's at its last start, else this PC's).")
def export_parts(data: Path, db: Optional[str], db_schema: Optional[str], out: Path, line: Optional[str],
                 product: Optional[str], lot: Optional[str], verdict: Optional[str], kind: str,
                 since: Optional[dt.date], until: Optional[dt.date], timezone: Optional[str]) -> None:
    """Write a station's part records to a spreadsheet (CSV or .xlsx), newest first.

    The same rows as the gallery's export (GET /api/v1/inspections/export), read from the
    database directly: for a stopped station, or a nightly file from cron. The file
    appears whole (written beside it, then renamed)."""
    from ..line import part_names, part_records
    from ..line.shifts import plant_instant, plant_zone
    from ..line import xlsx
    from ..line.station import count_parts, each_part
    from ..line.xlsx import TooManyRows
    from ._term import fail
    database = None
    if timezone is None:
        # the plant's zone the station counts its days and shifts in (its last start's
        # --timezone), not this PC's: a nightly export on a PC left on UTC cut November at
        # UTC midnight, where the station's month report for Berlin counted other parts
        from ..line.audit import last_start_timezone
        database = _station_database(data, db, db_schema, "give the station's folder (--data) or --db")
        timezone = last_start_timezone(database)
        if timezone is not None:
            click.echo(f"note: days and plant_time in {timezone}, the station's time zone at its last start "
                       "(--timezone for another)", err=True)
    try:
        zone = plant_zone(timezone)
    except ValueError as exc:
        fail(str(exc))
    # as typed, for the refusal below: a day alone, or a time (made UTC)
    given = {k: (v.isoformat() if not isinstance(v, dt.datetime) else f"{v:%Y-%m-%d %H:%M} UTC")
             for k, v in (("since", since), ("until", until)) if v is not None}
    until_is_day = until is not None and not isinstance(until, dt.datetime)
    try:     # a day alone is the plant's day, as the plant_time column and the shifts count it
        since = plant_instant(since, zone, name="--since")
        until = plant_instant(until, zone, end=True, name="--until")
    except ValueError as exc:
        fail(str(exc), code=2)
    # refused before the database is opened: each wrote a file that was not what was asked
    if since is not None and until is not None and since >= until:
        # a day as --until holds all of it: a since at its end is after that day, not the same time
        fail(f"--since {given['since']} is not before --until {given['until']}: no part can be in that period; "
             + ("swap them" if since > until or until_is_day else "--until is exclusive: give a later time, or a "
                "day alone for all of that day"), code=2)
    if out.is_dir():
        fail(f"{out} is a folder: give the file to write, e.g. {out / 'parts.xlsx'}", code=2)
    if not out.parent.is_dir():
        # not made: a nightly export to a share's path while the share was not mounted filled
        # the PC's own disk under that path and said "wrote ... parts"
        fail((f"{out.parent} is a file, not a folder" if out.parent.exists() else f"no folder {out.parent}")
             + ": --out's folder must exist and is not made (a share not mounted?); create it, or give another "
             "place", code=2)
    if out.suffix.lower() not in (".xlsx", ".csv"):
        fail(f"{out}: write parts.xlsx (a workbook) or parts.csv; {out.suffix or 'a name with no suffix'} would "
             "hold CSV under another name", code=2)
    if database is None:
        database = _station_database(data, db, db_schema, "give the station's folder (--data) or --db")
    try:
        written = 0

        def counted(records):
            nonlocal written
            for rec in records:
                written += 1
                yield rec
        filters = part_names.resolve_filters(database, dict(
            line=line, product=product, lot=lot, verdict=verdict, since=since, until=until,
            test_parts={"all": None, "own": False, "test": True}[kind]))
        unknown = part_names.names_holding_nothing(database, filters)
        if unknown:
            # as the API's 404: a mistyped line in a nightly export wrote an empty file and
            # exit 0 every night, shipped as if the line had stopped
            fail("; ".join(unknown) + f": nothing written to {out} (check the name)", code=2)
        records = counted(each_part(database, **filters))
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        try:
            if out.suffix.lower() == ".xlsx":     # counted first: refused before a row is written
                xlsx.check_fits(count_parts(database, up_to=xlsx.MAX_ROWS, **filters))
            with open(tmp, "wb") as fh:
                if out.suffix.lower() == ".xlsx":
                    part_records.write_workbook(records, fh, zone)
                else:
                    for piece in part_records.csv_lines(records, zone):
                        fh.write(piece.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, out)
        except OSError as exc:       # a full disk, a folder not writable: said, nothing left half-written
            _discard(tmp)
            fail(f"cannot write {out} ({exc.strerror or exc}): check the folder and the room left", code=1)
        except TooManyRows as exc:   # a workbook past a sheet's rows: none written, not one cut short
            _discard(tmp)
            fail(f"{out}: {exc} (--out with .csv; --since/--until, --line)", code=1)
        except BaseException:
            _discard(tmp)
            raise
        click.echo(f"wrote {written} part{'' if written == 1 else 's'} to {out}")
    finally:
        database.dispose()


def _no_images_at(data: Path) -> str:
    """The refusal of a --data holding no images/ folder, naming a near-namesake beside it
    that holds a station (./station for ./Station), as serve names it."""
    twin = _station_lookalike(data.resolve())
    return (f"{data} holds no station's images (no images/ folder)"
            + (f", but {twin} beside it holds a station (a mistyped --data?): give --data {shlex.quote(str(twin))}"
               if twin is not None else ": give the station's folder with --data"))


def _station_with_images(data: Path, db: Optional[str], db_schema: Optional[str], missing_hint: str, what: str):
    """:func:`_station_database` for a command on the station's images too (old-records,
    sweep): a --data with no images/ folder is refused (exit 2: a wrong folder, every image
    would look deleted), unless its station holds no part and no PLC answer yet (set up with
    `keys create --new`, never served: the folder is made at the first start): then None,
    said, nothing to ``what``. old-records refused such a PostgreSQL station outright, though
    it had nothing to report or delete."""
    from sqlalchemy import func, select

    from ..line.orm import Inspection, LineSignal
    from ._term import fail
    if (data / "images").is_dir():
        return _station_database(data, db, db_schema, missing_hint)
    path = _config(data, db).sqlite_path
    if path is not None and not path.is_file():
        fail(_no_images_at(data))           # no station here at all: the folder's words, as before
    database = _station_database(data, db, db_schema, missing_hint)
    try:
        with database.session() as s:
            held = s.scalar(select(func.count()).select_from(Inspection)) \
                or s.scalar(select(func.count()).select_from(LineSignal))
    finally:
        database.dispose()
    if held:
        fail(_no_images_at(data))
    click.echo(f"no part recorded at this station yet ({data} holds no images/ folder: a station makes it at its "
               f"first start): nothing to {what}")
    return None


def _station_database(data: Path, db: Optional[str], db_schema: Optional[str], missing_hint: str):
    """A station's database, read as it is: never created or migrated (a mistyped --db
    must not become a database); the command ends, saying why, when it is not one."""
    from sqlalchemy import inspect as sql_inspect

    from ..line.db import Database, SchemaTooNew, not_current_message, schema_revisions
    from ._term import fail
    cfg = _config(data, db)
    where = _database_shown(cfg.database_url, "--db")      # said without its password
    if cfg.sqlite_path is not None and not cfg.sqlite_path.is_file():
        fail(no_station_database(cfg, missing_hint))      # ./Station's twin ./station named
    try:
        database = Database(cfg.database_url, schema=db_schema)
    except ValueError as exc:
        fail(str(exc))
    try:
        has_parts = sql_inspect(database.engine).has_table("inspections", schema=db_schema)
    except Exception as exc:  # noqa: BLE001 - any failure to reach it is said the same way
        database.dispose()
        fail(f"cannot read the database {where} ({type(exc).__name__}): check --db")
    if not has_parts:
        other = schema_slip_said(database.engine, db_schema)
        database.dispose()
        fail(f"{where} holds no station's records (no inspections table"
             f"{' in schema ' + db_schema if db_schema else ''})" + (other or ": check --db and --db-schema"))
    # another lineguard's tables: read as this one's, a column missing or new failed in a traceback
    try:
        found = database.check_schema()
    except SchemaTooNew as exc:
        database.dispose()
        fail(exc.message)
    if found != schema_revisions()[0]:
        database.dispose()
        fail(not_current_message(found))
    try:
        _folder_checked(database, cfg.data_dir, where)
    except BaseException:
        database.dispose()
        raise
    return database


def schema_slip_said(engine, schema: Optional[str]) -> Optional[str]:
    """What a command refused a PostgreSQL ``schema`` that holds no station says next: the
    station's schema that it is one keying slip of (line.db.typo_of, serve's check: walkd_bot
    for walkd_boot), else the schemas that hold stations; None where none does, or they
    cannot be read (SQLite). `old-records --db-schema walkd_bot` said only "check --db and
    --db-schema", where serve names the schema meant."""
    from ..line.db import schemas_shown, station_schemas, typo_of
    here = schema or "public"
    try:
        stations = [s for s in station_schemas(engine) if s != here]
    except Exception:  # noqa: BLE001 - the names are a hint; the refusal stands without them
        return None
    slip = typo_of(here, stations)
    if slip is not None:
        fix = f"--db-schema {slip}" if slip != "public" else "no --db-schema (the public schema's station)"
        return f", but schema {slip} holds one (a mistyped --db-schema?): give {fix}"
    if stations:
        return f"; this database holds stations in: {schemas_shown(stations)}: check --db and --db-schema"
    return None


def _folder_checked(database, data_dir: Path, where: Optional[str], claim: bool = False) -> None:
    """The command ends (exit 2) when the database's records point at another data folder
    than --data's, as serve refuses it (line.data_folders.check): a --db-schema forgotten
    sent `keys create`, `users add` and `parts` to the station in the public schema. Only
    read, unless ``claim``: a new station (``--new``) claims the database for its folder as
    serve's first start does (line.data_folders.claim). Unclaimed, `keys create --new --data
    fa` left the database to whichever folder started first: `serve --data fb` took it and
    `serve --data fa`, the station the engineer set up, was refused."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..line import data_folders
    from ..line.data_folders import OtherDataFolder, check
    from ._term import fail
    try:
        check(database, data_dir)
        if claim and not database.is_sqlite:      # a SQLite database lives in its folder: nothing to claim
            Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)     # as the station makes it
            data_folders.claim(database, data_dir)
    except OtherDataFolder as exc:
        fail(f"{where}: {exc.message}")
    except SQLAlchemyError as exc:
        why = (str(getattr(exc, "orig", None) or "").strip().splitlines() or [type(exc).__name__])[0]
        fail(f"could not read the data folders of {where}: {why}; check --db (or LINEGUARD_DB)", code=1)


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass           # never made (its folder is not one): nothing to clear


def register(app: click.Group) -> None:
    from .access import users_app   # also adds `keys list` and `keys revoke`
    from .alarm_rules import alarm_causes_app, alarm_rules_app
    for cmd in (serve, keys_app, users_app, alarm_rules_app, alarm_causes_app, watch, camera, sweep, old_records,
                backup, restore, undo_upgrade, export_parts):
        app.add_command(cmd)
