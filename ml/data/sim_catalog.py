"""The simulated catalogue: items drawn from the category specs of :mod:`ml.data.catalog` with
brands, model lines, prices, launch days (cold start) and a popularity that drifts day by day, plus
the ``items`` table in the raw contract's columns.

Separate from the users and sessions because it is built once per simulation (seeded with
``SeedSequence([seed, 0])``; the model lines with ``SeedSequence([seed, 3])``, so adding them left
every other draw as it was) and shared, read-only, by every block of users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.data.catalog import CATEGORIES, MODEL_NUMBERS, TITLE_WORDS, complement_ids, model_names
from ml.data.sim_config import DAY, SimConfig


@dataclass
class Catalog:
    """Items as arrays plus a day × item popularity table for fast within-category sampling."""

    item_id: np.ndarray
    cat: np.ndarray  # 0-based category index
    brand: np.ndarray  # brand name per item
    model: np.ndarray  # model word per item ("z5"), one of its brand's model_names()
    price: np.ndarray
    created_day: np.ndarray  # -1 = existed before the window
    order: np.ndarray  # item indices sorted by category
    cat_lo: np.ndarray
    cat_hi: np.ndarray  # [cat_lo, cat_hi) range of `order` per category
    cum: np.ndarray  # cumulative popularity over the flattened (day, order) table
    log_median: np.ndarray  # log median price per category
    demand: np.ndarray  # category traffic shares
    comp: np.ndarray  # category × max complements, -1 padded (0-based)
    n_comp: np.ndarray

    def sample(self, cat: np.ndarray, day: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Item indices drawn by that day's popularity within each given category."""
        m = len(self.item_id)
        base = day.astype(np.int64) * m
        lo = base + self.cat_lo[cat]
        hi = base + self.cat_hi[cat]
        lo_val = np.where(lo > 0, self.cum[np.maximum(lo - 1, 0)], 0.0)
        hi_val = self.cum[hi - 1]
        target = lo_val + rng.random(len(cat)) * (hi_val - lo_val)
        pos = np.clip(np.searchsorted(self.cum, target, side="right"), lo, hi - 1)
        return self.order[pos - base]

    def sample_matching(
        self, cat: np.ndarray, day: np.ndarray, pref: np.ndarray, rng: np.random.Generator, k: int = 4
    ) -> np.ndarray:
        """Popular items that also fit a price preference: draw ``k`` by popularity, keep one
        with probability proportional to its price affinity."""
        n = len(cat)
        cand = self.sample(np.repeat(cat, k), np.repeat(day, k), rng).reshape(n, k)
        gap = np.log(self.price[cand]) - self.log_median[self.cat[cand]] - pref[:, None]
        w = np.exp(-0.5 * (gap / 0.35) ** 2) + 1e-3
        cw = np.cumsum(w, axis=1)
        pick = (cw < rng.random(n)[:, None] * cw[:, -1:]).sum(axis=1)
        return cand[np.arange(n), np.minimum(pick, k - 1)]


