"""A/B statistics (ml/models/ab.py) on synthetic per-user outcomes shaped like the simulated shop:
~2,000 users, a few lists of 10 items each, per-user click rates that differ (Beta(2, 38), mean 5%)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ml.experiment import CHALLENGER_ARM, CHAMPION_ARM
from ml.models.ab import BETTER, NO_DIFFERENCE, WORSE, arm_stats, compare, sample_ratio_p

BASE = 2 / (2 + 38)  # mean of Beta(2, 38)


def simulate(seed: int, users: int = 2000, lift: float = 1.0, share: float = 0.5) -> pd.DataFrame:
    """One row per user: arm, impressions (1-6 lists of 10), clicks ~ Binomial(impressions, p_user),
    the challenger's p multiplied by ``lift`` (true difference BASE * (lift - 1))."""
    rng = np.random.default_rng(seed)
    arm = np.where(rng.random(users) < share, CHALLENGER_ARM, CHAMPION_ARM)
    p = rng.beta(2, 38, users)
    p = np.where(arm == CHALLENGER_ARM, np.minimum(p * lift, 1.0), p)
    impressions = 10 * (1 + rng.poisson(2, users))
    return pd.DataFrame({"arm": arm, "impressions": impressions, "events": rng.binomial(impressions, p)})


def test_delta_method_matches_hand_computation():
    imp, ev = np.array([10, 10, 20, 40]), np.array([1, 3, 2, 6])
    s = arm_stats(CHAMPION_ARM, imp, ev)
    r = 12 / 80
    mi = 20.0
    var_e = sum((e - 3) ** 2 for e in ev) / 3  # mean 3
    var_i = sum((i - 20) ** 2 for i in imp) / 3
    cov = sum((e - 3) * (i - 20) for e, i in zip(ev, imp, strict=True)) / 3
    expected = math.sqrt((var_e - 2 * r * cov + r * r * var_i) / 4) / mi
    assert (s.users, s.impressions, s.events) == (4, 80, 12)
    assert s.rate == pytest.approx(r) and s.se == pytest.approx(expected)


def test_detects_a_true_lift_at_the_shops_sample_size():
    """At 2,000 users: +30% relative CTR (5% → 6.5%) found in all 20 seeds, +20% in at least 18 of 20
    (measured power over 200 seeds: 100% and 97.5%; +10%: 50%), always in the right direction."""
    strong = [compare(simulate(seed, lift=1.3), "ctr") for seed in range(20)]
    assert all(r.verdict == BETTER and r.ci_low > 0 for r in strong), [round(r.p_value, 4) for r in strong]
    moderate = [compare(simulate(seed, lift=1.2), "ctr").verdict for seed in range(20)]
    assert moderate.count(BETTER) >= 18 and WORSE not in moderate, moderate
    worse = compare(simulate(99, lift=0.7), "ctr")
    assert worse.verdict == WORSE and worse.ci_high < 0


def test_aa_split_reports_no_difference_in_at_least_90_percent_of_seeds():
    verdicts = [compare(simulate(seed), "ctr").verdict for seed in range(1000, 1050)]
    assert verdicts.count(NO_DIFFERENCE) >= 45, verdicts.count(NO_DIFFERENCE)


def test_interval_covers_the_true_difference_about_95_percent_of_the_time():
    true = BASE * 0.2
    covered = []
    for seed in range(2000, 2200):
        r = compare(simulate(seed, users=1000, lift=1.2), "ctr")
        covered.append(r.ci_low <= true <= r.ci_high)
    assert 0.91 <= np.mean(covered) <= 0.99, np.mean(covered)


def test_per_impression_interval_would_be_too_narrow_per_user_one_is_not():
    """Why the user is the unit: with strongly clustered users (some click a lot, most never), a
    binomial interval over impressions covers the true difference far less often than 95%."""
    rng = np.random.default_rng(5)
    covered_user, covered_naive = [], []
    for _ in range(200):
        users = 1000
        arm = np.where(rng.random(users) < 0.5, CHALLENGER_ARM, CHAMPION_ARM)
        p = rng.beta(0.2, 3.8, users)  # mean 5%, very uneven
        imp = 10 * (1 + rng.poisson(4, users))
        frame = pd.DataFrame({"arm": arm, "impressions": imp, "events": rng.binomial(imp, p)})
        r = compare(frame, "ctr")
        covered_user.append(r.ci_low <= 0 <= r.ci_high)
        a, b = r.champion, r.challenger
        naive_se = math.sqrt(a.rate * (1 - a.rate) / a.impressions + b.rate * (1 - b.rate) / b.impressions)
        covered_naive.append(abs(r.diff) <= 1.96 * naive_se)
    assert np.mean(covered_user) >= 0.9 and np.mean(covered_naive) < 0.8, (
        np.mean(covered_user),
        np.mean(covered_naive),
    )


def test_sample_ratio_check():
    assert sample_ratio_p(5000, 5000, 0.5) == pytest.approx(1.0)
    assert sample_ratio_p(9000, 1000, 0.1) == pytest.approx(1.0)
    assert sample_ratio_p(5600, 4400, 0.5) < 1e-6
    broken = compare(simulate(3, share=0.5), "ctr", share=0.2)
    assert broken.srm_broken and not compare(simulate(3, share=0.2), "ctr", share=0.2).srm_broken


def test_bad_input_is_refused():
    frame = simulate(1, users=50)
    with pytest.raises(ValueError, match="unknown metric"):
        compare(frame, "revenue")
    with pytest.raises(ValueError, match="at least 2"):
        compare(
            frame[frame["arm"] == CHAMPION_ARM].head(10).assign(arm=[CHAMPION_ARM] * 9 + [CHALLENGER_ARM])
        )
    with pytest.raises(ValueError, match="unknown arm"):
        compare(frame.assign(arm="treatment"))
    with pytest.raises(ValueError, match="events <= impressions"):
        arm_stats(CHAMPION_ARM, np.array([10, 10]), np.array([11, 0]))


def test_no_variation_at_all():
    frame = pd.DataFrame(
        {"arm": [CHAMPION_ARM] * 3 + [CHALLENGER_ARM] * 3, "impressions": [10] * 6, "events": [0] * 6}
    )
    r = compare(frame, "purchase")
    assert (r.diff, r.p_value, r.verdict, r.relative_lift) == (0.0, 1.0, NO_DIFFERENCE, None)
