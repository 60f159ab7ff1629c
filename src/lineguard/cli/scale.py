"""Scale-out verbs (the ``lineguard[scale]`` extra: Ray, pyarrow).

    lineguard rescore --model cell.onnx --images archive/2026/ --out results.parquet [--ray local|ADDRESS]
                      [--station-db URL | --data DIR] [--csv results.csv]
    lineguard rescore-compare rescore-v1.parquet rescore-v2.parquet [--list N] [--csv changed.csv] [--fail-if-changed]

Ray is imported only when a verb runs, so the CLI works on an install without it.
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Optional

import click

from ..line.schema_names import SCHEMA_NAME_RULE
from ._term import fail, given, note, say, sigterm_raises
from .station import _schema_given, _station_location, station_place_checked


def _progress_line(out: Path, ray_address: Optional[str] = None):
    """Progress on stderr: redrawn on a terminal, a plain line every ~5 s in a log; a resume
    says what it skips when it starts (a night's resume said nothing until its end)."""
    tty = sys.stderr.isatty()
    t0 = [time.monotonic()]
    last = [0.0]
    first: list[tuple[float, int]] = []      # (when, done) at the first results: the ETA's start

    def cb(stage: str, done: int, total: int) -> None:
        if stage == "start":
            # the rate's clock starts where the summary's does: when the first image is sent
            t0[0] = time.monotonic()
            return
        if stage in ("ray-small", "ray-actors"):
            from ..line.scale.rescore import ray_actors, ray_small_archive
            said = ray_small_archive(done) if stage == "ray-small" else \
                ray_actors(total, done, ray_address == "local")[1]
            if said:
                note("ray", said, colour="yellow")
            return
        if stage == "ray-lost":
            # Ray ends the process itself soon after, from native code: said here first
            from ..line.scale.rescore import ray_lost_message
            sys.stderr.write("\n" if tty else "")
            note("error", ray_lost_message(str(ray_address), out, done), colour="red")
            return
        if stage == "resume":
            note("resume", f"{done} of {total} images already in {out}, skipped", colour="green")
            return
        now = time.monotonic()
        if done < total and now - last[0] < (0.2 if tty else 5.0):
            return
        last[0] = now
        rate = done / (now - t0[0]) if now > t0[0] else 0.0
        if not first:
            first.append((now, done))
        line = f"rescored {done}/{total}  {rate:6.1f} images/s"
        if done < total:
            # from the rate since the first results: start-up (Ray's actors, the model) is behind
            t1, d1 = first[0]
            steady = (done - d1) / (now - t1) if done > d1 and now > t1 else rate
            line += f"  {_eta(total - done, steady)}"
        if tty:
            sys.stderr.write("\r" + line + ("\n" if done >= total else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
    return cb


def _eta(left: int, rate: float) -> str:
    if rate <= 0:
        return "time left: not known yet"
    s = left / rate
    if s < 60:
        return f"about {max(1, round(s))} s left"
    if s < 3600:
        return f"about {round(s / 60)} min left"
    return f"about {int(s // 3600)} h {round(s % 3600 / 60):02d} min left"


def _check_csv(csv_out: Optional[Path], *folders: Path) -> None:
    """--csv refused (exit 2) before any work: a name that is not .csv, or a file inside a
    results folder (each holds its Parquet parts only, so that it reads as one table)."""
    if csv_out is None:
        return
    if csv_out.suffix.lower() != ".csv":
        fail(f"--csv {csv_out}: it writes CSV: name it .csv (a spreadsheet opens it)")
    if csv_out.resolve().parent in {f.resolve() for f in folders}:
        fail(f"--csv {csv_out}: put it beside {folders[0]}, not in it (the results folder holds its Parquet parts "
             "only)" if len(folders) == 1 else
             f"--csv {csv_out}: put it beside the results folders, not in one (they hold their Parquet parts only)")


@click.command()
@click.option("--model", "model", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model file: a trained .lgm (needs torch on the workers) or an exported .onnx.")
@click.option("--images", required=True,
              help="A folder (searched recursively), a glob ('archive/**/*.png') or an fsspec URL (s3://bucket/prefix/).")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Results folder of Parquet parts (e.g. results.parquet), not a file; an existing one is "
                   "resumed. For a spreadsheet, add --csv.")
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write all the results folder's rows (earlier runs' too) to this CSV file at the end.")
@click.option("--ray", "ray_address", default=None,
              help="Run on Ray: 'local' (a private cluster on this machine, even beside a `ray start` head), "
                   "'auto' (RAY_ADDRESS, else this machine's `ray start` head), or an address (HOST:6379, "
                   "ray://head:10001). Omitted: one process, no Ray.")
@click.option("--concurrency", type=int, default=2, show_default=True,
              help="Ray actors (one model each, 1 CPU each); with --ray only.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Images per model call.")
@click.option("--chunk-rows", type=int, default=1000, show_default=True,
              help="Rows per Parquet part, in whole batches (20 with --batch-size 32 writes 32): about the "
                   "most a killed run loses and redoes.")
@click.option("--num-cpus", type=int, default=None, help="CPUs for --ray local (default: all).")
@click.option("--threads", type=int, default=None, help="Runtime threads in the single-process path.")
@click.option("--station-db", default=None, metavar="URL",
              help="Also write the results into this station database (postgresql://user@host/db, "
                   "sqlite:////path/lineguard.db), in tables of their own: never counted as inspections. "
                   "A run is the --out folder and the model; running again resumes it.")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Like --station-db, with the SQLite database of this station folder.")
# the station verbs' option and check (cli.station): the variable alone was read, unchecked
@click.option("--db-schema", default=None, callback=_schema_given,
              help="With a PostgreSQL --station-db: the station's own schema, as its `lineguard serve --db-schema` "
                   f"has it; {SCHEMA_NAME_RULE}. [env: LINEGUARD_DB_SCHEMA]")
def rescore(model: Path, images: str, out: Path, ray_address: Optional[str], concurrency: int, batch_size: int,
            chunk_rows: int, num_cpus: Optional[int], threads: Optional[int], station_db: Optional[str],
            data: Optional[Path], db_schema: Optional[str] = None, csv_out: Optional[Path] = None) -> None:
    """Re-score an archive of part images with a model; resumable, results as Parquet
    (and, with --station-db or --data, in the station's database)."""
    from ..line.scale import INSTALL_HINT, RayMissing, RayUnreachable, require_pyarrow, require_ray
    from ..vision.errors import LineguardError
    try:
        require_pyarrow()
        if ray_address is not None:
            require_ray()
    except RayMissing as exc:
        fail(f"{exc}. Without --ray it runs in one process but still writes Parquet (pyarrow, in the same extra).")
    if not model.is_file():
        fail(f"{model}: model file not found")
    if min(concurrency, batch_size, chunk_rows) < 1:
        fail("--concurrency, --batch-size and --chunk-rows must each be at least 1")
    if ray_address is None and given("concurrency"):
        # one process scores with one model: --concurrency 8 ran one at a time, said nothing,
        # and the summary's rate read as eight actors' (--threads is that path's knob)
        fail(f"--concurrency {concurrency} sets the Ray actors: add --ray local (or a cluster's address), or drop "
             "--concurrency to score in one process (--threads sets its runtime threads)")
    if station_db is not None and data is not None:
        fail("give --station-db URL or --data DIR (a station folder's SQLite database), not both")
    _check_csv(csv_out, out)
    if data is not None and not (data / "lineguard.db").is_file():
        fail(f"--data {data}: no station database there (lineguard.db); give the folder `lineguard serve --data` "
             "uses, or --station-db URL")
    if db_schema is not None and station_db is None and data is None:
        fail("--db-schema is the schema of the station database: give --station-db postgresql://... with it")
    recorder = None
    db_failed: tuple[type[BaseException], ...] = ()   # nothing to catch without a database
    if station_db is not None or data is not None:
        try:
            from ..line.scale.rescore_db import StationDbError, StationRecorder, station_db_url
        except ImportError as exc:
            fail(f"--station-db/--data need the station's database libraries ({exc}): pip install 'lineguard[server]'")
        db_failed = (StationDbError,)
        # as every station verb finds it: the option, else LINEGUARD_DB_SCHEMA (checked, and said)
        schema = _station_location({"db_schema": db_schema}, None)["db_schema"]
        # as every station verb: a schema with a SQLite station (--data, sqlite:///...) is refused, not
        # ignored (`rescore --data ./station --db-schema x` wrote into the SQLite one, exit 0)
        station_place_checked(data, station_db, schema, schema_var=db_schema is None and schema is not None,
                              db_given=station_db is not None)
        try:
            # before any image is scored: a wrong URL costs a second, not a night of scoring;
            # a database or schema with no station in it is refused, never made one
            recorder = StationRecorder.open(station_db_url(data, station_db), schema=schema, existing=True)
        except StationDbError as exc:
            fail(str(exc))
    from ..line.scale.rescore import rescore as run
    try:
        # SIGTERM (systemd, a scheduler, `kill`) stops it as Ctrl-C does: the run's record then
        # says it was interrupted (it read "running" for ever) and the results folder's lock
        # goes. Only while it runs: a SIGTERM after (while Ray shuts down at exit) is no
        # interruption of it; the handler left in place raised in Ray's exit handler, a traceback
        with sigterm_raises(lambda signum: KeyboardInterrupt()):
            summary = run(model, images, out, ray_address=ray_address, concurrency=concurrency,
                          batch_size=batch_size, chunk_rows=chunk_rows, threads=threads, num_cpus=num_cpus,
                          progress=_progress_line(out, ray_address), recorder=recorder)
    except KeyboardInterrupt:
        fail("interrupted: the results written before stand; run the same command again to resume", code=130)
    except RayMissing as exc:
        fail(str(exc))
    except db_failed as exc:
        fail(str(exc), code=1)
    except (LineguardError, ValueError) as exc:
        fail(str(exc))
    except RayUnreachable as exc:
        fail(str(exc))
    except ConnectionError as exc:
        fail(f"could not reach the Ray cluster at {ray_address}: {exc} (start it with `ray start --head`, "
             f"or use --ray local; {INSTALL_HINT} on every node)")
    except OSError as exc:
        # a folder that cannot be written, a full disk: one line, not a traceback
        where = exc.filename or out
        fail(f"{where}: {exc.strerror or exc}. Check that --out is on a disk with room this user may write; "
             "the parts already written are complete, and running the same command again resumes")
    finally:
        if recorder is not None:
            recorder.close()
    d = summary.to_dict()
    if summary.replaced:
        note("changed", f"{summary.replaced} rows of images rewritten since they were scored taken out of {out}; "
                        "those images scored again")
    if summary.left_out:
        note("left out", f"{len(summary.left_out)} files not scored: " + "; ".join(summary.left_out[:3])
             + (" ..." if len(summary.left_out) > 3 else ""))
    if summary.hidden:
        from ..line.scale.rescore import hidden_said
        note("hidden", hidden_said(summary.hidden, images))
    if summary.not_read:
        from ..line.scale.rescore import not_read_said
        n = len(summary.not_read)
        note("not read", f"{n} file{'' if n == 1 else 's'} in {images} not scored "
                         f"(not {'an image' if n == 1 else 'images'} rescore reads):")
        for line in not_read_said(summary.not_read, images):
            note("not read", f"  {line}")
    if summary.errors:
        note("unreadable", f"{summary.errors} images could not be read; their rows in {out} say why (column error)")
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(d["verdicts"].items())) or "none"
    archive = ", ".join(f"{'unreadable' if k == 'error' else k} {v}"
                        for k, v in sorted(summary.archive_counts().items())) or "none"
    if summary.scored == 0 and summary.skipped == summary.listed:
        # a done archive said "scored 0 images ... none": its totals are what was asked
        say(f"scored 0 images: all {summary.listed} listed were scored before, in {out}: {archive}")
    else:
        # two clocks, each named: the rate is from the first image sent, as the progress line's
        startup = f" after {summary.startup_s:.0f}s of start-up," if summary.startup_s >= 1 else ""
        say(f"scored {summary.scored} images in {summary.seconds:.1f}s,{startup} {summary.images_per_s:.1f} images/s "
            f"from the first image sent ({summary.mode}): {verdicts}; results in {out}")
        if summary.skipped:
            say(f"the archive: {summary.listed} images, {summary.skipped} scored before and {summary.scored} now: "
                f"{archive}")
    if csv_out is not None:
        from ..line.scale.rescore import write_csv
        try:
            rows = write_csv(out, csv_out)
        except OSError as exc:
            fail(f"{csv_out}: cannot write the CSV ({exc.strerror or exc}); the results in {out} are complete: run "
                 "the same command again with another --csv", code=1)
        say(f"wrote all {rows} rows of {out} to {csv_out}")
    if recorder is not None:
        say(f"station database: rescore run {recorder.run_id} (GET /api/v1/rescores/{recorder.run_id})")


@click.command("rescore-compare")
@click.argument("old_out", type=click.Path(path_type=Path))
@click.argument("new_out", type=click.Path(path_type=Path))
@click.option("--list", "list_n", type=click.IntRange(min=0), default=20, show_default=True,
              help="Show up to N changed parts, most changed first (0: none).")
@click.option("--csv", "csv_out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Also write every changed part (both verdicts, scores, thresholds, errors) to this CSV file.")
@click.option("--fail-if-changed", is_flag=True,
              help="Exit 1 when any part's verdict changed (or it became readable or unreadable), after the "
                   "report and the --csv: a script or CI job gating a model version. Exit 0: none changed; "
                   "2: the folders could not be compared.")
def rescore_compare(old_out: Path, new_out: Path, list_n: int, csv_out: Optional[Path],
                    fail_if_changed: bool = False) -> None:
    """Compare two rescore --out folders of one archive (two model versions): images in both,
    how verdicts move (OK->NG ...), the parts that changed, unreadable images.

    Rows are joined by image path, then by SHA-256 where paths differ (an archive moved).
    With --fail-if-changed it exits 1 when any part's verdict changed (0 when none did)."""
    from ..line.scale import RayMissing, require_pyarrow
    from ..line.scale.compare_runs import compare_runs, write_changed_csv
    from ..vision.errors import LineguardError
    try:
        require_pyarrow()
    except RayMissing as exc:
        fail(str(exc))
    _check_csv(csv_out, old_out, new_out)
    try:
        cmp = compare_runs(old_out, new_out)
    except LineguardError as exc:
        fail(str(exc))
    say(f"old  {cmp.old.said()}")
    say(f"new  {cmp.new.said()}")
    say(f"in both: {cmp.both} images, joined by {cmp.joined_by}; only in old: {len(cmp.only_old)}, "
        f"only in new: {len(cmp.only_new)}")
    for label, only in (("only in old", cmp.only_old), ("only in new", cmp.only_new)):
        if only:
            note(label, ", ".join(only[:3]) + (f" and {len(only) - 3} more" if len(only) > 3 else ""))
    states = cmp.states()
    width = max(8, *(len(s) + 2 for s in states))
    say("verdicts, old (rows) -> new (columns):")
    say("  " + " " * width + "".join(f"{s:>{width}}" for s in states))
    for s in states:
        say(f"  {s:<{width}}" + "".join(f"{cmp.transitions.get((s, t), 0):>{width}}" for t in states))
    n = len(cmp.changed)
    moves = ", ".join(f"{a}->{b} {v}" for (a, b), v in cmp.moves())
    say(f"changed: {n} of {cmp.both} ({100.0 * n / cmp.both:.1f}%)" + (f": {moves}" if moves else ""))
    if n and list_n:
        shown = cmp.changed[:list_n]
        say(f"most changed{f' ({len(shown)} of {n}; --list N for more)' if len(shown) < n else ''}:")
        for c in shown:
            scores = " -> ".join("error" if v is None else f"{v:.4f}" for v in (c.old_score, c.new_score))
            # each model's NG threshold beside: two models' scores are on their own scales
            limits = " -> ".join("?" if v is None else f"{v:.4f}" for v in (c.old_threshold, c.new_threshold))
            was = f"  (was {c.old_path})" if c.old_path != c.new_path else ""
            say(f"  {c.old}->{c.new}  score {scores} (NG above {limits})  {c.new_path}{was}")
    if cmp.errors:
        old_n = sum(1 for _, e, _ in cmp.errors if e is not None)
        new_n = sum(1 for _, _, e in cmp.errors if e is not None)
        note("unreadable", f"{len(cmp.errors)} of the images in both unreadable in either run ({old_n} in old, "
                           f"{new_n} in new; column error in their rows):")
        for path, e_old, e_new in cmp.errors[:max(list_n, 3)]:
            why = f"both: {e_old}" if e_old == e_new else \
                "; ".join(f"{w}: {e}" for w, e in (("old", e_old), ("new", e_new)) if e)
            note("unreadable", f"  {path}: {why}")
    if csv_out is not None:
        try:
            rows = write_changed_csv(cmp, csv_out)
        except OSError as exc:
            fail(f"{csv_out}: cannot write the CSV ({exc.strerror or exc})", code=1)
        say(f"wrote the {rows} changed parts to {csv_out}")
    if fail_if_changed and n:
        # a finding, not an error: exit 1 as diff(1) does, 2 stays "could not compare"
        note("changed", f"{n} of {cmp.both} parts' verdicts differ between {old_out} and {new_out}: "
                        "exit 1 (--fail-if-changed)")
        raise SystemExit(1)


@click.command("serve-ray")
@click.option("--ray", "ray_address", default="local", show_default=True,
              help="local (a private Ray on this machine), auto, HOST:6379 or ray://HOST:10001.")
@click.option("--num-cpus", type=int, default=None, help="CPUs for --ray local (default: all).")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="Copies of the station app, one CPU each; with several, give a PostgreSQL --db.")
@click.option("--models-per-replica", type=click.IntRange(min=1), default=4, show_default=True,
              help="Products a replica is the scoring route's target for (the serve_multiplexed_model_id "
                   "header routes a product's parts to a replica that has its model).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address Serve's HTTP proxy listens on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Station folder (model files, images): on a cluster, at the same path on every node. "
                   "[env: LINEGUARD_DATA; default ./station]")
