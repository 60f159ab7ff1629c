"""A station's own line-alarm rules from the command line: `alarm-rules list|set|clear`;
and the plant's own alarm causes: `alarm-causes list|add|retire`.

The same change as the Alarms page and ``PUT /api/v1/alarms/rules``, made on the
station's database directly (run on the station PC, or with --db): an engineer setting
up a new line from a script, or with no key at hand. In the change log under the account
that ran it. A running station reads the rules every 10 seconds, so they count from its
part after that; settings left unset follow each process's ``--alarm-*`` options.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import click

from .access import _data, _database, _db, _refused

# option -> setting; the ranges are checked where the API checks them (line.alarm_rules)
_OPTIONS = (
    ("--ng-run", "ng_run", int, "Parts in a row not passed (NG or REVIEW) that raise the alarm (0: off)."),
    ("--ng-rate", "ng_rate", float, "Share of NG parts among the last --window parts (0.1 = 10%; 0: off)."),
    ("--window", "window", int, "Parts the NG-rate rule looks back over."),
    ("--photo-run", "photo_run", int, "Photos the photo check doubts among the last 2N-1 parts (0: off)."),
    ("--no-verdict-run", "no_verdict_run", int, "PLC answers in a row rejected without a verdict (0: off)."),
    ("--escalate-min", "escalate_min", float, "Minutes unacknowledged before the alarm is escalated (0: never)."),
    ("--escalate-again-min", "escalate_again_min", float,
     "Then escalated again every so many minutes (0: once)."),
    ("--drift-parts", "drift_parts", int,
     "Parts per group whose scores are compared with the model's first 5 groups at the station (0: off)."),
)


@click.group(name="alarm-rules")
def alarm_rules_app() -> None:
    """Each station's own line-alarm rules (the rest follow the `serve --alarm-*` defaults)."""


