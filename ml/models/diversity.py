"""Maximal marginal relevance (MMR) re-ranking, and the choice of its λ on the validation cut.

Greedy MMR picks, at each position, the candidate maximising ``λ · rel − (1 − λ) · max sim`` to the
items already picked. Relevance is the model score min-max normalised per user (so λ means the same
for every user whatever the score scale); similarity is 0/1: two items are similar when they share a
category (or, with brands on, a category or a brand). With a 0/1 similarity, ``max sim`` is just
"is this candidate's category (brand) already in the list", so the greedy loop runs over a
users × candidates matrix, k steps of vectorised numpy, instead of a Python loop per user.

λ = 1 is the model's own order (ties keep the score order); smaller λ spreads categories. The run
measures the NDCG/diversity trade-off on a small grid and keeps (:func:`choose_lambda`) the most
diverse λ whose validation NDCG@10 is at least ``min_ratio`` × the NDCG@10 of λ = 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from ml.models.rules import RuleStats, apply_rules, filter_ranked

#: λ values measured by default (1.0 = MMR off, the reference of the NDCG floor).
DEFAULT_GRID: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.5)


def parse_grid(text: str) -> list[float]:
    """``"1.0,0.9,0.5"`` → ``[1.0, 0.9, 0.5]``; every λ must lie in [0, 1] and 1.0 must be present."""
    try:
        grid = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise ValueError(f"mmr_grid must be comma-separated numbers, got {text!r}") from exc
    bad = [g for g in grid if not 0.0 <= g <= 1.0]
    if bad:
        raise ValueError(f"mmr_grid values must lie in [0, 1], got {bad}")
    if 1.0 not in grid:
        raise ValueError(f"mmr_grid must contain 1.0 (MMR off, the NDCG reference), got {grid}")
    return sorted(set(grid), reverse=True)


def _codes(items: pd.Series, attribute: Mapping[int, object] | None) -> np.ndarray:
    """Integer codes of each row's attribute; -1 (never similar to anything) when unknown."""
    if attribute is None:
        return np.full(len(items), -1, dtype=np.int64)
    values = items.map(lambda i: attribute.get(int(i)))
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    return codes.astype(np.int64)


def _normalise(score: np.ndarray) -> np.ndarray:
    """Per-row min-max to [0, 1] over the finite scores; a row whose finite scores are all equal is
    fully relevant (1); -inf (a scorer's "no score") is 0 and +inf 1. Padding (NaN) stays NaN."""
    finite = np.isfinite(score)
    lo = np.where(finite, score, np.inf).min(axis=1, keepdims=True)
    hi = np.where(finite, score, -np.inf).max(axis=1, keepdims=True)
    spread = np.isfinite(lo) & (hi > lo)
    with np.errstate(invalid="ignore"):
        rel = np.where(spread, (score - lo) / np.where(spread, hi - lo, 1.0), 1.0)
    rel = np.where(score == -np.inf, 0.0, np.where(score == np.inf, 1.0, rel))
    return np.where(np.isnan(score), np.nan, rel)


