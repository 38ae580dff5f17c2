"""A/B of champion vs challenger (issue 17) on MariaDB: both lists published in one swap, the run in
``ab_experiment``, the refresh rewriting each user's own arm, the reader serving and logging the arm,
and `recsys ab report` over a hand-made ``fct_served_outcomes``."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from publish_support import (
    T0,
    RawEventsRecommender,
    add_events,
    seed_serving_marts,
    seed_shop,
    serving_tables,
)
from typer.testing import CliRunner

from ml.cli.app import app as recsys
from ml.db import connect
from ml.experiment import CHALLENGER_ARM, CHAMPION_ARM, arm_of
from ml.publish import full as full_module
from ml.publish.ab import ChallengerLists, ChallengerNotPublished
from ml.publish.common import ValidationFailed
from ml.publish.full import publish_full
from ml.publish.refresh import publish_refresh
from ml.serving.app import create_app

SALT, SHARE = "exp1", 0.5
USERS = range(1, 11)
CHALLENGERS = [u for u in USERS if arm_of(u, SALT, SHARE) == CHALLENGER_ARM]
CHAMPIONS = [u for u in USERS if u not in CHALLENGERS]


class PopularRecommender(RawEventsRecommender):
    """A different model: in-stock global popularity only (no own items)."""

    def recommend(self, user_ids, n):
        own = super().recommend(user_ids, 2 * n)
        popular = own[own["source"] == "global_pop"].copy()
        popular["rank"] = popular.groupby("user_id").cumcount() + 1
        popular["source"] = "popularity"  # a model's own label, not the reader's fallback sources
        return popular[popular["rank"] <= n].reset_index(drop=True)


def rows(s, sql: str, args: tuple = ()) -> list[tuple]:
    conn = connect(s.serving_db, settings=s)
    with conn.cursor() as cur:
        cur.execute(sql, args)
        out = list(cur.fetchall())
    conn.close()
    return out


def lists(s, table: str) -> dict[int, list[tuple]]:
    """user → [(item_id, model_version)] in rank order."""
    out: dict[int, list[tuple]] = {}
    for u, item, mv in rows(
        s, f"SELECT user_id, item_id, model_version FROM {table} ORDER BY user_id, `rank`"
    ):
        out.setdefault(u, []).append((item, mv))
    return out


def runs(s) -> list[tuple]:
    return rows(
        s, "SELECT id, name, share, champion_version, challenger_version, ended_at IS NULL FROM ab_experiment"
    )


@pytest.fixture()
def shop(clean_db):
    seed_shop(clean_db)
    assert CHALLENGERS and CHAMPIONS  # the salt splits the 10 users into both arms
    return dataclasses.replace(clean_db, topn=5, ab_share=SHARE, ab_salt=SALT)


@pytest.fixture()
def swaps(monkeypatch):
    """The table lists of every RENAME the full publish makes."""
    seen: list[list[str]] = []
    real = full_module.swap_tables

    def record(conn, s, tables, *args):
        seen.append(list(tables))
        return real(conn, s, tables, *args)

    monkeypatch.setattr(full_module, "swap_tables", record)
    return seen


def publish(s, challenger_version: str | None = "v2", **kwargs):
    challenger = ChallengerLists(PopularRecommender(s), challenger_version) if challenger_version else None
    return publish_full(RawEventsRecommender(s), "v1", s, n=5, challenger=challenger, **kwargs)


def test_experiment_publishes_both_lists_and_the_run_in_one_swap(shop, swaps):
    r = publish(shop)
    assert (r.experiment, r.challenger_model_version, r.challenger_rows, r.rows) == ("exp1", "v2", 50, 50)
    assert len(swaps) == 1 and {"user_topn", "user_topn_challenger", "ab_experiment"} <= set(swaps[0])
    champion, challenger = lists(shop, "user_topn"), lists(shop, "user_topn_challenger")
    assert set(champion) == set(challenger) == set(USERS)
    assert champion[1][0] == (1, "v1") and challenger[1][0] == (2, "v2")  # own item vs most popular
    assert runs(shop) == [(1, "exp1", 0.5, "v1", "v2", 1)]
    assert {"user_topn_challenger_new", "ab_experiment_new", "user_topn_new"}.isdisjoint(serving_tables(shop))


def test_a_challenger_failing_its_check_swaps_nothing(shop):
    publish(shop)
    before = (lists(shop, "user_topn"), lists(shop, "user_topn_challenger"), runs(shop))

    def gx_suite(table):
        return (
            (False, "challenger broke a rule") if table.endswith("user_topn_challenger_new") else (True, "ok")
        )

    challenger = ChallengerLists(PopularRecommender(shop), "v3", gx_suite)
    with pytest.raises(ValidationFailed, match="user_topn_challenger_new failed validation.*broke a rule"):
        publish_full(RawEventsRecommender(shop), "v9", shop, n=5, challenger=challenger)
    assert (lists(shop, "user_topn"), lists(shop, "user_topn_challenger"), runs(shop)) == before


def test_runs_continue_change_and_end_with_the_publish(shop, swaps):
    publish(shop)
    started = rows(shop, "SELECT started_at FROM ab_experiment WHERE id = 1")
    publish(shop)  # same name, share, versions: the same run goes on
    assert runs(shop) == [(1, "exp1", 0.5, "v1", "v2", 1)]
    assert rows(shop, "SELECT started_at FROM ab_experiment WHERE id = 1") == started
    publish(shop, "v3")  # a new challenger: the old run ends, a new one starts
    assert runs(shop) == [(1, "exp1", 0.5, "v1", "v2", 0), (2, "exp1", 0.5, "v1", "v3", 1)]
    off = dataclasses.replace(shop, ab_share=0.0)
    publish(off)  # switched off while a run is live: ended, and its lists go, in the same swap
    assert runs(shop)[-1][-1] == 0 and lists(shop, "user_topn_challenger") == {}
    assert {"user_topn_challenger", "ab_experiment"} <= set(swaps[-1])
    publish(off)  # off with nothing live: exactly the publish without A/B
    assert {"user_topn_challenger", "ab_experiment"}.isdisjoint(swaps[-1])
    publish(shop, "v1")  # the challenger is the champion: no experiment
    assert len(runs(shop)) == 2 and set(lists(shop, "user_topn")) == set(USERS)


def test_reader_serves_the_users_arm_and_logs_it(shop):
    publish(shop)
    [challenger_user, champion_user] = CHALLENGERS[0], CHAMPIONS[0]
    new_user = next(u for u in range(1000, 2000) if arm_of(u, SALT, SHARE) == CHALLENGER_ARM)
    with TestClient(create_app(shop)) as c:
        got = {
            u: c.get(f"/recommendations/{u}", params={"n": 3})
            for u in (challenger_user, champion_user, new_user)
        }
        posted = c.post(
            "/impressions",
            json={
                "user_id": 5,
                "list_source": "client",
                "arm": "challenger",
                "items": [{"item_id": 3, "rank": 1}],
            },
        )
        assert (
            c.post(
                "/impressions",
                json={"list_source": "client", "arm": "treatment", "items": [{"item_id": 3, "rank": 1}]},
            ).status_code
            == 422
        )
    assert posted.status_code == 202
    assert got[challenger_user].headers["X-Recsys-Arm"] == CHALLENGER_ARM
    assert got[champion_user].headers["X-Recsys-Arm"] == CHAMPION_ARM
    served = {u: [(it["item_id"], it["model_version"]) for it in r.json()["items"]] for u, r in got.items()}
    assert served[challenger_user] == lists(shop, "user_topn_challenger")[challenger_user][:3]
    assert served[champion_user] == lists(shop, "user_topn")[champion_user][:3]
    assert {it["source"] for it in got[new_user].json()["items"]} == {"global_pop"}  # fallbacks unchanged
    conn = connect(shop.raw_db, settings=shop)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, arm, list_source, COUNT(*) FROM impressions GROUP BY user_id, arm, list_source"
        )
        logged = set(cur.fetchall())
    conn.close()
    assert logged == {
        (challenger_user, CHALLENGER_ARM, "user_topn", 3),
        (champion_user, CHAMPION_ARM, "user_topn", 3),
        (new_user, CHALLENGER_ARM, "popular", 3),
        (5, CHALLENGER_ARM, "client", 1),
    }


def test_without_an_experiment_the_reader_is_unchanged(shop):
    off = dataclasses.replace(shop, ab_share=0.0)
    publish(off)
    with TestClient(create_app(off)) as c:
        r = c.get(f"/recommendations/{CHALLENGERS[0]}", params={"n": 3})
    assert "X-Recsys-Arm" not in r.headers
    assert [it["model_version"] for it in r.json()["items"]] == ["v1"] * 3
    conn = connect(shop.raw_db, settings=shop)
    with conn.cursor() as cur:
        cur.execute("SELECT DISTINCT arm FROM impressions")
        assert cur.fetchall() == ((None,),)
    conn.close()


def test_refresh_rewrites_each_acting_users_own_arm(shop):
    publish(shop)
    [mover_c, mover_h] = CHALLENGERS[0], CHAMPIONS[0]
    stamp = "SELECT user_id, MAX(generated_at) FROM {} WHERE user_id IN (%s, %s) GROUP BY user_id"
    before = {
        t: dict(rows(shop, stamp.format(t), (mover_c, mover_h)))
        for t in ("user_topn", "user_topn_challenger")
    }
    add_events(shop, [(u, 28, "cart", T0 + timedelta(days=1)) for u in (mover_c, mover_h)])
    seed_serving_marts(shop)
    with pytest.raises(ChallengerNotPublished, match="experiment exp1 serves challenger v2"):
        publish_refresh(RawEventsRecommender(shop), "v1", shop, n=5)  # no challenger given
    out = publish_refresh(
        RawEventsRecommender(shop),
        "v1",
        shop,
        n=5,
        challenger=ChallengerLists(PopularRecommender(shop), "v2"),
    )
    assert out.users == 2
    after = {
        t: dict(rows(shop, stamp.format(t), (mover_c, mover_h)))
        for t in ("user_topn", "user_topn_challenger")
    }
    assert after["user_topn"][mover_h] > before["user_topn"][mover_h]
    assert after["user_topn"][mover_c] == before["user_topn"][mover_c]  # the other arm's list is not rescored
    assert after["user_topn_challenger"][mover_c] > before["user_topn_challenger"][mover_c]
    assert after["user_topn_challenger"][mover_h] == before["user_topn_challenger"][mover_h]
    assert (28, "v1") in lists(shop, "user_topn")[mover_h]  # the champion saw the new cart


def _outcomes_mart(s, rows_: list[tuple]) -> None:
    """A hand-made ``fct_served_outcomes`` with the agreed columns."""
    conn = connect(s.marts_db, settings=s)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS fct_served_outcomes")
        cur.execute(
            "CREATE TABLE fct_served_outcomes (impression_id BIGINT PRIMARY KEY, request_id VARCHAR(64), "
            "user_id BIGINT NULL, item_id BIGINT, impression_rank INT, model_version VARCHAR(64), "
            "list_source VARCHAR(32), arm VARCHAR(16) NULL, endpoint VARCHAR(32), served_at DATETIME(3), "
            "served_date DATE, clicked TINYINT, carted TINYINT, purchased TINYINT, is_repeat TINYINT, "
            "is_matured TINYINT)"
        )
        cur.executemany(
            "INSERT INTO fct_served_outcomes VALUES (%s, %s, %s, %s, %s, %s, 'user_topn', %s, '/recommendations', "
            "%s, DATE(%s), %s, %s, 0, 0, %s)",
            [
                (i, f"r{i}", u, 1, 1, "v", arm, at, at, c, k, m)
                for i, (u, arm, at, c, k, m) in enumerate(rows_, 1)
            ],
        )
    conn.close()


def test_ab_report_on_a_hand_made_outcome_mart(shop):
    publish(shop)
    started = rows(shop, "SELECT started_at FROM ab_experiment")[0][0]
    at = started + timedelta(minutes=5)
    users = range(1, 401)
    arm = {u: arm_of(u, SALT, SHARE) for u in users}
    data = []
    for u in users:  # 10 matured impressions each; champion users click 1, challenger users 2
        clicks = 2 if arm[u] == CHALLENGER_ARM else 1
        data += [(u, arm[u], at, int(k < clicks), int(k == 0), 1) for k in range(10)]
    data += [(1, arm[1], at, 1, 1, 0)] * 5  # not matured: ignored
    data += [(2, arm[2], started - timedelta(hours=1), 1, 1, 1)] * 5  # before the run: ignored
    wrong = next(u for u in range(5000, 6000) if arm_of(u, SALT, SHARE) == CHAMPION_ARM)
    data += [(wrong, CHALLENGER_ARM, at, 1, 1, 1)] * 10  # logged in the wrong arm: left out, counted
    data += [(None, CHAMPION_ARM, at, 1, 1, 1)]  # anonymous: ignored
    _outcomes_mart(shop, data)
    n_chal = sum(a == CHALLENGER_ARM for a in arm.values())
    result = CliRunner().invoke(recsys, ["ab", "report", "--metric", "ctr"], env=_env(shop))
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"challenger  {n_chal:>8,} {10 * n_chal:>12,} {2 * n_chal:>8,}" in out
    assert "verdict: challenger better" in out and "left out: 1 user(s)" in out
    cart = CliRunner().invoke(
        recsys, ["ab", "report", "--experiment", "exp1", "--metric", "cart"], env=_env(shop)
    )
    assert "difference +0.0000%" in cart.output and "verdict: no detectable difference" in cart.output
    missing = CliRunner().invoke(recsys, ["ab", "report", "--experiment", "nope"], env=_env(shop))
    assert missing.exit_code == 2 and "no experiment 'nope'" in missing.output


def _env(s) -> dict[str, str]:
    """The environment that makes get_settings() resolve ``s``'s databases."""
    prefix = s.raw_db.removesuffix("recsys_raw")
    return {"RECSYS_DB_PREFIX": prefix}


