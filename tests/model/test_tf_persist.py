"""Models logged to MLflow (mlflow.tensorflow) load back into the same wrappers and score identically."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from ml.models.tf.persist import load_ranker, load_two_tower, log_ranker, log_two_tower
from ml.models.tf.ranker import fit_ranker
from ml.models.tf.ranker_config import RankerConfig
from ml.models.tf.synthetic import ITEM_FEATURES, USER_FEATURES, make_world, ranker_rows, two_tower_sequences
from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world():
    return make_world(80, n_categories=4, seed=0)


def test_ranker_round_trip_through_the_registry(world):
    train, valid = ranker_rows(world, 80, seed=1), ranker_rows(world, 30, seed=2)
    cfg = RankerConfig(
        user_features=USER_FEATURES, item_features=ITEM_FEATURES, epochs=1, item_dim=8, hidden=(16,)
    )
    ranker = fit_ranker(train, valid, cfg, items=world.items)
    mlflow.set_experiment("test_tf_persist")
    with mlflow.start_run() as run:
        info = log_ranker(ranker, registered_model_name="test_tf_ranker")
    client = mlflow.MlflowClient()
    client.set_registered_model_alias("test_tf_ranker", "champion", info.registered_model_version)
    loaded = load_ranker("models:/test_tf_ranker@champion")
    np.testing.assert_array_equal(loaded.score(valid), ranker.score(valid))
    assert loaded.cfg == ranker.cfg and loaded.best_epoch == ranker.best_epoch
    model = mlflow.models.Model.load(info.model_uri)
    assert {i["name"] for i in model.signature.inputs.to_dict()} >= {
        "hist_items",
        "cand_id",
        "match",
        "user_num",
    }
    assert model.saved_input_example_info is not None
    assert "tf_ranker_config.json" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_two_tower_round_trip_retrieves_identically(world):
    seqs = two_tower_sequences(world, 400, seed=3)
    tt = fit_two_tower(
        seqs, world.items, TwoTowerConfig(epochs=1, batch_size=64, user_features=USER_FEATURES)
    )
    mlflow.set_experiment("test_tf_persist")
    with mlflow.start_run():
        info = log_two_tower(tt)
    loaded = load_two_tower(info.model_uri)
    ctx = seqs.drop(columns=["item_id"]).head(40)
    assert loaded.retrieve(ctx, k=20).equals(tt.retrieve(ctx, k=20))
    assert loaded.catalogue.equals(tt.catalogue)
