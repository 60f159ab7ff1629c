"""`lineguard service-unit -- serve|watch|camera ...`: the systemd unit that starts a station,
its hot folder or its camera at boot.

A station PC is switched on with the line and must run without anyone typing a command:
the unit starts the command once the network is up, starts it again if it ends with an
error, and gives it the time it takes to stop cleanly. It runs exactly the command line
given (checked as the command would read it, so a mistyped option is found now, not at the
next boot), quoted as systemd reads a command line. It carries no secret: a database's or a
camera's URL with a password, or an API key, on that line is refused (a unit file is
readable by every account, `systemctl cat` shows it), and the secret goes into an
EnvironmentFile= only the station's account can read.
"""
from __future__ import annotations

import getpass
import os
import re
import sys
from pathlib import Path
from typing import Optional

import click

from .core import PathArg

# How long `systemctl stop` waits for serve before it kills it (TimeoutStopSec=): the web
# server's grace for open responses (10 s, server.app.run_server), then the station's close:
# the shadow runner (5 s), the outbox's last deliveries and its threads (5 s + 5 s), the map
# writer storing what is queued (up to 60 s), the PLC links, the database's write-ahead log.
# 85 s at most by those bounds, 2 s on an idle station (measured); the rest is slack. Killed
# sooner, the maps in flight were lost and SQLite's log was not folded in.
STOP_S = 120
# Started again this long after it ended with an error (a refused database is said again
# every RESTART_S in the journal, not in a tight loop)
RESTART_S = 10
# the options of serve, watch and camera whose value is a URL that may carry a password,
# and the variable it goes into instead (read by the command from the EnvironmentFile): a
# camera's too, since serve reads LINEGUARD_PLC_CAMERA and camera LINEGUARD_CAMERA_SOURCE
# (warned about only, when the command line was the one way to give them)
_URL_OPTIONS = {"db": ("--db", "LINEGUARD_DB"), "mqtt": ("--mqtt", "LINEGUARD_MQTT"),
                "webhook": ("--webhook", "LINEGUARD_WEBHOOK"),
                "plc_camera": ("--plc-camera", "LINEGUARD_PLC_CAMERA"),
                "source": ("--source", "LINEGUARD_CAMERA_SOURCE")}
# the commands a unit may run: those that run for as long as the line does
_COMMANDS = ("serve", "watch", "camera")
# characters an argument may have and still go into the unit unquoted
_PLAIN = re.compile(r"[A-Za-z0-9_@+=:,./-]+")
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
# systemd refuses a program to run whose path holds these ("Executable name contains special
# characters")
_EXEC_REFUSED = ("'", '"', "\\")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _fail(msg: str) -> None:
    from ._term import fail
    fail(msg)


def _utf8(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"{what} is not UTF-8 text, which a unit file must be: rename it")


def exec_word(arg: str, program: bool = False) -> str:
    """One word of ExecStart= as systemd reads it back to ``arg``: in double quotes unless
    plain, with C escapes for backslash, quote and control characters, % written %% (a
    specifier otherwise) and, in an argument, $ written $$ (a variable otherwise; systemd
    does not expand variables in the program's own path, so there it stays $)."""
    _utf8(arg, "an argument")
    out = []
    for ch in arg:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ch == "%":
            out.append("%%")
        elif ch == "$" and not program:
            out.append("$$")
        else:
            out.append(ch)
    text = "".join(out)
    return text if _PLAIN.fullmatch(arg) else f'"{text}"'


def setting_value(text: str, what: str) -> str:
    """A value of a one-value setting (Description=, WorkingDirectory=, EnvironmentFile=):
    taken as written to the end of its line, so only % is written otherwise (%%). A line
    break cannot be written in one, a trailing backslash continues the line, and spaces at
    either end are dropped: refused, naming ``what``."""
    _utf8(text, what)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text) or text.endswith("\\") or text != text.strip():
        _fail(f"{what} {text!r} cannot be written in a systemd unit (a control character, a trailing backslash, or "
              "spaces at either end): rename it")
    return text.replace("%", "%%")


class _Account:
    """An account of this PC as the kernel checks its file access: uid, groups."""

    def __init__(self, name: str, uid: int, gid: int, groups: frozenset):
        self.name, self.uid, self.gid, self.groups = name, uid, gid, groups


def _account(name: str) -> Optional[_Account]:
    """The account ``name`` of this PC; None if there is none. Raises ImportError where
    accounts cannot be looked up (no pwd module: not a systemd PC)."""
    import pwd
    try:
        # systemd's User= takes a numeric id too (65534 for nobody)
        entry = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        return None
    try:
        groups = frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))
    except OSError:
        groups = frozenset({entry.pw_gid})
    return _Account(name, entry.pw_uid, entry.pw_gid, groups)