@click.option("--db", default=None, help="The station's database URL (default: the SQLite database in --data). "
                                         "[env: LINEGUARD_DB]")
@click.option("--db-schema", default=None, callback=_schema_given,
              help=f"The station's PostgreSQL schema; {SCHEMA_NAME_RULE}. [env: LINEGUARD_DB_SCHEMA]")
def serve_ray(ray_address: str, num_cpus: Optional[int], replicas: int, models_per_replica: int, host: str,
              port: int, data: Optional[Path], db: Optional[str], db_schema: Optional[str]) -> None:
    """Run the station app on Ray Serve (docs/scale.md, Serving many lines) until Ctrl-C or
    SIGTERM, which stop every replica cleanly."""
    import threading
    from dataclasses import replace

    from ..line.scale import RayMissing, RayUnreachable, require_ray
    try:
        require_ray()
        from ray import serve  # noqa: F401  (the [serve] part of the extra)
    except (RayMissing, ImportError) as exc:
        fail(f"{exc}" if isinstance(exc, RayMissing) else f"Ray Serve is not installed ({exc}): pip install "
             "'lineguard[scale]'")
    where = _station_location({"data": data, "db": db, "db_schema": db_schema}, Path("./station"))
    from ..line.config import StationConfig
    from ..server.app import StartupError
    from .station import _check_disk_floor, _new_station_in_schema, _not_a_backup, _schema_without_station
    try:
        config = replace(StationConfig.from_env(warn=lambda line: note("warning", line)),
                         data_dir=Path(where["data"]).resolve(), db_url=where["db"], db_schema=where["db_schema"])
    except ValueError as exc:       # a LINEGUARD_* variable it cannot take: named in one line, as serve does
        fail(str(exc))
    # serve's checks before its station opens, as `python -m lineguard.server` makes them: a
    # backup folder opened by the replicas had its database changed (the next backup into it
    # refused); a floor above the disk deleted every image; a mistyped --db-schema (hd_aa
    # for hd_a) became a new, empty station with the line's parts in it
    _not_a_backup(config)
    _check_disk_floor(config, False)
    try:
        # None: a station is there (or SQLite); a schema with none is made by the replicas as they
        # open, and said in serve's words (it was made without a word): serve-ray has no --new, so
        # a typo of a station's schema is refused first, naming the one meant
        new_schema = None if _schema_without_station(config, False, None) is None \
            else _new_station_in_schema(config, False)
    except StartupError as exc:
        fail(str(exc))
    if replicas > 1 and not (config.db_url or "").startswith("postgresql"):
        # one machine's SQLite holds several writers; replicas on other nodes would each make their own
        note("warning", f"--replicas {replicas} with the SQLite database in {config.data_dir}: replicas on other "
                        "nodes of a cluster would each write a database of their own; give a PostgreSQL --db there")
    from ..server.ray_serve import port_problem, run_station
    why = port_problem(host, port)
    if why:      # before the new station is said: nothing is made on a port another program has
        fail(why)
    if new_schema:
        say(new_schema)
    stop = threading.Event()
    # Ctrl-C and SIGTERM (systemd, `kill`) end the wait; the replicas then close their stations.
    # The handlers before are put back once it returns: a caller in the same process (a test,
    # a script running the command) had its Ctrl-C only set an Event no one waited on any more.
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in before:
        signal.signal(sig, lambda *_: stop.set())
    try:
        run_station(config, ray_address=ray_address, num_cpus=num_cpus, host=host, port=port,
                    num_replicas=replicas, max_models_per_replica=models_per_replica, stop=stop, say=say)
    except (ValueError, RayUnreachable) as exc:
        fail(str(exc))
    except RuntimeError as exc:
        # a replica that cannot open its station (database down, folder not writable): Serve's
        # deploy failure, traceback and all; the first lines name the cause
        fail(f"the station did not start on Ray Serve: {str(exc).strip().splitlines()[-1][:500]}", code=1)
    finally:
        for sig, handler in before.items():
            if handler is not None:     # None: one set outside Python, which cannot be put back from here
                signal.signal(sig, handler)
    say("stopped")


def register(app: click.Group) -> None:
    app.add_command(rescore)
    app.add_command(rescore_compare)
    app.add_command(serve_ray)
