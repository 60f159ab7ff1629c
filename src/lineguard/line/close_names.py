"""The stored names a typed name is probably meant to be: one helper for every place that
tells "did you mean ...?" (SPC's filters, a part's product, a model upload, a PLC recipe),
so that each says the same names for the same typo."""
from __future__ import annotations

import difflib
import re
from typing import Sequence

_SEPARATORS = re.compile(r"[\s_-]+")


def folded(name: str) -> str:
    """``name`` as a person reads it: no case, no spaces, dashes or underscores, no plural
    "s" ("Tile_S " and "tiles" and "tile" are one name to the eye, three to the station)."""
    f = _SEPARATORS.sub("", name.casefold())
    return f[:-1] if len(f) > 3 and f.endswith("s") else f


def close_names(typed: str, names: Sequence[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The stored names ``typed`` is probably meant to be: those equal to it apart from case
    (several: the caller cannot pick one), else those equal to it once folded (case,
    separators, a plural "s"), else the nearest in spelling ("L1" for "LI", "tile" for
    "tiel"). ``typed`` itself, when stored, is not one of them."""
    names = [nm for nm in names if nm != typed]
    want = typed.strip().casefold()
    same = [nm for nm in names if nm.strip().casefold() == want]
    if same:
        return same
    alike = [nm for nm in names if folded(nm) == folded(typed)]
    if alike:
        return alike
    by_folded: dict[str, list[str]] = {}
    for nm in names:
        by_folded.setdefault(nm.strip().casefold(), []).append(nm)
    close = difflib.get_close_matches(want, list(by_folded), n=n, cutoff=cutoff)
    return [nm for c in close for nm in by_folded[c]]


def typos_of(typed: str, names: Sequence[str]) -> list[str]:
    """Of ``names``, those ``typed`` is a slip of: the same once folded (case, separators,
    a plural "s": "Tile", "tiles" for "tile"), or one keying slip apart once folded
    (:func:`keying_slip`: a letter typed twice, two neighbours swapped: "tilee", "tiel").
    Siblings' names are not (cell-a, cell-b; tile2; bcell). Narrower than
    :func:`close_names` (which only suggests): what it finds is refused until said new."""
    want = folded(typed)
    return [nm for nm in names if nm != typed and (want == folded(nm) or keying_slip(want, folded(nm)))]


def keying_slip(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are one keying slip apart: a letter typed twice ("tilee",
    "hd_aa"; or once where it is twice: "cel" for "cell") or two neighbours swapped ("tiel").
    Not a letter put in another's place, nor a character added or dropped beside others,
    nor any slip of a digit: that is how siblings are named (cell-a, cell-b; tile, tile2;
    cell, bcell; line12, line21), and each new one would be refused as the last one's typo
    (the suite's own "tile2" and "bcell" beside "tile" and "cell" were). The one rule for
    product names (:func:`typos_of`) and schema names (line.db.typo_of)."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                and a[diff[1]] == b[diff[0]] and not (a[diff[0]].isdigit() or a[diff[1]].isdigit()))
    short, long_ = sorted((a, b), key=len)
    if len(long_) - len(short) != 1:
        return False
    for i, c in enumerate(long_):
        if long_[:i] + long_[i + 1:] == short and not c.isdigit():
            # the extra letter sits beside its twin: a key held or pressed twice
            return (i > 0 and long_[i - 1] == c) or (i + 1 < len(long_) and long_[i + 1] == c)
    return False


def listed(names: Sequence[str], most: int = 20) -> str:
    """``names`` for a message: "coat, tile", the first ``most`` and how many more."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def did_you_mean(close: Sequence[str]) -> str:
    """"did you mean 'tile'?" or "did you mean 'cell' or 'newcell'?"."""
    return "did you mean " + " or ".join(repr(nm) for nm in close) + "?"
