"""Small synthetic data with planted signals, in the marts' column format (tests and bench only).

- Catalogue: ``n_items`` items in ``n_categories`` categories (category name ``catN``), brands,
  log-normal prices.
- Every user has one intent category; their ``last_items`` are drawn from it and their
  ``query_terms`` name it. Planted next item: each item has a fixed successor in its category
  (``successor``); a two-tower example's target is the successor of the most recent item.
- Ranker rows: candidates from the user's category (positives with high probability) and from
  other categories (rarely positive), with multi-task labels clicked ⊇ carted ⊇ purchased.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

USER_FEATURES = ("n_browse_7d", "purchase_rate")
ITEM_FEATURES = ("pop_browse_7d", "price_pct_in_category")


@dataclass
class World:
    items: pd.DataFrame
    successor: dict[int, int]
    n_categories: int


def make_world(n_items: int = 200, n_categories: int = 8, seed: int = 0) -> World:
    """Catalogue with item ids 1000.. and a successor permutation inside each category."""
    rng = np.random.default_rng(seed)
    ids = np.arange(1000, 1000 + n_items)
    cats = np.arange(n_items) % n_categories
    items = pd.DataFrame(
        {
            "item_id": ids,
            "category_id": cats + 1,
            "category": [f"cat{c + 1}" for c in cats],
            "title": [f"item {i} cat{c + 1} thing" for i, c in zip(ids, cats)],
            "brand": [f"brand{b}" for b in rng.integers(0, 12, n_items)],
            "price": np.round(rng.lognormal(3, 0.7, n_items), 2),
            "pop_browse_7d": rng.poisson(20, n_items),
            "price_pct_in_category": rng.uniform(0, 1, n_items),
        }
    )
    successor: dict[int, int] = {}
    for c in range(n_categories):
        members = ids[cats == c]
        perm = rng.permutation(members)
        for a, b in zip(perm, np.roll(perm, -1)):
            successor[int(a)] = int(b)
    return World(items=items, successor=successor, n_categories=n_categories)


def _context(world: World, rng: np.random.Generator, cat: int, hist_len: int) -> tuple[list[int], str]:
    pool = world.items.loc[world.items["category_id"] == cat, "item_id"].to_numpy()
    hist = [int(v) for v in rng.choice(pool, size=hist_len, replace=True)]
    noise = rng.choice(["cheap", "new", "best", "gift"], size=rng.integers(0, 2)).tolist()
    return hist, " ".join([f"cat{cat}", *noise])


def two_tower_sequences(world: World, n: int = 3000, seed: int = 1, hist_len: int = 6) -> pd.DataFrame:
    """Examples whose target is the planted successor of the most recent item."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n):
        cat = int(rng.integers(1, world.n_categories + 1))
        hist, q = _context(world, rng, cat, hist_len)
        cats = [cat] * len(hist)
        rows.append(
            {
                "user_id": u,
                "last_items": ",".join(map(str, hist)),
                "last_categories": ",".join(map(str, cats)),
                "query_terms": q,
                "item_id": world.successor[hist[0]],
                "intent_category_id": cat,
                "n_browse_7d": int(rng.poisson(10)),
                "purchase_rate": float(rng.uniform()),
            }
        )
    return pd.DataFrame(rows)


def ranker_rows(
    world: World, n_users: int = 300, cands_per_user: int = 10, seed: int = 2, hist_len: int = 6
) -> pd.DataFrame:
    """(user, candidate) rows with features and labels; half the candidates share the intent."""
    rng = np.random.default_rng(seed)
    items = world.items.set_index("item_id")
    rows = []
    for u in range(n_users):
        cat = int(rng.integers(1, world.n_categories + 1))
        hist, q = _context(world, rng, cat, hist_len)
        same = items.index[items["category_id"] == cat].to_numpy()
        other = items.index[items["category_id"] != cat].to_numpy()
        k_same = cands_per_user // 2
        cands = np.concatenate(
            [rng.choice(same, k_same, replace=False), rng.choice(other, cands_per_user - k_same, replace=False)]
        )
        for it in cands:
            it = int(it)
            match = items.at[it, "category_id"] == cat
            clicked = rng.uniform() < (0.7 if match else 0.08)
            carted = clicked and rng.uniform() < 0.5
            purchased = carted and rng.uniform() < 0.5
            rows.append(
                {
                    "user_id": u,
                    "item_id": it,
                    "category_id": int(items.at[it, "category_id"]),
                    "brand": items.at[it, "brand"],
                    "price": float(items.at[it, "price"]),
                    "title": items.at[it, "title"],
                    "category": items.at[it, "category"],
                    "last_items": ",".join(map(str, hist)),
                    "last_categories": ",".join([str(cat)] * len(hist)),
                    "query_terms": q,
                    "n_browse_7d": int(rng.poisson(10)),
                    "purchase_rate": float(rng.uniform()),
                    "pop_browse_7d": int(items.at[it, "pop_browse_7d"]),
                    "price_pct_in_category": float(items.at[it, "price_pct_in_category"]),
                    "clicked": int(clicked),
                    "carted": int(carted),
                    "purchased": int(purchased),
                    "label": int(clicked) + int(carted) + int(purchased),
                    "intent_category_id": cat,
                }
            )
    return pd.DataFrame(rows)
