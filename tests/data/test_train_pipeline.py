"""End to end on MariaDB: `train_pipeline` on the small simulated shop registers a champion that
the publish step can load, and logs every model and baseline to MLflow."""

from __future__ import annotations

import os

import pytest

from ml.models.baselines import BASELINE_NAMES
from ml.training.config import TrainConfig

# a long module-scoped training flow: started first by xdist (tests/conftest.py)
pytestmark = pytest.mark.schedule_first

CACHE: dict[tuple, object] = {}  # the point-in-time cuts, built once for both runs of this module


def small_config(**kw) -> TrainConfig:
    """Few boosting rounds, one training cut, no TF stage (it has its own tests): the chain, not the model's quality."""
    base = {"rounds": 40, "early_stopping": 10, "margin": 0.0, "n_train_cuts": 1, "use_tf": False}
    return TrainConfig(**{**base, "rule_ablation": False, **kw})


@pytest.fixture(scope="module")
def trained(sim_small_module, settings, tmp_path_factory):
    """One pipeline run in its own MLflow experiment (fresh registry: no champion before it)."""
    from ml.training.pipeline import train_pipeline

    os.environ["RECSYS_MLFLOW_EXPERIMENT"] = "test-train-e2e"
    from ml.config import get_settings

    s = get_settings()
    steps: list[str] = []
    out = train_pipeline(s, small_config(rule_ablation=True), step=steps.append, cache=CACHE)
    yield s, out, steps
    os.environ.pop("RECSYS_MLFLOW_EXPERIMENT", None)


def test_pipeline_registers_a_champion(trained) -> None:
    from ml.registry import store

    s, out, steps = trained
    assert out["promoted"] is True, out["reason"]
    client = store.configure(s)
    name = store.model_name(s)
    assert str(client.get_model_version_by_alias(name, store.CHAMPION).version) == out["version"]
    assert str(client.get_model_version_by_alias(name, store.CHALLENGER).version) == out["version"]
    # the first champion had to beat the best baseline on the same holdout
    assert out["gate"]["reference_name"] in BASELINE_NAMES
    assert out["metrics"]["lightgbm"]["ndcg@10"] >= out["gate"]["reference"]
    assert out["champion"] == {"kind": "lightgbm", "version": out["version"]}
    assert any(st.startswith("dbt point-in-time build: test") for st in steps)
    # a browsing log of two weeks: the next-day task, chosen from the data and said so
    assert out["task"]["task"] == "next_day" and out["task"]["label_hours"] == 24
    assert any(st.startswith("task next_day") for st in steps)