def build_catalog(cfg: SimConfig) -> Catalog:
    """Items with categories, brands, prices, launch days and drifting popularity."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 0])))
    n_cat, m, days = len(CATEGORIES), cfg.items, cfg.days
    demand = np.array([c.demand for c in CATEGORIES])
    demand = demand / demand.sum()
    cat = np.concatenate([np.arange(n_cat), rng.choice(n_cat, m - n_cat, p=demand)])
    is_new = rng.random(m) < cfg.new_item_share
    is_new[:n_cat] = False  # every category keeps at least one item from day 0
    if days < 2:
        is_new[:] = False
    perm = rng.permutation(m)
    cat, is_new = cat[perm], is_new[perm]
    created_day = np.where(is_new, rng.integers(1, max(days, 2), m), -1)

    brand = np.empty(m, dtype=object)
    price = np.empty(m)
    zipf = np.empty(m)
    for c, spec in enumerate(CATEGORIES):
        idx = np.flatnonzero(cat == c)
        bw = 1.0 / np.arange(1, len(spec.brands) + 1)
        b = rng.choice(len(spec.brands), len(idx), p=bw / bw.sum())
        premium = np.exp(rng.normal(0, 0.25, len(spec.brands)))
        brand[idx] = np.array(spec.brands, dtype=object)[b]
        price[idx] = spec.median_price * premium[b] * np.exp(rng.normal(0, 0.45, len(idx)))
        zipf[idx] = 1.0 / (rng.permutation(len(idx)) + 1.0) ** 1.05
    price = np.maximum(np.round(price) - 0.01, 0.99)

    walk = np.cumsum(rng.normal(0, 0.15, (days, m)), axis=0)
    day = np.arange(days)[:, None]
    age = day - created_day[None, :]
    launch = np.where(created_day[None, :] >= 0, 1.0 + 2.0 * np.exp(-np.maximum(age, 0) / 3.0), 1.0)
    weight = zipf[None, :] * np.exp(walk) * launch * (age >= 0)
    order = np.argsort(cat, kind="stable")
    cum = np.cumsum(weight[:, order].ravel())
    sorted_cat = cat[order]
    cat_lo = np.searchsorted(sorted_cat, np.arange(n_cat), side="left")
    cat_hi = np.searchsorted(sorted_cat, np.arange(n_cat), side="right")

    comp_map = complement_ids()
    width = max(len(v) for v in comp_map.values())
    comp = np.full((n_cat, width), -1)
    n_comp = np.zeros(n_cat, dtype=np.int64)
    for c in range(n_cat):
        ids = [x - 1 for x in comp_map[c + 1]]
        comp[c, : len(ids)] = ids
        n_comp[c] = len(ids)
    return Catalog(
        item_id=cfg.first_item_id + np.arange(m, dtype=np.int64),
        cat=cat,
        brand=brand,
        model=_models(brand, cfg.seed),
        price=price,
        created_day=created_day,
        order=order,
        cat_lo=cat_lo,
        cat_hi=cat_hi,
        cum=cum,
        log_median=np.log([c.median_price for c in CATEGORIES]),
        demand=demand,
        comp=comp,
        n_comp=n_comp,
    )


def _models(brand: np.ndarray, seed: int) -> np.ndarray:
    """A model line per item, the brand's first line the most common (weights 1/rank)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 3])))
    w = 1.0 / np.arange(1, len(MODEL_NUMBERS) + 1)
    pick = rng.choice(len(MODEL_NUMBERS), len(brand), p=w / w.sum())
    return np.array([model_names(str(b))[k] for b, k in zip(brand, pick)], dtype=object)


def _title(brand: str, model: str, adjective: str, category: int, code: int) -> str:
    """ "Zentek Z5 pro phone 512", and for a category with Chinese words the Chinese noun after it
    ("Zentek Z5 pro phone 512 手机"), as bilingual listings in such shops read."""
    spec = CATEGORIES[category]
    title = f"{brand.title()} {model.upper()} {adjective} {spec.words[0]} {code}"
    return f"{title} {spec.zh_words[0]}" if spec.zh_words else title


def items_frame(cat: Catalog, cfg: SimConfig) -> pd.DataFrame:
    """The ``items`` table: titles from brand + model line + adjective + category word (+ its
    Chinese word) + a code."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 2])))
    m = len(cat.item_id)
    adj = np.array(TITLE_WORDS, dtype=object)[rng.integers(0, len(TITLE_WORDS), m)]
    codes = rng.integers(100, 999, m)
    titles = [
        _title(b, mo, a, c, code) for b, mo, a, c, code in zip(cat.brand, cat.model, adj, cat.cat, codes)
    ]
    start = pd.Timestamp(cfg.start)
    before = pd.to_timedelta(rng.uniform(1, 720, m) * DAY, unit="s")
    during = pd.to_timedelta(np.maximum(cat.created_day, 0) * DAY, unit="s")  # launched at midnight
    created = np.where(cat.created_day >= 0, start + during, start - before)
    return pd.DataFrame(
        {
            "item_id": cat.item_id,
            "title": titles,
            "category_id": cat.cat + 1,
            "category": [CATEGORIES[c].name for c in cat.cat],
            "brand": cat.brand,
            "price": cat.price,
            "in_stock": (rng.random(m) > 0.04).astype(np.int8),
            "created_ts": pd.to_datetime(created).astype("datetime64[ms]"),
        }
    )