def test_ab_report_without_the_mart_says_what_to_do(shop):
    publish(shop)
    conn = connect(shop.marts_db, settings=shop)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS fct_served_outcomes")
    conn.close()
    result = CliRunner().invoke(recsys, ["ab", "report"], env=_env(shop))
    assert result.exit_code == 2 and "build the outcome marts" in result.output


def test_task_entries_load_champion_and_challenger_together(shop, monkeypatch):
    """``publish_champion_full``/``_refresh`` (Airflow, CLI) take the challenger alias next to the
    champion while an experiment is configured or running, and only the champion otherwise."""
    from ml.publish import run
    from ml.registry import champion as registry

    asked: list[tuple[str, ...]] = []

    def aliases(_s, names, **_):
        asked.append(tuple(names))
        made = {"champion": RawEventsRecommender(shop), "challenger": PopularRecommender(shop)}
        for name, rec in made.items():
            rec.model_version = {"champion": "m/1", "challenger": "m/2"}[name]
        return [made[name] for name in names]

    monkeypatch.setattr(registry, "load_aliases", aliases)
    out = run.publish_champion_full(
        shop, 5
    )  # both lists through the GX top-N suite, each under its own rules
    assert (
        "challenger (50 rows)" in out["validation"]
        and "user_topn_challenger_new, 50 rows" in out["validation"]
    )
    assert (out["experiment"], out["challenger_model_version"], asked[-1]) == (
        "exp1",
        "m/2",
        ("champion", "challenger"),
    )
    add_events(shop, [(CHALLENGERS[0], 28, "cart", T0 + timedelta(days=1))])
    seed_serving_marts(shop)
    assert run.publish_champion_refresh(shop, n=5)["users"] == 1
    assert asked[-1] == ("champion", "challenger")  # a run is live: both
    fresh = "SELECT MAX(generated_at) FROM {} WHERE user_id = %s"
    u = CHALLENGERS[0]
    assert rows(shop, fresh.format("user_topn_challenger"), (u,)) > rows(
        shop, fresh.format("user_topn"), (u,)
    )
    off = dataclasses.replace(shop, ab_share=0.0)
    run.publish_champion_full(off, 5, gx=False)
    assert asked[-1] == ("champion",) and runs(shop)[-1][-1] == 0