def test_run_logs_every_model_and_baseline(trained) -> None:
    import mlflow

    s, out, _ = trained
    from ml.registry import store

    store.configure(s)
    run = mlflow.get_run(out["run_id"])
    for model in ("popular", "intent_pop", "repeat", "covisit", "buy_again", "lightgbm", "xgboost"):
        for metric in (
            "ndcg_at_10",
            "otto_recall_at_20",
            "recall_at_20_orders",
            "hitrate_at_10",
            "mrr",
            "coverage_at_10",
            "intent_capture_at_10",
            "ild_category_at_10",
            "ild_brand_at_10",
            "coverage_in_stock_at_10",
            "novelty_at_10",
        ):
            assert f"{model}.{metric}" in run.data.metrics, f"{model}.{metric} missing"
    assert run.data.params["label_hours"] == "24" and run.data.params["test_cut"] == out["split"]["test_cut"]
    assert run.data.metrics["rows_frame_test"] > 0 and run.data.metrics["eval_users"] > 0
    assert 0 < run.data.metrics["cand_recall_any"] <= 1
    files = {a.path for a in mlflow.MlflowClient().list_artifacts(out["run_id"], "report")}
    assert {
        "report/comparison.csv",
        "report/comparison.md",
        "report/metric_bars.png",
        "report/importance_lightgbm.png",
        "report/scores_lightgbm.png",
        "report/comparison_session.csv",
        "report/metric_bars_session.png",
        "report/rule_choice.md",
        "report/rule_ablation.md",
        "report/diversity.md",
        "report/diversity.csv",
    } <= files
    # the MMR trade-off: λ chosen on the validation cut by its rule, measured on the test cut
    mmr = out["mmr"]
    val, test = mmr["val"], mmr["test"]
    assert set(val) == {1.0, 0.9, 0.8, 0.7, 0.5} and run.data.metrics["mmr.lambda"] == mmr["lambda"]
    assert val[mmr["lambda"]]["ndcg@10"] >= 0.95 * val[1.0]["ndcg@10"] - 1e-12
    assert all(
        v["ild_category@10"] <= val[mmr["lambda"]]["ild_category@10"] + 1e-12
        for v in val.values()
        if v["ndcg@10"] >= 0.95 * val[1.0]["ndcg@10"]
    )
    assert test[0.5]["ild_category@10"] > test[1.0]["ild_category@10"]  # MMR spreads categories
    assert run.data.metrics["lightgbm_mmr.ndcg_at_10"] == pytest.approx(test[mmr["lambda"]]["ndcg@10"])
    assert "mmr.test.lam0.5.ild_category_at_10" in run.data.metrics
    # rules chosen on the validation cut, their cost measured on the test cut for every model
    assert run.data.params["task"] == "next_day" and "chosen_rules_max_category_share" in run.data.params
    for variant in ("chosen", "no_category_cap", "bought_allowed", "any_stock", "no_rules"):
        for model in ("repeat", "lightgbm"):
            assert f"ablation.{variant}.{model}" in run.data.metrics
    assert out["rule_ablation"]["chosen"]["lightgbm"] == out["metrics"]["lightgbm"]["ndcg@10"]
    # the per-stage clock: every step of the run, logged next to the metrics
    stages = [name for name, _ in out["stage_seconds"]]
    assert stages[0].startswith("task ") and "fit LightGBM lambdarank" in stages
    assert abs(run.data.metrics["train_seconds"] - sum(sec for _, sec in out["stage_seconds"])) < 0.01
    assert "stage_seconds.json" in {a.path for a in mlflow.MlflowClient().list_artifacts(out["run_id"])}
    # each cut's features and search rows were computed beside the builds, and that time is logged
    assert "candidates and features (computed beside the cut builds)" in stages
    assert any(
        st.startswith("search rows: val") and st.endswith("(computed beside the cut builds)") for st in stages
    )
    assert run.data.metrics["beside_builds_seconds"] == out["beside_builds_seconds"] > 0
    # the rest-of-session task: same models and baselines, on users cut inside their session
    for model in ("popular", "repeat", "covisit", "lightgbm"):
        assert f"session.{model}.ndcg_at_10" in run.data.metrics
    assert run.data.metrics["rows_frame_session_test"] > 0 and out["session"]["eval_users"] > 0
    assert 0 < run.data.metrics["session.cand_recall_any"] <= 1
    # the rerankers learnt from both tasks' frames
    assert run.data.params["reranker_train_cuts"] == "train_0,session_train_0"


def test_rest_of_session_task_sees_the_intent(trained) -> None:
    """With the session start revealed, the reranked lists lean into the session's planted intent
    far more than popularity does, and more than on the next-day task where it is mostly unseen."""
    _, out, _ = trained
    session, day = out["session"]["metrics"], out["metrics"]
    assert session["lightgbm"]["intent_capture@10"] > 2 * session["popular"]["intent_capture@10"]
    assert session["lightgbm"]["intent_capture@10"] > day["lightgbm"]["intent_capture@10"]
    assert session["lightgbm"]["ndcg@10"] > session["popular"]["ndcg@10"]


