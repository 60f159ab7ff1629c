"""PLC verbs: line-sim, a simulated PLC for demos, tests and latency measurements."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import click

from .core import PathArg


@click.command("line-sim")
@click.option("--protocol", type=click.Choice(["modbus", "opcua"]), required=True,
              help="How the station's PLC handshake is served (serve --modbus-port / --opcua-port).")
@click.option("--host", default="127.0.0.1", show_default=True, help="The station's address.")
@click.option("--port", type=int, required=True, help="The station's --modbus-port or --opcua-port.")
@click.option("--parts", type=int, default=100, show_default=True, help="Parts to trigger.")
@click.option("--rate", type=float, default=5.0, show_default=True, help="Parts per second.")
@click.option("--plc-images", type=PathArg, default=None,
              help="The station's --plc-images folder: each part's image is put there before its trigger.")
@click.option("--images", type=PathArg, default=None,
              help="Part images to feed, in name order, repeated as needed (default: those in --plc-images).")
@click.option("--window-ms", type=float, default=1000.0, show_default=True,
              help="The station's --inspection-window-ms: an answer seen later counts as a missed window.")
@click.option("--recipe", type=int, default=None, help="Select this RecipeId before the first part.")
@click.option("--first-part-id", type=int, default=1, show_default=True, help="PartId of the first part.")
@click.option("--json", "json_out", type=PathArg, default=None, help="Also write the report here (JSON).")
@click.option("--verbose", is_flag=True, help="One line per part.")
@click.option("--no-feed", is_flag=True, help="Feed no images: the station takes its own photos at each trigger "
              "(serve --plc-camera).")
@click.option("--clear-error", is_flag=True, help="Clear the station's latched Error first, as the PLC's reset does "
              "(Modbus ClearError, OPC UA Reset and Start).")
def line_sim(protocol: str, host: str, port: int, parts: int, rate: float, plc_images: Optional[Path],
             images: Optional[Path], window_ms: float, recipe: Optional[int], first_part_id: int,
             json_out: Optional[Path], verbose: bool, clear_error: bool, no_feed: bool) -> None:
    """Act as the line's PLC: trigger parts at a set rate, acknowledge the answers, and report the
    trigger-to-ResultsValid latency (p50/p95/p99/max) and the missed inspection windows."""
    from ..line import plc_sim
    from ._term import fail
    if parts < 1:
        raise click.BadParameter("give at least 1 part", param_hint="--parts")
    if rate <= 0:
        raise click.BadParameter("give a positive rate, parts per second", param_hint="--rate")
    if not window_ms > 0:
        # 0 counted every answer a missed window: a report of a line failing that was not
        raise click.BadParameter(f"{window_ms:g} ms: give the station's --inspection-window-ms, above 0 "
                                 "(its default is 1000)", param_hint="--window-ms")
    if not 0 < port < 65536:
        raise click.BadParameter(f"{port} is not a TCP port (1..65535)", param_hint="--port")
    if plc_images is not None and not plc_images.is_dir():
        raise click.BadParameter(f"{plc_images} is not a folder", param_hint="--plc-images")
    source = images or plc_images
    feeder = None
    if no_feed:
        if source is not None:
            raise click.BadParameter("--no-feed feeds no images: leave out --images and --plc-images",
                                     param_hint="--no-feed")
    else:
        if plc_images is None:
            # the images go to the station through its --plc-images folder: without it none
            # arrives, and the station's first trigger latches NO_IMAGE
            raise click.BadParameter("give --plc-images (the station's camera folder the part images are put in)"
                                     + (", beside --images" if images is not None else "")
                                     + "; for a station that takes its own photos (serve --plc-camera), --no-feed",
                                     param_hint="--plc-images")
        if not source.is_dir():
            raise click.BadParameter(f"{source} is not a folder", param_hint="--images")
        try:
            feeder = plc_sim.ImageFeeder(source, plc_images, protocol=protocol)
        except ValueError as exc:
            fail(str(exc))
    try:
        link = plc_sim.connect(protocol, host, port)
    except ConnectionError as exc:
        fail(str(exc))

    def show(part_id: int, res: dict, latency_ms: float) -> None:
        click.echo(f"part {part_id}: code {res['code']} inspection {res['inspection_id']} "
                   f"score {res['score']:.3f} {latency_ms:.1f} ms")

    try:
        if clear_error:
            if recipe is not None:
                # the recipe first: the station refuses ClearError while RecipeId names no recipe
                # of its table (ErrorCode 14), so after a wrong --recipe, cleared first, it stayed
                link.put_recipe(recipe)
            link.clear_error()
        if recipe is not None:
            try:
                link.select_recipe(recipe)
            except Exception as exc:  # noqa: BLE001 - the station refused it
                fail(f"recipe {recipe} was not taken: {exc}")
        click.echo(f"line-sim: {parts} parts at {rate:g}/s over {protocol} to {host}:{port}")
        rep = plc_sim.run(link, parts, rate, feeder, window_ms, first_part_id=first_part_id,
                          on_part=show if verbose else None, protocol=protocol)
        # what the PLC's Alarm bit says after the run: a run of NG parts raised one, and the
        # summary said results {'NG': 8} only (its registers were read by hand). Read after a
        # run that stopped too: a station in Error, or not ready, may hold the line alarm that
        # stopped it; only a link that is gone cannot say
        alarm_unread = ""
        try:
            alarm = link.alarm_code()
        except Exception as exc:  # noqa: BLE001 - the run's report stands without it
            alarm, alarm_unread = None, str(exc) or type(exc).__name__
    finally:
        if feeder is not None:
            feeder.cleanup()
        link.close()
    summary = rep.summary()
    summary["alarm_code"] = alarm      # None: not read (the link gone)
    lat = summary["latency_ms"]
    if rep.stopped:
        click.echo(f"line-sim: stopped after {rep.triggered} of {parts} parts: {rep.stopped}", err=True)
    click.echo(f"answered {summary['answered']}/{parts} in {rep.wall_s:.1f} s "
               f"({summary['rate']}); results {summary['result_codes']}")
    if lat["p50"] is not None:
        click.echo(f"trigger to ResultsValid: p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms, "
                   f"max {lat['max']} ms")
    click.echo(f"missed windows ({window_ms:g} ms): {summary['missed_windows']} (timeouts {rep.timeouts}, "
               f"late {rep.late}, no answer {rep.no_answer}); overruns {rep.overruns} (parts that came while the "
               "station was not ready for them (the part before not yet answered and acknowledged), sent more than "
               "a period late); "
               f"answers for another part {rep.mismatched}")
    if alarm:
        from ..line.alarms import kinds_of_code
        click.echo(f"line alarm at the station: AlarmCode {alarm} ({', '.join(kinds_of_code(alarm)) or 'unknown'}): "
                   "acknowledge it on the line view, or with the PLC's AlarmAck")
    elif alarm == 0:
        click.echo("line alarm at the station: none (AlarmCode 0)")
    else:
        click.echo(f"line alarm at the station: not read ({alarm_unread[:200]}): see the line view or /health")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=json_out.parent, prefix=".line-sim-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(summary, fh, indent=2)
        os.replace(tmp, json_out)
    if rep.stopped:
        raise SystemExit(1)


def register(app: click.Group) -> None:
    app.add_command(line_sim)
