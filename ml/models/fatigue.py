"""Recommendation fatigue: how much less an item is clicked after it was shown to the same user
``k`` times without engagement, the choice of the demotion from the impression log, and the
demotion itself.

Exposure ``k`` of an impression = earlier impressions of the same (user, item) since the user's
last event on that item (any behaviour type: an event is engagement and resets the count). An
impression is *clicked* when the user has an event on the item within ``window_s`` after it.

Fit (:func:`fit_fatigue`), on the earlier time split of the log: impressions served at least one
attribution window before the newest one (the newest window's outcomes are still open, so it is
left out). CTR at each exposure bucket ``k = 1 .. max_k`` (``max_k`` pools "k or more") is compared
with what the same impressions would get at ``k = 0``: the expected clicks are the k = 0 CTR of
each impression's rank (ranks above ``rank_buckets`` pooled), so an item that slid down the list is
not mistaken for a tired one. A one-sided z-test (binomial variance of the expected clicks plus the
sampling variance of the k = 0 CTRs) at family-wise level ``alpha`` (Bonferroni over the buckets
tested) marks a bucket significantly below k = 0; **N is the first such k**. The ratio observed /
expected of the buckets k ≥ N is fitted to ``decay^(k − N + 1)`` (least squares on the logs,
weighted by the expected clicks) — **decay**. Too few impressions or clicks at k = 0, or no bucket
significantly below → no demotion, with the reason.

The fitted drop is what the next show is worth, whatever its cause (the user tiring of the item,
or the skips revealing an item the user does not want): both say the slot is better spent on the
next candidate. Demotion (:func:`demote`) multiplies each candidate's per-user min-max normalised
score by ``decay^(shows − N + 1)`` when ``shows ≥ N``, re-sorts and cuts to ``n``; scores are
mapped back to the recommender's scale, so an undemoted list keeps its order and scores.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from ml.models.rules import apply_rules

#: Columns of an exposure table: one row per impression.
EXPOSURE_COLUMNS = ["user_id", "item_id", "rank", "served_at", "k", "clicked"]


@dataclass(frozen=True)
class FatigueFitConfig:
    """How the fit reads the log (defaults documented here; none is tuned on one data set)."""

    window_s: float = 3600.0  # an event on the item within this many seconds after a show is a click
    max_k: int = 5  # exposure buckets 1..max_k tested, the last one pooling "max_k or more"
    alpha: float = 0.01  # family-wise one-sided level, Bonferroni over the tested buckets
    min_base_impressions: int = 1000  # k = 0 impressions needed to fit at all
    min_base_clicks: int = 30  # k = 0 clicks needed to fit at all
    min_bucket_impressions: int = 100  # a bucket with fewer impressions is not tested
    rank_buckets: int = 10  # ranks above this are pooled when the k = 0 CTR is taken per rank
    lookback_days: float = 14.0  # impressions read for the fit and counted as exposures
    # the fit reads the impressions of a hash sample of users (all of each user's shows, so exposure
    # counts stay exact) sized to about this many rows: a busy reader logs millions a day
    max_fit_impressions: int = 2_000_000

    def __post_init__(self) -> None:
        if (
            self.window_s <= 0
            or self.max_k < 1
            or not 0 < self.alpha < 1
            or self.lookback_days <= 0
            or self.max_fit_impressions < 1
        ):
            raise ValueError(f"invalid fatigue fit config: {self}")


@dataclass(frozen=True)
class FatigueParams:
    """The chosen demotion: ``min_shows`` (N; None = no demotion) and ``decay``, with the evidence."""

    min_shows: int | None
    decay: float
    reason: str
    impressions: int = 0  # impressions of the fit split
    clicks: int = 0
    table: list[dict] = field(default_factory=list)  # per exposure bucket: n, clicks, expected, ratio, z

    @property
    def active(self) -> bool:
        return self.min_shows is not None and self.decay < 1.0

    def factor(self, shows: np.ndarray) -> np.ndarray:
        """Score multiplier per candidate: ``decay^(shows − N + 1)`` for ``shows ≥ N``, else 1."""
        shows = np.asarray(shows, dtype=float)
        if not self.active:
            return np.ones_like(shows)
        n = float(self.min_shows)  # type: ignore[arg-type]
        return np.where(shows >= n, self.decay ** (shows - n + 1.0), 1.0)

    def table_json(self) -> str:
        return json.dumps(self.table)

    def as_dict(self) -> dict:
        return asdict(self)


def no_demotion(reason: str, impressions: int = 0, clicks: int = 0, table: list[dict] | None = None):
    return FatigueParams(None, 1.0, reason, impressions, clicks, table or [])


def exposure_table(impressions: pd.DataFrame, events: pd.DataFrame, window_s: float) -> pd.DataFrame:
    """Each impression with its exposure ``k`` and whether it was ``clicked``.

    ``impressions``: user_id, item_id, rank, served_at; ``events``: user_id, item_id, ts (item
    events; rows with a NULL item are ignored). An event at the very time of a show counts as before
    it (engagement already happened), not as its click."""
    imp = impressions[["user_id", "item_id", "rank", "served_at"]].dropna(subset=["user_id"])
    ev = events[["user_id", "item_id", "ts"]].dropna(subset=["user_id", "item_id"])
    both = pd.concat(
        [
            pd.DataFrame(
                {
                    "user_id": ev["user_id"].astype("int64").to_numpy(),
                    "item_id": ev["item_id"].astype("int64").to_numpy(),
                    "t": pd.to_datetime(ev["ts"]).to_numpy(dtype="datetime64[ns]"),
                    "is_imp": False,
                    "rank": 0,
                }
            ),
            pd.DataFrame(
                {
                    "user_id": imp["user_id"].astype("int64").to_numpy(),
                    "item_id": imp["item_id"].astype("int64").to_numpy(),
                    "t": pd.to_datetime(imp["served_at"]).to_numpy(dtype="datetime64[ns]"),
                    "is_imp": True,
                    "rank": imp["rank"].astype("int64").to_numpy(),
                }
            ),
        ],
        ignore_index=True,
    ).sort_values(["user_id", "item_id", "t", "is_imp"], kind="stable", ignore_index=True)
    if both.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in EXPOSURE_COLUMNS})
    pair = both.groupby(["user_id", "item_id"], sort=False).ngroup().to_numpy()
    is_ev = (~both["is_imp"]).to_numpy()
    epoch = pd.Series(is_ev.astype(np.int64)).groupby(pair).cumsum().to_numpy()
    ev_t = both["t"].where(~both["is_imp"])
    next_ev = ev_t.groupby(pair).bfill()  # the next event of the pair (NaT: none)
    imp_rows = both["is_imp"].to_numpy()
    k = (
        pd.Series(np.ones(len(both), dtype=np.int64))[imp_rows]
        .groupby([pair[imp_rows], epoch[imp_rows]])
        .cumcount()
    )
    gap = (next_ev - both["t"]).dt.total_seconds()
    out = both.loc[imp_rows, ["user_id", "item_id", "rank", "t"]].rename(columns={"t": "served_at"})
    out["k"] = k.to_numpy()
    out["clicked"] = (gap[imp_rows] <= window_s).fillna(False).to_numpy()
    return out.reset_index(drop=True)[EXPOSURE_COLUMNS]


def fit_fatigue(exposures: pd.DataFrame, cfg: FatigueFitConfig | None = None) -> FatigueParams:
    """Choose N and decay from an exposure table (:func:`exposure_table`); see the module doc."""
    cfg = cfg or FatigueFitConfig()
    if exposures.empty:
        return no_demotion("no impressions in the log: no demotion")
    cut = exposures["served_at"].max() - pd.Timedelta(seconds=cfg.window_s)
    fit = exposures[exposures["served_at"] <= cut]
    clicked = fit["clicked"].to_numpy(dtype=float)
    rank_b = np.minimum(fit["rank"].to_numpy(), cfg.rank_buckets)
    k_b = np.minimum(fit["k"].to_numpy(), cfg.max_k)
    base = k_b == 0
    n0 = np.bincount(rank_b[base], minlength=cfg.rank_buckets + 1).astype(float)
    c0 = np.bincount(rank_b[base], weights=clicked[base], minlength=cfg.rank_buckets + 1)
    total, clicks = len(fit), int(clicked.sum())
    if n0.sum() < cfg.min_base_impressions or c0.sum() < cfg.min_base_clicks:
        return no_demotion(
            f"too few impressions to fit fatigue: {int(n0.sum())} first shows with {int(c0.sum())} clicks "
            f"(needs {cfg.min_base_impressions} and {cfg.min_base_clicks}): no demotion",
            total,
            clicks,
        )
    p0 = np.divide(c0, n0, out=np.zeros_like(c0), where=n0 > 0)
    table = _bucket_table(fit["k"].to_numpy(), k_b, rank_b, clicked, p0, n0, cfg)
    tested = [row for row in table if row["tested"]]
    if not tested:
        return no_demotion(
            "no exposure bucket has enough impressions to test: no demotion", total, clicks, table
        )
    crit = NormalDist().inv_cdf(cfg.alpha / len(tested))
    for row in table:
        row["significant"] = bool(row["tested"] and row["z"] < crit)
    first = next((row["k"] for row in table if row["significant"]), None)
    if first is None:
        return no_demotion(
            f"no exposure bucket has a CTR significantly below first shows (one-sided z < {crit:.2f}): no demotion",
            total,
            clicks,
            table,
        )
    decay = _fit_decay([row for row in tested if row["k"] >= first], first)
    reason = (
        f"CTR after {first} unengaged show(s) is {table[first - 1]['ratio']:.2f}x first shows "
        f"(z={table[first - 1]['z']:.1f} < {crit:.2f}); decay {decay:.3f} per further show"
    )
    return FatigueParams(first, decay, reason, total, clicks, table)


def _bucket_table(k, k_b, rank_b, clicked, p0, n0, cfg: FatigueFitConfig) -> list[dict]:
    """Per exposure bucket: impressions, clicks, the clicks expected at k = 0 for the same ranks,
    their ratio, the z statistic and whether it is tested (enough impressions, ranks seen at k = 0)."""
    var0 = np.divide(p0 * (1 - p0), n0, out=np.zeros_like(p0), where=n0 > 0)
    table = []
    for b in range(1, cfg.max_k + 1):
        sel = (k_b == b) & (n0[rank_b] > 0)
        m = np.bincount(rank_b[sel], minlength=len(p0)).astype(float)
        obs, exp = float(clicked[sel].sum()), float((m * p0).sum())
        var = float((m * p0 * (1 - p0)).sum() + (m * m * var0).sum())
        tested = bool(sel.sum() >= cfg.min_bucket_impressions and exp > 0 and var > 0)
        table.append(
            {
                "k": b,
                "mean_k": float(k[sel].mean()) if sel.any() else float(b),
                "impressions": int(sel.sum()),
                "clicks": int(obs),
                "expected": round(exp, 3),
                "ratio": round(obs / exp, 4) if exp > 0 else None,
                "z": round(float((obs - exp) / np.sqrt(var)), 3) if var > 0 else None,
                "tested": tested,
            }
        )
    return table


def _fit_decay(rows: list[dict], first: int) -> float:
    """``decay`` with ``ratio(k) ≈ decay^(k − N + 1)``: weighted least squares through the origin
    on log ratios (ratio floored at 1e-3), weights the expected clicks; clipped to [0.01, 0.99]."""
    x = np.array([r["mean_k"] - first + 1.0 for r in rows])
    y = np.log(np.maximum([r["clicks"] / r["expected"] for r in rows], 1e-3))
    w = np.array([r["expected"] for r in rows])
    return float(np.clip(np.exp((w * x * y).sum() / (w * x * x).sum()), 0.01, 0.99))


def demote(candidates: pd.DataFrame, shows: pd.DataFrame, params: FatigueParams, n: int) -> pd.DataFrame:
    """The top ``n`` per user after demoting tired items (module doc), in the top-N columns.

    ``candidates``: a recommender's ranked frame (user_id, rank, item_id, score, source), usually
    longer than ``n``; ``shows``: user_id, item_id, shows (unengaged shows so far; absent = 0).
    Ties keep the recommender's order."""
    cols = ["user_id", "rank", "item_id", "score", "source"]
    df = candidates[cols].sort_values(["user_id", "rank"], kind="stable").reset_index(drop=True)
    if df.empty:
        return df
    if shows.empty or not params.active:
        counts = np.zeros(len(df))
    else:
        keyed = shows.astype({"user_id": "int64", "item_id": "int64"}).set_index(["user_id", "item_id"])
        idx = pd.MultiIndex.from_arrays([df["user_id"].astype("int64"), df["item_id"].astype("int64")])
        counts = keyed["shows"].reindex(idx).fillna(0).to_numpy(dtype=float)
    score = df["score"].to_numpy(dtype=float)
    user = df["user_id"]
    lo = user.map(pd.Series(score).groupby(user).min()).to_numpy()
    hi = user.map(pd.Series(score).groupby(user).max()).to_numpy()
    spread = hi - lo
    rel = np.divide(score - lo, spread, out=np.ones_like(score), where=spread > 0)
    adj = rel * params.factor(counts)
    df = df.assign(score=lo + spread * adj, _adj=adj, _orig=df["rank"])
    df = df.sort_values(["user_id", "_adj", "_orig"], ascending=[True, False, True], kind="stable")
    df = df.groupby("user_id", sort=False).head(n).copy()
    df["rank"] = df.groupby("user_id", sort=False).cumcount() + 1
    return df[cols].reset_index(drop=True)


