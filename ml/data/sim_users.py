"""The simulated users of one block: profile columns (the ``users`` table), the latent taste the
session engine acts on (1-3 long-term categories, a price preference, a heavy-tailed session rate,
sign-ups during the window) and when each user plans to shop.

Apart from the session engine because who the users are is drawn once per block, before any
session; :mod:`ml.data.sim_sessions` only reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.data.catalog import CATEGORIES
from ml.data.sim_catalog import Catalog
from ml.data.sim_config import DAY, SimConfig

_LOCATIONS = (
    "Berlin",
    "Hamburg",
    "Munich",
    "Paris",
    "Lyon",
    "Madrid",
    "Barcelona",
    "Rome",
    "Milan",
    "Vienna",
    "Warsaw",
    "Prague",
    "Amsterdam",
    "Brussels",
    "Lisbon",
    "Dublin",
    "Stockholm",
    "Oslo",
    "Helsinki",
    "Zurich",
)
# session start hour-of-day weights (quiet nights, evening peak)
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 3.5, 4, 4, 3.5, 3.5, 3.5, 4, 5, 6, 6.5, 6, 4.5, 2.5]
)


@dataclass
class Users:
    """A block of users: profile columns plus the latent taste the simulator acts on."""

    user_id: np.ndarray
    signup_day: np.ndarray  # -1 = signed up before the window
    signup_s: np.ndarray  # signup time in seconds from the window start (negative = before)
    lt_cats: np.ndarray  # users × 3 long-term categories, -1 padded
    lt_w: np.ndarray  # users × 3 cumulative weights
    price_pref: np.ndarray
    rate: np.ndarray  # sessions per day
    frame: pd.DataFrame


def make_users(cfg: SimConfig, cat: Catalog, first: int, n: int, rng: np.random.Generator) -> Users:
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
            "signup_ts": (start + pd.to_timedelta(offset * DAY, unit="s")).astype("datetime64[ms]"),
        }
    )
    return Users(user_id, signup_day, offset * DAY, lt, lt_w, rng.normal(0, 0.35, n), rate, frame)


def plan_sessions(
    cfg: SimConfig, users: Users, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    planned = day * DAY + hour * 3600.0 + rng.uniform(0, 3600, len(cell))
    planned = np.maximum(planned, users.signup_s[user] + 60.0)  # nobody shops before signing up
    o = np.lexsort((planned, user))
    user, planned = user[o], planned[o]
    starts = np.searchsorted(user, user, side="left")
    rank = np.arange(len(user)) - starts
    o = np.lexsort((user, rank))
    return user[o], planned[o], rank[o]
