"""Publishing the simulated shop (``sim_small``): complete lists, and the intent fallback finds the
planted intent of each user's last session (ground truth the publisher never reads)."""

from __future__ import annotations

import pytest
from publish_support import RawEventsRecommender

from ml.db import connect
from ml.features.dbt import run_dbt
from ml.publish.full import publish_full


@pytest.fixture()
def sim_loaded(sim_small, settings):
    """``sim_small`` in the raw tables (reloaded if a ``clean_db`` test emptied them); serving emptied."""
    from ml.data.sim_load import load_simulation

    conn = connect(settings=settings)
    with conn.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM `{settings.raw_db}`.user_behavior")
        if cur.fetchone()[0] != len(sim_small.events):
            for t in ("user_behavior", "user_behavior_quarantine", "users", "items", "sim_session_intent"):
                cur.execute(f"TRUNCATE TABLE `{settings.raw_db}`.`{t}`")
            load_simulation(sim_small, settings)
        for t in (
            "user_topn",
            "popular_topn",
            "user_intent_category",
            "publish_log",
            "publish_watermark",
            "item_similar",
        ):
            cur.execute(f"TRUNCATE TABLE `{settings.serving_db}`.`{t}`")
    conn.close()
    # the serving marts (popularity, intent) of exactly this data, as the train DAG's dbt group builds them
    run_dbt(
        ["run", "--select", "+serve_popular_topn", "+serve_user_intent_category", "--full-refresh"],
        settings=settings,
    )
    return sim_small


def test_simulated_shop_publishes_complete_lists_and_planted_intents(settings, sim_loaded):
    s = settings
    r = publish_full(RawEventsRecommender(s), "v1", s, n=20, settle_seconds=0)
    active = sim_loaded.events["user_id"].nunique()
    assert r.users == active and r.rows == 20 * active

    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("SELECT user_id, category_id FROM user_intent_category")
        intent = dict(cur.fetchall())
        cur.execute("SELECT COUNT(DISTINCT scope) FROM popular_topn WHERE scope LIKE 'category:%%'")
        categories_served = cur.fetchone()[0]
    conn.close()
    last = sim_loaded.intents.sort_values("start_ts").groupby("user_id").tail(1).set_index("user_id")
    users = [u for u in intent if u in last.index]
    agree = sum(intent[u] == last.loc[u, "intent_category_id"] for u in users) / len(users)
    long_term = sum(intent[u] == last.loc[u, "long_term_category_id"] for u in users) / len(users)
    assert len(users) >= 0.5 * active
    # the recent-intent category follows the session's need, not the user's usual taste
    assert agree >= 0.75 and agree > long_term + 0.2, (agree, long_term)
    assert categories_served >= 0.8 * sim_loaded.items["category_id"].nunique()
