"""Candidate set and reranker features of one cut (train/serve parity: the same code for both).

Candidates are dbt ``ml_candidates`` (repeat + co-visitation + intent-category popularity + global
popularity) united with any extra source given as a frame ``(user_id, item_id, score)`` — the TF
two-tower retrieval is one such source. Each row is then joined with user features
(``dim_users``), item features (``dim_items``) and the session intent (``fct_session_intent``);
the TF ranker's score, when present, is one more column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from ml.contracts import CANDIDATE_COVISIT_VARIANTS, CANDIDATE_SCORES, USER_ITEM_RECENCY
from ml.features.datasets import CutData

SOURCE_SCORES = list(CANDIDATE_SCORES)
#: Columns never used as features (ids, labels, text).
NON_FEATURES = {
    "user_id",
    "item_id",
    "sources",
    "label",
    "clicked",
    "carted",
    "purchased",
    "category_id",
    "brand",
    "session_id",
    "last_event_ts",
    "query_terms",
    "last_items",
    "last_categories",
    "carted_not_bought",
    "intent_category_id",
    "top_category_id",
    "in_stock",
    "title",
    "category",
    "u_top_brand",
    "u_gender",
}


def _split_ids(text: object) -> list[int]:
    """A comma list of ids (most recent first) → ints; empty/NULL → []."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or text == "":
        return []
    if isinstance(text, (list, tuple, np.ndarray)):
        return [int(x) for x in text]
    return [int(x) for x in str(text).split(",") if x.strip()]