def _allowed(account: _Account, st: os.stat_result, want: int) -> bool:
    """Whether ``account`` gets access ``want`` (os.R_OK, W_OK, X_OK bits) to a file with
    ``st``, by its mode bits and owner as the kernel checks them (root passes, but for
    X_OK on a file; ACLs and mount options are not seen: a check, not a proof)."""
    if account.uid == 0:
        return True
    if st.st_uid == account.uid:
        bits = (st.st_mode >> 6) & 7
    elif st.st_gid in account.groups:
        bits = (st.st_mode >> 3) & 7
    else:
        bits = st.st_mode & 7
    return bits & want == want


def _blocked_on_the_way(account: _Account, folder: Path) -> tuple[Optional[Path], Optional[Path]]:
    """(the first folder on the way to ``folder``, itself included, that ``account`` cannot
    enter, or None; the deepest one that exists). A folder this process cannot look at
    ends the walk, as if it could be entered: nothing is said on a guess."""
    at = folder
    for part in (*reversed(folder.parents), folder):     # from / down
        at = part
        try:
            st = os.stat(part)
        except FileNotFoundError:
            return None, part.parent
        except OSError:
            return None, None
        if not _allowed(account, st, os.X_OK):
            return part, part
    return None, at


def _mode(path: Path) -> str:
    import grp
    import pwd
    import stat as st_mod
    st = os.stat(path)
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{st_mod.filemode(st.st_mode)} {owner}:{group}"


def _check_account(user: str, working_dir: Path, data: Optional[Path]) -> None:
    """Refuse an account this PC does not have, and warn when it cannot enter the working
    folder or write the data folder: either way the unit failed at every start (systemd's
    217/USER, 200/CHDIR; the station's own refusal), started again every RESTART_S, for ever."""
    from ._term import note
    try:
        account = _account(user)
    except ImportError:
        return           # no accounts to look up here (not a systemd PC): systemd's own to say
    if account is None:
        _fail(f"--user {user}: this PC has no such account, so systemd would fail to start the unit (217/USER) every "
              f"{RESTART_S} s, for ever. Create it first (e.g. `sudo useradd --system --create-home {user}`, and "
              f"give it the data folder: `sudo chown -R {user}: DATA`), or give the account the station runs as")
    blocked, _ = _blocked_on_the_way(account, working_dir)
    if blocked is not None:
        note("warning", f"{user} cannot enter {blocked} ({_mode(blocked)}), so the unit would fail at every start "
                        f"(200/CHDIR) with WorkingDirectory={working_dir}: give --working-dir a folder {user} can "
                        f"enter (its data folder's parent, e.g. /srv), or run service-unit from there")
    elif not working_dir.is_dir():
        note("warning", f"the working folder {working_dir} does not exist, so the unit would fail at every start "
                        f"(200/CHDIR): make it (owned by {user}), or give --working-dir an existing folder")
    if data is None:
        return
    data = Path(os.path.abspath(working_dir / data))     # a relative --data is read from the working folder
    blocked, deepest = _blocked_on_the_way(account, data)
    if blocked is not None:
        note("warning", f"{user} cannot enter {blocked} ({_mode(blocked)}), on the way to its data folder {data}: "
                        f"the station would fail at every start. Put the data folder where {user} can reach it "
                        f"(e.g. /srv/NAME, `sudo chown -R {user}: /srv/NAME`), or give {user} access")
        return
    if deepest is None:
        return            # not ours to look at: nothing said on a guess
    try:
        writable = _allowed(account, os.stat(deepest), os.W_OK | os.X_OK)
    except OSError:
        return
    if not writable:
        what = f"its data folder {data} ({_mode(deepest)})" if deepest == data else \
            f"{deepest} ({_mode(deepest)}), where its data folder {data} would be made"
        note("warning", f"{user} cannot write {what}: the station would fail at every start. "
                        f"Give it the folder: `sudo mkdir -p {data} && sudo chown -R {user}: {data}`")


def _password_in(url: Optional[str]) -> bool:
    """Whether ``url`` holds what the commands print as *** (a password, a query's token)."""
    from ..line.config import without_password
    return bool(url) and without_password(url) != url


