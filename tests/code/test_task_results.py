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
