"""The A/B user split (ml/experiment.py): deterministic, on share, independent across salts."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from ml.config import SettingsError, get_settings
from ml.experiment import CHALLENGER_ARM, CHAMPION_ARM, Experiment, arm_of, bucket

USERS = np.arange(1, 100_001)


def test_bucket_is_the_first_8_bytes_of_sha256_of_salt_and_user():
    for salt, user in (("exp1", 42), ("ranker-v7", 1), ("x", 2**62)):
        expected = int(hashlib.sha256(f"{salt}:{user}".encode()).hexdigest()[:16], 16) / 2**64
        assert bucket(user, salt) == expected and 0 <= expected < 1


def test_bucket_is_stable_across_processes():
    """Another interpreter, with another hash seed, computes the same buckets (no ``hash()``)."""
    code = "from ml.experiment import bucket; print(repr([bucket(u, 'exp1') for u in (1, 7, 99999)]))"
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": os.getcwd()}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == repr([bucket(u, "exp1") for u in (1, 7, 99999)])


@pytest.mark.parametrize("share", [0.05, 0.1, 0.5, 0.9])
def test_challenger_share_within_one_point_on_100k_users(share):
    challengers = sum(arm_of(int(u), "exp-share", share) == CHALLENGER_ARM for u in USERS)
    assert abs(challengers / len(USERS) - share) <= 0.01


def test_different_salts_give_independent_splits():
    a = np.array([bucket(int(u), "exp-a") for u in USERS])
    b = np.array([bucket(int(u), "exp-b") for u in USERS])
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.01
    # challenger in both at share 0.5: a quarter of users, as for independent coins
    assert abs(np.mean((a < 0.5) & (b < 0.5)) - 0.25) <= 0.01
    assert abs(np.mean(a < 0.5) - 0.5) <= 0.01


def test_experiment_split_and_runs():
    run = Experiment("exp1", 0.3, "m/1", "m/2")
    champion, challenger = run.split(list(range(1, 1001)))
    assert sorted(champion + challenger) == list(range(1, 1001))
    assert all(run.arm(u) == CHALLENGER_ARM for u in challenger) and all(
        run.arm(u) == CHAMPION_ARM for u in champion
    )
    assert run.same_run(Experiment("exp1", 0.3, "m/1", "m/2", id=4)) and not run.same_run(None)
    assert not run.same_run(Experiment("exp1", 0.5, "m/1", "m/2"))
    assert not run.same_run(Experiment("exp1", 0.3, "m/1", "m/3"))


@pytest.mark.parametrize(
    ("share", "salt", "error"),
    [
        ("1", "exp1", "strictly between"),
        ("-0.1", "exp1", "strictly between"),
        ("0.2", "", "needs RECSYS_AB_SALT"),
        ("abc", "exp1", "not a number"),
        ("0.2", "bad salt!", "RECSYS_AB_SALT"),
    ],
)
def test_bad_ab_settings_name_the_variable(monkeypatch, share, salt, error):
    monkeypatch.setenv("RECSYS_AB_SHARE", share)
    monkeypatch.setenv("RECSYS_AB_SALT", salt)
    with pytest.raises(SettingsError, match=error):
        get_settings()


def test_ab_settings(monkeypatch):
    monkeypatch.setenv("RECSYS_AB_SHARE", "0.25")
    monkeypatch.setenv("RECSYS_AB_SALT", "exp1")
    s = get_settings()
    assert (s.ab_on, s.ab_share, s.ab_salt) == (True, 0.25, "exp1")
    monkeypatch.setenv("RECSYS_AB_SHARE", "0")
    assert not get_settings().ab_on