def test_champion_loader_scores_current_marts(trained) -> None:
    """What the publish step does: the champion over the serving view gives exactly n items per user."""
    from ml.features.dbt import run_dbt
    from ml.registry.champion import load_champion

    s, out, _ = trained
    # the serving view (no cut) in recsys_marts, from scratch: tests before this one on the same
    # worker may have left realtime marts of an incremental run (the guard refuses to build on those)
    run_dbt(["run", "--exclude", "tag:pit", "--full-refresh"], settings=s)
    rec = load_champion(s)
    assert rec.model_version.endswith(f"/{out['version']}")
    users = rec.frame["user_id"].drop_duplicates().head(25).tolist() + [10**9]  # plus an unknown user
    recs = rec.recommend(users, 10)
    assert recs.groupby("user_id").size().to_dict() == {u: 10 for u in users}
    assert list(recs.columns) == ["user_id", "rank", "item_id", "score", "source"]
    assert not recs.duplicated(["user_id", "item_id"]).any()


def test_refresh_champion_reads_only_its_users_and_lists_the_same(trained) -> None:
    """The refresh's champion (``scoped``) reads the per-user marts of the users it scores only, and
    lists for them exactly what the champion over a full load lists — a batch of users missing from
    every per-user table included; the guard's registry-only label names the same version."""
    import pandas as pd

    from ml.features.dbt import run_dbt
    from ml.registry.champion import champion_label, load_aliases
    from ml.registry.store import CHAMPION

    s, _, _ = trained
    run_dbt(["run", "--exclude", "tag:pit", "--full-refresh"], settings=s)
    (full,) = load_aliases(s, (CHAMPION,))
    (scoped,) = load_aliases(s, (CHAMPION,), scoped=True)
    assert scoped.model_version == full.model_version == champion_label(s)
    users = full.frame["user_id"].drop_duplicates().sample(30, random_state=3).astype(int).tolist()
    cut = scoped.cut_for(users)
    for frame in (cut.candidates, cut.users, cut.intent, cut.user_items):
        assert not frame.empty and set(frame["user_id"].astype(int)) <= set(users)
    assert len(cut.candidates) < len(full.frame)  # not every user's rows
    for batch in (users + [10**9], [10**9, 10**9 + 1]):
        pd.testing.assert_frame_equal(
            scoped.recommend(batch, 10).reset_index(drop=True),
            full.recommend(batch, 10).reset_index(drop=True),
        )


def test_search_stage_beside_the_recommender(trained) -> None:
    """The same run trains the search ranker on the shop's searches (its own MLflow experiment and
    registered model, linked from the recommender's run); its champion lists the users' recent
    queries and the asked queries from the current data, in stock, k at most."""
    import mlflow

    from ml.features.datasets import read_sql
    from ml.registry import store
    from ml.search.serve import load_search_champion, search_model_name

    s, out, steps = trained
    found = out["search"]
    assert found["skipped"] is False, found["reason"]
    assert set(found["metrics"]) == {"search_ranker", "bm25", "query_pop"}
    assert found["promoted"] is True, found["reason"]
    client = store.configure(s)
    assert mlflow.get_run(out["run_id"]).data.tags["search_run_id"] == found["run_id"]
    name = search_model_name(s)
    assert str(client.get_model_version_by_alias(name, store.CHAMPION).version) == found["version"]
    provider = load_search_champion(s)
    assert provider is not None and provider.model_version == f"{name}/{found['version']}"
    users = read_sql(
        f"SELECT DISTINCT user_id FROM `{s.raw_db}`.user_behavior WHERE behavior_type = 'search' "
        "ORDER BY user_id LIMIT 10",
        s,
    )["user_id"].tolist()
    lists = provider.user_lists(s, users, 5)
    assert not lists.empty and set(lists["user_id"]) <= set(users)
    assert list(lists.columns) == ["user_id", "query_norm", "rank", "item_id", "score", "source"]
    assert lists.groupby(["user_id", "query_norm"])["rank"].max().le(5).all()
    assert not lists.duplicated(["user_id", "query_norm", "item_id"]).any()
    queries = lists["query_norm"].drop_duplicates().head(3).tolist()
    topn = provider.query_lists(s, queries, 5)
    assert topn.groupby("query_norm").size().to_dict() == {q: 5 for q in queries}
    stock = read_sql(f"SELECT item_id FROM `{s.raw_db}`.items WHERE in_stock = 1", s)["item_id"]
    assert set(topn["item_id"]) | set(lists["item_id"]) <= set(stock)


