"""A text cell as a spreadsheet must be given it: no dependencies, so every export shares it
(the station's part records and SPC sheets, ``rescore --csv`` and ``rescore-compare --csv``
on a ``lineguard[edge,scale]`` install, which has no SQLAlchemy for part_records to import).

Part ids, lots, notes, file names and model versions come from outside; a cell that a
spreadsheet would run as a formula (``=HYPERLINK(...)``, ``+``, ``-``, ``@``) is written with
a leading apostrophe so it is shown as text, never run (CSV injection).
"""
from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A cell as written: text a spreadsheet would run as a formula gets a leading
    apostrophe; numbers stay numbers, None an empty cell."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
