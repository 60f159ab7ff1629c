"""Layer 3: the production side (storage, sources, sinks, SPC, registry).

:class:`Station` is the one inspection path every source (HTTP, hot folder, camera)
feeds. Names are imported lazily: the station needs the [server] extra (SQLAlchemy),
other modules of this package may not.
"""
from __future__ import annotations

__all__ = ["Station", "StationConfig", "RetentionPolicy", "Part", "Outcome", "inspection_to_dict"]


def __getattr__(name: str):
    if name in ("StationConfig", "RetentionPolicy"):
        from . import config
        return getattr(config, name)
    if name in ("Station", "Part", "Outcome", "inspection_to_dict"):
        from . import station
        return getattr(station, name)
    raise AttributeError(name)
