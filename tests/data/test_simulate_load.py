"""The simulation lands in recsys_raw intact (real MariaDB): every event, user, item and the
ground-truth intents, with NULLs, strings and millisecond timestamps preserved."""

from __future__ import annotations

import pandas as pd

from ml.features.datasets import read_sql


def _query(settings, sql: str) -> pd.DataFrame:
    return read_sql(sql, settings, database=settings.raw_db)


def test_sim_small_is_loaded_completely(sim_small_db, settings):
    sim_small = sim_small_db
    counts = _query(
        settings,
        "SELECT behavior_type, COUNT(*) n, SUM(item_id IS NULL) no_item FROM user_behavior GROUP BY 1",
    )
    counts = counts.set_index("behavior_type")
    expected = sim_small.events.behavior_type.value_counts()
    assert {k: int(v) for k, v in counts.n.items()} == {k: int(v) for k, v in expected.items()}
    assert int(counts.loc["search", "no_item"]) == int(expected["search"])
    assert int(counts.drop("search").no_item.sum()) == 0
    for table, frame in (
        ("users", sim_small.users),
        ("items", sim_small.items),
        ("sim_session_intent", sim_small.intents),
        ("sim_query_intent", sim_small.queries),
    ):
        assert int(_query(settings, f"SELECT COUNT(*) n FROM {table}").n[0]) == len(frame)


def test_event_values_round_trip(sim_small_db, settings):
    sim_small = sim_small_db
    db = _query(
        settings, "SELECT user_id, item_id, session_id, behavior_type, query_text, ts FROM user_behavior"
    )
    db["item_id"] = db["item_id"].astype("Int64")
    db["ts"] = pd.to_datetime(db["ts"]).astype("datetime64[ms]")
    key = ["session_id", "ts", "behavior_type", "item_id"]
    left = db.sort_values(key, ignore_index=True)
    right = sim_small.events.sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(left, right, check_dtype=False)


def test_ground_truth_and_references(sim_small_db, settings):
    sim_small = sim_small_db
    orphans = _query(
        settings,
        "SELECT COUNT(*) n FROM user_behavior e LEFT JOIN items i ON i.item_id = e.item_id "
        "WHERE e.item_id IS NOT NULL AND i.item_id IS NULL",
    )
    assert int(orphans.n[0]) == 0
    gt = _query(
        settings, "SELECT session_id, intent_category_id, is_switch, query_text FROM sim_session_intent"
    )
    merged = gt.merge(sim_small.intents, on="session_id", suffixes=("_db", ""))
    assert len(merged) == len(sim_small.intents)
    assert (merged.intent_category_id_db == merged.intent_category_id).all()
    assert (merged.is_switch_db == merged.is_switch).all()
    assert (merged.query_text_db.fillna("") == merged.query_text.fillna("")).all()


def test_query_truth_round_trips_with_chinese_text(sim_small_db, settings):
    """sim_query_intent holds SimData.queries as simulated: Chinese text, NULL brand/model kept."""
    got = _query(settings, "SELECT * FROM sim_query_intent").sort_values("session_id", ignore_index=True)
    want = sim_small_db.queries.sort_values("session_id", ignore_index=True)
    assert (got.lang == "zh").any() and got.model.notna().any() and got.brand.isna().any()
    pd.testing.assert_frame_equal(got[list(want.columns)], want, check_dtype=False)


def test_block_by_block_load_matches_one_simulation(clean_db):
    from datetime import datetime

    from ml.data.sim_config import SimConfig
    from ml.data.sim_load import load_simulation
    from ml.data.simulate import iter_simulation, simulate

    cfg = SimConfig(users=260, items=90, days=4, seed=21, start=datetime(2026, 10, 1), users_per_block=100)
    reports = [load_simulation(block, clean_db, batch_rows=2000) for block in iter_simulation(cfg)]
    whole = simulate(cfg)
    assert sum(r.loaded for r in reports) == len(whole.events) and not any(r.quarantined for r in reports)
    assert sum(r.batches for r in reports) > 3
    got = _query(
        clean_db,
        "SELECT COUNT(*) n, COUNT(DISTINCT user_id) u, COUNT(DISTINCT session_id) s FROM user_behavior",
    )
    assert (int(got.n[0]), int(got.s[0])) == (len(whole.events), len(whole.intents))


def test_sim_small_db_reloads_after_a_clean(clean_db, sim_small_db):
    assert int(_query(clean_db, "SELECT COUNT(*) n FROM user_behavior").n[0]) == len(sim_small_db.events)
