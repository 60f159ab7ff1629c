"""fit_sharded's checks on what it is given, before any shard is sent anywhere (no Ray)."""
from __future__ import annotations

import numpy as np
import pytest

from lineguard.line.scale.sharded_bank import fit_sharded


@pytest.mark.parametrize("empty", [np.zeros((0, 64, 64, 3), np.uint8), []])
def test_an_empty_shard_is_refused_by_its_number(empty):
    """A shard with no parts (a day's folder with no photos) failed in numpy's stack on a worker."""
    full = np.zeros((2, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"shard\(s\) 1 hold no parts: leave them out"):
        fit_sharded([full, empty], position_norm=False)
