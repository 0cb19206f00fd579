"""A smaller feature bank for a detector: k-center greedy coreset selection (``python -m ssad.export bank_size=N``).

Eq. 6 compares every new image with every training feature, so scoring costs grow with the bank. The k-center greedy
algorithm (Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set Approach", ICLR 2018)
picks rows that cover the whole bank: start from one seeded random row, then repeatedly add the row farthest from
every row chosen so far, which keeps the largest distance from any training feature to its nearest chosen one within
twice the optimum. PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022) uses it
to shrink its memory bank of patch features; here the distance is the cosine distance 1 − cos of the normalised
image features, the similarity Eq. 6 sums over.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

CHUNK_ROWS = 65536  # bank rows compared at once with a newly chosen one (memory, not results)


def _cosine_distance(features: Tensor, row: Tensor) -> Tensor:
    """1 − cos between every row of the normalised ``features`` (M, d) and the normalised ``row`` (d,)."""
    return torch.cat([1 - features[i:i + CHUNK_ROWS] @ row for i in range(0, len(features), CHUNK_ROWS)])


@torch.no_grad()
def k_center_greedy(features: Tensor, n: int, seed: int = 0) -> Tensor:
    """Indices (int64, on the CPU, in the order chosen) of ``n`` rows of ``features`` (M, d) chosen by k-center greedy
    selection in cosine distance, the first at random from ``seed``. All M rows (0, 1, …, M − 1) when ``n ≥ M``. The
    first k indices of a selection are the selection of k (a larger coreset extends a smaller one). Rows that are
    copies of chosen ones are chosen only once every distinct row is."""
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features must be a non-empty (M, d) tensor, got shape {tuple(features.shape)}")
    if n < 1:
        raise ValueError(f"a coreset needs at least one row, got n={n}")
    total = len(features)
    if n >= total:
        return torch.arange(total)
    x = F.normalize(features.float(), dim=1)
    first = int(torch.randint(total, (1,), generator=torch.Generator().manual_seed(seed)))
    chosen = torch.empty(n, dtype=torch.long)
    chosen[0] = first
    distance = _cosine_distance(x, x[first])  # to the nearest chosen row
    distance[first] = -1.0  # below any distance (≥ 0 up to rounding): never chosen again
    for k in range(1, n):
        farthest = int(torch.argmax(distance))
        chosen[k] = farthest
        distance = torch.minimum(distance, _cosine_distance(x, x[farthest]))  # chosen rows keep their −1
        distance[farthest] = -1.0
    return chosen


def coverage_radius(features: Tensor, chosen: Tensor) -> float:
    """The largest cosine distance from a row of ``features`` to its nearest row among ``chosen``: how well the
    coreset covers the bank (0: every row has a copy in it)."""
    x = F.normalize(features.float(), dim=1)
    keys = x[chosen]
    worst = max(float((1 - (x[i:i + 4096] @ keys.T).max(dim=1).values).max()) for i in range(0, len(x), 4096))
    return max(worst, 0.0)
