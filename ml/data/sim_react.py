"""Reactive simulated users: what the shoppers of a simulated shop do with the lists they are shown.

Given the simulated shop (its config: the catalogue and the users' latent taste are rebuilt from
the same seeds, exactly as :mod:`ml.data.simulate` drew them) and the lists served to users (user →
ranked items), each round some users visit, see the top ``shown`` items of their list and click
each with

    P(click) = ctr_max × position_bias(rank) × relevance(user, item) × fatigue(shows)

- ``position_bias(rank) = rank^-position_power``;
- ``relevance`` = category affinity (the session-intent category 1, another long-term category
  ``lt_affinity``, anything else ``off_affinity``) × price match (the simulator's price-gap
  kernel) × popularity (the item's within-category popularity quantile on the last simulated day);
- ``fatigue(shows) = 1`` below ``fatigue_after`` earlier unengaged shows of that item to that user,
  ``fatigue_decay^(shows − fatigue_after + 1)`` from there (an event on the item resets the count).

A click is a ``browse`` event; some clicks go on to ``cart`` and ``purchase``. A visitor also
browses on their own (``organic_share``: items of their intent category, as the simulator picks
them), which is engagement too. Output: rows of ``recsys_raw.impressions`` and of
``user_behavior`` (the raw contract columns), deterministic for (seed, round), vectorised.
:func:`load_reactions` writes both with the event loader (validation, quarantine, one transaction).

Apart from the offline simulator because it runs *after* publishing, round by round, against
whatever the serving tables hold (bench/fatigue.py closes the loop with it).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import numpy as np
import pandas as pd

from ml.data.sim_catalog import Catalog, build_catalog
from ml.data.sim_config import SimConfig, SimData
from ml.data.sim_users import Users, make_users

#: Columns of ``recsys_raw.impressions`` a reaction writes (impression_id is AUTO_INCREMENT).
IMPRESSION_COLUMNS: tuple[str, ...] = (
    "request_id",
    "user_id",
    "item_id",
    "rank",
    "model_version",
    "list_source",
    "arm",
    "endpoint",
    "served_at",
)


@dataclass(frozen=True)
class ReactParams:
    """How shoppers react to a served list (defaults: a plausible shop, CTR@10 of a few percent)."""

    shown: int = 10  # items of the list a visit shows
    round_hours: float = 24.0  # a round's length; a user visits with P = 1 - exp(-rate × hours / 24)
    ctr_max: float = 0.35  # click chance of a fully relevant item at rank 1, never shown before
    position_power: float = 0.8  # position bias rank^-power
    lt_affinity: float = 0.6  # relevance of a long-term category that is not the current intent
    off_affinity: float = 0.08  # relevance of any other category
    price_weight: float = 0.6  # share of relevance that depends on the price match
    popularity_weight: float = 0.5  # share of relevance that depends on the popularity quantile
    fatigue_after: int = 2  # earlier unengaged shows before fatigue starts (N)
    fatigue_decay: float = 0.5  # factor per unengaged show from there (1 = no fatigue)
    cart_given_click: float = 0.15  # × (0.5 + price match)
    purchase_given_cart: float = 0.3
    organic_share: float = 0.3  # visitors who also browse their intent category on their own

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"ReactParams.{f.name} must be >= 0, got {getattr(self, f.name)}")
        if self.shown < 1 or self.fatigue_decay > 1 or self.ctr_max > 1:
            raise ValueError("shown must be >= 1, fatigue_decay and ctr_max at most 1")

    def fatigue(self, shows: np.ndarray) -> np.ndarray:
        shows = np.asarray(shows, dtype=float)
        after = float(self.fatigue_after)
        return np.where(shows >= after, self.fatigue_decay ** (shows - after + 1.0), 1.0)


def latent_users(cfg: SimConfig, cat: Catalog) -> Users:
    """Every simulated user's latent taste, redrawn block by block from the simulator's seeds
    (``make_users`` is the first draw of a block's generator, so this is exactly what it used)."""
    blocks = []
    for block, first in enumerate(range(0, cfg.users, cfg.users_per_block)):
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 1, block])))
        blocks.append(make_users(cfg, cat, first, min(cfg.users_per_block, cfg.users - first), rng))
    cat_fields = [f.name for f in fields(Users) if f.name != "frame"]
    joined = {name: np.concatenate([getattr(b, name) for b in blocks]) for name in cat_fields}
    return Users(**joined, frame=pd.concat([b.frame for b in blocks], ignore_index=True))


def _popularity_quantile(cat: Catalog, day: int) -> np.ndarray:
    """Each item's popularity quantile within its category on ``day`` (1 = the most popular)."""
    m = len(cat.item_id)
    flat = np.diff(cat.cum, prepend=0.0).reshape(-1, m)[day]
    weight = np.empty(m)
    weight[cat.order] = flat
    ranks = pd.Series(weight).groupby(cat.cat).rank(pct=True, method="average")
    return ranks.to_numpy()