def test_refresh_task_skips_while_the_challenger_alias_is_ahead_of_the_run(shop, monkeypatch):
    """The train DAG moved the challenger alias (m/3) but its full publish has not swapped yet: the
    refresh task skips (nothing written, watermark kept) instead of failing every few minutes."""
    from airflow.sdk.exceptions import AirflowSkipException

    from ml.orchestration import tasks
    from ml.registry import champion as registry

    publish(shop)  # the run serves v1 vs v2

    def aliases(_s, names, **_):
        made = {"champion": RawEventsRecommender(shop), "challenger": PopularRecommender(shop)}
        made["champion"].model_version, made["challenger"].model_version = "v1", "v3"
        return [made[name] for name in names]

    monkeypatch.setattr(registry, "load_aliases", aliases)
    add_events(shop, [(CHALLENGERS[0], 28, "cart", T0 + timedelta(days=1))])
    seed_serving_marts(shop)
    mark = "SELECT event_id FROM publish_watermark"
    before = (lists(shop, "user_topn"), lists(shop, "user_topn_challenger"), rows(shop, mark))
    with pytest.raises(AirflowSkipException, match="serves challenger v2, the refresh was given v3"):
        tasks.refresh()
    assert (lists(shop, "user_topn"), lists(shop, "user_topn_challenger"), rows(shop, mark)) == before
