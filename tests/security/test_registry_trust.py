"""Issue 14, item 7 (code side): a registered version that is not a LightGBM Booster is refused
before anything of it is deserialized, so whoever can register a version and move ``champion``
cannot run code in the refresh or publish task through a pickle."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import yaml

from ml.registry import store

FEATURES = ["f0", "f1", "f2"]


class _Planted:
    """Unpickling this creates ``path``: proof that a loader deserialized the file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from ml.config import get_settings

    s = dataclasses.replace(get_settings(), mlflow_experiment="security-trust")
    client = store.configure(s)
    return client, store.model_name(s)


def _booster() -> tuple[lgb.Booster, pd.DataFrame]:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.random((200, 3)), columns=FEATURES)
    y = (x["f0"] + 0.1 * rng.random(200) > 0.5).astype(int)
    booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(x, y), 5)
    return booster, x


def _register_folder(client, name: str, folder: Path) -> str:
    """Log ``folder`` as a run's model artifacts plus a reranker spec, and register it as a version."""
    import mlflow

    with mlflow.start_run() as run:
        mlflow.log_dict({"kind": "lightgbm", "features": FEATURES}, store.SPEC_FILE)
        mlflow.log_artifacts(str(folder), "reranker")
        try:
            client.get_registered_model(name)
        except mlflow.exceptions.MlflowException:
            client.create_registered_model(name)
        mv = client.create_model_version(
            name, source=f"{run.info.artifact_uri}/reranker", run_id=run.info.run_id
        )
    return str(mv.version)


def _model_folder(tmp_path: Path, flavours: dict, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text(yaml.safe_dump({"artifact_path": "reranker", "flavors": flavours}))
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return folder


def test_logged_booster_loads(registry):
    import mlflow

    client, name = registry
    booster, x = _booster()
    with mlflow.start_run():
        version = store.log_reranker(booster, FEATURES, x, {"kind": "lightgbm"}, name)
    loaded, spec = store.load_reranker(client, name, version)
    assert type(loaded) is lgb.Booster and spec["features"] == FEATURES
    np.testing.assert_allclose(loaded.predict(x.to_numpy()), booster.predict(x.to_numpy()))


def test_pickled_model_class_is_refused_unread(registry, tmp_path):
    client, name = registry
    planted = tmp_path / "unpickled"
    folder = _model_folder(
        tmp_path,
        {
            "lightgbm": {
                "model_class": "lightgbm.sklearn.LGBMRanker",
                "data": "model.pkl",
                "serialization_format": "cloudpickle",
                "lgb_version": lgb.__version__,
            }
        },
        {"model.pkl": pickle.dumps(_Planted(planted))},
    )
    version = _register_folder(client, name, folder)
    client.set_registered_model_alias(name, store.CHAMPION, version)
    with pytest.raises(store.UntrustedModelError, match=r"lightgbm\.sklearn\.LGBMRanker.*refusing"):
        store.load_reranker(client, name, version)
    assert not planted.exists()
    client.delete_registered_model_alias(name, store.CHAMPION)


@pytest.mark.parametrize(
    ("flavours", "match"),
    [
        ({"python_function": {"loader_module": "os"}}, "no lightgbm flavour"),
        ({"lightgbm": {"data": "model.lgb"}}, "not 'lightgbm.basic.Booster'"),
        (
            {"lightgbm": {"model_class": "lightgbm.basic.Booster", "data": "../../../etc/passwd"}},
            "not a file",
        ),
        ({"lightgbm": {"model_class": "lightgbm.basic.Booster", "data": "missing.lgb"}}, "not a file"),
    ],
)
def test_other_flavours_and_paths_are_refused(tmp_path, flavours, match):
    booster, _ = _booster()
    folder = _model_folder(tmp_path, flavours, {"model.lgb": booster.model_to_string().encode()})
    with pytest.raises(store.UntrustedModelError, match=match):
        store.booster_from_model_dir(folder, "test model")
