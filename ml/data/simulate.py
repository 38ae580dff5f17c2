"""Shop-traffic simulator with planted, known session intent.

What it models (the ground truth later stages are judged on):
- a catalogue (``ml.data.catalog``): categories with search words, brands, per-category prices,
  Zipf-like popularity within a category that drifts day by day, items launched during the window
  (cold start, with a launch boost) and complementary categories (phone → case, charger);
- users with 1-3 long-term categories, a price preference, heavy-tailed activity, and new users
  signing up during the window;
- sessions: many open with a search whose text names the need; the session's **intent category**
  is usually one of the user's long-term categories, but a sizeable share carry an instant need
  outside them (``is_switch``); browsing stays mostly inside the intent, prefers popular and
  price-matching items, and revisits items the user viewed before (and comes back to buy carted
  ones), so a user's own recent items are predictive; funnel browse ≫ cart > purchase; purchases
  in categories with complements are often followed by browsing of a complement.

Generation is vectorised per "round" (the k-th session of every user at once) and per block of
users, so memory stays bounded and ten million events take minutes. Deterministic for a seed:
the catalogue uses ``SeedSequence([seed, 0])`` and user block ``b`` ``SeedSequence([seed, 1, b])``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from ml.data.catalog import CATEGORIES, NOISE_WORDS, TITLE_WORDS, complement_ids

BEHAVIOR_TYPES: tuple[str, ...] = ("search", "browse", "cart", "fav", "purchase")
_SEARCH, _BROWSE, _CART, _FAV, _PURCHASE = range(5)
# slot sources: a fresh item of the intent, a revisit from the user's history, a return to a carted
# item, an off-intent distraction
_NEW, _HIST, _CART_RETURN, _NOISE = range(4)
_DAY = 86400.0
_VIEW_BUF = 24  # recent viewed items remembered per user
_CART_BUF = 8  # carted-not-bought items remembered per user
_LOCATIONS = (
    "Berlin", "Hamburg", "Munich", "Paris", "Lyon", "Madrid", "Barcelona", "Rome", "Milan", "Vienna",
    "Warsaw", "Prague", "Amsterdam", "Brussels", "Lisbon", "Dublin", "Stockholm", "Oslo", "Helsinki", "Zurich",
)
# session start hour-of-day weights (quiet nights, evening peak)
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5, 4, 4, 3.5, 3.5, 3.5, 4, 5, 6, 6.5, 6, 4.5, 2.5]
)


@dataclass(frozen=True)
class SimConfig:
    """Size and behaviour knobs. ``start`` is the first simulated day (naive UTC midnight)."""

    users: int = 2000
    items: int = 1000
    days: int = 14
    seed: int = 42
    start: datetime = datetime(2026, 10, 1)
    sessions_per_day: float = 1.1  # mean sessions per active user per day (lognormal across users)
    search_share: float = 0.6  # chance a session opens with a search (higher for switched needs)
    switch_share: float = 0.33  # chance a fresh session's need lies outside the long-term taste
    new_user_share: float = 0.2  # users who sign up during the window
    new_item_share: float = 0.15  # items launched during the window
    users_per_block: int = 20000  # users simulated together (bounds memory; part of determinism)
    first_user_id: int = 1
    first_item_id: int = 1

    def __post_init__(self) -> None:
        if self.items < len(CATEGORIES):
            raise ValueError(f"items must be >= {len(CATEGORIES)} (one per category), got {self.items}")
        if self.users < 1 or self.days < 1:
            raise ValueError("users and days must be >= 1")


@dataclass
class SimData:
    """Simulated tables: ``users``/``items``/``events`` in the raw contract columns, ``intents`` the
    ground truth (one row per session), ``categories`` the catalogue (id, name, complements)."""

    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    intents: pd.DataFrame
    categories: pd.DataFrame = field(default_factory=lambda: categories_frame())

    def counts(self) -> dict[str, int]:
        """Additive counts (sum them over blocks, then :func:`summarize`)."""
        per_type = self.events["behavior_type"].value_counts()
        return {
            "users": len(self.users),
            "items": len(self.items),
            "events": len(self.events),
            "sessions": len(self.intents),
            "switch_sessions": int(self.intents["is_switch"].sum()) if len(self.intents) else 0,
            **{f"n_{t}": int(per_type.get(t, 0)) for t in BEHAVIOR_TYPES},
        }

    def summary(self) -> dict[str, float]:
        """Headline statistics (counts per type, funnel ratios, search and switch shares)."""
        return summarize(self.counts())


def summarize(counts: dict[str, int]) -> dict[str, float]:
    """Counts plus funnel ratios and the search and switch shares (per session)."""
    out: dict[str, float] = {k: v for k, v in counts.items() if k != "switch_sessions"}
    sessions = max(counts["sessions"], 1)
    out["cart_per_browse"] = counts["n_cart"] / max(counts["n_browse"], 1)
    out["purchase_per_cart"] = counts["n_purchase"] / max(counts["n_cart"], 1)
    out["search_share"] = counts["n_search"] / sessions
    out["switch_share"] = counts["switch_sessions"] / sessions
    return out


def categories_frame() -> pd.DataFrame:
    """The catalogue's categories: category_id, category, complements (comma list of ids)."""
    comp = complement_ids()
    return pd.DataFrame(
        {
            "category_id": np.arange(1, len(CATEGORIES) + 1),
            "category": [c.name for c in CATEGORIES],
            "complements": [",".join(map(str, comp[i + 1])) for i in range(len(CATEGORIES))],
        }
    )


