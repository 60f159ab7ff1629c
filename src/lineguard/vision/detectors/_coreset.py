"""Streaming coreset for PatchCore: a bounded-memory memory bank for large training sets.

The plain fit holds every patch feature of every good image at once (224 px, Lite0
stages 2+4: 784 patches x 152 floats = 0.48 MB per image, 2.4 GB for 5000 images) and
then runs the greedy k-center selection over all of them. Here features arrive a batch
at a time and never more than ``max_rows`` of them are held:

1. new features gather in a chunk of at most ``max_rows // 2`` rows;
2. a full chunk is reduced by greedy k-center to ``oversample x ratio`` of its rows and
   joins the pool of kept rows;
3. when the pool grows past ``max_rows // 2`` it is itself reduced by greedy k-center to
   a quarter of ``max_rows`` (k-center selections compose: the centres of the union of
   per-chunk centres cover the data nearly as well as centres picked from all of it);
4. at the end the pool is reduced to ``ratio x (all rows seen)``, the bank the plain fit
   would keep (capped by what the pool holds).

Greedy selection cost is rows x kept x projection_dim, so the per-chunk reduction also
makes the fit faster than one greedy pass over everything.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch


class StreamingCoreset:
    def __init__(self, ratio: float, max_rows: int, projection_dim: int = 64, seed: int = 0, oversample: float = 4.0):
        if max_rows < 64:
            raise ValueError(f"max_features_in_memory must be at least 64 rows, got {max_rows}")
        self.ratio, self.max_rows, self.projection_dim = ratio, int(max_rows), projection_dim
        self.seed, self.oversample = seed, oversample
        self.seen = 0
        self._chunk: list[torch.Tensor] = []
        self._chunk_rows = 0
        self._pool: Optional[torch.Tensor] = None
        # which image each pooled row came from, so the bank can score training parts
        # without their own patches (leave-one-part-out calibration)
        self._owners: Optional[torch.Tensor] = None
        self._chunk_owners: list[torch.Tensor] = []
        self._round = 0

    def _select(self, feats: torch.Tensor, owners: torch.Tensor, k: int,
                progress: Optional[Callable[[int, int], None]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        from .patchcore import greedy_coreset
        self._round += 1
        idx = greedy_coreset(feats, k, self.projection_dim, self.seed + self._round, progress=progress)
        return feats[idx].clone(), owners[idx].clone()

    def add(self, rows: torch.Tensor, owners: Optional[torch.Tensor] = None) -> None:
        """Add (n, C) patch features and the image index each came from; large inputs
        are split so the chunk stays bounded."""
        if owners is None:
            owners = torch.full((len(rows),), -1, dtype=torch.long)
        half = self.max_rows // 2
        for i in range(0, len(rows), half):
            part = rows[i:i + half]
            if self._chunk_rows + len(part) > half:
                self._flush()
            self._chunk.append(part.clone())
            self._chunk_owners.append(owners[i:i + half].clone())
            self._chunk_rows += len(part)
            self.seen += len(part)

    def _flush(self) -> None:
        if not self._chunk:
            return
        chunk, owners = torch.cat(self._chunk), torch.cat(self._chunk_owners)
        self._chunk, self._chunk_owners, self._chunk_rows = [], [], 0
        k = max(1, min(len(chunk), math.ceil(self.oversample * self.ratio * len(chunk))))
        kept, kept_owners = self._select(chunk, owners, k)
        del chunk
        if self._pool is None:
            self._pool, self._owners = kept, kept_owners
        else:
            self._pool, self._owners = torch.cat([self._pool, kept]), torch.cat([self._owners, kept_owners])
        if len(self._pool) > self.max_rows // 2:
            self._pool, self._owners = self._select(self._pool, self._owners, self.max_rows // 4)

    def finish(self, progress: Optional[Callable[[int, int], None]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The memory bank, about ``ratio`` of all rows seen, as (k, C) float32, and the
        image index each bank row came from (-1 where none was given). ``progress(picked,
        k)`` hears the last selection (the chunks' were made as features came in)."""
        self._flush()
        if self._pool is None:
            raise ValueError("no features were added")
        k = max(1, min(len(self._pool), int(round(self.seen * self.ratio))))
        bank, owners = self._select(self._pool, self._owners, k, progress)
        return bank.contiguous(), owners