def mmr_rerank(
    scores: pd.DataFrame,
    item_category: Mapping[int, object],
    lam: float,
    k: int,
    item_brand: Mapping[int, object] | None = None,
) -> pd.DataFrame:
    """The first ``k`` MMR picks per user from ``scores`` (``user_id, item_id, score``, any extra
    columns kept); returns them with ``mmr_rank`` 1..k, users in first-seen order.

    Candidates are ordered by score (descending), then item id, before the greedy loop; ``argmax``
    takes the first of equal values, so ties are deterministic and λ = 1 returns that order."""
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    missing = {"user_id", "item_id", "score"} - set(scores.columns)
    if missing:
        raise ValueError(f"scores needs columns user_id, item_id, score; missing {sorted(missing)}")
    if scores.empty:
        return scores.assign(mmr_rank=pd.Series(dtype="int64"))
    if scores["score"].isna().any():
        raise ValueError("scores has missing values: score every candidate before re-ranking")
    order = {u: n for n, u in enumerate(pd.unique(scores["user_id"]))}
    df = scores.assign(_u=scores["user_id"].map(order)).sort_values(
        ["_u", "score", "item_id"], ascending=[True, False, True], kind="stable"
    )
    df = df.reset_index(drop=True)
    row = df["_u"].to_numpy()
    col = df.groupby("_u", sort=False).cumcount().to_numpy()
    n_users, width = len(order), int(col.max()) + 1

    def grid(values: np.ndarray, fill) -> np.ndarray:
        out = np.full((n_users, width), fill, dtype=np.asarray(values).dtype)
        out[row, col] = values
        return out

    score = grid(df["score"].to_numpy(dtype=float), np.nan)
    valid = grid(np.ones(len(df), dtype=bool), False)
    rel = _normalise(score)
    cat = grid(_codes(df["item_id"], item_category), -1)
    brand = grid(_codes(df["item_id"], item_brand), -1)
    covered = np.zeros((n_users, width), dtype=bool)
    taken = ~valid
    users = np.arange(n_users)
    picks_row, picks_col, picks_rank = [], [], []
    for step in range(min(k, width)):
        value = np.where(taken, -np.inf, lam * rel - (1.0 - lam) * covered)
        j = value.argmax(axis=1)
        live = np.isfinite(value[users, j])
        if not live.any():
            break
        u, jj = users[live], j[live]
        picks_row.append(u)
        picks_col.append(jj)
        picks_rank.append(np.full(len(u), step + 1))
        taken[u, jj] = True
        c, b = cat[u, jj][:, None], brand[u, jj][:, None]
        covered[u] |= ((cat[u] == c) & (c >= 0)) | ((brand[u] == b) & (b >= 0))
    index = pd.DataFrame(
        {
            "_u": np.concatenate(picks_row),
            "_c": np.concatenate(picks_col),
            "mmr_rank": np.concatenate(picks_rank),
        }
    )
    df["_c"] = col
    out = index.merge(df, on=["_u", "_c"], how="left").sort_values(["_u", "mmr_rank"], kind="stable")
    return out.drop(columns=["_u", "_c"]).reset_index(drop=True)


def choose_lambda(
    table: pd.DataFrame, min_ratio: float = 0.95, ndcg: str = "ndcg@10", diversity: str = "ild_category@10"
) -> float:
    """The most diverse λ whose NDCG is at least ``min_ratio`` × the NDCG at λ = 1.

    ``table`` is indexed by λ (the validation trade-off). Rule, exactly: keep the λ with
    ``ndcg(λ) >= min_ratio · ndcg(1.0)``; among them take the highest ``diversity``; equal
    diversity → the larger λ (closer to the model's own order). λ = 1 always qualifies."""
    if 1.0 not in table.index:
        raise ValueError("the trade-off table needs the λ = 1 row (the NDCG reference)")
    if not 0.0 < min_ratio <= 1.0:
        raise ValueError(f"min_ratio must lie in (0, 1], got {min_ratio}")
    floor = min_ratio * float(table.loc[1.0, ndcg])
    ok = table[table[ndcg] >= floor - 1e-12]
    best = ok[diversity].max()
    if pd.isna(best):
        return 1.0
    return float(max(lam for lam, v in ok[diversity].items() if v >= best - 1e-12))


class MMRRecommender:
    """A two-stage recommender's scores re-ranked by MMR, under the same business rules.

    The candidates are first filtered as the rules would (catalogue, stock, already bought; no
    category cap yet), so an item the rules will drop never counts as covering a category; MMR then
    orders the best ``pool`` per user, the rest follow in score order, and the rules (cap, backfill)
    make the final list of ``n``."""

    def __init__(
        self,
        inner,
        lam: float,
        item_brand: Mapping[int, object] | None = None,
        pool: int = 100,
    ) -> None:
        self.inner = inner
        self.lam = lam
        self.item_brand = item_brand
        self.pool = pool
        self.name = f"{inner.name}_mmr"
        self.last_stats = RuleStats()

    def recommend(self, user_ids: Sequence[int], n: int) -> pd.DataFrame:
        inner = self.inner
        scored = inner.score(list(user_ids)).assign(source=self.name)
        loose = replace(inner.rules, max_category_share=1.0)
        kept = filter_ranked(scored, inner.items, inner.purchased, loose, 10**9, RuleStats())
        category = dict(zip(inner.items["item_id"].astype("int64"), inner.items["category_id"]))
        head = kept.groupby("user_id", sort=False).head(self.pool)
        ranked = mmr_rerank(head, category, self.lam, self.pool, self.item_brand)
        rest = kept.drop(index=head.index)
        rest = rest.assign(mmr_rank=self.pool + 1 + rest.groupby("user_id", sort=False).cumcount())
        both = pd.concat([ranked, rest], ignore_index=True)
        both["score"] = -both["mmr_rank"].astype(float)  # the rules order by score: MMR order
        out, self.last_stats = apply_rules(
            both, user_ids, n, inner.items, inner.purchased, inner.backfill, inner.rules
        )
        return out