def _command_params(verb: str, args: tuple[str, ...]) -> tuple[dict, set]:
    """The ``verb`` command line read as that command reads it: a mistyped option or a bad
    value ends here (exit 2) rather than at the next boot. Also the names of the options
    typed on it (not filled in from this shell's variables, such as LINEGUARD_API_KEY)."""
    from click.core import ParameterSource

    from . import station
    command = getattr(station, verb)
    if any(a in ("-h", "--help") for a in args):
        _fail(f"the {verb} command line asks for its help: give the command line the station runs")
    try:
        with command.make_context(verb, list(args)) as ctx:
            typed = {name for name in ctx.params if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE}
            return dict(ctx.params), typed
    except click.ClickException as exc:
        _fail(f"the {verb} command line: {exc.format_message()}")
    raise AssertionError("unreachable")


# serve's settings that its own checks read against each other (station.serve_settings_checked)
_SERVE_CHECKED = ("product", "line", "plc_line", "modbus_port", "opcua_port", "plc_images", "plc_camera", "recipes",
                  "plc_image_wait_ms", "inspection_window_ms")


def _check_serve_settings(params: dict, typed: set, env_file: Optional[Path], working_dir: Path) -> None:
    """Serve's own checks of its settings against each other, as serve runs them at start
    (station.serve_settings_checked): the README's `--modbus-port 502 --plc-images DIR` with
    no line and no product made a unit that serve refused at every start, every RESTART_S,
    for ever. A setting the command line leaves out ends here (exit 2, in serve's words)
    unless --env-file may give it (LINEGUARD_PLC_LINE...): then it is warned about, since
    that file is read at start, not now. A camera folder this PC does not have is warned
    about only: the unit may be written for another PC."""
    from ..line.config import env_var_of
    from . import station
    from ._term import note
    values = {name: params.get(name) for name in _SERVE_CHECKED}
    folders: dict = {}
    for _ in range(len(_SERVE_CHECKED)):        # each stand-in fills one setting left out
        try:
            _recipes, folders = station.serve_settings_checked(params.get("model") is not None, **values,
                                                               folders_here=False)
            break
        except (click.BadParameter, station.ServeSettingRefused) as exc:
            said = exc.format_message() if isinstance(exc, click.ClickException) else str(exc)
            # a value on the command line is taken over its variable: only those left out can be given so
            variables = [v for v in (env_var_of(f) for f in getattr(exc, "fields", ()) if f not in typed) if v]
            if not variables:
                _fail(f"the serve command line: {said}. serve refuses this at every start (systemd would start it "
                      f"again every {RESTART_S} s, for ever): put it right on the command line")
            if env_file is None:
                _fail(f"the serve command line: {said}. serve refuses this at every start (systemd would start it "
                      f"again every {RESTART_S} s, for ever): give it on the command line, or set "
                      f"{' or '.join(variables)} in a file given as --env-file")
            note("warning", f"the serve command line: {said}; unless {' or '.join(variables)} in "
                            f"{os.path.abspath(env_file)} gives it, serve refuses this at every start")
            stand_in = getattr(exc, "stand_in", None)
            if stand_in is None:
                return             # what follows depends on the setting the file gives
            values.update(stand_in)
    for link, folder in folders.items():
        if not (working_dir / folder).is_dir():      # a relative folder is read from the working folder
            note("warning", f"--plc-images {folder} (the {link} link's camera folder) is not a folder on this PC: "
                            "serve refuses to start without it; make it before the unit starts (on the PC the unit "
                            "is for)")


