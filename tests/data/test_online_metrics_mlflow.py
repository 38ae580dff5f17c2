"""The online metrics of the hand-made log (tests/data/outcomes_support.py) logged to the MLflow run
of the registered version that served them (ml.registry.online), against a local SQLite MLflow store:
values per served day, the CSV artifact, skipped versions, reruns that add nothing."""

from __future__ import annotations

import csv
import dataclasses
import logging

import pytest

from ml.registry.online import day_step, log_online_metrics, parse_model_version
from tests.data.outcomes_support import DAY1, DAY2, MODEL, MV1, MV2, build_outcomes, load_log

EXPERIMENT = MODEL.removesuffix("-reranker")


@pytest.fixture(scope="module")
def served(settings):
    """The log's marts built, and version 1 of the model registered (a baseline: no weights needed)."""
    import mlflow

    from ml.registry import store

    s = dataclasses.replace(settings, mlflow_experiment=EXPERIMENT)
    assert store.model_name(s) == MODEL
    load_log(s)
    build_outcomes(s)
    client = store.configure(s)
    with mlflow.start_run() as run:
        assert store.log_baseline(client, "repeat", {"k": 10}, MODEL) == "1"
    return s, client, run.info.run_id


def _history(client, run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in client.get_metric_history(run_id, key)}


def test_model_versions_as_the_publisher_writes_them():
    assert parse_model_version("recsys-reranker/12") == ("recsys-reranker", "12")
    assert parse_model_version("recsys-reranker/3:baseline-repeat") == ("recsys-reranker", "3")
    assert [parse_model_version(v) for v in (None, "", "popular", "a/b", "/3")] == [None] * 5
    assert day_step(DAY1) - day_step(DAY2) == -1


def test_each_served_day_lands_on_the_serving_versions_run(served, caplog):
    s, client, run_id = served
    with caplog.at_level(logging.INFO, logger="ml.registry.online"):
        out = log_online_metrics(s, days=7)
    assert (out.first_day, out.last_day) == (DAY1, DAY2)
    assert set(out.logged) == {MV1} and out.logged[MV1]["run_id"] == run_id
    # MV2 has no registered version 2 yet; the anonymous search list has no version at all
    assert set(out.skipped) == {MV2, "(none)"} and "not in the registry" in out.skipped[MV2]
    assert f"skipped model version {MV2}" in caplog.text
    # hand-computed in test_outcome_marts: MV1 served only on day 1
    step = day_step(DAY1)
    want = {
        "ctr_at_10": 1 / 4,
        "list_ctr_at_10": 1 / 2,
        "cart_rate": 1 / 5,
        "coverage": 4 / 10,
        "impressions": 5,
    }
    for name, value in want.items():
        assert _history(client, run_id, f"online.{name}") == {step: pytest.approx(value)}, name
    local = client.download_artifacts(run_id, "online/rpt_model_online_metrics.csv", str(s.home / "dl"))
    with open(local, newline="") as f:
        slices = list(csv.DictReader(f))
    assert [(r["model_version"], r["list_source"], r["arm"], r["impressions"]) for r in slices] == [
        (MV1, "user_topn", "champion", "5")
    ]
    # a rerun over the same report writes nothing new
    assert log_online_metrics(s, days=7).logged[MV1]["metrics_written"] == 0
    assert len(client.get_metric_history(run_id, "online.ctr_at_10")) == 1


def test_days_count_back_from_the_newest_served_day(served):
    s, client, _ = served
    out = log_online_metrics(s, days=1)  # day 2 only: MV2 (unregistered) served it, MV1 did not
    assert (out.first_day, out.logged, set(out.skipped)) == (DAY2, {}, {MV2})
    with pytest.raises(ValueError, match="days must be >= 1"):
        log_online_metrics(s, days=0)


def test_a_newly_registered_version_gets_its_days_and_undefined_rates_are_not_logged(served):
    import mlflow

    from ml.registry import store

    s, client, _ = served
    with mlflow.start_run() as run:
        assert store.log_baseline(client, "popular", {"k": 10}, MODEL) == "2"
    out = log_online_metrics(s, days=7)
    assert out.logged[MV2]["run_id"] == run.info.run_id and out.logged[MV2]["days"] == 2
    run_id = run.info.run_id
    d1, d2 = day_step(DAY1), day_step(DAY2)
    assert _history(client, run_id, "online.impressions") == {d1: 2, d2: 1}
    # day 2's only impression is immature: no cart rate that day
    assert _history(client, run_id, "online.cart_rate") == {d1: pytest.approx(1 / 2)}
    assert _history(client, run_id, "online.lists") == {d1: 1, d2: 1}


def test_a_day_is_logged_again_once_its_impressions_matured(served):
    """A later event moves the log's end past impression 7's window: day 2 of MV2 gets its rates
    (a new value at its step); values that did not change are not written again."""
    from tests.data.outcomes_support import h, insert_events

    s, client, _ = served
    run_id = log_online_metrics(s, days=7).logged[MV2]["run_id"]
    before = len(client.get_metric_history(run_id, "online.impressions"))
    insert_events(s, [(3, None, "s9", "search", h(60))])
    build_outcomes(s)
    log_online_metrics(s, days=7)
    assert _history(client, run_id, "online.ctr_at_10")[day_step(DAY2)] == pytest.approx(1.0)
    assert _history(client, run_id, "online.matured_impressions") == {day_step(DAY1): 2, day_step(DAY2): 1}
    assert len(client.get_metric_history(run_id, "online.impressions")) == before


def test_report_online_prints_the_last_days(served, monkeypatch):
    from typer.testing import CliRunner

    from ml.cli.app import app

    s, _, _ = served
    out = CliRunner().invoke(app, ["report", "online", "--days", "1"])
    assert out.exit_code == 0, out.output
    assert str(DAY2) in out.output and str(DAY1) not in out.output and "challenger" in out.output
    out = CliRunner().invoke(app, ["report", "online", "--days", "2"])
    assert str(DAY1) in out.output and "0.2500" in out.output  # MV1's CTR@10 on day 1