@alarm_rules_app.command("list")
@_data
@_db
def rules_list(data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """The stations with rules of their own and who set them.

    One station a line: line, station, its own settings, who set them and when. A setting
    out of range (the database edited by hand) is named: that station counts by the defaults."""
    from ..line.alarm_rules import AlarmRules, listing
    with _database(data, db, db_schema, existing=True) as database:
        rows = listing(database, AlarmRules())
    click.echo("line\tstation\town settings\tupdated by\tupdated at")
    for r in rows:
        own = " ".join(f"{k}={v}" for k, v in r["own"].items())
        problem = f"\tOUT OF RANGE, counted by the defaults: {r['problem']}" if r["problem"] else ""
        click.echo(f"{r['line']}\t{r['station']}\t{own}\t{r['updated_by'] or ''}\t{r['updated_at'] or ''}{problem}")


def _setting_options(f: Any) -> Any:
    for flag, name, kind, help_ in reversed(_OPTIONS):
        f = click.option(flag, name, type=kind, default=None, help=help_)(f)
    return f


def _setting_names(_ctx: Any, _param: Any, names: tuple[str, ...]) -> tuple[str, ...]:
    known = {flag[2:]: name for flag, name, _k, _h in _OPTIONS}
    out = []
    for n in names:
        name = known.get(n.replace("_", "-").lstrip("-"))
        if name is None:
            raise click.BadParameter(f"{n!r} is not an alarm setting; one of {', '.join(known)}")
        out.append(name)
    return tuple(out)


@alarm_rules_app.command("set")
@click.option("--line", required=True,
              help="The line, as the parts name it (typed in another case, it is kept under the name they carry).")
@click.option("--station", "station", required=True, help="The station, as the parts name it (likewise).")
@_setting_options
@click.option("--replace", is_flag=True, help="The settings given become the station's only own settings (the "
              "others go back to the defaults, as a save on the Alarms page does); without it they are kept.")
@click.option("--unset", "unset", multiple=True, callback=_setting_names, metavar="SETTING",
              help="A setting back to the default (repeat for more): ng-run, ng-rate, window, photo-run, "
                   "no-verdict-run, escalate-min, escalate-again-min or drift-parts.")
@_data
@_db
def rules_set(line: str, station: str, replace: bool, unset: tuple[str, ...], data: Path, db: Optional[str],
              db_schema: Optional[str], **given: Any) -> None:
    """Give a station settings of its own, for example `--ng-run 3 --escalate-min 5`.

    Its other own settings stay unless --replace. Refused (exit 2) for a station no part
    was inspected at (a misspelt name would never raise an alarm) and for a setting out
    of range."""
    from ..line.alarm_rules import set_own
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    own = {k: v for k, v in given.items() if v is not None}
    if not own and not unset:
        raise click.UsageError("give at least one setting (see --help); `alarm-rules clear` puts a station back "
                               "on the defaults")
    if replace and not own:
        raise click.UsageError("--replace with no setting given would clear them all: use `alarm-rules clear`, or "
                               "--unset alone")
    if set(own) & set(unset):
        raise click.UsageError(f"{', '.join(sorted(set(own) & set(unset)))} both given and unset; give one")
    with _database(data, db, db_schema, existing=True) as database:
        try:
            stored = set_own(database, line, station, own, by=cli_actor(), keep_others=not replace, unset=unset)
        except StationError as exc:
            _refused(exc)
    where = f"{stored['line']}/{stored['station']}"      # as its parts name it, whatever case was typed
    if stored["own"]:
        click.echo(f"{where}: " + " ".join(f"{k}={v}" for k, v in stored["own"].items())
                   + " (a running station counts by them within 10 s)")
    else:
        click.echo(f"{where}: back on the defaults")


@alarm_rules_app.command("clear")
@click.option("--line", required=True, help="The line, as the parts name it.")
@click.option("--station", "station", required=True, help="The station, as the parts name it.")
@_data
@_db
def rules_clear(line: str, station: str, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Put a station back on the defaults (refused, exit 2, when it had no rules of its own)."""
    from ..line.alarm_rules import clear_own
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    with _database(data, db, db_schema, existing=True) as database:
        try:
            cleared = clear_own(database, line, station, by=cli_actor())
        except StationError as exc:
            _refused(exc)
    click.echo(f"{cleared['line']}/{cleared['station']}: back on the defaults")


@click.group(name="alarm-causes")
def alarm_causes_app() -> None:
    """What an alarm may turn out to be: the built-in causes and the plant's own (PLC numbers 7 on)."""


@alarm_causes_app.command("list")
@_data
@_db
def causes_list(data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Every cause with the number a PLC acknowledges it by (retired ones last, without a number in use)."""
    from ..line.alarm_causes import listing
    with _database(data, db, db_schema, existing=True) as database:
        rows = listing(database)
    click.echo("PLC number\tkey\tcause\tadded by")
    for c in rows:
        state = "built in" if c["built_in"] else ("retired" if c["retired"] else (c["added_by"] or ""))
        click.echo(f"{'-' if c['retired'] else c['code']}\t{c['key']}\t{c['label']}\t{state}")


@alarm_causes_app.command("add")
@click.argument("label")
@click.option("--key", default=None, help="Its key in exports and the API (default: made from the label).")
@_data
@_db
def causes_add(label: str, key: Optional[str], data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """Offer a cause of the plant's own, for example `alarm-causes add "coil change"`; prints its PLC number."""
    from ..line.alarm_causes import add
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    with _database(data, db, db_schema, existing=True) as database:
        try:
            out = add(database, label, by=cli_actor(), key=key)
        except StationError as exc:
            _refused(exc)
    click.echo(f"{out['key']}: {out['label']} (PLC number {out['code']})")


@alarm_causes_app.command("retire")
@click.argument("key")
@_data
@_db
def causes_retire(key: str, data: Path, db: Optional[str], db_schema: Optional[str]) -> None:
    """No longer offer a cause of the plant's own (alarms that had it keep it; its number is not reused)."""
    from ..line.alarm_causes import retire
    from ..line.audit import cli_actor
    from ..line.errors import StationError
    with _database(data, db, db_schema, existing=True) as database:
        try:
            out = retire(database, key, by=cli_actor())
        except StationError as exc:
            _refused(exc)
    click.echo(f"{out['key']}: retired (PLC number {out['code']} stays unused)")