def unit_text(command: tuple[str, ...], params: dict, user: str, working_dir: Path, env_file: Optional[Path],
              description: str, program: tuple[str, ...]) -> str:
    """The unit for ``program`` + ``command`` (the serve, watch or camera command line after
    the verb, as given; the verb is ``program``'s last word)."""
    low = sorted({p for p in (params.get("port"), params.get("modbus_port"), params.get("opcua_port"))
                  if p is not None and p < 1024})
    lines = [
        "# Written by `lineguard service-unit`. Install it as /etc/systemd/system/NAME.service, then",
        "# `systemctl daemon-reload` and `systemctl enable --now NAME`; its output: `journalctl -u NAME`.",
        "[Unit]",
        f"Description={setting_value(description, 'the description')}",
        # the database's PC and the plant network may come later still: serve (and watch or
        # camera with --data) waits for its database (--db-wait), watch and camera with
        # --server for the station; this only keeps it from starting before any address is up
        "Wants=network-online.target",
        "After=network-online.target",
        "# the database on this PC: add After=postgresql.service" + (
            "; the station (serve) on this PC: add After= its unit" if params.get("server") else ""),
        # restarted however often it ends with an error (systemd gives up after 5 starts in 10 s)
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        f"User={user}",
        f"WorkingDirectory={setting_value(str(working_dir), 'the working folder')}",
    ]
    if env_file is not None:
        lines.append(f"EnvironmentFile={setting_value(str(env_file), 'the environment file')}")
    else:
        lines.append("# settings and secrets (LINEGUARD_DB=postgresql://user:password@host/db), in a file only "
                     f"{user} reads: EnvironmentFile=/etc/lineguard/NAME.env")
    if params.get("source") is not None and str(params["source"]).isdigit():
        # /dev/videoN belongs to the video group: an account outside it gets no frame
        lines.append(f"# a USB camera: {user} in the video group, or SupplementaryGroups=video")
    if low:
        # root listens there without the capability: "without running as root" beside
        # User=root read as a mistake in the unit
        if user != "root":
            lines.append(f"# port{'s' if len(low) > 1 else ''} {', '.join(map(str, low))} below 1024, "
                         "without running as root")
        lines.append("AmbientCapabilities=CAP_NET_BIND_SERVICE")
    lines += [
        "ExecStart=" + " ".join([exec_word(program[0], program=True), *(exec_word(a) for a in program[1:]),
                                 *(exec_word(a) for a in command)]),
        "Restart=on-failure",
        f"RestartSec={RESTART_S}",
        # serve, watch and camera close the station on SIGTERM (the parts in flight stored,
        # the database's log folded in) and end (camera with 1 where frames went
        # uninspected, said in the journal); past TimeoutStopSec they are killed
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_S}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


@click.command("service-unit", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--user", default=None,
              help="The account the station runs as, owning its --data folder (default: the one running this).")
@click.option("--working-dir", type=PathArg, default=None,
              help="The folder the command runs in: the relative paths of its command line are read from it "
                   "(default: this folder).")
@click.option("--env-file", type=PathArg, default=None,
              help="A file of LINEGUARD_* settings the command reads at start (EnvironmentFile=): where a database "
                   "password goes (LINEGUARD_DB=postgresql://user:password@host/db), a camera's URL with its "
                   "password (LINEGUARD_CAMERA_SOURCE=..., serve's LINEGUARD_PLC_CAMERA=...) and watch's or "
                   "camera's operator key for --server (LINEGUARD_API_KEY=...), readable by --user alone.")
