"""Which arm of a running A/B experiment the reader serves a user (issue 17).

The experiment is read from ``ab_experiment`` (the publisher swaps it with the lists, so all reader
processes agree) and cached for :data:`EXPERIMENT_TTL_S`: one small read a second per process, not
one per request. A user's arm is :func:`ml.experiment.bucket` of their id under the run's name; the
challenger arm reads ``user_topn_challenger``, the champion arm ``user_topn``; fallbacks are the same
for both. Without a running experiment the arm is None: today's list, no arm logged, no header.

For at most the TTL after a swap that starts or ends a run, a process may still use the previous
state: such impressions fall outside the run's [started_at, ended_at) window, which the report reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ml.experiment import ARM_TABLES, CHAMPION_ARM, Experiment, active_experiment

EXPERIMENT_TTL_S = 1.0


class ArmChooser:
    """The running experiment (cached ``ttl_s``) and a user's arm in it."""

    def __init__(self, query: Callable[[str], list[tuple]], ttl_s: float = EXPERIMENT_TTL_S):
        self._query, self.ttl_s = query, ttl_s
        self._cached: tuple[float, Experiment | None] = (float("-inf"), None)
        self._lock = threading.Lock()

    def experiment(self) -> Experiment | None:
        now = time.monotonic()
        with self._lock:
            at, cached = self._cached
        if now - at < self.ttl_s:
            return cached
        found = active_experiment(self._query)
        with self._lock:
            self._cached = (now, found)
        return found

    def arm(self, user_id: int) -> str | None:
        """``champion`` or ``challenger`` while an experiment runs, else None."""
        run = self.experiment()
        return None if run is None else run.arm(user_id)

    @staticmethod
    def table(arm: str | None) -> str:
        """The serving table of the arm's per-user lists (``user_topn`` outside an experiment)."""
        return ARM_TABLES[arm or CHAMPION_ARM]