class FatigueRecommender:
    """Any recommender with tired items demoted. Reads the batch's unengaged show counts with
    ``exposures(user_ids, min_shows)`` (one query per batch in the publisher). A two-stage
    recommender (``score`` + business ``rules``, as the champion is) has all its candidates' scores
    demoted and then its rules applied at ``n``, so the category cap holds on the final list; any
    other recommender is asked for ``n + pool`` rows, which :func:`demote` re-orders and cuts to ``n``."""

    def __init__(
        self,
        inner,
        params: FatigueParams,
        exposures: Callable[[Sequence[int], int], pd.DataFrame],
        pool: int = 20,
    ) -> None:
        if not params.active:
            raise ValueError("FatigueRecommender needs an active demotion (min_shows set, decay < 1)")
        self.inner, self.params, self.exposures, self.pool = inner, params, exposures, pool
        self.name = f"{getattr(inner, 'name', 'model')}_fatigue"
        self.demoted = 0  # candidates with shows ≥ N seen so far (for the publisher's log)

    def like(self, other) -> FatigueRecommender:
        """``other`` demoted with the same N, decay and exposure reads (the other arm of an A/B)."""
        return FatigueRecommender(other, self.params, self.exposures, self.pool)

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        shows = self.exposures(user_ids, int(self.params.min_shows))  # type: ignore[arg-type]
        self.demoted += len(shows)
        inner = self.inner
        if all(hasattr(inner, a) for a in ("score", "rules", "items", "purchased", "backfill")):
            # a two-stage recommender (the champion): demote its raw scores of ALL candidates, then
            # its own business rules (category cap at n, stock, bought, backfill) make the n rows
            scored = inner.score(list(user_ids)).assign(source=inner.name)
            scored = scored.sort_values(["user_id", "score"], ascending=[True, False], kind="stable")
            scored["rank"] = scored.groupby("user_id", sort=False).cumcount() + 1
            demoted = demote(scored, shows, self.params, len(scored))
            out, inner.last_stats = apply_rules(
                demoted, user_ids, n, inner.items, inner.purchased, inner.backfill, inner.rules
            )
            return out
        return demote(inner.recommend(user_ids, n + self.pool), shows, self.params, n)
