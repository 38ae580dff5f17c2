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


#: Evaluation tasks (ARCHITECTURE.md §3). ``next_day``: everything a user does in the label window;
#: ``session``: OTTO's rest of the first session after a random cut inside it; ``next_basket``: the
#: items of the user's first session (order, invoice) after the cut, nothing of it revealed.
TASKS: tuple[str, ...] = ("next_day", "session", "next_basket")
MIN_LABEL_HOURS = 10 / 60  # a label window shorter than 10 minutes holds too few sessions to learn from


@dataclass(frozen=True)
class LogProfile:
    """What the data allows: how long the log is, what kinds of events it has, how often users return."""

    first_ts: pd.Timestamp
    last_ts: pd.Timestamp
    events_by_type: dict[str, int]
    users: int
    median_return_hours: float | None  # median gap between a user's consecutive session starts

    @property
    def span_hours(self) -> float:
        return (self.last_ts - self.first_ts).total_seconds() / 3600

    @property
    def has_browsing(self) -> bool:
        """Views, carts or favs besides purchases (a purchase-only log is an order history)."""
        return any(self.events_by_type.get(t, 0) > 0 for t in ("browse", "cart", "fav"))


@dataclass(frozen=True)
class TaskChoice:
    """The task a run is evaluated and gated on, its label window, and why (logged and printed)."""

    task: str
    label_hours: float
    reason: str


def _fit_window(profile: LogProfile, wanted_hours: float, n_train_cuts: int) -> float:
    """``wanted_hours``, shrunk so the n training cuts, validation and test windows plus one window of
    history fit in the log; rounded down to whole hours (or 5 minutes under an hour)."""
    slots = n_train_cuts + 3
    hours = min(wanted_hours, profile.span_hours / slots)
    hours = float(int(hours)) if hours >= 1 else int(hours * 12) / 12
    if hours < MIN_LABEL_HOURS:
        raise ValueError(
            f"the log spans {profile.span_hours:.2f} h: too short for {n_train_cuts} training cuts, validation and "
            f"test windows of at least {MIN_LABEL_HOURS * 60:.0f} minutes each"
        )
    return hours


def choose_task(
    profile: LogProfile, n_train_cuts: int, task: str = "auto", label_hours: float = 0.0
) -> TaskChoice:
    """The task that fits the log, unless one is asked for; ``label_hours`` 0 lets the data choose.

    Purchase-only logs (order histories) → ``next_basket``, with a window of the users' median return
    time (1–30 days); logs shorter than three days → ``session`` (within-session intent, windows of a
    fraction of the log); otherwise ``next_day``. Every window is fitted into the log's span.
    """
    if task not in ("auto", *TASKS):
        raise ValueError(f"unknown task {task!r}; choose one of auto, {', '.join(TASKS)}")
    why = "asked for"
    if task == "auto":
        if not profile.has_browsing:
            task, why = "next_basket", "purchase-only log (an order history)"
        elif profile.span_hours < 72:
            task, why = (
                "session",
                f"the log spans {profile.span_hours:.1f} h (< 3 days): within-session intent",
            )
        else:
            task, why = "next_day", f"browsing log of {profile.span_hours / 24:.1f} days"
    if label_hours > 0:
        wanted = label_hours
    elif task == "next_basket":
        ret = profile.median_return_hours or 24 * 7
        wanted = float(min(max(24.0, 24 * round(ret / 24)), 24 * 30))
    elif task == "session":
        wanted = profile.span_hours  # as large as the log allows
    else:
        wanted = 24.0
    hours = _fit_window(profile, wanted, n_train_cuts)
    return TaskChoice(task, hours, f"{task}: {why}; label window {format_hours(hours)}")


def format_hours(hours: float) -> str:
    """``24 h`` / ``35 min``: a label window as a person reads it."""
    return f"{hours:g} h" if hours >= 1 else f"{round(hours * 60)} min"


@dataclass(frozen=True)
class Split:
    """The cuts of one training run and the label window they share."""

    train_cuts: tuple[pd.Timestamp, ...]
    val_cut: pd.Timestamp
    test_cut: pd.Timestamp
    label_hours: float

    @property
    def delta(self) -> pd.Timedelta:
        return pd.Timedelta(hours=self.label_hours)

    def as_params(self) -> dict[str, str]:
        """Flat strings for MLflow params (the data window of the run)."""
        return {
            "train_cuts": ",".join(c.isoformat(sep=" ") for c in self.train_cuts),
            "val_cut": self.val_cut.isoformat(sep=" "),
            "test_cut": self.test_cut.isoformat(sep=" "),
            "label_hours": f"{self.label_hours:g}",
        }


def make_split(max_ts: pd.Timestamp | str, label_hours: float = 24, n_train_cuts: int = 1) -> Split:
    """Cuts from the newest event time; raises if the window settings make no sense."""
    if label_hours <= 0:
        raise ValueError(f"label_hours must be positive, got {label_hours}")
    if n_train_cuts < 1:
        raise ValueError(f"n_train_cuts must be at least 1, got {n_train_cuts}")
    delta = pd.Timedelta(hours=label_hours)
    end = pd.Timestamp(max_ts).floor("h" if label_hours >= 1 else "5min")
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
