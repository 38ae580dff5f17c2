"""Time-based split (ARCHITECTURE.md §3): cuts counted back from the newest event.

With label window Δ and the newest event at ``max_ts`` (rounded down to the hour):

    test cut  = max_ts - Δ                 labels [test, test + Δ)    → evaluation, promotion gate
    val cut   = test - Δ                   labels [val, test)         → early stopping
    train cut = val - i·Δ, i = 1..k        labels [train, train + Δ)  → fitting

Label windows never overlap, and every feature of a cut is built from events strictly before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


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
