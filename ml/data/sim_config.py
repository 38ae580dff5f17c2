"""What a simulation is asked for and what it returns: :class:`SimConfig` (size and behaviour
knobs), :class:`SimData` (the simulated tables) and the event-type codes and time unit every part of
the simulator shares.

Kept apart from the generator (:mod:`ml.data.simulate` and the ``sim_*`` modules it drives) so the
catalogue, the users and the session engine can all read the config without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from ml import contracts
from ml.data.catalog import CATEGORIES, complement_ids

BEHAVIOR_TYPES: tuple[str, ...] = contracts.BEHAVIOR_TYPES
SEARCH, BROWSE, CART, FAV, PURCHASE = range(5)
DAY = 86400.0


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
    ground truth (one row per session), ``categories`` the catalogue (id, name, complements),
    ``queries`` the planted truth of each session's query (one row per session with a search:
    :data:`ml.data.load.QUERY_INTENT_COLUMNS`)."""

    users: pd.DataFrame
    items: pd.DataFrame
    events: pd.DataFrame
    intents: pd.DataFrame
    categories: pd.DataFrame = field(default_factory=lambda: categories_frame())
    queries: pd.DataFrame = field(default_factory=lambda: empty_query_truth())

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


def empty_query_truth() -> pd.DataFrame:
    """A query-truth frame with no rows (see :attr:`SimData.queries`)."""
    return pd.DataFrame(
        {
            "session_id": pd.Series(dtype=object),
            "user_id": pd.Series(dtype="int64"),
            "query_text": pd.Series(dtype=object),
            "category_id": pd.Series(dtype="int64"),
            "brand": pd.Series(dtype=object),
            "model": pd.Series(dtype=object),
            "lang": pd.Series(dtype=object),
            "has_typo": pd.Series(dtype="int8"),
        }
    )


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
