"""dbt on the small simulated shop (fixture ``sim_small``), against the real MariaDB:
the full build with its tests, incremental realtime == full refresh, no leakage from the future,
the graph rule for the unbounded staging view, and ``dbt docs generate``.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from ml.db import connect

REALTIME_MODELS = {"fct_session_intent": ["user_id"], "ml_candidates": ["user_id", "item_id"]}
#: realtime marts keyed by query (and the users' recent queries): compared whole, not per user
SEARCH_MODELS = {
    "ml_query_item": ["query_norm", "item_id"],
    "ml_query_stats": ["query_norm"],
    "ml_user_recent_queries": ["user_id", "rn"],
}
FEATURE_MODELS = {
    "dim_users": ["user_id"],
    "dim_items": ["item_id"],
    "fct_session_intent": ["user_id"],
    "ml_covisitation": ["item_id", "similar_item_id"],
    "ml_candidates": ["user_id", "item_id"],
    "int_user_items_aggregated": ["user_id", "item_id"],
}


@pytest.fixture(scope="module")
def dbt_target(tmp_path_factory: pytest.TempPathFactory):
    """Own dbt target/log folders: other dbt processes in this checkout must not race with ours."""
    base = tmp_path_factory.mktemp("dbt_marts")
    old = {k: os.environ.get(k) for k in ("DBT_TARGET_PATH", "DBT_LOG_PATH")}
    os.environ["DBT_TARGET_PATH"] = str(base / "target")
    os.environ["DBT_LOG_PATH"] = str(base / "logs")
    yield base / "target"
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _query(settings, sql: str, database: str | None = None, params: tuple = ()) -> pd.DataFrame:
    conn = connect(database or settings.marts_db, settings=settings, dict_cursor=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return pd.DataFrame(list(cur.fetchall()))
    finally:
        conn.close()


def _table(settings, name: str, keys: list[str], database: str | None = None) -> pd.DataFrame:
    df = _query(settings, f"SELECT * FROM `{name}`", database)
    return df.sort_values(keys, ignore_index=True)


@pytest.fixture(scope="module")
def sim(sim_small_module, settings, dbt_target):
    """The simulated shop in the raw tables (reloaded if an earlier module emptied them), with all
    marts built from scratch."""
    from ml.features.dbt import run_dbt

    run_dbt(["build", "--full-refresh"], settings=settings)
    return sim_small_module


@pytest.fixture()
def extra_events(sim, settings):
    """Insert events for a test; removed afterwards so the shop is the same for the next test."""
    conn = connect(settings.raw_db, settings=settings)
    with conn.cursor() as cur:
        cur.execute("SELECT COALESCE(MAX(event_id), 0) FROM user_behavior")
        (first_id,) = cur.fetchone()

    def insert(rows: list[tuple]) -> None:
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO user_behavior (user_id, item_id, session_id, behavior_type, query_text, ts)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                rows,
            )

    yield insert
    with conn.cursor() as cur:
        cur.execute("DELETE FROM user_behavior WHERE event_id > %s", (first_id,))
    conn.close()


def _new_events(sim, start, users: list[int], per_user: int = 6) -> list[tuple]:
    """Sessions of browses/carts/a purchase/a search after ``start`` for the given users."""
    items = sim.items["item_id"].tolist()
    kinds = ["search", "browse", "browse", "cart", "browse", "purchase"]
    rows = []
    for n, user in enumerate(users):
        for k in range(per_user):
            kind = kinds[k % len(kinds)]
            item = None if kind == "search" else int(items[(user * 7 + k * 3) % len(items)])
            query = "new running shoes" if kind == "search" else None
            rows.append(
                (int(user), item, f"new-{user}", kind, query, start + timedelta(minutes=n, seconds=10 * k))
            )
    return rows


def test_full_build_is_green_and_covers_every_active_user(sim, settings):
    n_users = sim.events["user_id"].nunique()
    assert len(_query(settings, "SELECT user_id FROM dim_users")) == n_users
    assert len(_query(settings, "SELECT user_id FROM fct_session_intent")) == n_users
    per_user = _query(settings, "SELECT user_id, COUNT(*) AS n FROM ml_candidates GROUP BY user_id")
    assert len(per_user) == n_users
    assert per_user["n"].min() >= 20  # at least the global popular items
    covis = _query(
        settings, "SELECT item_id, COUNT(*) AS n, MAX(`rank`) AS r FROM ml_covisitation GROUP BY item_id"
    )
    assert covis["n"].max() <= 50 and (covis["n"] == covis["r"]).all()


def test_incremental_realtime_run_equals_full_refresh(sim, settings, extra_events):

    before = {m: _table(settings, m, k) for m, k in REALTIME_MODELS.items()}
    last_ts = pd.Timestamp(sim.events["ts"].max()).to_pydatetime()
    changed = sorted(sim.events["user_id"].drop_duplicates().sample(15, random_state=1).tolist()) + [10_001]
    with connect(settings.raw_db, settings=settings) as conn, conn.cursor() as cur:
        cur.execute("INSERT IGNORE INTO users (user_id, gender, age) VALUES (10001, 'F', 41)")  # a new user
    extra_events(_new_events(sim, last_ts + timedelta(minutes=5), changed))
    try:
        _compare_incremental_with_full_refresh(sim, settings, before, changed)
    finally:
        with connect(settings.raw_db, settings=settings) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM users WHERE user_id = 10001")


def test_backdated_event_reaches_the_realtime_marts(sim, settings, extra_events):
    """The realtime watermark is the event id (ingestion order), not the event time: an event
    backfilled with an old timestamp after an incremental build is picked up by the next one, and
    the user's realtime rows then equal a full refresh's (issue 14, item 4)."""
    from ml.features.dbt import run_dbt

    run_dbt(["run", "--select", "tag:realtime", "--full-refresh"], settings=settings)  # sets the watermark
    fct = _table(settings, "fct_session_intent", ["user_id"]).set_index("user_id")
    newest = fct["last_event_ts"].max()
    user = int(fct.index[fct["last_event_ts"] < newest - pd.Timedelta(days=2)][0])  # well below it
    row = fct.loc[user]
    touched = set(
        _query(settings, f"SELECT item_id FROM user_behavior WHERE user_id = {user}", settings.raw_db)[
            "item_id"
        ]
    )
    item = int(next(i for i in sim.items["item_id"] if i not in touched))
    backdated = pd.Timestamp(row["last_event_ts"]).to_pydatetime() - timedelta(seconds=1)
    extra_events([(user, item, row["session_id"], "cart", None, backdated)])

    run_dbt(["build", "--select", "tag:realtime"], settings=settings)
    recomputed = _query(settings, "SELECT DISTINCT user_id FROM int_realtime_user_events")
    assert set(recomputed["user_id"] if not recomputed.empty else []) == {user}
    incremental = {m: _table(settings, m, k) for m, k in REALTIME_MODELS.items()}
    mine = incremental["fct_session_intent"].set_index("user_id").loc[user]
    assert str(item) in mine["carted_not_bought"].split(",") and str(item) in mine["last_items"].split(",")
    assert mine["session_events"] == row["session_events"] + 1
    run_dbt(["build", "--select", "tag:realtime", "--full-refresh"], settings=settings)
    for model, keys in REALTIME_MODELS.items():
        full = _table(settings, model, keys)
        pd.testing.assert_frame_equal(incremental[model], full, check_exact=False, rtol=1e-9)


def test_a_mart_that_missed_a_run_catches_up_on_the_next(sim, settings, extra_events):
    """The incremental run starts from the older mart watermark (an event id): when ml_candidates
    did not run after fct_session_intent took in new events, the next run recomputes those users."""
    from ml.features.dbt import run_dbt

    run_dbt(["run", "--select", "tag:realtime", "--full-refresh"], settings=settings)
    users = sorted(sim.events["user_id"].drop_duplicates().sample(3, random_state=2).tolist())
    last_ts = pd.Timestamp(sim.events["ts"].max()).to_pydatetime()
    extra_events(_new_events(sim, last_ts + timedelta(minutes=5), users))
    run_dbt(["run", "--select", "int_realtime_user_events", "fct_session_intent"], settings=settings)
    state = _query(settings, "SELECT model_name, watermark_event_id AS w FROM realtime_watermarks")
    marks = dict(zip(state["model_name"], state["w"], strict=True))
    assert marks["fct_session_intent"] > marks["ml_candidates"]  # candidates missed that run

    run_dbt(["run", "--select", "tag:realtime"], settings=settings)
    assert set(_query(settings, "SELECT DISTINCT user_id FROM int_realtime_user_events")["user_id"]) == set(
        users
    )
    incremental = _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"])
    run_dbt(["run", "--select", "tag:realtime", "--full-refresh"], settings=settings)
    full = _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"])
    pd.testing.assert_frame_equal(incremental, full, check_exact=False, rtol=1e-9)


def _compare_incremental_with_full_refresh(sim, settings, before: dict, changed: list[int]) -> None:
    from ml.features.dbt import run_dbt

    run_dbt(["build", "--select", "tag:realtime"], settings=settings)
    rt_users = set(_query(settings, "SELECT DISTINCT user_id FROM int_realtime_user_events")["user_id"])
    assert rt_users == set(changed)  # only the users with new events were recomputed
    incremental = {m: _table(settings, m, k) for m, k in {**REALTIME_MODELS, **SEARCH_MODELS}.items()}
    run_dbt(["build", "--select", "tag:realtime", "--full-refresh"], settings=settings)
    full = {m: _table(settings, m, k) for m, k in {**REALTIME_MODELS, **SEARCH_MODELS}.items()}
    for model in SEARCH_MODELS:
        pd.testing.assert_frame_equal(incremental[model], full[model], check_exact=False, rtol=1e-9)
    assert "new running shoes" in set(incremental["ml_query_stats"]["query_norm"])

    for model in REALTIME_MODELS:
        pd.testing.assert_frame_equal(incremental[model], full[model], check_exact=False, rtol=1e-9)
        # rows of users without new events are untouched by the incremental run
        old = before[model][~before[model]["user_id"].isin(changed)].reset_index(drop=True)
        new = incremental[model][~incremental[model]["user_id"].isin(changed)].reset_index(drop=True)
        pd.testing.assert_frame_equal(old, new, check_exact=False, rtol=1e-9)
    fct = incremental["fct_session_intent"].set_index("user_id")
    assert (fct.loc[changed, "session_id"] == [f"new-{u}" for u in changed]).all()
    assert fct.loc[10_001, "query_terms"] == "new running shoes"
    assert set(incremental["ml_candidates"]["user_id"]) >= set(changed)

    # nothing new: a second incremental run recomputes nobody and changes nothing
    run_dbt(["build", "--select", "tag:realtime"], settings=settings)
    assert _query(settings, "SELECT COUNT(*) AS n FROM int_realtime_user_events")["n"][0] == 0
    again = _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"])
    pd.testing.assert_frame_equal(again, full["ml_candidates"], check_exact=False, rtol=1e-9)


def test_realtime_watermark_is_explicit_state_and_guards_a_partial_rebuild(sim, settings, dbt_target: Path):
    """The watermark lives in recsys_state.realtime_watermarks (a source: the lineage shows it), written
    by each realtime model's post-hook. A realtime mart rebuilt from scratch over an incremental
    int_realtime_user_events would keep only that run's users: dbt refuses it and changes nothing."""
    from ml.features.dbt import DbtError, run_dbt

    manifest = json.loads((dbt_target / "manifest.json").read_text())
    node = manifest["nodes"]["model.recsys.int_realtime_user_events"]
    assert "source.recsys.recsys_state.realtime_watermarks" in node["depends_on"]["nodes"]

    run_dbt(["run", "--select", "tag:realtime", "--full-refresh"], settings=settings)  # the shop as loaded
    run_dbt(["run", "--select", "tag:realtime"], settings=settings)  # incremental, nobody new
    state = _query(settings, "SELECT model_name, watermark_event_id FROM realtime_watermarks").set_index(
        "model_name"
    )
    newest = _query(settings, "SELECT MAX(event_id) AS id FROM user_behavior", settings.raw_db)["id"][0]
    assert state.loc["fct_session_intent", "watermark_event_id"] == newest  # the newest event id
    assert state.loc["ml_candidates", "watermark_event_id"] == newest
    assert state.loc["int_realtime_user_events", "watermark_event_id"] == newest  # the one that run used

    before = _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"])
    with pytest.raises(DbtError, match="built from scratch"):
        run_dbt(["run", "--select", "ml_candidates", "--full-refresh"], settings=settings)
    pd.testing.assert_frame_equal(before, _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"]))
    run_dbt(
        ["run", "--select", "tag:realtime", "--full-refresh"], settings=settings
    )  # with its upstream: fine
    assert pd.isna(
        _query(
            settings,
            "SELECT watermark_event_id FROM realtime_watermarks WHERE model_name = 'int_realtime_user_events'",
        )["watermark_event_id"][0]
    )
    pd.testing.assert_frame_equal(
        before,
        _table(settings, "ml_candidates", REALTIME_MODELS["ml_candidates"]),
        check_exact=False,
        rtol=1e-9,
    )


def test_point_in_time_features_ignore_events_at_and_after_the_cut(sim, settings, extra_events):
    """Differential leakage test: adding events at/after the cut changes the labels, never a feature.
    (The build itself also runs the singular test assert_no_feature_uses_events_at_or_after_cut.)"""
    from ml.features.dbt import build_point_in_time

    events = sim.events
    cut = (pd.Timestamp(events["ts"].min()) + pd.Timedelta(days=5)).floor("h").to_pydatetime()
    pit = build_point_in_time(cut, 24, settings)
    features = {m: _table(settings, m, k, pit) for m, k in FEATURE_MODELS.items()}
    labels = _table(settings, "ml_labels", ["user_id", "item_id"], pit)
    training = _query(settings, "SELECT COUNT(*) AS n, SUM(label > 0) AS pos FROM ml_training_set", pit)
    assert len(labels) > 0 and int(training["pos"][0]) > 0
    assert (labels["first_label_ts"] >= cut).all() and (
        labels["last_label_ts"] < cut + timedelta(hours=24)
    ).all()
    seen = set(events.loc[events["ts"] < cut, "user_id"])
    assert set(labels["user_id"]) <= seen

    # future activity of users seen before the cut: exactly at the cut, and inside the window
    users = sorted(seen)[:10]
    extra_events(_new_events(sim, cut, users))
    pit = build_point_in_time(cut, 24, settings)
    for model, keys in FEATURE_MODELS.items():
        pd.testing.assert_frame_equal(
            features[model], _table(settings, model, keys, pit), check_exact=False, rtol=1e-12
        )
    relabelled = _table(settings, "ml_labels", ["user_id", "item_id"], pit)
    assert len(relabelled) > len(labels)


def test_unbounded_events_reach_only_labels_and_the_session_prefix(sim, dbt_target: Path):
    manifest = json.loads((dbt_target / "manifest.json").read_text())
    readers = {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
        and "model.recsys.stg_recsys__user_behavior_unbounded" in node["depends_on"]["nodes"]
    }
    # labels, and the revealed session starts of a rest-of-session build (bounded per user by their own cut)
    # (and int_label_window_users: which users act in the label window, user ids only)
    assert readers <= {"ml_labels", "int_session_prefix_events", "int_label_window_users"}
    prefix_readers = {
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
        and "model.recsys.int_session_prefix_events" in n["depends_on"]["nodes"]
    }
    assert prefix_readers == {
        "int_realtime_user_events"
    }  # only the realtime models see them, never batch features
    window_user_readers = {
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and "model.recsys.int_label_window_users" in n["depends_on"]["nodes"]
    }
    assert window_user_readers <= {"int_realtime_user_events"}  # which users to compute, never a feature
    # every other model that reads events goes through the cut view
    sources = {
        n["name"]
        for n in manifest["nodes"].values()
        if "source.recsys.recsys.user_behavior" in n["depends_on"]["nodes"]
    }
    assert {s for s in sources if not s.startswith(("source_", "stg_"))} == set()


def test_docs_generate(sim, settings, dbt_target: Path):
    from ml.features.dbt import run_dbt

    run_dbt(["docs", "generate"], settings=settings)
    catalog = json.loads((dbt_target / "catalog.json").read_text())
    names = {n.split(".")[-1] for n in catalog["nodes"]}
    assert {"dim_users", "dim_items", "fct_session_intent", "ml_covisitation", "ml_candidates"} <= names
    assert not catalog.get("errors")


def test_run_dbt_failure_quotes_dbt_output(sim, settings):
    from ml.features.dbt import DbtError, run_dbt

    with pytest.raises(DbtError, match=r"(?s)exit \d.*var cut_ts must look like"):
        # a malformed cut: dbt itself must refuse, with its message quoted (whichever model that
        # reads the reference time it parses first names)
        run_dbt(
            ["run", "--select", "ml_labels"], vars={"cut_ts": "not-a-date"}, settings=settings, warm=False
        )


def test_warm_dbt_reports_a_failure_and_keeps_serving(sim, settings):
    """The long-lived dbt worker of the point-in-time builds: a failing invocation raises DbtError
    with dbt's message, and the same worker runs the next invocation (its parse of the first cut
    reused for another cut: the model's SQL renders the new cut)."""
    from ml.features.datasets import pit_db
    from ml.features.dbt import DbtError, run_dbt
    from ml.features.dbt_warm import warm_dbt

    with pytest.raises(DbtError, match=r"(?s)warm dbt worker.*var cut_ts must look like"):
        run_dbt(["run", "--select", "ml_labels"], vars={"cut_ts": "not-a-date"}, settings=settings, warm=True)
    worker = warm_dbt(settings.dbt_executable, settings.home / "unused.log")
    pid = worker._proc.pid
    for cut in ("2026-01-02 00:00:00", "2026-01-03 00:00:00"):
        run_dbt(
            ["run", "--select", "stg_recsys__user_behavior"],
            vars={"cut_ts": cut},
            settings=settings,
            warm=True,
        )
        view = _query(settings, "SHOW CREATE VIEW stg_recsys__user_behavior", database=pit_db(settings))
        assert f"'{cut}'" in view.iloc[0, 1]
    assert worker._proc.pid == pid  # one process served all three
