"""The search stage on the tiny hand-made shop (in-memory cuts, MLflow in the test's own store): one
run registers a challenger and promotes it past both baselines; a second, identical model does not
beat that champion by a margin; the champion loads back (booster checked, not unpickled) as the list
provider the publisher calls; a log without searches skips the stage with its reason."""

from __future__ import annotations

import pandas as pd
import pytest
from search_support import T0, catalogue, search_cut, sessions

from ml.features.protocol import Split
from ml.training.config import TrainConfig


@pytest.fixture(scope="module")
def shop():
    items = catalogue()
    cuts, history = {}, sessions(T0, 48, 240, seed=1)
    at = T0 + pd.Timedelta(hours=48)
    for i, (name, n) in enumerate((("train_0", 240), ("val", 120), ("test", 120))):
        window = sessions(at, 24, n, seed=10 + i)
        cuts[name] = search_cut(items, history, at, window)
        history = pd.concat([history, window], ignore_index=True)
        at = at + pd.Timedelta(hours=24)
    split = Split((cuts["train_0"].cut_ts,), cuts["val"].cut_ts, cuts["test"].cut_ts, 24)
    return cuts, split


@pytest.fixture()
def settings_search(monkeypatch):
    from ml.config import get_settings

    monkeypatch.setenv("RECSYS_MLFLOW_EXPERIMENT", "test-search-stage")
    return get_settings()


def test_stage_registers_gates_and_serves(shop, settings_search) -> None:
    from ml.registry import store
    from ml.search.serve import load_search_champion, search_model_name
    from ml.search.train import train_search

    cuts, split = shop
    s = settings_search
    cfg = TrainConfig(rounds=60, early_stopping=15, margin=0.0)
    steps: list[str] = []
    first = train_search(s, cuts, split, cfg, steps.append)
    assert first["skipped"] is False and first["promoted"] is True, first["reason"]
    assert first["gate"]["reference_name"] in ("bm25", "query_pop")
    for model in ("search_ranker", "bm25", "query_pop"):
        assert 0 < first["metrics"][model]["ndcg@10"] <= 1
    client = store.configure(s)
    name = search_model_name(s)
    assert name == f"{store.model_name(s)}_search"
    assert str(client.get_model_version_by_alias(name, store.CHAMPION).version) == first["version"]
    run = client.get_run(first["run_id"])
    assert "search.search_ranker.ndcg_at_10" in run.data.metrics and "search.val.bm25.mrr" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(first["run_id"], "report")}
    assert "report/search_comparison.csv" in artifacts

    # the same model again cannot beat the champion by 5 %: challenger only
    second = train_search(
        s, cuts, split, TrainConfig(rounds=60, early_stopping=15, margin=0.05), steps.append
    )
    assert second["promoted"] is False and "champion" in second["reason"], second["reason"]
    assert str(client.get_model_version_by_alias(name, store.CHALLENGER).version) == second["version"]
    assert str(client.get_model_version_by_alias(name, store.CHAMPION).version) == first["version"]

    provider = load_search_champion(s)
    assert provider is not None and provider.model_version == f"{name}/{first['version']}"
    from ml.search.context import build_context

    test = cuts["test"]
    history = pd.concat([test.history, test.window], ignore_index=True)
    now = history["ts"].max() + pd.Timedelta(seconds=1)
    provider.use_context(build_context(test.items, history, now), history)
    lists = provider.query_lists(s, ["Phone!", "running shoes"], 5)
    assert list(lists.columns) == ["query_norm", "rank", "item_id", "score", "source"]
    assert lists.groupby("query_norm")["rank"].apply(list).to_dict() == {
        "phone": [1, 2, 3, 4, 5],
        "running shoes": [1, 2, 3, 4, 5],
    }
    shoes = lists.loc[lists["query_norm"] == "running shoes", "item_id"]
    assert set(shoes) <= set(range(13, 19))
    with pytest.raises(ValueError, match="normalise to nothing"):
        provider.query_lists(s, ["?!"], 5)


def test_log_without_searches_skips_with_a_reason(shop, settings_search) -> None:
    from ml.search.train import train_search

    cuts, split = shop
    quiet = {
        k: search_cut(c.items, c.history, c.cut_ts, c.window[c.window["behavior_type"] != "search"])
        for k, c in cuts.items()
    }
    out = train_search(settings_search, quiet, split, TrainConfig())
    assert out["skipped"] is True and "too few searches" in out["reason"]
    assert train_search(settings_search, cuts, split, TrainConfig(search=False))["skipped"] is True


def test_a_cut_reads_its_own_query_item_mart_and_refuses_a_late_one(shop) -> None:
    from dataclasses import replace

    from ml.search.cut_rows import point_in_time_query_items

    cuts, _ = shop
    cut = cuts["val"]
    assert point_in_time_query_items(cut) is None  # no mart: the rows compute it from the history
    mart = pd.DataFrame(
        {
            "query_norm": ["phone"],
            "item_id": [1],
            "n_users": [1],
            "weighted": [2.0],
            "last_ts": [cut.cut_ts - pd.Timedelta(minutes=1)],
        }
    )
    assert point_in_time_query_items(replace(cut, extra={"ml_query_item": mart})) is mart
    late = mart.assign(last_ts=[cut.cut_ts])
    with pytest.raises(ValueError, match="not built point in time"):
        point_in_time_query_items(replace(cut, extra={"ml_query_item": late}))
