"""Beyond-accuracy metrics of ranked lists (ARCHITECTURE.md §3; :mod:`ml.models.evaluate` reports them
next to NDCG): intra-list diversity with a 0/1 distance, novelty as self-information, and their means
over the evaluated users' top k (``ild_category@k``, ``ild_brand@k``, ``coverage_in_stock@k``, ``novelty@k``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd


def intra_list_diversity(ranked: Sequence[int], attribute: Mapping[int, object], k: int = 10) -> float:
    """Share of the distinct pairs of the top k whose attribute differs (ILD with a 0/1 distance).

    Items without the attribute are left out; NaN when fewer than two items remain (no pair)."""
    values = [attribute[i] for i in ranked[:k] if attribute.get(i) is not None]
    pairs = len(values) * (len(values) - 1) // 2
    if pairs == 0:
        return float("nan")
    # counted in Python (pandas' value_counts per list was most of an evaluation on 5k users); NaN
    # attributes pair with nothing, as value_counts drops them
    counts = Counter(v for v in values if not (isinstance(v, float) and math.isnan(v)))
    same = sum(c * (c - 1) // 2 for c in counts.values())
    return 1.0 - same / pairs


def self_information(history: pd.DataFrame, catalogue: Iterable[int]) -> dict[int, float]:
    """-log2 of each catalogue item's share of the window's item events, add-one smoothed.

    ``history`` has raw columns ``item_id`` (searches, with no item, are ignored); every catalogue
    item gets a value, so a list of never-seen items is maximally novel rather than undefined."""
    items = [int(i) for i in catalogue]
    counts = history["item_id"].dropna().astype("int64").value_counts()
    total = float(counts.reindex(items).fillna(0).sum()) + len(items)
    return {i: float(-math.log2((counts.get(i, 0) + 1) / total)) for i in items}


def novelty(ranked: Sequence[int], info: Mapping[int, float], k: int = 10) -> float:
    """Mean self-information of the top k (items unknown to ``info`` are skipped); NaN for an empty list."""
    values = [info[i] for i in ranked[:k] if i in info]
    return float(np.mean(values)) if values else float("nan")


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def beyond_accuracy(
    lists: Mapping[int, Sequence[int]],
    users: Sequence[int],
    *,
    item_category: Mapping[int, object] | None = None,
    item_brand: Mapping[int, object] | None = None,
    in_stock: Iterable[int] | None = None,
    info: Mapping[int, float] | None = None,
    k: int = 10,
) -> dict[str, float]:
    """ILD by category and brand, in-stock coverage and novelty of the top k of ``users``' lists
    (each only when its input is given, so callers without a catalogue or history still work)."""
    tops = [list(lists.get(u, ()))[:k] for u in users]
    out: dict[str, float] = {}
    if item_category is not None:
        out[f"ild_category@{k}"] = _nanmean([intra_list_diversity(t, item_category, k) for t in tops])
    if item_brand is not None:
        out[f"ild_brand@{k}"] = _nanmean([intra_list_diversity(t, item_brand, k) for t in tops])
    if in_stock is not None:
        stock = set(int(i) for i in in_stock)
        shown = {i for t in tops for i in t if i in stock}
        out[f"coverage_in_stock@{k}"] = len(shown) / len(stock) if stock else float("nan")
    if info is not None:
        out[f"novelty@{k}"] = _nanmean([novelty(t, info, k) for t in tops])
    return out
