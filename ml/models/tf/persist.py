"""Log the TF models to MLflow and load them back into the same wrappers.

Keras 3 models go through ``mlflow.tensorflow`` (``mlflow.keras`` cannot load them; ARCHITECTURE
§5), as ``.keras`` files. Encoders (vocabularies, scalers), config, training history and — for the
two-tower — the catalogue travel *inside* the logged model as ``extra_files``, so a registry URI
such as ``models:/recsys_ranker@champion`` alone restores a model that scores exactly as before.

Custom layers are supplied through a ``keras.saving.custom_object_scope`` instead of Keras' global
registry: MLflow would otherwise cloudpickle that registry into the model, and loading it would
need ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true``.

MLflow 3.17: ``log_model(model, name=...)`` (``artifact_path`` is deprecated); models are logged
as LoggedModels of the active run; ``registered_model_name`` creates a new registry version.
"""

from __future__ import annotations

import json
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from ml.models.tf.features import Encoders
from ml.models.tf.ranker import Ranker
from ml.models.tf.ranker_config import RankerConfig
from ml.models.tf.ranker_config import config_dict as ranker_config_dict
from ml.models.tf.two_tower import TwoTower, TwoTowerConfig
from ml.models.tf.two_tower import config_dict as two_tower_config_dict


def _pip_requirements() -> list[str]:
    """Pinned requirements of the serving side (skips MLflow's slow subprocess inference)."""
    reqs = []
    for dist in ("tensorflow-cpu", "tensorflow", "keras", "mlflow", "numpy", "pandas"):
        try:
            reqs.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def _write_json(folder: Path, name: str, obj: object) -> str:
    path = folder / name
    path.write_text(json.dumps(obj, default=float))
    return str(path)


def _log_keras(model, name: str, example: dict, extra_files: list[str], registered_model_name: str | None):
    """``mlflow.tensorflow.log_model`` with signature + input example, custom layers in scope."""
    import keras
    import mlflow
    from mlflow.models import infer_signature

    from ml.models.tf.layers import CUSTOM_OBJECTS, predict_batched

    if example is None:
        raise ValueError("this model has no example inputs (was it loaded rather than trained?)")
    example = {k: np.asarray(v) for k, v in example.items()}
    output = predict_batched(model, example, 1024)
    signature = infer_signature(example, output)
    with keras.saving.custom_object_scope(CUSTOM_OBJECTS):
        return mlflow.tensorflow.log_model(
            model,
            name=name,
            signature=signature,
            input_example=example,
            extra_files=extra_files,
            pip_requirements=_pip_requirements(),
            registered_model_name=registered_model_name,
        )


def _load_keras(model_uri: str) -> tuple[object, Path]:
    """Download the logged model and load its Keras model; returns (model, local model dir)."""
    import keras
    import mlflow

    from ml.models.tf.layers import CUSTOM_OBJECTS

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri))
    with keras.saving.custom_object_scope(CUSTOM_OBJECTS):
        model = mlflow.tensorflow.load_model(str(local), keras_model_kwargs={"compile": False})
    return model, local


def _read_json(local: Path, name: str) -> dict:
    path = local / "extra_files" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} missing: {local} was not logged by ml.models.tf.persist")
    return json.loads(path.read_text())


def log_ranker(ranker: Ranker, name: str = "tf_ranker", registered_model_name: str | None = None):
    """Log a trained :class:`Ranker` to the active MLflow run; returns MLflow's ``ModelInfo``.

    Also logs ``{name}_config.json`` as a plain run artifact, for reading in the UI.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = [
            _write_json(folder, "encoders.json", ranker.encoders.to_json()),
            _write_json(folder, "config.json", ranker_config_dict(ranker.cfg)),
            _write_json(folder, "history.json", {"history": ranker.history, "best_epoch": ranker.best_epoch}),
        ]
        info = _log_keras(ranker.model, name, ranker.example_inputs, files, registered_model_name)
    if mlflow.active_run() is not None:
        mlflow.log_dict(ranker_config_dict(ranker.cfg), f"{name}_config.json")
    return info


def load_ranker(model_uri: str) -> Ranker:
    """Load a ranker logged by :func:`log_ranker` (``runs:/…``, ``models:/name@alias``, a path)."""
    model, local = _load_keras(model_uri)
    hist = _read_json(local, "history.json")
    return Ranker(
        model=model,
        encoders=Encoders.from_json(_read_json(local, "encoders.json")),
        cfg=RankerConfig.from_dict(_read_json(local, "config.json")),
        history=hist["history"],
        best_epoch=int(hist["best_epoch"]),
    )


def log_two_tower(tt: TwoTower, name: str = "tf_two_tower", registered_model_name: str | None = None):
    """Log a trained :class:`TwoTower` (training graph + encoders + catalogue); returns ``ModelInfo``."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalogue = folder / "catalogue.csv"
        tt.catalogue.to_csv(catalogue, index=False)
        files = [
            _write_json(folder, "encoders.json", tt.encoders.to_json()),
            _write_json(folder, "config.json", two_tower_config_dict(tt.cfg)),
            _write_json(folder, "history.json", {"history": tt.history}),
            str(catalogue),
        ]
        info = _log_keras(tt.model, name, tt.example_inputs, files, registered_model_name)
    if mlflow.active_run() is not None:
        mlflow.log_dict(two_tower_config_dict(tt.cfg), f"{name}_config.json")
    return info


def load_two_tower(model_uri: str) -> TwoTower:
    """Load a two-tower model logged by :func:`log_two_tower`, with the catalogue it was logged with."""
    model, local = _load_keras(model_uri)
    catalogue = pd.read_csv(
        local / "extra_files" / "catalogue.csv", dtype={"brand": str}, keep_default_na=False, na_values=[""]
    )
    return TwoTower(
        model=model,
        encoders=Encoders.from_json(_read_json(local, "encoders.json")),
        cfg=TwoTowerConfig.from_dict(_read_json(local, "config.json")),
        catalogue=catalogue,
        history=_read_json(local, "history.json")["history"],
    )
