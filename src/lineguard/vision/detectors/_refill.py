"""The bank a training part would have met had it not been in the training set.

PatchCore sets its threshold from the training parts themselves, each scored against the
bank without its own group's rows (leave-one-group-out). Removing those rows is not what
a refit without the part would give: the greedy k-center selection picked the part's
rows *because* they covered its corner of feature space, and then skipped the other
parts' patches there, which those rows already covered. Take the rows out and the corner
is bare, so the part scores higher than a new part like it would against the real bank.
On small banks this made the threshold absurdly safe: on 19 synthetic parts at 64 px,
0-0.2% false rejects for a 10% target where the conformal quantile promises 5-10%.

A refit per part costs a coreset per part. This does what the refit would do near the
part, cheaply: the bank's other rows stay, and as many rows as the part took out are
picked again by the same greedy rule among the other parts' patches, starting from the
patches whose nearest bank row was one of the part's (the bare corner) and the patches
the full selection left farthest from the bank (where a refit could spend them
instead). Measured on the same synthetic sets: 7.1-7.5% false rejects for the 10% target
(64 px; 5.2-5.3% over 30 sets) and 10.2% (128 px); in float32, 6.9% / 10.6% against 6.7% /
11.5% for an exact refit of the coreset per part (``benchmarks/cross_fit_bench.py``;
``tests/test_cross_fit_calibration.py`` checks the average).
"""
from __future__ import annotations

import torch

_BLOCK = 2048                        # query rows per matmul block (bounded memory)
_NEAREST = 4                         # bank rows remembered per patch, nearest first


def _sq_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.addmm((b * b).sum(1)[None, :], a, b.T, alpha=-2.0).add_((a * a).sum(1)[:, None]).clamp_min_(0)


class GreedyRefill:
    """For each group (part, lot): the feature rows to add to the bank once the group's
    own rows are left out.

    ``projected``: every training patch in the coreset's random projection (the space
    the greedy selection ran in); ``selected``: the bank's rows as indices into it;
    ``row_group``: each patch's group. ``spare``: how many of the patches left farthest
    from the bank compete per row to refill (where the refit could spend a row instead).
    """

    def __init__(self, projected: torch.Tensor, selected: torch.Tensor, row_group: torch.Tensor, spare: int = 4):
        self.x = projected
        self.selected = selected
        self.row_group = row_group
        self.sel_group = row_group[selected]
        n = len(projected)
        k = min(_NEAREST, len(selected))
        # each patch's nearest few bank rows: once a group's rows are gone, a patch's new
        # nearest is usually among them (else it is searched again, see rows_for)
        self.near_d = torch.empty(n, k, dtype=projected.dtype)
        self.near_i = torch.empty(n, k, dtype=torch.long)
        xs = projected[selected]
        xs_sq = (xs * xs).sum(1)
        for i in range(0, n, _BLOCK):
            a = projected[i:i + _BLOCK]
            # ||b||^2 - 2 a.b ranks the bank rows for a; ||a||^2 is added to the few kept
            v, j = torch.addmm(xs_sq[None, :], a, xs.T, alpha=-2.0).topk(k, dim=1, largest=False)
            self.near_d[i:i + _BLOCK] = (v + (a * a).sum(1)[:, None]).clamp_min_(0)
            self.near_i[i:i + _BLOCK] = j
        min_d, nearest = self.near_d[:, 0], self.near_i[:, 0]
        self.min_d = min_d
        # patches by the group that owns their nearest bank row: a group's bare corner
        owner_of_nearest = self.sel_group[nearest]
        self._by_owner = torch.argsort(owner_of_nearest, stable=True)
        n_groups = int(row_group.max()) + 1
        counts = torch.bincount(owner_of_nearest, minlength=n_groups)
        self._start = torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)])
        own = torch.bincount(self.sel_group, minlength=n_groups)
        biggest_group = int(torch.bincount(row_group).max())
        # the patches farthest from the bank, enough for any group after its own are dropped
        k = min(n, spare * int(own.max()) + biggest_group)
        self._far = torch.topk(min_d, k).indices
        self.spare = spare

    def rows_for(self, group: int) -> torch.Tensor:
        """Indices (into the training patches) of the rows that replace ``group``'s own."""
        own = self.sel_group == group
        m = int(own.sum())
        if m == 0:
            return torch.empty(0, dtype=torch.long)
        bare = self._by_owner[self._start[group]:self._start[group + 1]]
        bare = bare[self.row_group[bare] != group]
        far = self._far[(self.row_group[self._far] != group)]
        far = far[~torch.isin(far, bare)][:self.spare * m]
        cand = torch.cat([bare, far])
        if len(cand) == 0:
            return torch.empty(0, dtype=torch.long)
        d = self.min_d[cand].clone()
        if len(bare):   # the bare corner's distances to the bank without the group's rows
            others = self.sel_group[self.near_i[bare]] != group          # (B, k), nearest first
            first = others.to(torch.uint8).argmax(1)
            d[:len(bare)] = self.near_d[bare].gather(1, first[:, None])[:, 0]
            lost = ~others.any(1)    # all its nearest rows were the group's: search the rest
            if bool(lost.any()):
                kept = self.x[self.selected[~own]]
                d[torch.nonzero(lost).flatten()] = (
                    _sq_distances(self.x[bare[lost]], kept).min(1).values if len(kept) else float("inf"))
        picks = []
        xc = self.x[cand]
        for _ in range(min(m, len(cand))):
            j = int(torch.argmax(d))
            picks.append(j)
            d = torch.minimum(d, _sq_distances(xc, xc[j:j + 1])[:, 0])
        return cand[torch.tensor(picks, dtype=torch.long)]
