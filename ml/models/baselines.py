"""Baseline recommenders, evaluated on the same split as the models (ARCHITECTURE.md §3).

Each is a recommender in the docs/contracts.md sense (``recommend(user_ids, n)``) over the whole
catalogue. Lists shorter than ``n`` (a user with little history) are filled from recent global
popularity, as any production fallback would; the ``source`` column says which part is which.

- ``popular``: recent global popularity (type-weighted, time-decayed events before the cut);
- ``intent_pop``: popularity inside the category of the user's latest session;
- ``repeat``: the user's own recent items viewed/carted/faved but not bought, recency- and type-weighted;
- ``covisit``: items co-visited (dbt ``ml_covisitation``) with the user's recent items;
- ``buy_again``: the user's own purchases by how many of their baskets held them, most recent first
  on ties (the personal top-frequency baseline of next-basket work, hard to beat where people re-buy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ml.contracts import TOPN_COLUMNS, event_weights, number_var

REC_COLUMNS = list(TOPN_COLUMNS)
#: The baselines every model is measured against (and the champion while no model beats them).
BASELINE_NAMES: tuple[str, ...] = ("popular", "intent_pop", "repeat", "covisit", "buy_again")


def popularity_params() -> tuple[dict[str, float], float, int]:
    """(type weights, half-life hours, window days) of "popular" — the dbt vars behind
    ``dim_items.popularity_score`` and the serving ``popular_topn``, so all three agree."""
    return (
        event_weights("popularity"),
        number_var("popularity_half_life_hours"),
        int(number_var("popularity_days")),
    )


def decayed_weights(
    events: pd.DataFrame, now: pd.Timestamp, weights: Mapping[str, float], half_life_hours: float
) -> pd.Series:
    """Per event: type weight × 0.5^(age / half-life). Types without a weight get 0."""
    age_h = (now - events["ts"]).dt.total_seconds().to_numpy() / 3600.0
    w = events["behavior_type"].astype(str).map(weights).fillna(0.0).to_numpy()
    return pd.Series(w * np.power(0.5, np.clip(age_h, 0, None) / half_life_hours), index=events.index)


def popularity_scores(
    history: pd.DataFrame, now: pd.Timestamp, half_life_hours: float | None = None, days: int | None = None
) -> pd.Series:
    """Item → decayed, type-weighted event count over the last ``days`` (sorted, best first).

    Defaults are the dbt vars (:func:`popularity_params`): the same number as ``dim_items.popularity_score``.
    """
    weights, default_half_life, default_days = popularity_params()
    half_life_hours = default_half_life if half_life_hours is None else half_life_hours
    days = default_days if days is None else days
    ev = history[(history["ts"] >= now - pd.Timedelta(days=days)) & history["item_id"].notna()]
    if ev.empty:
        return pd.Series(dtype=float)
    w = decayed_weights(ev, now, weights, half_life_hours)
    return w.groupby(ev["item_id"].astype("int64")).sum().sort_values(ascending=False, kind="stable")


def rank_with_backfill(
    scores: pd.DataFrame,
    user_ids: Sequence[int],
    n: int,
    source: str,
    backfill: pd.Series,
    backfill_source: str = "popular",
) -> pd.DataFrame:
    """Top ``n`` per user from ``scores`` (user_id, item_id, score), completed from ``backfill`` (item → score).

    Each requested user gets exactly ``min(n, distinct items available)`` rows, no duplicates.
    """
    users = pd.Series(list(dict.fromkeys(int(u) for u in user_ids)), dtype="int64", name="user_id")
    main = scores[scores["user_id"].isin(users)].assign(source=source, _prio=0)
    fill_items = backfill.head(n)
    fill = pd.DataFrame(
        {
            "user_id": np.repeat(users.to_numpy(), len(fill_items)),
            "item_id": np.tile(fill_items.index.to_numpy(dtype="int64"), len(users)),
            "score": np.tile(fill_items.to_numpy(dtype=float), len(users)),
        }
    ).assign(source=backfill_source, _prio=1)
    both = pd.concat([f for f in (main, fill) if not f.empty] or [fill], ignore_index=True)
    both = both.sort_values(["user_id", "_prio", "score"], ascending=[True, True, False], kind="stable")
    both = both.drop_duplicates(["user_id", "item_id"], keep="first")
    top = both.groupby("user_id", sort=False).head(n).copy()
    top["rank"] = top.groupby("user_id", sort=False).cumcount() + 1
    top["item_id"] = top["item_id"].astype("int64")
    return top[REC_COLUMNS].reset_index(drop=True)


def recent_user_items(
    history: pd.DataFrame,
    now: pd.Timestamp,
    weights: Mapping[str, float],
    half_life_hours: float,
    drop_purchased: bool = True,
) -> pd.DataFrame:
    """(user_id, item_id, score): decayed, type-weighted own events; purchased items removed unless asked."""
    ev = history[history["item_id"].notna()]
    if ev.empty:
        return pd.DataFrame(columns=["user_id", "item_id", "score"])
    w = decayed_weights(ev, now, weights, half_life_hours)
    frame = pd.DataFrame(
        {"user_id": ev["user_id"].astype("int64"), "item_id": ev["item_id"].astype("int64"), "score": w}
    )
    agg = frame.groupby(["user_id", "item_id"], as_index=False)["score"].sum()
    if not drop_purchased:
        return agg[agg["score"] > 0]
    bought = ev[ev["behavior_type"] == "purchase"][["user_id", "item_id"]].astype("int64").drop_duplicates()
    agg = agg.merge(bought.assign(_b=1), on=["user_id", "item_id"], how="left")
    return agg[agg["_b"].isna() & (agg["score"] > 0)].drop(columns="_b")


class PopularityRecommender:
    """The same recent best-sellers for everyone: the weakest sensible baseline."""

    name = "popular"

    def __init__(
        self, history: pd.DataFrame, now: pd.Timestamp, half_life_hours: float | None = None
    ) -> None:
        self.pop = popularity_scores(history, now, half_life_hours)

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        empty = pd.DataFrame(columns=["user_id", "item_id", "score"])
        return rank_with_backfill(empty, user_ids, n, self.name, self.pop, backfill_source=self.name)


def intent_from_history(history: pd.DataFrame, items: pd.DataFrame) -> dict[int, int]:
    """User → the most-weighted category of their latest session (browse/cart/fav/purchase events)."""
    ev = history[history["item_id"].notna()]
    if ev.empty:
        return {}
    last_session = ev.sort_values("ts").groupby("user_id")["session_id"].last()
    ev = ev[ev["session_id"].to_numpy() == last_session.reindex(ev["user_id"]).to_numpy()]
    cats = ev.assign(item_id=ev["item_id"].astype("int64")).merge(
        items[["item_id", "category_id"]], on="item_id"
    )
    cats["w"] = cats["behavior_type"].astype(str).map(event_weights("intent")).fillna(0.0)
    best = (
        cats.groupby(["user_id", "category_id"])["w"]
        .sum()
        .reset_index()
        .sort_values("w", ascending=False, kind="stable")
    )
    best = best.drop_duplicates("user_id")
    return dict(zip(best["user_id"].astype("int64"), best["category_id"].astype("int64")))


def intent_from_marts(intent: pd.DataFrame) -> dict[int, int]:
    """User → intent category from dbt ``fct_session_intent`` (rows without a category skipped)."""
    df = intent.dropna(subset=["intent_category_id"])
    return dict(zip(df["user_id"].astype("int64"), df["intent_category_id"].astype("int64")))


class IntentPopularityRecommender:
    """Best-sellers of the category the user's current session is about."""

    name = "intent_pop"

    def __init__(
        self, history: pd.DataFrame, items: pd.DataFrame, now: pd.Timestamp, user_intent: Mapping[int, int]
    ) -> None:
        self.pop = popularity_scores(history, now)
        cat = items.set_index("item_id")["category_id"]
        ranked = pd.DataFrame({"item_id": self.pop.index, "score": self.pop.to_numpy()})
        ranked["category_id"] = cat.reindex(ranked["item_id"]).to_numpy()
        self.by_category = ranked.dropna(subset=["category_id"])
        self.user_intent = dict(user_intent)

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        intents = pd.DataFrame(
            [(int(u), c) for u in user_ids if (c := self.user_intent.get(int(u))) is not None],
            columns=["user_id", "category_id"],
        )
        per_cat = self.by_category.groupby("category_id", sort=False).head(n)
        scores = intents.merge(per_cat, on="category_id")[["user_id", "item_id", "score"]]
        return rank_with_backfill(scores, user_ids, n, self.name, self.pop)