def test_search_rows_attribute_like_the_mart(trained) -> None:
    """One definition: the pandas attribution the search rows use for a cut (ml.search.engagement)
    gives exactly the serving mart ml_query_item over the same events."""
    import numpy as np

    from ml.features.datasets import load_events, read_sql
    from ml.features.dbt import run_dbt
    from ml.search.engagement import query_item_stats

    s, _, _ = trained
    # the definition, not the increments (those are tested against full refreshes); every non-pit model, so the
    # realtime marts stay consistent for the incremental runs of the tests after this one
    run_dbt(["run", "--full-refresh", "--exclude", "tag:pit"], settings=s)
    cols = ["n_browse", "n_cart", "n_fav", "n_purchase", "n_searches", "n_users", "weighted"]
    mart = read_sql(f"SELECT query_norm, item_id, {', '.join(cols)} FROM `{s.marts_db}`.ml_query_item", s)
    mine = query_item_stats(load_events(s, None, None))
    assert len(mart) > 100
    both = mart.merge(mine, on=["query_norm", "item_id"], how="outer", suffixes=("_sql", "_py"))
    assert len(both) == len(mart) == len(mine)
    for col in cols:
        np.testing.assert_allclose(
            both[f"{col}_sql"].astype(float), both[f"{col}_py"].astype(float), rtol=1e-9
        )


def test_pipeline_with_the_tf_stage(trained) -> None:
    """Tiny TF configs: the two-tower becomes a candidate source, the DIN score a reranker feature, both
    are logged with the run, and the registered version rebuilds its frame with its own TF models."""
    from ml.registry import store
    from ml.registry.champion import frame_for_spec
    from ml.training.pipeline import train_pipeline

    s, _, _ = trained
    tiny = {
        "retrieve_k": 20,
        "two_tower": {"epochs": 1, "batch_size": 256, "item_dim": 8, "out_dim": 8, "hidden": 16},
        "ranker": {
            "epochs": 1,
            "patience": 1,
            "negative_rate": 0.3,
            "batch_size": 512,
            "hidden": (16,),
            "item_dim": 8,
        },
    }
    out = train_pipeline(s, small_config(use_tf=True, tf=tiny, xgboost=False, search=False), cache=CACHE)
    assert "tf_ranker" in out["metrics"] and out["metrics"]["tf_ranker"]["ndcg@10"] > 0
    assert set(out["fit_seconds"]) >= {"lightgbm", "two_tower", "tf_ranker"}
    client = store.configure(s)
    _, spec = store.load_reranker(client, store.model_name(s), out["version"])
    assert spec["tf"]["two_tower_uri"] and spec["tf"]["ranker_uri"]
    assert "tf_score" in spec["features"] and "two_tower_score" in spec["features"]
    cut = next(iter(CACHE.values()))
    frame = frame_for_spec(cut, spec)
    assert frame["tf_score"].notna().all() and (frame["two_tower_score"] > 0).any()


def test_evaluate_and_promote_commands_reuse_the_registry(trained) -> None:
    """`evaluate` re-scores the champion next to the baselines; `promote` re-runs the gate on the
    challenger's own test cut and reaches the same decision the training run reached."""
    from ml.registry import store
    from ml.training.registered import evaluate, promote

    s, _, _ = trained
    ev = evaluate(s, small_config())
    assert {"champion", "covisit", "repeat", "popular", "intent_pop", "buy_again"} <= set(ev["metrics"])
    assert ev["metrics"]["champion"]["ndcg@10"] > 0
    client = store.configure(s)
    name = store.model_name(s)
    challenger = str(client.get_model_version_by_alias(name, store.CHALLENGER).version)
    champion = str(client.get_model_version_by_alias(name, store.CHAMPION).version)
    res = promote(s, config=small_config())
    assert res["version"] == challenger
    if challenger == champion:
        assert res["promoted"] is False and "already the champion" in res["reason"]
    else:
        assert res["promoted"] is False and res["reference_name"] == "champion"
        assert str(client.get_model_version_by_alias(name, store.CHAMPION).version) == champion
