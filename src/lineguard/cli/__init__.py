"""The command line: one thin verb per job. Verbs live in per-area modules."""
from __future__ import annotations

import click

from .. import __version__


class _Commands(click.Group):
    """The top-level group: a verb that reaches for an optional package this install lacks
    (torch, scipy, the [server] stack...) ends with one line naming the package and the pip
    command that brings it, exit code 2, not a traceback; every verb, old or new."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.exceptions.Abort):
            # Ctrl-C: click said "Aborted!" with exit code 1, which the README gives to a run
            # done but needing a look; a script took an interrupted train or eval as finished.
            # 130 is a shell's own code for it (128 + SIGINT), as `rescore` ends
            from ._term import fail
            verb = ctx.invoked_subcommand
            fail(f"interrupted (Ctrl-C): `lineguard {verb or ''}` stopped before it finished; run it again",
                 code=130)
        except ModuleNotFoundError as exc:
            from ._term import fail, missing_optional
            verb = ctx.invoked_subcommand
            line = missing_optional(exc, f"`lineguard {verb}`" if verb else "lineguard")
            if line is None:
                raise
            fail(line)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(version=__version__, message="lineguard %(version)s")
def app() -> None:
    """lineguard: visual quality inspection for production lines."""


from . import core as _core  # noqa: E402
_core.register(app)

try:  # the station verbs need the [server] extra; the edge install has no web stack
    from . import station as _station  # noqa: E402
except ImportError:  # pragma: no cover - depends on the installed extras
    _station = None
if _station is not None:
    _station.register(app)
    from . import demo as _demo  # noqa: E402
    _demo.register(app)
    from . import service as _service  # noqa: E402  (the unit that runs serve at boot)
    _service.register(app)
    from . import reference as _reference  # noqa: E402  (reference photos a retrain learns)
    _reference.register(app)

from . import plc as _plc  # noqa: E402  (its clients are imported when it runs)
_plc.register(app)

from . import edge as _edge  # noqa: E402
_edge.register(app)

from . import stress as _stress  # noqa: E402
_stress.register(app)

from . import scale as _scale  # noqa: E402  (Ray is imported only when a verb runs)
_scale.register(app)


def main() -> None:  # pragma: no cover
    app()
