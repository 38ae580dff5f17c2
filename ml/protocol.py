"""Time-based split (ARCHITECTURE.md §3): cuts counted back from the newest event.

With label window Δ and the newest event at ``max_ts`` (rounded down to the hour):

    test cut  = max_ts - Δ                 labels [test, test + Δ)    → evaluation, promotion gate
    val cut   = test - Δ                   labels [val, test)         → early stopping
    train cut = val - i·Δ, i = 1..k        labels [train, train + Δ)  → fitting

Label windows never overlap, and every feature of a cut is built from events strictly before it.

The test cut is evaluated twice: the next-day task above, and OTTO's "rest of session" task
(:func:`session_cuts`): each evaluated user's first session in the label window is cut at a random
point; its start is revealed to the realtime models (what the refresh DAG does every few minutes)
and the rest of that session is the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

SESSION_CUT_COLUMNS = ["user_id", "session_id", "cut_ts"]


@dataclass(frozen=True)
class Split:
    """The cuts of one training run and the label window they share."""

    train_cuts: tuple[pd.Timestamp, ...]
    val_cut: pd.Timestamp
    test_cut: pd.Timestamp
    label_hours: int

    @property
    def delta(self) -> pd.Timedelta:
        return pd.Timedelta(hours=self.label_hours)

    def as_params(self) -> dict[str, str]:
        """Flat strings for MLflow params (the data window of the run)."""
        return {
            "train_cuts": ",".join(c.isoformat(sep=" ") for c in self.train_cuts),
            "val_cut": self.val_cut.isoformat(sep=" "),
            "test_cut": self.test_cut.isoformat(sep=" "),
            "label_hours": str(self.label_hours),
        }


def make_split(max_ts: pd.Timestamp | str, label_hours: int = 24, n_train_cuts: int = 1) -> Split:
    """Cuts from the newest event time; raises if the window settings make no sense."""
    if label_hours <= 0:
        raise ValueError(f"label_hours must be positive, got {label_hours}")
    if n_train_cuts < 1:
        raise ValueError(f"n_train_cuts must be at least 1, got {n_train_cuts}")
    delta = pd.Timedelta(hours=label_hours)
    end = pd.Timestamp(max_ts).floor("h")
    test = end - delta
    val = test - delta
    train = tuple(val - i * delta for i in range(n_train_cuts, 0, -1))
    return Split(train_cuts=train, val_cut=val, test_cut=test, label_hours=label_hours)


def cut_str(ts: pd.Timestamp) -> str:
    """The dbt var format ``'YYYY-MM-DD HH:MM:SS'``."""
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def session_cuts(window: pd.DataFrame, users: Iterable[int], seed: int = 0) -> pd.DataFrame:
    """OTTO-style truncation: per user, the first session with an event in the label window is cut
    after a random number k of its distinct event times in the window (1 ≤ k < their count), so at
    least one moment is revealed and at least one item event is left to predict.

    ``window`` holds raw events of the label window (``user_id, item_id, session_id, ts``); ``users``
    restricts who is cut (the users seen before the cut). Returns ``user_id, session_id, cut_ts``:
    the session's events in ``[cut, cut_ts)`` are revealed, those at or after ``cut_ts`` are the label.
    Users whose first session has no item event after any possible cut are left out.
    """
    keep = set(int(u) for u in users)
    ev = window[window["user_id"].isin(keep)].sort_values(["ts"], kind="stable")
    if ev.empty:
        return pd.DataFrame(columns=SESSION_CUT_COLUMNS)
    first = ev.drop_duplicates("user_id")[["user_id", "session_id"]]
    ev = ev.merge(first, on=["user_id", "session_id"])
    rng = np.random.default_rng(seed)
    rows = []
    for user_id, g in ev.groupby("user_id", sort=True):
        times = np.sort(g["ts"].unique())
        item_times = np.sort(g.loc[g["item_id"].notna(), "ts"].unique())
        if len(times) < 2 or len(item_times) == 0:
            continue
        # the cut may fall on any distinct time after the first, up to the last item event
        choices = times[(times > times[0]) & (times <= item_times[-1])]
        if len(choices) == 0:
            continue
        cut = choices[rng.integers(len(choices))]
        rows.append((int(user_id), str(g["session_id"].iloc[0]), pd.Timestamp(cut)))
    return pd.DataFrame(rows, columns=SESSION_CUT_COLUMNS)
