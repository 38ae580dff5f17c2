"""Same seed on CPU → identical scores; the GPU graph (mixed_float16) builds and trains too."""

from __future__ import annotations

import numpy as np
import pytest

from ml.models.tf.device import DeviceInfo, configure_device
from ml.models.tf.ranker import fit_ranker
from ml.models.tf.ranker_config import RankerConfig
from ml.models.tf.synthetic import ITEM_FEATURES, USER_FEATURES, make_world, ranker_rows, two_tower_sequences
from ml.models.tf.two_tower import TwoTowerConfig, fit_two_tower

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data():
    world = make_world(60, n_categories=4, seed=0)
    return (
        world,
        ranker_rows(world, 60, seed=1),
        ranker_rows(world, 20, seed=2),
        two_tower_sequences(world, 400, seed=3),
    )


def _ranker_cfg(seed: int) -> RankerConfig:
    return RankerConfig(
        user_features=USER_FEATURES,
        item_features=ITEM_FEATURES,
        epochs=2,
        batch_size=64,
        item_dim=8,
        hidden=(16,),
        seed=seed,
    )


def test_configure_device_on_cpu_is_deterministic_float32():
    info = configure_device(7)
    assert (info.kind, info.precision, info.deterministic, info.seed) == ("cpu", "float32", True, 7)
    assert info.as_params()["device_strategy"] == "default"


def test_same_seed_gives_identical_ranker_scores(data):
    world, train, valid, _ = data
    a = fit_ranker(train, valid, _ranker_cfg(1), items=world.items).score(valid)
    b = fit_ranker(train, valid, _ranker_cfg(1), items=world.items).score(valid)
    c = fit_ranker(train, valid, _ranker_cfg(2), items=world.items).score(valid)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_same_seed_gives_identical_two_tower_retrieval(data):
    world, _, _, seqs = data
    ctx = seqs.drop(columns=["item_id"]).head(30)
    runs = [
        fit_two_tower(seqs, world.items, TwoTowerConfig(epochs=1, batch_size=64, seed=s)) for s in (1, 1, 2)
    ]
    a, b, c = (r.retrieve(ctx, k=10) for r in runs)
    assert a.equals(b)
    assert not np.array_equal(a["score"].to_numpy(), c["score"].to_numpy())


def test_mixed_precision_graph_trains_and_scores(data):
    """The GPU code path's dtype policy, exercised on CPU (float16 compute, float32 heads/logits)."""
    import keras
    import tensorflow as tf

    world, train, valid, seqs = data
    fake_gpu = DeviceInfo(
        kind="gpu",
        name="test",
        n_devices=1,
        precision="mixed_float16",
        strategy_name="default",
        deterministic=False,
        seed=0,
        strategy=tf.distribute.get_strategy(),
    )
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        rk = fit_ranker(train, valid, _ranker_cfg(1), items=world.items, device=fake_gpu)
        tt = fit_two_tower(seqs, world.items, TwoTowerConfig(epochs=1, batch_size=64), device=fake_gpu)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert rk.model.get_layer("mlp_0").compute_dtype == "float16"
    assert isinstance(rk.model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(rk.score(valid)).all()
    assert np.isfinite(tt.retrieve(seqs.drop(columns=["item_id"]).head(5), k=5)["score"]).all()
