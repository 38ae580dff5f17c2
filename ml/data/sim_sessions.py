"""The session engine: the k-th session of every user of a block simulated at once (a "round").

Each round picks every session's need (long-term category, switch, continuation, complement of the
last purchase), the items it looks at (fresh, revisited, a carted item come back to, distractions),
the funnel (views, carts, favs, purchases, complementary browsing) and the event times, then
carries what happened into the per-user memory the next round starts from.

The vectorised heart of the simulator, kept apart from the drawing of users and catalogue and from
the assembling of tables so each can be read on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ml.data.catalog import CATEGORIES
from ml.data.sim_catalog import Catalog
from ml.data.sim_config import BROWSE, CART, DAY, FAV, PURCHASE, SEARCH, SimConfig
from ml.data.sim_users import Users

# slot sources: a fresh item of the intent, a revisit from the user's history, a return to a carted
# item, an off-intent distraction
_NEW, _HIST, _CART_RETURN, _NOISE = range(4)
_VIEW_BUF = 24  # recent viewed items remembered per user
_CART_BUF = 8  # carted-not-bought items remembered per user


@dataclass
class State:
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
    def empty(cls, n: int) -> State:
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


class Round:
    """The k-th session of a set of users, simulated together."""

    def __init__(self, cfg: SimConfig, cat: Catalog, users: Users, st: State, rng: np.random.Generator):
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
        comp_pick = cat.comp[
            np.maximum(buy, 0), (rng.random(n) * np.maximum(cat.n_comp[np.maximum(buy, 0)], 1)).astype(int)
        ]
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
        cfg, rng, cat = self.cfg, self.rng, self.cat
        n = len(u)
        day = np.minimum((start // DAY).astype(np.int64), cfg.days - 1)
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
        buy = (cart & (rng.random(len(sess)) < p_buy)) | (
            (source == _CART_RETURN) & (rng.random(len(sess)) < 0.4)
        )

        # complementary browsing after a purchase
        buy_cat = np.full(n, -1, dtype=np.int64)
        buy_cat[sess[buy]] = cat.cat[item[buy]]
        has_comp = (buy_cat >= 0) & (cat.n_comp[np.maximum(buy_cat, 0)] > 0)
        n_comp = np.where(has_comp & (rng.random(n) < 0.5), 1 + rng.poisson(0.8, n), 0)
        c_sess = np.repeat(np.arange(n), n_comp)
        c_cat = cat.comp[
            buy_cat[c_sess], (rng.random(len(c_sess)) * cat.n_comp[buy_cat[c_sess]]).astype(np.int64)
        ]
        c_item = cat.sample(c_cat, day[c_sess], rng)

        # assemble: search first, views/carts/favs interleaved, checkout, then complements
        s_idx = np.flatnonzero(has_search)
        parts = [
            (s_idx, np.full(len(s_idx), -1.0), SEARCH, np.full(len(s_idx), -1)),
            (sess, k.astype(float), BROWSE, item),
            (ex_sess, ex_key, BROWSE, item[ex_slot]),
            (sess[cart], k[cart] + 0.005, CART, item[cart]),
            (sess[fav], k[fav] + 0.003, FAV, item[fav]),
            (sess[buy], m[sess[buy]] + 1.0 + 0.01 * k[buy], PURCHASE, item[buy]),
            (c_sess, m[c_sess] + 2.0 + _ranks_within(c_sess), BROWSE, c_item),
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
            "e_sess": e_sess,
            "e_type": e_type,
            "e_item": e_item,
            "e_ts": e_ts,
            "s_user": u,
            "s_start": start,
            "s_intent": intent,
            "s_switch": is_switch,
            "s_search": has_search,
            "s_first_item": item[offset],
        }

    def _times(self, e_sess: np.ndarray, e_type: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Seconds from window start: gaps of seconds to minutes, quick carts, a pause before checkout."""
        rng = self.rng
        ne = len(e_sess)
        gap = np.clip(rng.lognormal(np.log(30.0), 0.9, ne), 2.0, 900.0)
        gap = np.where(e_type == CART, rng.uniform(3, 25, ne), gap)
        gap = np.where(e_type == FAV, rng.uniform(2, 15, ne), gap)
        prev_type = np.concatenate([[-1], e_type[:-1]])
        gap = np.where(
            e_type == PURCHASE,
            np.where(prev_type == PURCHASE, rng.uniform(0.2, 2, ne), rng.uniform(30, 180, ne)),
            gap,
        )
        first = np.concatenate([[True], e_sess[1:] != e_sess[:-1]])
        gap[first] = 0.0
        cs = np.cumsum(gap)
        base = cs[np.flatnonzero(first)]
        return np.round(
            start[e_sess] + cs - np.repeat(base, np.diff(np.append(np.flatnonzero(first), ne))), 3
        )

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
