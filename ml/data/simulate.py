"""Shop-traffic simulator with planted, known session intent.

What it models (the ground truth later stages are judged on):
- a catalogue (``ml.data.catalog``): categories with search words, brands, per-category prices,
  Zipf-like popularity within a category that drifts day by day, items launched during the window
  (cold start, with a launch boost) and complementary categories (phone → case, charger);
- users with 1-3 long-term categories, a price preference, heavy-tailed activity, and new users
  signing up during the window;
- sessions: many open with a search whose text names the need (:mod:`ml.data.sim_queries`: a
  synonym of the category, sometimes its brand and model line, a Chinese word for a few categories,
  noise words, typos; its planted category/brand/model is kept in ``SimData.queries``); the session's **intent category**
  is usually one of the user's long-term categories, but a sizeable share carry an instant need
  outside them (``is_switch``); browsing stays mostly inside the intent, prefers popular and
  price-matching items, and revisits items the user viewed before (and comes back to buy carted
  ones), so a user's own recent items are predictive; funnel browse ≫ cart > purchase; purchases
  in categories with complements are often followed by browsing of a complement.

Generation is vectorised per "round" (the k-th session of every user at once) and per block of
users, so memory stays bounded and ten million events take minutes. Deterministic for a seed:
the catalogue uses ``SeedSequence([seed, 0])`` and user block ``b`` ``SeedSequence([seed, 1, b])``.

Modules: :mod:`ml.data.sim_config` (``SimConfig``, ``SimData``), :mod:`ml.data.sim_catalog` (items),
:mod:`ml.data.sim_users` (users and their planned sessions), :mod:`ml.data.sim_sessions` (the session
engine), :mod:`ml.data.sim_queries` (search text), :mod:`ml.data.sim_load` (loading into MySQL). This
module runs them block by block and assembles the tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ml.data.sim_catalog import Catalog, build_catalog, items_frame
from ml.data.sim_config import BEHAVIOR_TYPES, DAY, SEARCH, SimConfig, SimData, empty_query_truth
from ml.data.sim_queries import plan_queries
from ml.data.sim_sessions import Round, State
from ml.data.sim_users import Users, make_users, plan_sessions


def _simulate_block(cfg: SimConfig, cat: Catalog, first: int, n: int, block: int) -> SimData:
    """One block of users end to end: profiles, planned sessions, rounds, frames."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([cfg.seed, 1, block])))
    users = make_users(cfg, cat, first, n, rng)
    plan_user, planned, rank = plan_sessions(cfg, users, rng)
    st = State.empty(n)
    bounds = np.searchsorted(rank, np.arange(int(rank.max(initial=-1)) + 2))
    out: list[dict[str, np.ndarray]] = []
    horizon = cfg.days * DAY
    for r in range(len(bounds) - 1):
        u = plan_user[bounds[r] : bounds[r + 1]]
        start = np.maximum(
            planned[bounds[r] : bounds[r + 1]], st.prev_end[u] + 1860.0 + rng.uniform(0, 900, len(u))
        )
        keep = start < horizon - 1800.0
        if keep.any():
            out.append(Round(cfg, cat, users, st, rng).run(u[keep], start[keep]))
    return _frames(cfg, cat, users, out, rng)


def _frames(cfg: SimConfig, cat: Catalog, users: Users, rounds: list[dict[str, np.ndarray]], rng) -> SimData:
    """Concatenate rounds into the raw-contract events and the ground-truth intents."""
    if not rounds:
        return SimData(
            users.frame, pd.DataFrame(), _empty_events(), _empty_intents(), queries=empty_query_truth()
        )
    cols = {key: np.concatenate([r[key] for r in rounds]) for key in rounds[0] if key.startswith("s_")}
    sess_base = np.cumsum([0] + [len(r["s_user"]) for r in rounds[:-1]])
    e_sess = np.concatenate([r["e_sess"] + b for r, b in zip(rounds, sess_base)])
    e_type = np.concatenate([r["e_type"] for r in rounds])
    e_item = np.concatenate([r["e_item"] for r in rounds])
    e_ts = np.concatenate([r["e_ts"] for r in rounds])
    t0 = pd.Timestamp(cfg.start)
    uid = users.user_id[cols["s_user"]]
    epoch0 = int(t0.timestamp())
    session_id = (
        pd.Series(uid).astype(str) + "-" + pd.Series(epoch0 + cols["s_start"].astype(np.int64)).astype(str)
    )
    queries = np.full(len(uid), None, dtype=object)
    s_idx = np.flatnonzero(cols["s_search"])
    first = cols["s_first_item"][s_idx]
    in_intent = cat.cat[first] == cols["s_intent"][s_idx]
    brand = np.where(in_intent, cat.brand[first], None)
    model = np.where(in_intent, cat.model[first], None)
    truth = plan_queries(cols["s_intent"][s_idx], brand, rng, model)
    queries[s_idx] = truth["query_text"].to_numpy(dtype=object)
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
    is_search = e_type == SEARCH
    events = pd.DataFrame(
        {
            "user_id": uid[e_sess],
            "item_id": pd.array(np.where(is_search, 0, cat.item_id[np.maximum(e_item, 0)]), dtype="Int64"),
            "session_id": intents["session_id"].to_numpy()[e_sess],
            "behavior_type": np.array(BEHAVIOR_TYPES, dtype=object)[e_type],
            "query_text": np.where(is_search, queries[e_sess], None),
            "ts": (t0 + pd.to_timedelta(np.round(e_ts * 1000).astype(np.int64), unit="ms")).astype(
                "datetime64[ms]"
            ),
        }
    )
    events.loc[is_search, "item_id"] = pd.NA
    events = events.sort_values(["ts", "user_id"], kind="stable").reset_index(drop=True)
    truth.insert(0, "session_id", intents["session_id"].to_numpy()[s_idx])
    truth.insert(1, "user_id", uid[s_idx])
    truth["has_typo"] = truth["has_typo"].astype(np.int8)
    return SimData(users.frame, pd.DataFrame(), events, intents, queries=truth)


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
        events=pd.concat([b.events for b in blocks], ignore_index=True).sort_values(
            ["ts", "user_id"], kind="stable", ignore_index=True
        ),
        intents=pd.concat([b.intents for b in blocks], ignore_index=True),
        queries=pd.concat([b.queries for b in blocks], ignore_index=True),
    )
