"""A/B statistics (issue 17): does the challenger's list change what users do with it?

Pure functions over per-user totals (no database; :mod:`ml.models.ab_outcomes` reads the mart).

The unit of randomisation is the user (:func:`ml.experiment.bucket`), so the unit of analysis is the
user too: a user's impressions are not independent trials (a user who clicks, clicks again), and a
per-impression binomial interval would be far too narrow. The metric of an arm is the ratio
``sum(events) / sum(impressions)`` over its users (CTR, add-to-cart or purchase rate per shown item),
and its standard error comes from the delta method on the two per-user means (Deng, Knoblich and Lu,
"Applying the Delta Method in Metric Analytics", KDD 2018):

    Var(R) ≈ (Var(e) − 2R·Cov(e, i) + R²·Var(i)) / (N · mean(i)²)

Arms are independent, so the difference has the sum of the variances; the 95% interval and the
two-sided p-value are normal (thousands of users per arm). Chosen over a bootstrap over users: it
is exact enough at this size (the tests check coverage and the A/A false-positive rate), needs no
random draws (the same mart gives the same report) and costs one pass, not thousands.

A sample-ratio check compares the users seen per arm with the experiment's share: a tiny p-value
means the split or the logging is broken and the comparison is not to be trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from ml.experiment import CHALLENGER_ARM, CHAMPION_ARM

#: metric name → the 0/1 outcome column of ``fct_served_outcomes`` it averages per impression
METRICS: dict[str, str] = {"ctr": "clicked", "cart": "carted", "purchase": "purchased"}
ALPHA = 0.05
SRM_ALPHA = 0.001  # a sample-ratio p-value below this flags the split as broken
BETTER, WORSE, NO_DIFFERENCE = "challenger better", "challenger worse", "no detectable difference"


@dataclass(frozen=True)
class ArmStats:
    """One arm: users, impressions, events, the rate sum(events)/sum(impressions) and its delta-method SE."""

    arm: str
    users: int
    impressions: int
    events: int
    rate: float
    se: float


@dataclass(frozen=True)
class ABResult:
    """Challenger minus champion on one metric, with its interval, p-value and verdict."""

    metric: str
    champion: ArmStats
    challenger: ArmStats
    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    relative_lift: float | None  # diff / champion rate; None when the champion rate is 0
    verdict: str
    alpha: float
    srm_p: float | None = None  # sample-ratio check against the experiment's share, when given

    @property
    def srm_broken(self) -> bool:
        return self.srm_p is not None and self.srm_p < SRM_ALPHA


def _two_sided_p(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


def arm_stats(arm: str, impressions: np.ndarray, events: np.ndarray) -> ArmStats:
    """The ratio metric of one arm from per-user impression and event counts (one entry per user)."""
    imp = np.asarray(impressions, dtype=float)
    ev = np.asarray(events, dtype=float)
    if imp.shape != ev.shape or imp.ndim != 1:
        raise ValueError("impressions and events must be 1-d arrays of the same length (one entry per user)")
    if len(imp) < 2:
        raise ValueError(f"arm {arm} has {len(imp)} user(s) with matured impressions: need at least 2")
    if (imp <= 0).any() or (ev < 0).any() or (ev > imp).any():
        raise ValueError(f"arm {arm}: every user needs impressions > 0 and 0 <= events <= impressions")
    mi, rate = imp.mean(), ev.sum() / imp.sum()
    cov = np.cov(ev, imp, ddof=1)
    var = max(cov[0, 0] - 2 * rate * cov[0, 1] + rate**2 * cov[1, 1], 0.0)
    return ArmStats(arm, len(imp), int(imp.sum()), int(ev.sum()), float(rate), math.sqrt(var / len(imp)) / mi)


def sample_ratio_p(champion_users: int, challenger_users: int, share: float) -> float:
    """p-value of the users seen per arm under the experiment's challenger ``share`` (normal approximation
    of the binomial, i.e. the 1-df chi-square test)."""
    n = champion_users + challenger_users
    if n == 0:
        return 1.0
    z = (challenger_users - n * share) / math.sqrt(n * share * (1 - share))
    return _two_sided_p(z)


def compare(
    per_user: pd.DataFrame, metric: str = "ctr", alpha: float = ALPHA, share: float | None = None
) -> ABResult:
    """Challenger vs champion on ``metric`` from ``per_user`` rows (``arm``, ``impressions``, ``events``:
    one row per user, the events of ``METRICS[metric]``). ``share`` adds the sample-ratio check."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {sorted(METRICS)}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    unknown = set(per_user["arm"].unique()) - {CHAMPION_ARM, CHALLENGER_ARM}
    if unknown:
        raise ValueError(f"unknown arm(s) {sorted(unknown)}: expected {CHAMPION_ARM} and {CHALLENGER_ARM}")
    arms = {
        arm: arm_stats(
            arm,
            per_user.loc[per_user["arm"] == arm, "impressions"].to_numpy(),
            per_user.loc[per_user["arm"] == arm, "events"].to_numpy(),
        )
        for arm in (CHAMPION_ARM, CHALLENGER_ARM)
    }
    a, b = arms[CHAMPION_ARM], arms[CHALLENGER_ARM]
    diff, se = b.rate - a.rate, math.hypot(a.se, b.se)
    if se > 0:
        p = _two_sided_p(diff / se)
    else:  # no variation at all: identical rates are no difference, different ones are certain
        p = 1.0 if diff == 0 else 0.0
    half = NormalDist().inv_cdf(1 - alpha / 2) * se
    verdict = NO_DIFFERENCE if p >= alpha else (BETTER if diff > 0 else WORSE)
    return ABResult(
        metric=metric,
        champion=a,
        challenger=b,
        diff=diff,
        ci_low=diff - half,
        ci_high=diff + half,
        p_value=p,
        relative_lift=diff / a.rate if a.rate > 0 else None,
        verdict=verdict,
        alpha=alpha,
        srm_p=None if share is None else sample_ratio_p(a.users, b.users, share),
    )
