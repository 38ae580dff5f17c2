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


def _histories(world: World, rng: np.random.Generator, cats: np.ndarray, hist_len: int) -> np.ndarray:
    """(n, hist_len) catalogue positions drawn (with replacement) from each row's category.

    Item at position i has category ``i % n_categories + 1`` (see :func:`make_world`)."""
    n_items, n_cat = len(world.items), world.n_categories
    c0 = cats - 1
    members = (n_items - c0 + n_cat - 1) // n_cat
    k = np.floor(rng.random((len(cats), hist_len)) * members[:, None]).astype(np.int64)
    return c0[:, None] + k * n_cat


def _queries(rng: np.random.Generator, cats: np.ndarray) -> list[str]:
    noise = np.array(["", " cheap", " new", " best", " gift"])[rng.integers(0, 5, len(cats))]
    return [f"cat{c}{w}" for c, w in zip(cats.tolist(), noise.tolist())]


def _join(pos: np.ndarray, offset: int = 0) -> list[str]:
    return [",".join(map(str, row)) for row in (pos + offset).tolist()]


def two_tower_sequences(world: World, n: int = 3000, seed: int = 1, hist_len: int = 6) -> pd.DataFrame:
    """Examples whose target is the planted successor of the most recent item."""
    rng = np.random.default_rng(seed)
    cats = rng.integers(1, world.n_categories + 1, n)
    hist = _histories(world, rng, cats, hist_len)
    ids = world.items["item_id"].to_numpy()
    successor = np.array([world.successor[int(i)] for i in ids])
    return pd.DataFrame(
        {
            "user_id": np.arange(n),
            "last_items": _join(ids[hist]),
            "last_categories": _join(np.repeat(cats[:, None], hist_len, axis=1)),
            "query_terms": _queries(rng, cats),
            "item_id": successor[hist[:, 0]],
            "intent_category_id": cats,
            "n_browse_7d": rng.poisson(10, n),
            "purchase_rate": rng.uniform(size=n),
        }
    )


def ranker_rows(
    world: World, n_users: int = 300, cands_per_user: int = 10, seed: int = 2, hist_len: int = 6
) -> pd.DataFrame:
    """(user, candidate) rows with features and labels; about half the candidates share the intent.

    Off-intent candidates are drawn with replacement, so a user may get slightly fewer than
    ``cands_per_user`` distinct rows."""
    rng = np.random.default_rng(seed)
    items = world.items
    n_items, n_cat = len(items), world.n_categories
    cats = rng.integers(1, n_cat + 1, n_users)
    hist = _histories(world, rng, cats, hist_len)
    k_same = cands_per_user // 2
    # same category: distinct members via a random order of each user's member slots
    members = (n_items - (cats - 1) + n_cat - 1) // n_cat
    order = rng.random((n_users, int(members.max())))
    order[np.arange(order.shape[1])[None, :] >= members[:, None]] = np.inf
    same = (cats - 1)[:, None] + np.argsort(order, axis=1)[:, :k_same] * n_cat
    other = rng.integers(0, n_items, (n_users, cands_per_user - k_same))
    other = np.where(other % n_cat == (cats - 1)[:, None], (other + 1) % n_items, other)
    pos = np.concatenate([same, other], axis=1)
    user = np.repeat(np.arange(n_users), cands_per_user)
    pos = pos.ravel()
    ids = items["item_id"].to_numpy()
    match = (pos % n_cat) == (cats[user] - 1)
    clicked = rng.random(len(pos)) < np.where(match, 0.7, 0.08)
    carted = clicked & (rng.random(len(pos)) < 0.5)
    purchased = carted & (rng.random(len(pos)) < 0.5)
    ctx = pd.DataFrame(
        {
            "last_items": _join(ids[hist]),
            "last_categories": _join(np.repeat(cats[:, None], hist_len, axis=1)),
            "query_terms": _queries(rng, cats),
            "n_browse_7d": rng.poisson(10, n_users),
            "purchase_rate": rng.uniform(size=n_users),
        }
    ).iloc[user]
    cand = items.iloc[pos][["item_id", "category_id", "brand", "price", "title", "category", *ITEM_FEATURES]]
    rows = pd.concat([cand.reset_index(drop=True), ctx.reset_index(drop=True)], axis=1)
    rows.insert(0, "user_id", user)
    rows = rows.assign(
        clicked=clicked.astype(int),
        carted=carted.astype(int),
        purchased=purchased.astype(int),
        label=clicked.astype(int) + carted.astype(int) + purchased.astype(int),
        intent_category_id=cats[user],
    )
    return rows.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)
