"""One home for shared definitions: the weights, decays and windows the Python baselines use are the
dbt vars of dbt_project.yml (read independently here), and no SQL model writes weights by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ml import contracts
from ml.models import baselines

ROOT = Path(__file__).resolve().parents[2]
VARS = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text())["vars"]
NOW = pd.Timestamp("2026-03-01 12:00:00")


def _events(rows: list[tuple[int, int, str, float]]) -> pd.DataFrame:
    """(user, item, type, hours before NOW) → a history frame."""
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [float(r[1]) for r in rows],
            "behavior_type": [r[2] for r in rows],
            "ts": [NOW - pd.Timedelta(hours=r[3]) for r in rows],
            "session_id": [f"s{r[0]}" for r in rows],
        }
    )


def test_every_named_weight_set_is_a_dbt_var() -> None:
    assert set(contracts.WEIGHT_SETS) == set(VARS["event_weights"])
    for name in contracts.WEIGHT_SETS:
        assert contracts.event_weights(name) == {k: float(v) for k, v in VARS["event_weights"][name].items()}


def test_popularity_baseline_uses_the_dbt_weights_decay_and_window() -> None:
    w, half_life, days = (
        VARS["event_weights"]["popularity"],
        VARS["popularity_half_life_hours"],
        VARS["popularity_days"],
    )
    hist = _events(
        [
            (1, 10, "browse", 0),
            (2, 10, "purchase", half_life),
            (3, 20, "cart", 2),
            (4, 30, "fav", 24 * days + 1),
        ]
    )
    got = baselines.popularity_scores(hist, NOW)
    expected = {
        10: w["browse"] + w["purchase"] * 0.5,  # one half-life old
        20: w["cart"] * 0.5 ** (2 / half_life),
    }  # item 30 is outside the window
    assert set(got.index) == set(expected)
    for item, value in expected.items():
        assert got[item] == pytest.approx(value)


def test_repeat_baseline_uses_the_dbt_repeat_weights_and_half_life() -> None:
    w, half_life = VARS["event_weights"]["repeat"], VARS["repeat_half_life_hours"]
    hist = _events([(1, 10, "browse", 0), (1, 11, "cart", half_life), (1, 12, "fav", 0)])
    rec = baselines.RepeatRecommender(hist, NOW, pop=pd.Series({99: 1.0}))
    scores = dict(zip(rec.scores["item_id"], rec.scores["score"]))
    assert scores == pytest.approx({10: w["browse"], 11: w["cart"] * 0.5, 12: w["fav"]})


def test_intent_from_history_uses_the_dbt_intent_weights() -> None:
    w = VARS["event_weights"]["intent"]
    items = pd.DataFrame({"item_id": [1, 2, 3], "category_id": [100, 200, 300]})
    hist = _events([(1, 1, "purchase", 1), (1, 2, "browse", 1), (1, 2, "browse", 2), (1, 3, "cart", 1)])
    totals = {100: w["purchase"], 200: 2 * w["browse"], 300: w["cart"]}
    best = max(totals.values())
    assert baselines.intent_from_history(hist, items) == {1: min(c for c, v in totals.items() if v == best)}


def test_no_sql_model_writes_behaviour_weights_by_hand() -> None:
    """Weights in SQL come from the ``type_weight`` macro over ``var('event_weights')`` only."""
    pattern = re.compile(r"when\s+'(browse|fav|cart|purchase)'\s+then\s+[0-9.]+", re.IGNORECASE)
    offenders = [
        str(p.relative_to(ROOT))
        for folder in ("models", "macros")
        for p in (ROOT / "dbt_project" / folder).rglob("*.sql")
        if pattern.search(p.read_text()) and "macro type_weight" not in p.read_text()
    ]
    assert not offenders, (
        f"hand-written behaviour weights in {offenders}: use {{{{ type_weight(col, '<set>') }}}}"
    )


def test_contract_errors_name_the_missing_var(tmp_path: Path) -> None:
    f = tmp_path / "dbt_project.yml"
    f.write_text("vars:\n  event_weights:\n    popularity: {browse: 1}\n")
    with pytest.raises(contracts.ContractError, match="event_weights.intent"):
        contracts.event_weights("intent", f)
    with pytest.raises(contracts.ContractError, match="popularity_days"):
        contracts.dbt_var("popularity_days", f)
    f2 = tmp_path / "other.yml"
    f2.write_text("vars:\n  event_weights:\n    popularity: {click: 1}\n")
    with pytest.raises(contracts.ContractError, match="unknown behaviours"):
        contracts.event_weights("popularity", f2)
