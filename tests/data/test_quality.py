"""The Great Expectations gates on the real MariaDB: a clean batch passes, each poisoned batch fails
the right suite with a message that names the column and the share of bad rows."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from quality_support import build_marts, execute, mart_settings

from ml.quality.gates import QualityGateFailed, QualityResult, require_stage, run_stage
from ml.quality.state import load_state

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def failed(result: QualityResult) -> set[tuple[str, str]]:
    """(suite, column) of every failed expectation."""
    return {(v["suite"], f["column"]) for v in result.details["validations"] for f in v["failures"]}


# ------------------------------------------------------------------------------------------- raw


def raw_sim_newest_event_id(settings) -> int:
    from ml.features.datasets import read_sql

    return int(
        read_sql(f"SELECT MAX(event_id) AS m FROM `{settings.raw_db}`.user_behavior", settings)["m"][0]
    )


@pytest.fixture()
def raw_sim(sim_small_db):
    """``sim_small`` as the raw tables hold it: reloaded if an earlier test emptied or changed them."""
    return sim_small_db


@pytest.fixture()
def events(sim_small) -> pd.DataFrame:
    """A clean incoming batch: 1,000 events of the simulated shop, in contract columns."""
    ev = sim_small.events.head(1000).copy()
    return ev[["user_id", "item_id", "session_id", "behavior_type", "query_text", "ts"]].reset_index(
        drop=True
    )


def test_clean_simulated_batch_passes(settings, events):
    result = run_stage("raw", settings, frame=events, build_docs=False)
    assert result.success, result.summary
    assert result.details["rows"] == 1000


def test_landed_simulation_passes_and_advances_the_watermark(settings, raw_sim):
    result = run_stage("raw", settings, since_event_id=0)
    assert result.success, result.summary
    assert result.details["rows"] == len(raw_sim.events)
    assert "Data Docs:" in result.summary and (settings.home / "gx" / "data_docs" / "index.html").exists()
    watermark = load_state(settings)[settings.raw_db]["raw_watermark"]
    again = run_stage("raw", settings, build_docs=False)
    assert again.success and again.details["skipped"] == "no new events to validate"
    assert again.details["since_event_id"] == watermark


def test_first_landed_batch_is_the_newest_max_rows(settings, raw_sim):
    (settings.home / "gx" / "state.json").unlink(missing_ok=True)
    result = run_stage("raw", settings, max_rows=500, build_docs=False)
    assert result.success and result.details["rows"] == 500
    newest = int(raw_sim_newest_event_id(settings))
    assert result.details["since_event_id"] == newest - 500 and result.details["max_event_id"] == newest
    assert load_state(settings)[settings.raw_db]["raw_watermark"] == result.details["max_event_id"]


def test_forty_percent_null_user_ids_fail(settings, events):
    events.loc[events.sample(frac=0.4, random_state=1).index, "user_id"] = None
    result = run_stage("raw", settings, frame=events, build_docs=False)
    assert not result.success
    assert ("raw_user_behavior", "user_id") in failed(result)
    assert "user_id: user_id is never NULL" in result.summary and "40% bad (400 rows)" in result.summary


def test_behaviour_type_outside_the_set_fails(settings, events):
    events["behavior_type"] = events["behavior_type"].replace({"browse": "view"})  # a producer renamed a type
    result = run_stage("raw", settings, frame=events, build_docs=False)
    assert failed(result) == {("raw_user_behavior", "behavior_type")}
    assert "e.g. view" in result.summary


def test_future_timestamps_fail(settings, events):
    shift = pd.Timestamp(datetime.utcnow() + timedelta(days=2)).floor("ms") - events["ts"].min()
    events.loc[:99, "ts"] = events.loc[:99, "ts"] + shift
    result = run_stage("raw", settings, frame=events, build_docs=False)
    assert failed(result) == {("raw_user_behavior", "ts")}
    assert "10% bad (100 rows)" in result.summary


def test_duplicated_events_fail(settings, events):
    resent = pd.concat([events, events.head(200)], ignore_index=True)  # part of the batch sent twice
    result = run_stage("raw", settings, frame=resent, build_docs=False)
    assert failed(result) == {("raw_user_behavior", "user_id,item_id,behavior_type,ts")}


def test_landed_future_events_fail_the_sql_batch(settings, raw_sim):
    """Events that the raw table accepts (valid types, ids) but that lie in the future."""
    conn_sql = f"SELECT COALESCE(MAX(event_id), 0) FROM `{settings.raw_db}`.user_behavior"
    from ml.db import connect

    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(conn_sql)
            before = int(cur.fetchone()[0])
            future = (datetime.utcnow() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
            cur.executemany(
                f"INSERT INTO `{settings.raw_db}`.user_behavior (user_id, item_id, session_id, behavior_type, ts) "
                "VALUES (%s, %s, 'gx-test', 'browse', %s)",
                [(1, 1000 + k, future) for k in range(20)],
            )
        result = run_stage("raw", settings, since_event_id=before, build_docs=False)
        assert not result.success and failed(result) == {("raw_user_behavior", "ts")}
        assert result.details["rows"] == 20
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM `{settings.raw_db}`.user_behavior WHERE event_id > %s", (before,))
        conn.close()


def test_events_committed_after_the_raw_watermark_passed_them_are_validated(settings, raw_sim):
    """A long transaction holds low ids (future timestamps); the feed commits good events with higher
    ids; the gate passes and advances its watermark past both; the transaction commits: the next gate
    validates its events and fails on them (issue 14, item 3)."""
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    long_tx = connect(settings.raw_db, settings=settings, autocommit=False)
    insert = (
        "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, ts) "
        "VALUES (%s, %s, 'gx-late', 'browse', %s)"
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COALESCE(MAX(event_id), 0) FROM user_behavior")
            before = int(cur.fetchone()[0])
        future = (datetime.utcnow() + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
        long_tx.begin()
        with long_tx.cursor() as cur:
            cur.executemany(insert, [(1, 2000 + k, future) for k in range(20)])
        past = (datetime.utcnow() - timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S")
        with conn.cursor() as cur:  # the live feed, committed with higher ids
            cur.executemany(insert, [(2, 3000 + k, past) for k in range(5)])
            cur.execute("SELECT MAX(event_id) FROM user_behavior")
            fed = int(cur.fetchone()[0])
        first = run_stage("raw", settings, since_event_id=before, build_docs=False)
        assert first.success and first.details["rows"] == 5, first.summary
        assert load_state(settings)[settings.raw_db]["raw_watermark"] == fed
        long_tx.commit()
        second = run_stage("raw", settings, build_docs=False)
        assert not second.success and failed(second) == {("raw_user_behavior", "ts")}, second.summary
        assert second.details["rows"] == 20
    finally:
        long_tx.rollback()
        long_tx.close()
        with conn.cursor() as cur:
            cur.execute("DELETE FROM user_behavior WHERE event_id > %s", (before,))
        conn.close()


def test_require_stage_raises_with_the_summary(settings, events):
    events["user_id"] = None
    with pytest.raises(QualityGateFailed, match="user_id") as info:
        require_stage("raw", settings, frame=events, build_docs=False)
    assert info.value.result.success is False


# ----------------------------------------------------------------------------------------- marts


@pytest.fixture()
def marts(settings):
    """Clean tiny marts in ``<marts_db>_gx`` and no remembered row counts."""
    s = mart_settings(settings)
    build_marts(s)
    state = settings.home / "gx" / "state.json"
    state.unlink(missing_ok=True)
    yield s
    execute(s, f"DROP DATABASE IF EXISTS `{s.marts_db}`")


def test_clean_marts_pass_and_remember_row_counts(marts):
    result = run_stage("marts", marts, build_docs=False)
    assert result.success, result.summary
    counts = load_state(marts)[marts.marts_db]["row_counts"]
    assert counts == {
        "dim_users": 6,
        "dim_items": 6,
        "fct_session_intent": 6,
        "ml_candidates": 36,
        "ml_covisitation": 18,
    }


def test_mart_with_a_feature_all_null_fails(marts):
    execute(marts, f"UPDATE `{marts.marts_db}`.dim_users SET purchase_rate = NULL")
    result = run_stage("marts", marts, build_docs=False)
    assert not result.success
    assert ("marts_dim_users", "purchase_rate") in failed(result)
    assert {suite for suite, _ in failed(result)} == {"marts_dim_users"}
    assert "purchase_rate: purchase_rate is never NULL" in result.summary


def test_rates_outside_zero_one_and_duplicate_keys_fail(marts):
    execute(
        marts,
        f"UPDATE `{marts.marts_db}`.dim_items SET view_to_cart_rate = 1.5 WHERE item_id = 101",
        f"UPDATE `{marts.marts_db}`.ml_covisitation SET similar_item_id = item_id WHERE `rank` = 3",
    )
    result = run_stage("marts", marts, build_docs=False)
    assert ("marts_dim_items", "view_to_cart_rate") in failed(result)
    assert ("marts_ml_covisitation", "table") in failed(result)  # an item is its own neighbour


def test_row_count_drop_against_the_previous_run_fails(marts):
    assert run_stage("marts", marts, build_docs=False).success
    execute(marts, f"DELETE FROM `{marts.marts_db}`.ml_candidates WHERE user_id > 1")
    result = run_stage("realtime", marts, build_docs=False)
    assert failed(result) == {("marts_ml_candidates", "table")}
    assert "observed 6" in result.summary


def test_missing_mart_is_a_usage_error(marts):
    from ml.quality.gates import QualityUsageError

    execute(marts, f"DROP TABLE `{marts.marts_db}`.dim_items")
    with pytest.raises(QualityUsageError, match="dim_items"):
        run_stage("marts", marts)


# -------------------------------------------------------------------------------------- training


def test_training_set_passes_then_fails_on_a_leaky_column(marts):
    assert run_stage("training", marts, database=marts.marts_db, build_docs=False).success
    execute(
        marts,
        f"ALTER TABLE `{marts.marts_db}`.ml_training_set ADD COLUMN purchased_next_day TINYINT DEFAULT 0",
    )
    result = run_stage("training", marts, database=marts.marts_db, build_docs=False)
    assert failed(result) == {("training_ml_training_set_columns", "column_name")}
    assert "e.g. purchased_next_day" in result.summary


def test_training_set_without_positives_fails(marts):
    execute(marts, f"UPDATE `{marts.marts_db}`.ml_training_set SET label = 0, clicked = 0, carted = 0")
    result = run_stage("training", marts, database=marts.marts_db, build_docs=False)
    assert failed(result) == {("training_ml_training_set", "label")}
    assert "at least 0.1% positive labels" in result.summary and "100% bad (36 rows)" in result.summary


# ------------------------------------------------------------------------------------------ top-N


@pytest.fixture()
def topn(settings, raw_sim) -> tuple[pd.DataFrame, list[int]]:
    """A clean top-5 for 4 users: in-stock items they never bought, scores falling with rank."""
    ev = raw_sim.events
    items = raw_sim.items
    in_stock = items.loc[items["in_stock"] == 1, "item_id"].to_numpy()
    users = sorted(ev["user_id"].unique())[:4]
    rows = []
    for u in users:
        bought = set(ev.loc[(ev.user_id == u) & (ev.behavior_type == "purchase"), "item_id"])
        picks = [i for i in in_stock if i not in bought][:5]
        rows += [(u, r + 1, int(i), 1.0 - 0.1 * r) for r, i in enumerate(picks)]
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id", "score"]), [int(u) for u in users]


def test_clean_topn_passes(settings, topn):
    frame, users = topn
    result = run_stage("topn", settings, frame=frame, n=5, user_ids=users, build_docs=False)
    assert result.success, result.summary


def test_topn_with_duplicate_items_fails(settings, topn):
    frame, users = topn
    frame.loc[1, "item_id"] = frame.loc[0, "item_id"]
    result = run_stage("topn", settings, frame=frame, n=5, user_ids=users, build_docs=False)
    assert ("serving_topn", "user_id,item_id") in failed(result)
    assert "no duplicate items per user" in result.summary


def test_topn_business_rules_fail(settings, raw_sim, topn):
    frame, users = topn
    ev, items = raw_sim.events, raw_sim.items
    out_of_stock = int(items.loc[items["in_stock"] == 0, "item_id"].iloc[0])
    buyer, bought = ev.loc[ev.behavior_type == "purchase", ["user_id", "item_id"]].iloc[0]
    frame.loc[0, "item_id"] = out_of_stock
    frame.loc[6, "score"] = 5.0  # rank 2 of the second user scores above rank 1
    frame.loc[len(frame)] = [int(buyer), 1, int(bought), 1.0]
    result = run_stage("topn", settings, frame=frame, n=5, user_ids=users + [999_999], build_docs=False)
    bad = {col for _, col in failed(result)}
    assert {"in_stock", "score_ordered", "already_purchased", "user_rows"} <= bad
    allowed = int(items.loc[items.item_id == bought, "category_id"].iloc[0])
    again = run_stage(
        "topn",
        settings,
        frame=frame,
        n=5,
        user_ids=users,
        repeat_buy_category_ids=[allowed],
        build_docs=False,
    )
    assert "already_purchased" not in {col for _, col in failed(again)}
    # a model whose learned rules allow re-buying is checked as it serves
    allowed_all = run_stage(
        "topn", settings, frame=frame, n=5, user_ids=users, exclude_purchased=False, build_docs=False
    )
    assert "already_purchased" not in {col for _, col in failed(allowed_all)}
    assert "in_stock" in {col for _, col in failed(allowed_all)}  # the other rules still hold


def test_topn_from_a_serving_table_with_non_finite_scores(settings, topn):
    frame, users = topn
    table = "user_topn_gxtest"
    execute(
        settings,
        f"DROP TABLE IF EXISTS `{settings.serving_db}`.{table}",
        f"CREATE TABLE `{settings.serving_db}`.{table} LIKE `{settings.serving_db}`.user_topn",
    )
    try:
        from ml.db import connect

        conn = connect(settings=settings)
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO `{settings.serving_db}`.{table} (user_id, `rank`, item_id, score, source, model_version, "
                "generated_at) VALUES (%s, %s, %s, %s, 'model', 'v1', NOW())",
                [tuple(r) for r in frame.itertuples(index=False)],
            )
        conn.close()
        assert run_stage("topn", settings, table=table, n=5, user_ids=users, build_docs=False).success
    finally:
        execute(settings, f"DROP TABLE IF EXISTS `{settings.serving_db}`.{table}")
    frame["score"] = frame["score"].astype(float)
    frame.loc[2, "score"] = np.inf
    result = run_stage("topn", settings, frame=frame, n=5, user_ids=users, build_docs=False)
    assert ("serving_topn", "score") in failed(result)


# -------------------------------------------------------------------------------------------- CLI


def test_cli_prints_the_summary_and_exits_non_zero_on_failure(settings, raw_sim):
    from typer.testing import CliRunner

    from ml.cli.app import app
    from ml.db import connect

    runner = CliRunner()
    ok = runner.invoke(app, ["quality", "run", "raw", "--since-event-id", "0", "--no-docs"])
    assert ok.exit_code == 0, ok.output
    assert "quality raw: PASSED" in ok.output
    conn = connect(settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT MAX(event_id) FROM `{settings.raw_db}`.user_behavior")
            before = int(cur.fetchone()[0])
            cur.execute(
                f"INSERT INTO `{settings.raw_db}`.user_behavior (user_id, item_id, session_id, behavior_type, ts) "
                "VALUES (1, 1, 'gx-cli', 'cart', '2099-01-01 00:00:00')"
            )
        bad = runner.invoke(app, ["quality", "run", "raw", "--since-event-id", str(before), "--no-docs"])
        assert bad.exit_code == 1, bad.output
        assert "quality raw: FAILED" in bad.output and "ts:" in bad.output
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DELETE FROM `{settings.raw_db}`.user_behavior WHERE event_id > %s", (before,))
        conn.close()
    missing = runner.invoke(app, ["quality", "run", "topn", "--table", "no_such_table"])
    assert missing.exit_code == 2 and "no_such_table" in missing.output


def test_old_results_and_docs_pages_are_pruned(settings, events):
    import os
    import time

    from ml.quality.context import KEEP_DAYS, prune_history

    assert run_stage("raw", settings, frame=events).success  # writes a result and its Data Docs page
    results = [p for p in (settings.home / "gx" / "validations").rglob("*.json")]
    pages = [p for p in (settings.home / "gx" / "data_docs" / "validations").rglob("*.html")]
    assert results and pages
    old = time.time() - (KEEP_DAYS + 1) * 86400
    os.utime(results[0], (old, old))
    os.utime(pages[0], (old, old))
    assert prune_history(settings) == 2
    assert not results[0].exists() and not pages[0].exists()
    assert all(p.exists() for p in results[1:] + pages[1:])