# --------------------------------------------------------------------------------------------
# catalogue
# --------------------------------------------------------------------------------------------


@dataclass
class Catalog:
    """Items as arrays plus a day × item popularity table for fast within-category sampling."""

    item_id: np.ndarray
    cat: np.ndarray  # 0-based category index
    brand: np.ndarray  # brand name per item
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


def items_frame(cat: Catalog, cfg: SimConfig) -> pd.DataFrame:
    """The ``items`` table: titles from brand + adjective + category word + model code."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 2])))
    m = len(cat.item_id)
    adj = np.array(TITLE_WORDS, dtype=object)[rng.integers(0, len(TITLE_WORDS), m)]
    words = [CATEGORIES[c].words[0] for c in cat.cat]
    codes = rng.integers(100, 999, m)
    titles = [f"{b.title()} {a} {w} {code}" for b, a, w, code in zip(cat.brand, adj, words, codes)]
    start = pd.Timestamp(cfg.start)
    before = pd.to_timedelta(rng.uniform(1, 720, m) * _DAY, unit="s")
    during = pd.to_timedelta(np.maximum(cat.created_day, 0) * _DAY, unit="s")  # launched at midnight
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


# --------------------------------------------------------------------------------------------
# users and their sessions, one block of users at a time
# --------------------------------------------------------------------------------------------


@dataclass
class _Users:
    """A block of users: profile columns plus the latent taste the simulator acts on."""

    user_id: np.ndarray
    signup_day: np.ndarray  # -1 = signed up before the window
    signup_s: np.ndarray  # signup time in seconds from the window start (negative = before)
    lt_cats: np.ndarray  # users × 3 long-term categories, -1 padded
    lt_w: np.ndarray  # users × 3 cumulative weights
    price_pref: np.ndarray
    rate: np.ndarray  # sessions per day
    frame: pd.DataFrame


def _make_users(cfg: SimConfig, cat: Catalog, first: int, n: int, rng: np.random.Generator) -> _Users:
    n_cat = len(CATEGORIES)
    user_id = cfg.first_user_id + first + np.arange(n, dtype=np.int64)
    is_new = (rng.random(n) < cfg.new_user_share) & (cfg.days > 1)
    signup_day = np.where(is_new, rng.integers(1, max(cfg.days, 2), n), -1)
    keys = np.log(cat.demand)[None, :] + rng.gumbel(size=(n, n_cat))
    top = np.argsort(-keys, axis=1)[:, :3]
    n_lt = 1 + rng.binomial(2, 0.4, n)
    lt = np.where(np.arange(3)[None, :] < n_lt[:, None], top, -1)
    w = np.where(lt >= 0, 0.5 ** np.arange(3)[None, :] * rng.uniform(0.7, 1.3, (n, 3)), 0.0)
    lt_w = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    rate = np.clip(rng.lognormal(np.log(cfg.sessions_per_day) - 0.5, 1.0, n), 0.02, 8.0)
    start = pd.Timestamp(cfg.start)
    offset = np.where(is_new, signup_day + rng.uniform(0, 0.9, n), -rng.uniform(1, 900, n))
    frame = pd.DataFrame(
        {
            "user_id": user_id,
            "gender": rng.choice(np.array(["F", "M", None], dtype=object), n, p=[0.48, 0.45, 0.07]),
            "age": np.clip(rng.normal(36, 12, n), 16, 85).astype(np.int64),
            "location": np.array(_LOCATIONS, dtype=object)[rng.integers(0, len(_LOCATIONS), n)],
            "signup_ts": (start + pd.to_timedelta(offset * _DAY, unit="s")).astype("datetime64[ms]"),
        }
    )
    return _Users(user_id, signup_day, offset * _DAY, lt, lt_w, rng.normal(0, 0.35, n), rate, frame)


def _plan_sessions(cfg: SimConfig, users: _Users, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Planned session starts (seconds from window start) per user, and each one's rank within
    its user; returned ordered by (rank, user) so each round is a contiguous slice."""
    n, days = len(users.user_id), cfg.days
    weekday = np.array([(pd.Timestamp(cfg.start) + pd.Timedelta(days=d)).dayofweek for d in range(days)])
    day_factor = np.where(weekday >= 5, 1.2, 1.0)
    active = np.arange(days)[None, :] >= users.signup_day[:, None]
    counts = np.minimum(rng.poisson(users.rate[:, None] * day_factor[None, :]), 10) * active
    cell = np.repeat(np.arange(n * days), counts.ravel())
    user, day = cell // days, cell % days
    hour = rng.choice(24, len(cell), p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    planned = day * _DAY + hour * 3600.0 + rng.uniform(0, 3600, len(cell))
    planned = np.maximum(planned, users.signup_s[user] + 60.0)  # nobody shops before signing up
    o = np.lexsort((planned, user))
    user, planned = user[o], planned[o]
    starts = np.searchsorted(user, user, side="left")
    rank = np.arange(len(user)) - starts
    o = np.lexsort((user, rank))
    return user[o], planned[o], rank[o]


@dataclass
class _State:
    """Per-user memory carried from one session to the next."""

    vbuf: np.ndarray
    vptr: np.ndarray
    vfill: np.ndarray
    cbuf: np.ndarray
    cptr: np.ndarray
    prev_intent: np.ndarray
    prev_buy_cat: np.ndarray
    prev_end: np.ndarray

    @classmethod
    def empty(cls, n: int) -> _State:
        return cls(
            vbuf=np.full((n, _VIEW_BUF), -1, dtype=np.int64),
            vptr=np.zeros(n, dtype=np.int64),
            vfill=np.zeros(n, dtype=np.int64),
            cbuf=np.full((n, _CART_BUF), -1, dtype=np.int64),
            cptr=np.zeros(n, dtype=np.int64),
            prev_intent=np.full(n, -1, dtype=np.int64),
            prev_buy_cat=np.full(n, -1, dtype=np.int64),
            prev_end=np.full(n, -np.inf),
        )


def _ranks_within(group: np.ndarray) -> np.ndarray:
    """0-based position of each element within its run of equal (sorted) group ids."""
    if len(group) == 0:
        return group
    return np.arange(len(group)) - np.searchsorted(group, group, side="left")


class _Round:
    """The k-th session of a set of users, simulated together."""

    def __init__(self, cfg: SimConfig, cat: Catalog, users: _Users, st: _State, rng: np.random.Generator):
        self.cfg, self.cat, self.users, self.st, self.rng = cfg, cat, users, st, rng

    def intents(self, u: np.ndarray, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each session's need: a complement of the last purchase, a continuation of the last
        session, a switch outside the long-term taste, or (mostly) a long-term category."""
        rng, st, us, cat = self.rng, self.st, self.users, self.cat
        n = len(u)
        lt = us.lt_cats[u]
        pick = (us.lt_w[u] < rng.random(n)[:, None]).sum(axis=1)
        intent = lt[np.arange(n), np.minimum(pick, 2)]
        intent = np.where(intent >= 0, intent, lt[:, 0])
        switch = rng.random(n) < self.cfg.switch_share
        other = rng.choice(len(CATEGORIES), n, p=cat.demand)
        for _ in range(4):  # redraw switched needs that landed inside the long-term taste
            clash = (lt == other[:, None]).any(axis=1)
            other = np.where(clash, rng.choice(len(CATEGORIES), n, p=cat.demand), other)
        intent = np.where(switch, other, intent)
        cont = (st.prev_intent[u] >= 0) & (rng.random(n) < 0.2)
        intent = np.where(cont, st.prev_intent[u], intent)
        buy = st.prev_buy_cat[u]
        has_comp = (buy >= 0) & (cat.n_comp[np.maximum(buy, 0)] > 0)
        to_comp = has_comp & (rng.random(n) < 0.3)
        comp_pick = cat.comp[np.maximum(buy, 0), (rng.random(n) * np.maximum(cat.n_comp[np.maximum(buy, 0)], 1)).astype(int)]
        intent = np.where(to_comp, comp_pick, intent)
        is_switch = ~(lt == intent[:, None]).any(axis=1)
        return intent, is_switch

    def slots(self, u: np.ndarray, day: np.ndarray, intent: np.ndarray, m: np.ndarray):
        """The distinct things a session looks at: fresh intent items, revisits of the user's
        history in that category, a return to a carted item, off-intent distractions."""
        rng, st, cat = self.rng, self.st, self.cat
        n_slot = int(m.sum())
        sess = np.repeat(np.arange(len(u)), m)
        k = _ranks_within(sess)
        su, sday, sint = u[sess], day[sess], intent[sess]
        r = rng.random(n_slot)
        source = np.where(r < 0.07, _NOISE, np.where(r < 0.37, _HIST, _NEW))
        # revisit: recent items weigh more
        fill = st.vfill[su]
        off = np.minimum(rng.exponential(5.0, n_slot).astype(np.int64), np.maximum(fill - 1, 0))
        hist_idx = (st.vptr[su] - 1 - off) % _VIEW_BUF
        hist_item = st.vbuf[su, hist_idx]
        hist_ok = (source == _HIST) & (fill > 0) & (hist_item >= 0)
        hist_ok &= cat.cat[np.maximum(hist_item, 0)] == sint
        source = np.where((source == _HIST) & ~hist_ok, _NEW, source)
        slot_cat = np.where(source == _NOISE, rng.choice(len(CATEGORIES), n_slot, p=cat.demand), sint)
        item = cat.sample_matching(slot_cat, sday, self.users.price_pref[su], rng)
        item = np.where(source == _HIST, hist_item, item)
        # come back to a carted item (slot 0 of some sessions)
        cart_j = rng.integers(0, _CART_BUF, len(u))
        carted = st.cbuf[u, cart_j]
        back = (carted >= 0) & (rng.random(len(u)) < 0.5)
        back &= (cat.cat[np.maximum(carted, 0)] == intent) | (rng.random(len(u)) < 0.2)
        first = np.flatnonzero(k == 0)
        item[first] = np.where(back, carted, item[first])
        source[first] = np.where(back, _CART_RETURN, source[first])
        return sess, k, item, source, cart_j, back

    def run(self, u: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
        """Simulate the sessions; returns event arrays (session-local index, type, item, ts) and
        per-session arrays (user, start, intent, is_switch, has_search, first item)."""
        cfg, rng, st, cat = self.cfg, self.rng, self.st, self.cat
        n = len(u)
        day = np.minimum((start // _DAY).astype(np.int64), cfg.days - 1)
        intent, is_switch = self.intents(u, day)
        p_search = np.clip(cfg.search_share * np.where(is_switch, 1.2, 0.9), 0, 1)
        has_search = rng.random(n) < p_search
        m = np.minimum(1 + rng.poisson(2.4, n), 12)
        sess, k, item, source, cart_j, back = self.slots(u, day, intent, m)
        offset = np.cumsum(m) - m

        # extra views of already-seen slots, interleaved after their first view
        n_extra = rng.poisson(0.7 * m)
        ex_sess = np.repeat(np.arange(n), n_extra)
        ex_k = (rng.random(len(ex_sess)) * m[ex_sess]).astype(np.int64)
        ex_slot = offset[ex_sess] + ex_k
        views = 1 + np.bincount(ex_slot, minlength=len(sess))
        ex_key = ex_k + 0.01 + rng.random(len(ex_sess)) * (m[ex_sess] - ex_k)

        # funnel per slot
        gap = np.log(cat.price[item]) - cat.log_median[cat.cat[item]] - self.users.price_pref[u[sess]]
        fit = np.exp(-0.5 * (gap / 0.5) ** 2)
        p_cart = 0.075 * (1 + 0.6 * (views - 1)) * (0.6 + 0.8 * fit)
        p_cart *= np.select([source == _HIST, source == _NOISE], [2.0, 0.3], 1.0)
        cart = (source != _CART_RETURN) & (rng.random(len(sess)) < p_cart)
        fav = rng.random(len(sess)) < 0.02 * np.where(source == _HIST, 2.0, 1.0)
        p_buy = np.where(source == _HIST, 0.38, 0.27)
        buy = (cart & (rng.random(len(sess)) < p_buy)) | ((source == _CART_RETURN) & (rng.random(len(sess)) < 0.4))

        # complementary browsing after a purchase
        buy_cat = np.full(n, -1, dtype=np.int64)
        buy_cat[sess[buy]] = cat.cat[item[buy]]
        has_comp = (buy_cat >= 0) & (cat.n_comp[np.maximum(buy_cat, 0)] > 0)
        n_comp = np.where(has_comp & (rng.random(n) < 0.5), 1 + rng.poisson(0.8, n), 0)
        c_sess = np.repeat(np.arange(n), n_comp)
        c_cat = cat.comp[buy_cat[c_sess], (rng.random(len(c_sess)) * cat.n_comp[buy_cat[c_sess]]).astype(np.int64)]
        c_item = cat.sample(c_cat, day[c_sess], rng)

        # assemble: search first, views/carts/favs interleaved, checkout, then complements
        s_idx = np.flatnonzero(has_search)
        parts = [
            (s_idx, np.full(len(s_idx), -1.0), _SEARCH, np.full(len(s_idx), -1)),
            (sess, k.astype(float), _BROWSE, item),
            (ex_sess, ex_key, _BROWSE, item[ex_slot]),
            (sess[cart], k[cart] + 0.005, _CART, item[cart]),
            (sess[fav], k[fav] + 0.003, _FAV, item[fav]),
            (sess[buy], m[sess[buy]] + 1.0 + 0.01 * k[buy], _PURCHASE, item[buy]),
            (c_sess, m[c_sess] + 2.0 + _ranks_within(c_sess), _BROWSE, c_item),
        ]
        e_sess = np.concatenate([p[0] for p in parts])
        e_key = np.concatenate([p[1] for p in parts])
        e_type = np.concatenate([np.full(len(p[0]), p[2], dtype=np.int8) for p in parts])
        e_item = np.concatenate([p[3] for p in parts]).astype(np.int64)
        o = np.lexsort((e_key, e_sess))
        e_sess, e_type, e_item = e_sess[o], e_type[o], e_item[o]
        e_ts = self._times(e_sess, e_type, start)
        end = np.full(n, -np.inf)
        np.maximum.at(end, e_sess, e_ts)
        self._remember(u, sess, k, item, cart & ~buy, buy, back, cart_j, buy_cat, intent, end)
        return {
            "e_sess": e_sess, "e_type": e_type, "e_item": e_item, "e_ts": e_ts,
            "s_user": u, "s_start": start, "s_intent": intent, "s_switch": is_switch,
            "s_search": has_search, "s_first_item": item[offset],
        }

    def _times(self, e_sess: np.ndarray, e_type: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Seconds from window start: gaps of seconds to minutes, quick carts, a pause before checkout."""
        rng = self.rng
        ne = len(e_sess)
        gap = np.clip(rng.lognormal(np.log(30.0), 0.9, ne), 2.0, 900.0)
        gap = np.where(e_type == _CART, rng.uniform(3, 25, ne), gap)
        gap = np.where(e_type == _FAV, rng.uniform(2, 15, ne), gap)
        prev_type = np.concatenate([[-1], e_type[:-1]])
        gap = np.where(e_type == _PURCHASE, np.where(prev_type == _PURCHASE, rng.uniform(0.2, 2, ne), rng.uniform(30, 180, ne)), gap)
        first = np.concatenate([[True], e_sess[1:] != e_sess[:-1]])
        gap[first] = 0.0
        cs = np.cumsum(gap)
        base = cs[np.flatnonzero(first)]
        return np.round(start[e_sess] + cs - np.repeat(base, np.diff(np.append(np.flatnonzero(first), ne))), 3)

    def _remember(self, u, sess, k, item, open_cart, buy, back, cart_j, buy_cat, intent, end) -> None:
        """Carry the session into the users' memory: viewed items, open carts, last need."""
        st = self.st
        su = u[sess]
        st.vbuf[su, (st.vptr[su] + k) % _VIEW_BUF] = item
        m = np.bincount(sess, minlength=len(u))
        st.vptr[u] += m
        st.vfill[u] = np.minimum(st.vfill[u] + m, _VIEW_BUF)
        bought_back = back & np.isin(np.arange(len(u)), sess[buy & (k == 0)])
        st.cbuf[u[bought_back], cart_j[bought_back]] = -1
        oc_sess = sess[open_cart]
        rank = _ranks_within(oc_sess)
        cu = u[oc_sess]
        st.cbuf[cu, (st.cptr[cu] + rank) % _CART_BUF] = item[open_cart]
        st.cptr[u] += np.bincount(oc_sess, minlength=len(u))
        st.prev_intent[u] = intent
        st.prev_buy_cat[u] = buy_cat
        st.prev_end[u] = end


def _typo(word: str, r: np.ndarray) -> str:
    """Delete, double or swap one letter (what thumbs do)."""
    if len(word) < 4:
        return word
    i = 1 + int(r[0] * (len(word) - 2))
    op = int(r[1] * 3)
    if op == 0:
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :]


def make_queries(intent: np.ndarray, brand: np.ndarray, rng: np.random.Generator) -> list[str]:
    """Query text naming the need: a category word, sometimes a brand (the brand of the first item
    browsed when given, else None → one of the category's brands), noise words, typos."""
    n = len(intent)
    r = rng.random((n, 8))
    out = []
    for i in range(n):
        spec = CATEGORIES[intent[i]]
        words = [spec.words[int(r[i, 0] * len(spec.words))]]
        if r[i, 1] < 0.3:
            own = brand[i] is not None and r[i, 7] < 0.8
            words.insert(0, str(brand[i]) if own else spec.brands[int(r[i, 6] * len(spec.brands))])
        if r[i, 2] < 0.35:
            noise = NOISE_WORDS[int(r[i, 3] * len(NOISE_WORDS))]
            words = [noise, *words] if r[i, 3] < 0.5 else [*words, noise]
        if r[i, 4] < 0.08:
            j = int(r[i, 5] * len(words))
            words[j] = _typo(words[j], r[i, 5:7])
        out.append(" ".join(words))
    return out


def _simulate_block(cfg: SimConfig, cat: Catalog, first: int, n: int, block: int) -> SimData:
    """One block of users end to end: profiles, planned sessions, rounds, frames."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 1, block])))
    users = _make_users(cfg, cat, first, n, rng)
    plan_user, planned, rank = _plan_sessions(cfg, users, rng)
    st = _State.empty(n)
    bounds = np.searchsorted(rank, np.arange(int(rank.max(initial=-1)) + 2))
    out: list[dict[str, np.ndarray]] = []
    horizon = cfg.days * _DAY
    for r in range(len(bounds) - 1):
        u = plan_user[bounds[r] : bounds[r + 1]]
        start = np.maximum(planned[bounds[r] : bounds[r + 1]], st.prev_end[u] + 1860.0 + rng.uniform(0, 900, len(u)))
        keep = start < horizon - 1800.0
        if keep.any():
            out.append(_Round(cfg, cat, users, st, rng).run(u[keep], start[keep]))
    return _frames(cfg, cat, users, out, rng)


def _frames(cfg: SimConfig, cat: Catalog, users: _Users, rounds: list[dict[str, np.ndarray]], rng) -> SimData:
    """Concatenate rounds into the raw-contract events and the ground-truth intents."""
    if not rounds:
        return SimData(users.frame, pd.DataFrame(), _empty_events(), _empty_intents())
    cols = {key: np.concatenate([r[key] for r in rounds]) for key in rounds[0] if key.startswith("s_")}
    sess_base = np.cumsum([0] + [len(r["s_user"]) for r in rounds[:-1]])
    e_sess = np.concatenate([r["e_sess"] + b for r, b in zip(rounds, sess_base)])
    e_type = np.concatenate([r["e_type"] for r in rounds])
    e_item = np.concatenate([r["e_item"] for r in rounds])
    e_ts = np.concatenate([r["e_ts"] for r in rounds])
    t0 = pd.Timestamp(cfg.start)
    uid = users.user_id[cols["s_user"]]
    epoch0 = int(t0.timestamp())
    session_id = pd.Series(uid).astype(str) + "-" + pd.Series(epoch0 + cols["s_start"].astype(np.int64)).astype(str)
    queries = np.full(len(uid), None, dtype=object)
    s_idx = np.flatnonzero(cols["s_search"])
    first = cols["s_first_item"][s_idx]
    brand = np.where(cat.cat[first] == cols["s_intent"][s_idx], cat.brand[first], None)
    queries[s_idx] = make_queries(cols["s_intent"][s_idx], brand, rng)
    start_ts = t0 + pd.to_timedelta(np.round(cols["s_start"] * 1000).astype(np.int64), unit="ms")
    intents = pd.DataFrame(
        {
            "session_id": session_id.to_numpy(dtype=object),
            "user_id": uid,
            "intent_category_id": cols["s_intent"] + 1,
            "long_term_category_id": users.lt_cats[cols["s_user"], 0] + 1,
            "is_switch": cols["s_switch"].astype(np.int8),
            "query_text": queries,
            "start_ts": start_ts.astype("datetime64[ms]"),
        }
    )
    is_search = e_type == _SEARCH
    events = pd.DataFrame(
        {
            "user_id": uid[e_sess],
            "item_id": pd.array(np.where(is_search, 0, cat.item_id[np.maximum(e_item, 0)]), dtype="Int64"),
            "session_id": intents["session_id"].to_numpy()[e_sess],
            "behavior_type": np.array(BEHAVIOR_TYPES, dtype=object)[e_type],
            "query_text": np.where(is_search, queries[e_sess], None),
            "ts": (t0 + pd.to_timedelta(np.round(e_ts * 1000).astype(np.int64), unit="ms")).astype("datetime64[ms]"),
        }
    )
    events.loc[is_search, "item_id"] = pd.NA
    events = events.sort_values(["ts", "user_id"], kind="stable").reset_index(drop=True)
    return SimData(users.frame, pd.DataFrame(), events, intents)


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": pd.Series(dtype="int64"),
            "item_id": pd.Series(dtype="Int64"),
            "session_id": pd.Series(dtype=object),
            "behavior_type": pd.Series(dtype=object),
            "query_text": pd.Series(dtype=object),
            "ts": pd.Series(dtype="datetime64[ms]"),
        }
    )


def _empty_intents() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "session_id": pd.Series(dtype=object),
            "user_id": pd.Series(dtype="int64"),
            "intent_category_id": pd.Series(dtype="int64"),
            "long_term_category_id": pd.Series(dtype="int64"),
            "is_switch": pd.Series(dtype="int8"),
            "query_text": pd.Series(dtype=object),
            "start_ts": pd.Series(dtype="datetime64[ms]"),
        }
    )


def iter_simulation(cfg: SimConfig) -> Iterator[SimData]:
    """Simulate block by block (bounded memory). The first block carries the items table; later
    blocks have an empty ``items`` frame. Concatenating the blocks gives :func:`simulate`."""
    cat = build_catalog(cfg)
    for block, first in enumerate(range(0, cfg.users, cfg.users_per_block)):
        n = min(cfg.users_per_block, cfg.users - first)
        data = _simulate_block(cfg, cat, first, n, block)
        if block == 0:
            data.items = items_frame(cat, cfg)
        yield data


def simulate(cfg: SimConfig) -> SimData:
    """The whole simulation in memory (use :func:`iter_simulation` for very large runs)."""
    blocks = list(iter_simulation(cfg))
    return SimData(
        users=pd.concat([b.users for b in blocks], ignore_index=True),
        items=blocks[0].items,
        events=pd.concat([b.events for b in blocks], ignore_index=True).sort_values(["ts", "user_id"], kind="stable", ignore_index=True),
        intents=pd.concat([b.intents for b in blocks], ignore_index=True),
    )


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def load_simulation(data: SimData, settings=None, *, batch_rows: int = 500_000):
    """Write a simulation (or one block of it) into ``recsys_raw``: users, items and the
    ground-truth ``sim_session_intent`` replace rows with the same key (one transaction); events
    go through validation (:mod:`ml.data.validate`) and are appended with LOAD DATA LOCAL INFILE
    in batches of ``batch_rows``, each batch with its quarantine rows one transaction.
    Returns the :class:`ml.data.ingest.LoadReport`."""
    from ml.config import get_settings
    from ml.data.ingest import LoadReport, write_batch
    from ml.data.load import INTENT_COLUMNS, ITEM_COLUMNS, QUARANTINE_COLUMNS, USER_COLUMNS, load_frame
    from ml.data.validate import validate_events, validate_items
    from ml.db import transaction

    s = settings or get_settings()
    raw = f"`{s.raw_db}`"
    items = validate_items(data.items, "simulate:items") if not data.items.empty else None
    report = LoadReport()
    with transaction(settings=s) as conn:
        report.users = load_frame(conn, f"{raw}.users", data.users, USER_COLUMNS, "replace")
        if items is not None:
            report.items = load_frame(conn, f"{raw}.items", items.clean, ITEM_COLUMNS, "replace")
            load_frame(conn, f"{raw}.user_behavior_quarantine", items.quarantine, QUARANTINE_COLUMNS)
            report.quarantined.update(items.quarantine["reason"].tolist())
        load_frame(conn, f"{raw}.sim_session_intent", data.intents, INTENT_COLUMNS, "replace")
    for lo in range(0, len(data.events), batch_rows):
        checked = validate_events(data.events.iloc[lo : lo + batch_rows], "simulate")
        report.add(write_batch(checked, "simulate", s))
    return report
