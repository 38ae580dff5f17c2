"""Work beside the cut builds (ml.training.beside, ml.training.overlap.BesideBuilds): the background
thread runs jobs in order and hands back their results or errors; the candidate features and search
rows taken from it are the frames the pipeline computed after the builds (sampling included); the TF
stage and the rest-of-session cuts queue only what they can use."""

from __future__ import annotations

import threading

import pandas as pd
import pytest
from search_support import T0, catalogue, search_cut, sessions
from test_rerank import synthetic_cut

from ml.features.candidates import build_features
from ml.search.cut_rows import search_sets
from ml.training.beside import Beside
from ml.training.config import TrainConfig
from ml.training.cuts import features_with_tf, sample_users, sampled
from ml.training.overlap import BesideBuilds


def test_jobs_run_in_order_on_one_other_thread_and_hand_back_results() -> None:
    seen: list[tuple[str, str]] = []

    def job(name: str) -> str:
        seen.append((name, threading.current_thread().name))
        return name.upper()

    with Beside() as beside:
        for name in ("a", "b", "c"):
            beside.submit(name, job, name)
        beside.submit("a", job, "again")  # a key already queued is not run twice
        assert beside.has("b") and not beside.has("d")
        assert [beside.take(k) for k in ("c", "a", "b")] == ["C", "A", "B"]
        assert not beside.has("a")  # taken
        with pytest.raises(KeyError):
            beside.take("d")
    assert [n for n, _ in seen] == ["a", "b", "c"]
    assert {t for _, t in seen} != {threading.current_thread().name}
    assert beside.seconds > 0


def test_a_failed_job_raises_where_it_is_taken_and_close_cancels_the_queue() -> None:
    release, ran = threading.Event(), []

    def blocked() -> None:
        release.wait(10)
        raise ValueError("bad cut")

    beside = Beside()
    beside.submit("bad", blocked)
    beside.submit("later", ran.append, 1)
    with pytest.raises(ValueError, match="bad cut"):
        release.set()
        beside.take("bad")
    beside.close()
    assert ran == [1]  # already queued behind a finished job: ran before close

    # close() while a job runs: the queued one is cancelled, the running one finishes
    beside, started, gate = Beside(), threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        gate.wait(10)
        ran.append("slow")

    beside.submit("slow", slow)
    beside.submit("never", ran.append, "never")
    assert started.wait(10)
    threading.Timer(0.2, gate.set).start()
    beside.close()
    assert ran == [1, "slow"]


def _cuts() -> dict[str, object]:
    return {
        "train_0": synthetic_cut(1),
        "session_train_0": synthetic_cut(2),
        "val": synthetic_cut(3),
        "session_val": synthetic_cut(6),
        "test": synthetic_cut(4),
        "session_test": synthetic_cut(5),
    }


@pytest.mark.parametrize("max_users", [0, 50])
def test_features_taken_beside_equal_those_computed_after_the_builds(max_users: int) -> None:
    cfg = TrainConfig(search=False, use_tf=False, max_users=max_users)
    cuts = _cuts()
    with Beside() as beside:
        hook = BesideBuilds(beside, cfg)
        for name, cut in cuts.items():
            hook(name, cut)
        steps: list[str] = []
        learning = {k: hook.learning_cut(k, c) for k, c in cuts.items()}  # as the pipeline takes them
        _, frames = features_with_tf(learning, cfg, steps.append, beside)
    for name, cut in cuts.items():  # the copy the feature job got: sampled once, equal to sampling again
        pd.testing.assert_frame_equal(learning[name].candidates, sampled(name, cut, cfg).candidates)
    assert steps == ["candidates and features (computed beside the cut builds)"]
    for name, cut in cuts.items():
        # what the pipeline did after the builds: sample the learning cuts, never the test cuts
        expect = (
            cut
            if max_users == 0 or name in ("test", "session_test")
            else sample_users(cut, max_users, cfg.seed)
        )
        pd.testing.assert_frame_equal(frames[name], build_features(expect))
    if max_users:
        assert frames["train_0"]["user_id"].nunique() == max_users
        assert frames["test"]["user_id"].nunique() == cuts["test"].candidates["user_id"].nunique()


def test_without_beside_or_with_tf_nothing_is_taken() -> None:
    cuts = _cuts()
    steps: list[str] = []
    _, frames = features_with_tf(cuts, TrainConfig(search=False, use_tf=False), steps.append)
    assert steps == ["candidates and features"]
    pd.testing.assert_frame_equal(frames["val"], build_features(cuts["val"]))
    # the TF stage's candidates need its two-tower model first: no feature job is queued for it
    with Beside() as beside:
        BesideBuilds(beside, TrainConfig(search=False, use_tf=True))("val", cuts["val"])
        assert not beside.has(("features", "val"))


def test_search_rows_taken_beside_equal_those_computed_after_the_builds() -> None:
    items, history = catalogue(), sessions(T0, 48, 240, seed=1)
    cuts, at = {}, T0 + pd.Timedelta(hours=48)
    for i, (name, n) in enumerate((("train_0", 240), ("val", 120), ("test", 120))):
        window = sessions(at, 24, n, seed=10 + i)
        cuts[name] = search_cut(items, history, at, window)
        history, at = pd.concat([history, window], ignore_index=True), at + pd.Timedelta(hours=24)
    cuts["session_test"] = cuts["test"]
    cfg = TrainConfig(use_tf=True)  # search rows only
    names = ["train_0", "val", "test"]
    with Beside() as beside:
        ready = BesideBuilds(beside, cfg)
        for name, cut in cuts.items():
            ready(name, cut)
        assert not beside.has(("search", "session_test"))  # the search stage reads the plain cuts
        steps: list[str] = []
        taken = search_sets(cuts, names, cfg.search_k, steps.append, beside)
    direct = search_sets(cuts, names, cfg.search_k)
    assert all(s.endswith("(computed beside the cut builds)") for s in steps) and len(steps) == 3
    for name in names:
        pd.testing.assert_frame_equal(taken[name].frame, direct[name].frame)
        pd.testing.assert_frame_equal(taken[name].searches, direct[name].searches)
        pd.testing.assert_frame_equal(taken[name].truth, direct[name].truth)
        assert len(taken[name].frame) > 0


def test_a_window_without_searches_queues_no_search_rows() -> None:
    """The public logs have no searches: no search rows nor catalogue indexes are computed beside the
    builds for them (the search stage skips such a log; a cut it does search is computed there)."""
    items = catalogue()
    window = sessions(T0 + pd.Timedelta(hours=48), 24, 40, seed=3)
    no_search = search_cut(
        items,
        sessions(T0, 48, 40, seed=2),
        T0 + pd.Timedelta(hours=48),
        window[window["behavior_type"] != "search"],
    )
    with Beside() as beside:
        BesideBuilds(beside, TrainConfig(use_tf=True))("val", no_search)
        assert not beside.has(("search", "val"))
        steps: list[str] = []
        rows = search_sets({"val": no_search}, ["val"], 100, steps.append, beside)
    assert steps[-1].startswith("search rows: val") and not steps[-1].endswith(
        "(computed beside the cut builds)"
    )
    assert rows["val"].engaged_searches == 0