@click.option("--description", default=None,
              help="The unit's description (default: the station's folder and port; the hot folder or camera and "
                   "its line).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def service_unit(command: tuple[str, ...], user: Optional[str], working_dir: Optional[Path],
                 env_file: Optional[Path], description: Optional[str]) -> None:
    """Print a systemd unit that runs the station at boot: the serve command line after --,
    or a watch (hot folder) or camera command line.

    \b
    lineguard service-unit --user lineguard -- serve --data /srv/line1 --host 0.0.0.0
        | sudo tee /etc/systemd/system/lineguard-L1.service
    lineguard service-unit --user lineguard --env-file /etc/lineguard/L1-watch.env --
        watch /srv/hot1 --line L1 --product cell --server http://127.0.0.1:8000
    """
    from ._term import note
    verb = command[0]
    if verb not in _COMMANDS:
        _fail(f"{verb!r}: give the serve, watch or camera command line after --, e.g. `lineguard service-unit -- "
              "serve --data /srv/line1 --host 0.0.0.0`")
    args = tuple(command[1:])
    params, typed = _command_params(verb, args)
    from ..line.db import database_url_problem
    # libpq's key=value words (host=db password=...) are no URL: serve refuses them at every boot
    db_problem = database_url_problem(params["db"], "--db") if "db" in typed and params.get("db") else None
    for name, (flag, var) in _URL_OPTIONS.items():
        # typed: camera's --source filled in from this shell's LINEGUARD_CAMERA_SOURCE is not on the unit's line
        if name in typed and _password_in(params.get(name)):
            setting = (f"{var}=postgresql://user:password@host:5432/db (a URL: libpq's key=value words are not "
                       "taken)" if name == "db" and db_problem is not None else f"{var}=...")
            _fail(f"{flag} holds a password, which the unit would show to every account of this PC (systemctl cat): "
                  f"leave {flag} out and put {setting} in a file only the station's account reads (chmod 600), "
                  "given as --env-file")
    if db_problem is not None:
        _fail(f"the {verb} command line: {db_problem}")
    if "api_key" in typed:
        # an operator key inspects parts and reviews them in the plant's name: a secret
        _fail("--api-key is a secret, which the unit would show to every account of this PC (systemctl cat): "
              "leave it out and put LINEGUARD_API_KEY=... in a file only the station's account reads (chmod 600), "
              "given as --env-file")
    if _password_in(params.get("server")):
        # the unit's description names --server too; the station takes an operator key, never
        # a password in its URL
        _fail("--server holds a password, which the unit would show to every account of this PC (systemctl cat): "
              "a station takes an operator key (LINEGUARD_API_KEY=... in --env-file), not a password in its URL")
    if verb != "serve" and params.get("server"):
        # the command's own check, asked now: --server beside --data, or without http://, is
        # refused at every start, and systemd started the unit again every RESTART_S for ever
        from .station import check_server_options
        # (typed: this shell's LINEGUARD_* variables are not the unit's)
        check_server_options(params["server"], *(params.get(n) if n in typed else None
                                                  for n in ("data", "db", "db_schema")))
    if verb != "serve" and not (params.get("server") or params.get("data") or params.get("db")):
        # refused by the command at every start, for ever, as the key below
        _fail(f"the {verb} command line gives neither --server URL (the station inspects) nor --data DIR "
              "(inspected in its own process): give one")
    if params.get("server") and env_file is None:
        # without it the command ends at every start ("a station server needs an operator
        # key") and systemd starts it again every RESTART_S, for ever
        _fail(f"{verb} --server needs its operator key at boot: put LINEGUARD_API_KEY=... in a file only the "
              "station's account reads (chmod 600) and give it as --env-file")
    if verb == "camera" and "source" not in typed and env_file is None:
        # camera ends at every start without its source ("Missing option '--source'")
        _fail("the camera command line gives no --source: give it, or put LINEGUARD_CAMERA_SOURCE=... in a file "
              "only the station's account reads (chmod 600) and give it as --env-file")
    user = user or getpass.getuser()
    if not _USER.fullmatch(user):
        _fail(f"--user {user!r} is not an account name")
    working_dir = Path(os.path.abspath(working_dir or Path.cwd()))
    if verb == "serve":
        _check_serve_settings(params, typed, env_file, working_dir)
    if user == "root":
        # named by what the unit runs: a watcher sending to --server has no station and no --data
        # folder of its own, and the warning told it to own one
        what = {"serve": "the station", "watch": "the hot folder's watcher", "camera": "the camera's inspection"}
        owns = " that owns its --data folder" if verb == "serve" or params.get("data") else ""
        note("warning", f"{what.get(verb, 'the ' + verb)} would run as root: give --user an account of its own{owns}")
    # serve without --data runs in ./station; watch and camera without it write no folder
    _check_account(user, working_dir, params.get("data") or (Path("station") if verb == "serve" else None))
    if env_file is not None:
        env_file = Path(os.path.abspath(env_file))
        try:
            if env_file.stat().st_mode & 0o004:
                note("warning", f"{env_file} can be read by every account of this PC: chmod 600 it (it holds the "
                                "database password)")
        except OSError:
            pass       # not there yet, or not ours to look at: systemd reads it at start
    # the unit starts from a clean environment: what this shell set is not carried
    carried = sorted(v for v in os.environ if v.startswith("LINEGUARD_") or v == "PYTHONPATH")
    if carried:
        note("warning", f"set in this shell and not in the unit: {', '.join(carried)}; the station started by "
                        "systemd will not have them: put the LINEGUARD_* ones in --env-file"
                        + (" (and PYTHONPATH as Environment=)" if "PYTHONPATH" in carried else ""))
    python = os.path.abspath(sys.executable)       # the virtual environment's own, not resolved past it
    if any(ch in python for ch in _EXEC_REFUSED):
        _fail(f"systemd does not run a program whose path holds a quote or a backslash ({python}): install "
              "lineguard in a folder without them")
    if description is None:
        to = (f"to the station at {params['server']}" if params.get("server") else
              f"inspected here, station {working_dir / params['data']}" if params.get("data") else "inspected here")
        if verb == "serve":
            data = params.get("data") or Path("station")
            description = f"lineguard station {working_dir / data}, port {params.get('port')}"
        elif verb == "watch":
            description = f"lineguard hot folder {working_dir / params['folder']}, line {params['line']}, {to}"
        else:       # the source not named: a camera's URL may hold its password
            description = f"lineguard camera {params['station']}, line {params['line']}, {to}"
    click.echo(unit_text(args, params, user, working_dir, env_file, description, (python, "-m", "lineguard", verb)),
               nl=False)


def register(app: click.Group) -> None:
    app.add_command(service_unit)