class RepeatRecommender:
    """The user's own recent, not-bought items: usually the strongest simple baseline on shop logs."""

    name = "repeat"

    def __init__(
        self,
        history: pd.DataFrame,
        now: pd.Timestamp,
        half_life_hours: float | None = None,
        pop: pd.Series | None = None,
    ) -> None:
        half_life_hours = number_var("repeat_half_life_hours") if half_life_hours is None else half_life_hours
        self.scores = recent_user_items(history, now, event_weights("repeat"), half_life_hours)
        self.pop = popularity_scores(history, now) if pop is None else pop

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        return rank_with_backfill(self.scores, user_ids, n, self.name, self.pop)


class CovisitationRecommender:
    """Items co-visited with the user's recent items, weighted by how recent and strong each was."""

    name = "covisit"

    def __init__(
        self,
        history: pd.DataFrame,
        covis: pd.DataFrame,
        now: pd.Timestamp,
        last_k: int = 20,
        half_life_hours: float = 24.0,
        pop: pd.Series | None = None,
    ) -> None:
        if covis.empty:
            raise ValueError("ml_covisitation is empty: run the dbt build before the co-visitation baseline")
        own = recent_user_items(
            history, now, event_weights("popularity"), half_life_hours, drop_purchased=False
        )
        own = own.sort_values("score", ascending=False, kind="stable").groupby("user_id").head(last_k)
        pairs = covis[["item_id", "similar_item_id", "score"]].rename(columns={"score": "pair"})
        joined = own.rename(columns={"score": "w"}).merge(pairs, on="item_id")
        joined["score"] = joined["w"] * joined["pair"]
        self.scores = (
            joined.groupby(["user_id", "similar_item_id"], as_index=False)["score"]
            .sum()
            .rename(columns={"similar_item_id": "item_id"})
        )
        self.pop = popularity_scores(history, now) if pop is None else pop

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        return rank_with_backfill(self.scores, user_ids, n, self.name, self.pop)


