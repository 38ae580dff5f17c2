"""A tiny hand-made shop for the search tests: two phone brands and a shoe category, sessions where a
shopper who browsed a brand before searching "phone" goes on to the same brand's phones.

The brand dependence is planted and small enough to learn in a second; users without a brand in
their session prefix engage with either brand at random.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.features.datasets import CutData

T0 = pd.Timestamp("2026-10-01 00:00:00")


def catalogue() -> pd.DataFrame:
    rows = []
    for i in range(1, 7):
        rows.append((i, f"acme phone model {i}", 1, "phones", "acme", 1))
    for i in range(7, 13):
        rows.append((i, f"zeta phone model {i}", 1, "phones", "zeta", 1))
    for i in range(13, 19):
        rows.append((i, f"runner shoe size {i}", 2, "shoes", "stride", 1))
    return pd.DataFrame(rows, columns=["item_id", "title", "category_id", "category", "brand", "in_stock"])


def _ev(
    user: int, session: str, kind: str, ts: pd.Timestamp, item: int | None = None, query: str | None = None
):
    return {
        "user_id": user,
        "item_id": item,
        "session_id": session,
        "behavior_type": kind,
        "query_text": query,
        "ts": ts,
    }


def sessions(start: pd.Timestamp, hours: float, n: int, seed: int, first_user: int = 1) -> pd.DataFrame:
    """``n`` sessions spread over ``hours`` after ``start``: a third browse an acme phone first, a
    third a zeta phone, a third nothing; then search "phone" (or "shoes") and engage after it."""
    rng = np.random.default_rng(seed)
    rows = []
    brands = {"acme": list(range(1, 7)), "zeta": list(range(7, 13))}
    for s in range(n):
        user = first_user + s % 40
        sid = f"s{seed}_{s}"
        t = start + pd.Timedelta(minutes=float(rng.uniform(0, hours * 60 - 30)))
        if rng.random() < 0.15:
            rows.append(_ev(user, sid, "search", t, query="running shoes"))
            rows.append(_ev(user, sid, "browse", t + pd.Timedelta(minutes=1), int(rng.integers(13, 19))))
            continue
        kind = ("acme", "zeta", None)[s % 3]
        if kind is not None:
            rows.append(_ev(user, sid, "browse", t, int(rng.choice(brands[kind]))))
        brand = kind or ("acme", "zeta")[int(rng.integers(2))]
        t_search = t + pd.Timedelta(minutes=1)
        rows.append(_ev(user, sid, "search", t_search, query="Phone!"))
        for j, item in enumerate(rng.choice(brands[brand], size=2, replace=False)):
            act = "cart" if j == 0 and rng.random() < 0.5 else "browse"
            rows.append(_ev(user, sid, act, t_search + pd.Timedelta(minutes=1 + j), int(item)))
    out = pd.DataFrame(rows)
    out["item_id"] = out["item_id"].astype("Int64")
    return out.sort_values("ts", kind="stable").reset_index(drop=True)


def search_cut(
    items: pd.DataFrame, history: pd.DataFrame, cut: pd.Timestamp, window: pd.DataFrame
) -> CutData:
    """A point-in-time cut with only what the search stage reads (catalogue, history, window)."""
    empty = pd.DataFrame()
    return CutData(
        cut_ts=cut,
        items=items,
        users=empty,
        item_features=empty,
        intent=empty,
        covis=empty,
        candidates=empty,
        history=history,
        purchased=pd.DataFrame(columns=["user_id", "item_id"]),
        window=window,
        label_hours=24,
    )