class ReactiveShop:
    """The shoppers of one simulated shop and their memory of what they were shown.

    ``intents`` (optional) gives each user's current intent category (0-based per user index);
    by default the intent of their latest simulated session, else their first long-term category."""

    def __init__(self, cfg: SimConfig, params: ReactParams | None = None, data: SimData | None = None):
        self.cfg, self.params = cfg, params or ReactParams()
        self.cat = build_catalog(cfg)
        self.users = latent_users(cfg, self.cat)
        self.pop_q = _popularity_quantile(self.cat, cfg.days - 1)
        self.intent = self.users.lt_cats[:, 0].copy()
        if data is not None and len(data.intents):
            last = data.intents.sort_values("start_ts", kind="stable").groupby("user_id").tail(1)
            self.intent[self._user_index(last["user_id"].to_numpy())] = (
                last["intent_category_id"].to_numpy() - 1
            )
        self.unengaged = pd.Series(dtype="int64")  # pair key → unengaged shows so far

    def _user_index(self, user_id: np.ndarray) -> np.ndarray:
        idx = np.asarray(user_id, dtype=np.int64) - self.cfg.first_user_id
        if len(idx) and (idx.min() < 0 or idx.max() >= self.cfg.users):
            raise ValueError("lists name users the simulated shop does not have")
        return idx

    def _item_index(self, item_id: np.ndarray) -> np.ndarray:
        idx = np.asarray(item_id, dtype=np.int64) - self.cfg.first_item_id
        if len(idx) and (idx.min() < 0 or idx.max() >= self.cfg.items):
            raise ValueError("lists name items the simulated catalogue does not have")
        return idx

    def _pair(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        return u.astype(np.int64) * self.cfg.items + i

    def shows(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """Earlier unengaged shows of each (user index, item index)."""
        if self.unengaged.empty:
            return np.zeros(len(u), dtype=np.int64)
        return self.unengaged.reindex(self._pair(u, i), fill_value=0).to_numpy(dtype=np.int64)

    def relevance(self, u: np.ndarray, i: np.ndarray) -> np.ndarray:
        """relevance(user, item) in [0, 1] (module doc)."""
        p, cat, us = self.params, self.cat, self.users
        item_cat = cat.cat[i]
        in_lt = (us.lt_cats[u] == item_cat[:, None]).any(axis=1)
        affinity = np.where(item_cat == self.intent[u], 1.0, np.where(in_lt, p.lt_affinity, p.off_affinity))
        gap = np.log(cat.price[i]) - cat.log_median[item_cat] - us.price_pref[u]
        price = np.exp(-0.5 * (gap / 0.5) ** 2)
        return (
            affinity
            * (1 - p.price_weight + p.price_weight * price)
            * (1 - p.popularity_weight + p.popularity_weight * self.pop_q[i])
        )

    def click_probability(self, u: np.ndarray, i: np.ndarray, rank: np.ndarray) -> np.ndarray:
        p = self.params
        bias = np.asarray(rank, dtype=float) ** -p.position_power
        return p.ctr_max * bias * self.relevance(u, i) * p.fatigue(self.shows(u, i))

    def _round_rng(self, round_no: int) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.cfg.seed, 7, round_no])))

    def _draw_visits(self, rng: np.random.Generator, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The first draws of a round's stream: which of ``users`` visit and when (seconds after start)."""
        p = self.params
        users = np.sort(np.unique(np.asarray(users, dtype=np.int64)))
        rate = self.users.rate[self._user_index(users)]
        visits = users[rng.random(len(users)) < 1 - np.exp(-rate * p.round_hours / 24.0)]
        return visits, rng.uniform(0, 0.8 * p.round_hours * 3600, len(visits))

    def visits(self, users: np.ndarray, round_no: int) -> tuple[np.ndarray, np.ndarray]:
        """(visitors, seconds after the round's start) of round ``round_no`` among ``users``: exactly
        the visits :meth:`react` draws for the same population, so a caller can fetch each visitor's
        list when they come (e.g. from the reader, bench/ab_sim.py) before they react to it."""
        return self._draw_visits(self._round_rng(round_no), users)

    def react(
        self,
        lists: pd.DataFrame,
        start: datetime,
        round_no: int,
        model_version: str = "sim",
        users: np.ndarray | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """One round from ``start``: who visits, what they see and do. ``lists``: user_id, rank,
        item_id (ranks 1..k per user). ``users``: the population whose visits are drawn (default:
        the users of ``lists``; a visitor without a list sees nothing). Returns (impressions, events)
        frames in the raw columns and updates the users' memory. Deterministic for (cfg.seed,
        round_no), the population and the same lists."""
        p = self.params
        rng = self._round_rng(round_no)
        population = lists["user_id"].to_numpy() if users is None else users
        visits, visit_at = self._draw_visits(rng, population)
        seen = lists[(lists["rank"] <= p.shown) & lists["user_id"].isin(visits)]
        seen = seen.sort_values(["user_id", "rank"], kind="stable")
        uid = seen["user_id"].to_numpy(dtype=np.int64)
        u, i = self._user_index(uid), self._item_index(seen["item_id"].to_numpy())
        rank = seen["rank"].to_numpy(dtype=np.int64)
        offset = pd.Series(visit_at, index=visits).reindex(uid).to_numpy()
        served = pd.Timestamp(start) + pd.to_timedelta(np.round(offset * 1000), unit="ms")
        click = rng.random(len(u)) < self.click_probability(u, i, rank)
        impressions = pd.DataFrame(
            {
                "request_id": [f"sim-{round_no}-{x}" for x in uid],
                "user_id": uid,
                "item_id": seen["item_id"].to_numpy(dtype=np.int64),
                "rank": rank,
                "model_version": model_version,
                "list_source": "user_topn",
                "arm": None,
                "endpoint": "/recommendations",
                "served_at": served.to_numpy(dtype="datetime64[ms]"),
            }
        )
        events = self._events(rng, uid[click], u[click], i[click], offset[click], visits, visit_at, start)
        self._remember(u, i, click, events)
        return impressions, events

    def _events(self, rng, uid, u, i, t_click, visits, visit_at, start) -> pd.DataFrame:
        """Browse per click, some carts and purchases after it, and the visitors' own browsing."""
        p, cat = self.params, self.cat
        t_click = t_click + rng.uniform(5, 120, len(u))
        gap = np.log(cat.price[i]) - cat.log_median[cat.cat[i]] - self.users.price_pref[u]
        price = np.exp(-0.5 * (gap / 0.5) ** 2)
        cart = rng.random(len(u)) < p.cart_given_click * (0.5 + price)
        buy = cart & (rng.random(len(u)) < p.purchase_given_cart)
        t_cart = t_click + rng.uniform(10, 60, len(u))
        t_buy = t_cart + rng.uniform(30, 180, len(u))
        organic = rng.random(len(visits)) < p.organic_share
        o_users = np.repeat(visits[organic], 1 + rng.poisson(1.0, int(organic.sum())))
        o_u = self._user_index(o_users)
        o_item = self.cat.sample_matching(
            self.intent[o_u], np.full(len(o_u), self.cfg.days - 1), self.users.price_pref[o_u], rng
        )
        o_t = pd.Series(visit_at, index=visits).reindex(o_users).to_numpy() + rng.uniform(60, 600, len(o_u))
        parts = [
            (uid, i, "browse", t_click),
            (uid[cart], i[cart], "cart", t_cart[cart]),
            (uid[buy], i[buy], "purchase", t_buy[buy]),
            (o_users, o_item, "browse", o_t),
        ]
        user = np.concatenate([x[0] for x in parts]).astype(np.int64)
        secs = np.concatenate([x[3] for x in parts])
        ts = pd.Timestamp(start) + pd.to_timedelta(np.round(secs * 1000), unit="ms")
        visit_epoch = int(pd.Timestamp(start).timestamp())
        events = pd.DataFrame(
            {
                "user_id": user,
                "item_id": pd.array(self.cat.item_id[np.concatenate([x[1] for x in parts])], dtype="Int64"),
                "session_id": [f"{x}-r{visit_epoch}" for x in user],
                "behavior_type": np.concatenate([np.full(len(x[0]), x[2], dtype=object) for x in parts]),
                "query_text": None,
                "ts": ts.to_numpy(dtype="datetime64[ms]"),
            }
        )
        return events.sort_values(["ts", "user_id"], kind="stable", ignore_index=True)

    def _remember(self, u: np.ndarray, i: np.ndarray, click: np.ndarray, events: pd.DataFrame) -> None:
        """Unclicked shows add one to their pair's count; any event on a pair resets it to 0."""
        ignored = pd.Series(1, index=self._pair(u[~click], i[~click])).groupby(level=0).sum()
        counts = self.unengaged.add(ignored, fill_value=0).astype("int64")
        engaged = self._pair(
            self._user_index(events["user_id"].to_numpy()),
            self._item_index(events["item_id"].to_numpy(dtype=np.int64)),
        )
        self.unengaged = counts.drop(index=np.intersect1d(counts.index.to_numpy(), engaged))


def load_reactions(
    impressions: pd.DataFrame, events: pd.DataFrame, settings=None, now: datetime | None = None
):
    """Write one round: its events through validation (:mod:`ml.data.validate`) and the event
    loader, and its impressions, in one transaction. Returns the :class:`ml.data.ingest.LoadReport`.
    ``now``: the simulated clock the validation's "not in the future" check uses (default the wall
    clock; a simulation that runs ahead of it, as bench/ab_sim.py does, passes its own)."""
    from ml.config import get_settings
    from ml.data.ingest import write_batch
    from ml.data.validate import validate_events

    s = settings or get_settings()
    checked = validate_events(events, "simulate:react", now=None if now is None else pd.Timestamp(now))
    also = [("impressions", impressions, IMPRESSION_COLUMNS, "append")]
    return write_batch(checked, "simulate:react", s, also=also)
