"""The TF models on the real dbt marts of a simulated shop (MariaDB, point-in-time build).

Guards the seams: the Python contexts the two-tower trains on equal what ``fct_session_intent``
serves (no train/serve skew), and the ranker/two-tower accept the marts' columns and types as they
come out of MySQL (DECIMAL, BIGINT, NULLs).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

CUT = datetime(2026, 10, 6)


def _read(settings, sql: str, params: tuple | None = None) -> pd.DataFrame:
    from ml.db import connect

    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            df = pd.DataFrame(list(cur.fetchall()), columns=[d[0] for d in cur.description])
    finally:
        conn.close()
    for col in df.columns:  # DECIMAL → float, as the pipeline's reader does
        present = df[col].dropna()
        if df[col].dtype == object and len(present) and isinstance(present.iloc[0], Decimal):
            df[col] = df[col].astype(float)
    return df


@pytest.fixture(scope="module")
def marts(sim_small_module, settings):
    from ml.features.dbt import build_point_in_time

    pit = build_point_in_time(CUT, 24, settings)
    events = _read(
        settings,
        f"SELECT user_id, item_id, session_id, behavior_type, query_text, ts FROM `{settings.raw_db}`.user_behavior "
        "WHERE ts < %s",
        (CUT.strftime("%Y-%m-%d %H:%M:%S"),),
    )
    events["item_id"] = events["item_id"].astype("Int64")
    return {
        "events": events,
        "intent": _read(settings, f"SELECT * FROM `{pit}`.fct_session_intent"),
        "training": _read(settings, f"SELECT * FROM `{pit}`.ml_training_set ORDER BY user_id, item_id"),
        "dim_items": _read(settings, f"SELECT * FROM `{pit}`.dim_items"),
        "raw_items": _read(settings, f"SELECT item_id, title, category FROM `{settings.raw_db}`.items"),
    }


def test_python_contexts_equal_fct_session_intent(marts):
    from ml.models.tf.sequences import contexts_from_events

    mine = contexts_from_events(marts["events"])
    dbt = marts["intent"][["user_id", "last_items", "query_terms"]]
    both = mine.merge(dbt, on="user_id", suffixes=("_py", "_dbt"), how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    assert (both["last_items_py"] == both["last_items_dbt"]).all()
    assert (both["query_terms_py"].str.lower() == both["query_terms_dbt"].str.lower()).all()


def test_ranker_learns_from_the_training_set(marts):
    from ml.models.tf.ranker import fit_ranker
    from ml.models.tf.ranker_config import (
        TRAINING_SET_ITEM_FEATURES,
        TRAINING_SET_USER_FEATURES,
        RankerConfig,
    )
    from ml.models.tf.ranker_inputs import attach_context

    rows = attach_context(marts["training"], marts["intent"], marts["raw_items"])
    users = np.sort(rows["user_id"].unique())
    valid_users = set(users[::4])
    train, valid = rows[~rows["user_id"].isin(valid_users)], rows[rows["user_id"].isin(valid_users)]
    cfg = RankerConfig(
        user_features=TRAINING_SET_USER_FEATURES,
        item_features=TRAINING_SET_ITEM_FEATURES,
        epochs=2,
        item_dim=16,
        hidden=(64, 32),
    )
    catalogue = marts["dim_items"].merge(marts["raw_items"], on="item_id")
    ranker = fit_ranker(train, valid, cfg, items=catalogue)
    score = ranker.score(valid)
    assert np.isfinite(score).all() and len(score) == len(valid)
    pos = valid["label"].to_numpy() > 0
    # AUC by ranks: a clicked/carted/bought candidate outranks a silent one far more often than not
    ranks = pd.Series(score).rank().to_numpy()
    auc = (ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum())
    assert auc > 0.7, auc


def test_two_tower_serves_fct_session_intent_rows(marts):
    from ml.models.tf.sequences import sequences_from_events
    from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

    tt = fit_two_tower(sequences_from_events(marts["events"]), marts["dim_items"], TwoTowerConfig(epochs=1))
    bought = marts["events"].loc[marts["events"]["behavior_type"] == "purchase", ["user_id", "item_id"]]
    bought = bought.astype("int64").drop_duplicates()
    got = tt.retrieve(marts["intent"], k=20, exclude=bought)
    assert (got.groupby("user_id").size() == 20).all()
    assert set(got["user_id"]) == set(marts["intent"]["user_id"])
    assert got.merge(bought, on=["user_id", "item_id"]).empty