def union_candidates(base: pd.DataFrame, extra: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """``ml_candidates`` plus extra sources (``{name: (user_id, item_id, score)}``) as ``{name}_score`` columns.

    The typed co-visitation sums of ``ml_candidates`` ride along (0 for a candidate only an extra
    source proposed: it is no co-visitation neighbour that dbt saw)."""
    variants = list(CANDIDATE_COVISIT_VARIANTS)
    cols = ["user_id", "item_id", *SOURCE_SCORES, *variants]
    df = base[[c for c in cols if c in base.columns]].copy()
    for c in SOURCE_SCORES:
        if c not in df:
            df[c] = 0.0
    for name, frame in extra.items():
        add = frame[["user_id", "item_id", "score"]].rename(columns={"score": f"{name}_score"})
        df = df.merge(add, on=["user_id", "item_id"], how="outer")
    score_cols = [c for c in df.columns if c.endswith("_score")]
    df[score_cols] = df[score_cols].astype(float).fillna(0.0)
    present = [c for c in variants if c in df]
    df[present] = df[present].astype(float).fillna(0.0)
    df["user_id"] = df["user_id"].astype("int64")
    df["item_id"] = df["item_id"].astype("int64")
    df["n_sources"] = (df[score_cols] > 0).sum(axis=1)
    for c in score_cols:  # within-user rank of each source: scale-free across users
        df[c.replace("_score", "_rank")] = df.groupby("user_id")[c].rank(ascending=False, method="min")
    return df


def _intent_features(
    df: pd.DataFrame,
    intent: pd.DataFrame,
    now: pd.Timestamp,
    user_now: Mapping[int, pd.Timestamp] | None = None,
) -> pd.DataFrame:
    """Session-intent match features: intent category, strength, recent-category share, last-item position,
    and how live the session is (hours from its last event to the user's "now": the cut, a session
    cut's own moment, or the newest event when serving), its length and searches."""
    cols = [
        "user_id",
        "intent_category_id",
        "intent_strength",
        "last_items",
        "last_categories",
        "carted_not_bought",
        "session_start_ts",
        "last_event_ts",
        "session_events",
        "session_searches",
    ]
    it = intent[[c for c in cols if c in intent.columns]].copy()
    it["user_id"] = it["user_id"].astype("int64")
    if "last_event_ts" in it:
        last = pd.to_datetime(it.pop("last_event_ts"))
        ref = it["user_id"].map(user_now).fillna(now) if user_now else pd.Series(now, index=it.index)
        it["session_hours_since_last"] = ((pd.to_datetime(ref) - last).dt.total_seconds() / 3600.0).clip(
            lower=0.0
        )
        if "session_start_ts" in it:
            it["session_minutes"] = (
                last - pd.to_datetime(it.pop("session_start_ts"))
            ).dt.total_seconds() / 60.0
    for c in ("session_events", "session_searches"):
        if c in it:
            it[c] = it[c].astype(float)
    df = df.merge(it, on="user_id", how="left")
    df["intent_match"] = (df["category_id"] == df["intent_category_id"]).astype(float)
    df["intent_strength"] = (
        df["intent_strength"].astype(float).fillna(0.0) if "intent_strength" in df else 0.0
    )
    df["intent_match_strength"] = df["intent_match"] * df["intent_strength"]
    # share of the session's recent categories equal to the candidate's, and the candidate's position in last_items
    share: dict[tuple[int, int], float] = {}
    pos: dict[tuple[int, int], int] = {}
    carted: set[tuple[int, int]] = set()
    for row in it.itertuples(index=False):
        u = int(row.user_id)
        cats = _split_ids(getattr(row, "last_categories", None))
        for c in set(cats):
            share[(u, c)] = cats.count(c) / len(cats)
        for p, i in enumerate(_split_ids(getattr(row, "last_items", None))):
            pos.setdefault((u, i), p)
        carted.update((u, i) for i in _split_ids(getattr(row, "carted_not_bought", None)))
    keys_c = list(zip(df["user_id"], df["category_id"].fillna(-1).astype("int64")))
    keys_i = list(zip(df["user_id"], df["item_id"]))
    df["recent_category_share"] = [share.get(k, 0.0) for k in keys_c]
    df["last_item_pos"] = [pos.get(k, 99) for k in keys_i]
    df["in_cart_not_bought"] = [1.0 if k in carted else 0.0 for k in keys_i]
    return df


def _user_item_features(df: pd.DataFrame, user_items: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """The user's own history with the candidate: counts per type, carted-not-bought, hours since last
    touch, and (computed by dbt, NaN when undefined: never done, fewer than 2 purchases) hours since
    the last event of each type and the repeat-purchase rhythm (occasions, mean gap, due ratio)."""
    recency = [c for c in USER_ITEM_RECENCY if c in user_items]
    ui = user_items[
        [
            "user_id",
            "item_id",
            "n_browse",
            "n_cart",
            "n_fav",
            "n_purchase",
            "carted_not_bought",
            "last_event_ts",
            *recency,
        ]
    ].copy()
    ui[recency] = ui[recency].astype(float)
    ui = ui.astype({"user_id": "int64", "item_id": "int64"})
    ui["ui_hours_since_last"] = (now - pd.to_datetime(ui.pop("last_event_ts"))).dt.total_seconds() / 3600.0
    ui = ui.rename(
        columns={
            c: f"ui_{c}" for c in ("n_browse", "n_cart", "n_fav", "n_purchase", "carted_not_bought", *recency)
        }
    )
    df = df.merge(ui, on=["user_id", "item_id"], how="left")
    counts = ["ui_n_browse", "ui_n_cart", "ui_n_fav", "ui_n_purchase", "ui_carted_not_bought"]
    counts += [f"ui_{c}" for c in ("n_purchase_sessions", "n_purchase_days") if c in recency]
    df[counts] = df[counts].astype(float).fillna(0.0)
    df["ui_hours_since_last"] = df["ui_hours_since_last"].astype(float).fillna(24.0 * 365)
    return df


def build_features(
    cut: CutData,
    extra_sources: Mapping[str, pd.DataFrame] | None = None,
    tf_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per (user, candidate item) with every reranker feature (and ``label`` when the cut has labels)."""
    df = union_candidates(cut.candidates, extra_sources or {})
    items = cut.item_features.copy()
    items["item_id"] = items["item_id"].astype("int64")
    df = df.merge(
        items.drop(columns=[c for c in ("title", "category", "created_ts") if c in items]),
        on="item_id",
        how="left",
    )
    users = cut.users.copy()
    users["user_id"] = users["user_id"].astype("int64")
    df = df.merge(users.add_prefix("u_").rename(columns={"u_user_id": "user_id"}), on="user_id", how="left")
    if "u_top_category_id" in df:
        df["user_top_category_match"] = (df["category_id"] == df["u_top_category_id"]).astype(float)
        df = df.drop(columns="u_top_category_id")
    if "price" in df and "u_avg_price_viewed" in df:
        df["price_vs_user"] = df["price"].astype(float) / df["u_avg_price_viewed"].astype(float).replace(
            0, np.nan
        )
    sc = cut.extra.get("session_cuts")
    user_now = (
        dict(zip(sc["user_id"].astype("int64"), pd.to_datetime(sc["cut_ts"]))) if sc is not None else None
    )
    df = _intent_features(df, cut.intent, cut.now, user_now)
    if cut.user_items is not None:
        df = _user_item_features(df, cut.user_items, cut.now)
    if tf_scores is not None:
        df = df.merge(tf_scores[["user_id", "item_id", "tf_score"]], on=["user_id", "item_id"], how="left")
    if cut.labels is not None:
        lab = cut.labels.copy()
        lab["label"] = np.maximum.reduce(
            [lab["clicked"] * 1, lab["carted"] * 2, lab["purchased"] * 3]
        ).astype(int)
        cols = ["user_id", "item_id", "label", "clicked", "carted", "purchased"]
        df = df.merge(lab[cols].astype("int64"), on=["user_id", "item_id"], how="left")
        df[cols[2:]] = df[cols[2:]].fillna(0).astype(int)
    return df.sort_values(["user_id", "item_id"], kind="stable").reset_index(drop=True)


def feature_columns(frame: pd.DataFrame) -> list[str]:
    """Numeric columns usable as features (ids, labels and text excluded), in a stable order."""
    cols = [c for c in frame.columns if c not in NON_FEATURES and pd.api.types.is_numeric_dtype(frame[c])]
    return sorted(cols)


def candidate_recall(
    cands: pd.DataFrame,
    window: pd.DataFrame,
    users: Iterable[int],
    k: int | None = None,
    score: str | None = None,
) -> dict[str, float]:
    """Share of label-window positives (per type) of ``users`` that are among their candidates (top ``k`` by ``score``)."""
    c = cands[["user_id", "item_id"] + ([score] if score else [])]
    if k is not None and score is not None:
        c = c.sort_values(["user_id", score], ascending=[True, False]).groupby("user_id").head(k)
    have = set(zip(c["user_id"].astype("int64"), c["item_id"].astype("int64")))
    ev = window[window["item_id"].notna() & window["user_id"].isin(set(users))]
    out: dict[str, float] = {}
    groups = {
        "any": ("browse", "cart", "fav", "purchase"),
        "clicks": ("browse",),
        "carts": ("cart",),
        "orders": ("purchase",),
    }
    for name, types in groups.items():
        pos = set(
            zip(
                ev.loc[ev["behavior_type"].isin(types), "user_id"].astype("int64"),
                ev.loc[ev["behavior_type"].isin(types), "item_id"].astype("int64"),
            )
        )
        out[f"cand_recall_{name}"] = len(pos & have) / len(pos) if pos else float("nan")
    out["cand_per_user"] = len(c) / max(1, c["user_id"].nunique())
    return out
