"""bench/scale.py's time budget (how 10M events is "run with a time budget"): without a database.

A size runs its stages while each next stage's predicted cost (fitted on the complete smaller sizes)
fits in what is left; the first that does not is reported, and the measured stages stay measured."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import scale  # noqa: E402


def _row(events: int, factor: float, train_mib: float) -> dict:
    seconds = {stage: factor * (k + 1) for k, stage in enumerate(scale.STAGES)}
    return {
        "events": events,
        "seconds": seconds,
        "total_s": sum(seconds.values()),
        "peak_mib": {stage: 100.0 for stage in scale.STAGES} | {"train": train_mib},
    }


# every stage and the training peak grow linearly: 10x the events, 10x the seconds and memory
ROWS = [_row(100_000, 1.0, 100.0), _row(1_000_000, 10.0, 1_000.0)]


def test_the_fit_is_the_power_law_through_the_complete_sizes_only():
    partial = {"events": 10_000_000, "seconds": {"simulate": 1.0}, "stopped": {"stage": "load"}}
    fit = scale.fit_curve([*ROWS, partial])
    a, b = fit["stage_ab"]["train"]
    assert b == pytest.approx(1.0) and a * 10_000_000 == pytest.approx(600.0)  # train: 6 s per 100k
    a, b = fit["peak_ab"]["train"]
    assert a * 10_000_000**b == pytest.approx(10_000.0)
    assert fit["measured_ratio"]["sizes"] == [100_000, 1_000_000]


def test_a_stage_predicted_past_the_budget_stops_the_size_before_it(monkeypatch):
    fit = scale.fit_curve(ROWS)
    clock = scale.Clock(scale.Budget(750.0, 10_000_000, fit))  # stages at 10M: 100, 200, ..., 700 s
    monkeypatch.setattr(scale.time, "perf_counter", lambda: clock.budget.t0 + 320.0)  # 320 s spent
    with pytest.raises(scale.StageBudget) as stop:
        clock.budget.check("dbt_build")  # 300 s predicted, 430 left: runs
        clock.budget.check("gx_raw")  # 400 s predicted: fits too
        clock.budget.check("gx_marts")  # 500 s predicted > 430 left
    assert stop.value.args[0] == {
        "stage": "gx_marts",
        "predicted_s": 500,
        "left_s": 430,
        "why": "time budget",
    }


def test_training_that_would_not_fit_in_memory_is_not_started(monkeypatch):
    fit = scale.fit_curve(ROWS)
    budget = scale.Budget(1e9, 10_000_000, fit)
    monkeypatch.setattr(scale.psutil, "virtual_memory", lambda: SimpleNamespace(available=8_000 * 2**20))
    budget.check("gx_marts")  # no memory prediction for the other stages
    with pytest.raises(scale.StageBudget) as stop:
        budget.check("train")  # predicted 10,000 MiB, 8,000 available
    assert stop.value.args[0]["why"] == "memory" and stop.value.args[0]["predicted_peak_mib"] == 10_000


def test_a_stopped_size_keeps_its_measured_stages_and_says_where_it_stopped(monkeypatch):
    def chain(n_events, settings, args, clock):
        with clock.stage("simulate"):
            pass
        clock.events = 9_400_000
        with clock.stage("load"):  # predicted 200 s: past what is left of 150 s
            raise AssertionError("a stage past the budget must not start")

    monkeypatch.setattr(scale, "_chain", chain)
    monkeypatch.setattr(scale, "sim_config", lambda n: SimpleNamespace(users=1, items=2))
    row = scale.run_size(10_000_000, None, None, scale.Budget(150.0, 10_000_000, scale.fit_curve(ROWS)))
    assert row["events"] == 9_400_000 and list(row["seconds"]) == ["simulate"]
    assert row["stopped"]["stage"] == "load" and row["stopped"]["predicted_s"] == 200
    ratios = scale.partial_ratios([*ROWS, row])
    assert ratios[0]["sizes"] == [1_000_000, 9_400_000] and list(ratios[0]["stage_ratio"]) == ["simulate"]
    assert scale.fit_curve([*ROWS, row])["measured_ratio"]["sizes"] == [100_000, 1_000_000]


def test_an_earlier_run_lends_its_complete_sizes_to_the_fit(tmp_path):
    import json

    old, new = _row(1_000_000, 12.0, 1_000.0), _row(1_000_000, 10.0, 1_000.0)
    stopped = {"events": 10_000_000, "seconds": {"simulate": 1.0}, "stopped": {"stage": "load"}}
    lines = [new | {"seconds": dict(old["seconds"])}, ROWS[0], stopped, {"fit": {"exponent": {}}}, new]
    path = tmp_path / "scale.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    rows = scale.earlier_rows(path)
    assert [r["events"] for r in rows] == [100_000, 1_000_000]
    assert rows[1]["seconds"] == new["seconds"]  # the last line of a size
