"""Issue 14, item 12: a search-query token reaches the TF vocabularies, and so the models logged to
MLflow, only when at least k distinct users searched it (k = ``token_min_users``, default 5)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ml.models.tf.features import TOKEN_MIN_USERS, Encoders
from ml.training.config import OPTIONS, TrainConfig

RARE, COMMON, FOUR = "zqxprivatename", "sneakers", "fourusers"
ITEMS = pd.DataFrame(
    {
        "item_id": [10, 11],
        "category_id": [1, 2],
        "brand": ["a", "b"],
        "price": [5.0, 7.0],
        "title": ["Red Lantern", "Tea Set"],
    }
)


def _contexts() -> pd.DataFrame:
    """User 1 searched RARE in 20 rows (frequent, but one user); users 1-5 searched COMMON once each;
    users 2-5 searched FOUR."""
    rows = [(1, f"{RARE} lamp")] * 20 + [(u, COMMON) for u in range(1, 6)] + [(u, FOUR) for u in range(2, 6)]
    return pd.DataFrame(rows, columns=["user_id", "query_terms"]).assign(last_items="10")


def test_default_k_is_five_everywhere_it_is_configured():
    assert TOKEN_MIN_USERS == 5 and TrainConfig().token_min_users == 5 and "token_min_users" in OPTIONS


def test_query_tokens_of_fewer_than_k_users_stay_out_of_the_vocabulary():
    vocab = set(Encoders.fit(ITEMS, _contexts()).token.keys)
    assert COMMON in vocab  # 5 users
    assert RARE not in vocab and "lamp" not in vocab and FOUR not in vocab
    assert {"red", "lantern", "tea", "set"} <= vocab  # catalogue text is not user data
    assert FOUR in set(Encoders.fit(ITEMS, _contexts(), token_min_users=4).token.keys)  # k is configurable


def test_counting_users_needs_the_user_id():
    with pytest.raises(ValueError, match="user_id"):
        Encoders.fit(ITEMS, _contexts().drop(columns="user_id"))


@pytest.mark.slow
def test_logged_two_tower_model_holds_no_rare_query_token(tmp_path):
    import mlflow

    from ml.models.tf.persist import log_two_tower
    from ml.models.tf.synthetic import make_world, two_tower_sequences
    from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

    world = make_world(80, n_categories=4, seed=0)
    seqs = two_tower_sequences(world, 300, seed=3)  # one row per user
    seqs.loc[0, "query_terms"] = f"{RARE} cheap"
    seqs.loc[1:5, "query_terms"] = COMMON
    tt = fit_two_tower(seqs, world.items, TwoTowerConfig(epochs=1, batch_size=64))
    assert RARE not in tt.encoders.token.keys and COMMON in tt.encoders.token.keys
    mlflow.set_experiment("test_vocab_privacy")
    with mlflow.start_run():
        info = log_two_tower(tt)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=str(tmp_path)))
    files = [p for p in local.rglob("*") if p.is_file()]
    assert any(COMMON.encode() in p.read_bytes() for p in files)  # the search below can find a token
    assert [p.name for p in files if RARE.encode() in p.read_bytes()] == []
