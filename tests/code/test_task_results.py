"""Task results go to Airflow's XCom as strict JSON: undefined metrics (NaN, inf) must travel as null,
dates as ISO strings (a rule-ablation table with a model missing in one variant holds NaN)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from ml.orchestration.tasks import _jsonable


def test_results_are_strict_json() -> None:
    out = {
        "rule_ablation": {
            "chosen": {"lightgbm": 0.3, "tf_ranker": 0.2},
            "no_rules": {"lightgbm": 0.31, "tf_ranker": float("nan")},
        },
        "metrics": [1.0, float("inf"), -float("inf")],
        "when": datetime(2026, 12, 2, 3, 0),
        "took": timedelta(seconds=90),
    }
    text = json.dumps(_jsonable(out), allow_nan=False)
    back = json.loads(text)
    assert back["rule_ablation"]["no_rules"]["tf_ranker"] is None and back["metrics"] == [1.0, None, None]
    assert back["when"] == "2026-12-02T03:00:00" and back["took"] == 90.0


def test_a_gate_violation_fails_without_retries_and_a_database_error_keeps_them(monkeypatch) -> None:
    """The same data fails the same way: a violation raises AirflowFailException (Airflow does not
    retry it); a database error stays itself, so the task's retries cover a server that was away."""
    import pymysql
    import pytest
    from airflow.sdk.exceptions import AirflowFailException

    from ml.orchestration import tasks
    from ml.quality import gates

    def violated(stage, settings, **params):
        raise gates.QualityGateFailed(gates.QualityResult(stage, False, "raw: 20 events in the future"))

    monkeypatch.setattr(gates, "require_stage", violated)
    with pytest.raises(AirflowFailException, match="GX raw gate failed: raw: 20 events in the future"):
        tasks.quality_gate("raw")

    def away(stage, settings, **params):
        raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query")

    monkeypatch.setattr(gates, "require_stage", away)
    with pytest.raises(pymysql.err.OperationalError):
        tasks.quality_gate("raw")