class BuyAgainRecommender:
    """The user's own purchases, ranked by the number of distinct baskets (sessions) that held each
    item, ties broken by the latest purchase: no parameter to tune, so nothing chosen by hand."""

    name = "buy_again"

    def __init__(self, history: pd.DataFrame, now: pd.Timestamp, pop: pd.Series | None = None) -> None:
        bought = history[(history["behavior_type"] == "purchase") & history["item_id"].notna()]
        self.scores = pd.DataFrame(columns=["user_id", "item_id", "score"])
        if not bought.empty:
            frame = pd.DataFrame(
                {
                    "user_id": bought["user_id"].astype("int64"),
                    "item_id": bought["item_id"].astype("int64"),
                    "session_id": bought["session_id"],
                    "ts": bought["ts"],
                }
            )
            agg = frame.groupby(["user_id", "item_id"], as_index=False).agg(
                baskets=("session_id", "nunique"), last_ts=("ts", "max")
            )
            # recency in (0, 1]: a tie-break that never outweighs one more basket
            age_days = (now - agg["last_ts"]).dt.total_seconds().clip(lower=0) / 86400.0
            agg["score"] = agg["baskets"] + 1.0 / (2.0 + age_days)
            self.scores = agg[["user_id", "item_id", "score"]]
        self.pop = popularity_scores(history, now) if pop is None else pop

    def recommend(self, user_ids: list[int], n: int) -> pd.DataFrame:
        return rank_with_backfill(self.scores, user_ids, n, self.name, self.pop)


def build_baselines(
    history: pd.DataFrame,
    items: pd.DataFrame,
    covis: pd.DataFrame,
    now: pd.Timestamp,
    user_intent: Mapping[int, int],
    user_history: pd.DataFrame | None = None,
) -> dict[str, object]:
    """The baselines of one cut (:data:`BASELINE_NAMES`), by name. ``user_history`` (default: ``history``) is what the
    per-user baselines read; a "rest of session" cut adds each user's revealed session start there,
    while popularity stays on ``history`` (events before the cut)."""
    own = history if user_history is None else user_history
    pop = popularity_scores(history, now)  # the repeat and co-visitation backfill, computed once
    return {
        "popular": PopularityRecommender(history, now),
        "intent_pop": IntentPopularityRecommender(history, items, now, user_intent),
        "repeat": RepeatRecommender(own, now, pop=pop),
        "covisit": CovisitationRecommender(own, covis, now, pop=pop),
        "buy_again": BuyAgainRecommender(own, now, pop=pop),
    }
