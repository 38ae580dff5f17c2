"""MLflow: tracking set-up, model registration with signatures, aliases, loading a registered version.

The registered reranker is the LightGBM booster (``mlflow.lightgbm``, signature inferred from the
feature frame) plus ``reranker_spec.json`` in the same run: the feature list, list length, rules and
the TF models it depends on. Models are picked by alias (``champion``/``challenger``), never by id.
Tracking is configured inside functions from the settings (local SQLite by default), never at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
SPEC_FILE = "reranker_spec.json"
BASELINE_SPEC_FILE = "baseline_spec.json"
SPEC_PATH_TAG = "spec_path"  # model-version tag: where the spec of a non-reranker version lies


def model_name(settings: Settings) -> str:
    """The registered model name of this pipeline's reranker."""
    return f"{settings.mlflow_experiment}-reranker"


def mlflow_key(name: str) -> str:
    """MLflow metric/param keys allow ``[\\w./ :-]``: ``ndcg@10`` → ``ndcg_at_10``."""
    return name.replace("@", "_at_")


def configure(settings: Settings):
    """Point MLflow at the settings' tracking store and experiment; returns an ``MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(settings.mlflow_experiment)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def log_reranker(
    booster: Any, features: list[str], sample: pd.DataFrame, spec: dict[str, Any], name: str
) -> str:
    """Log and register the LightGBM booster (with signature and input example) in the active run.

    Returns the new registered version (a string, as MLflow's client takes it).
    """
    import mlflow
    import mlflow.lightgbm
    from mlflow.models import infer_signature

    x = sample[features].astype(float).head(200)
    signature = infer_signature(x, booster.predict(x.to_numpy(dtype="float32")))
    mlflow.log_dict({**spec, "features": features}, SPEC_FILE)
    info = mlflow.lightgbm.log_model(
        booster, name="reranker", signature=signature, input_example=x.head(3), registered_model_name=name
    )
    return str(info.registered_model_version)


def alias_version(client: Any, name: str, alias: str):
    """The ModelVersion holding ``alias``, or None (no such model or alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def load_spec(client: Any, name: str, version: str) -> dict[str, Any]:
    """The spec of one registered version: ``kind`` ``lightgbm`` (a reranker) or ``baseline``."""
    import mlflow

    mv = client.get_model_version(name, version)
    spec = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{(mv.tags or {}).get(SPEC_PATH_TAG, SPEC_FILE)}")
    spec.setdefault("kind", "lightgbm")
    return spec


class UntrustedModelError(ValueError):
    """A registered version is not what this pipeline logs (a LightGBM ``Booster`` in LightGBM's own
    text format); refused before any of it is deserialized."""


#: the only model class a reranker version may name: MLflow reads it with ``lightgbm.Booster(model_file=)``;
#: for any other class it unpickles the file (code execution for whoever can register a version)
BOOSTER_CLASS = "lightgbm.basic.Booster"


def booster_from_model_dir(model_dir: Path, what: str) -> Any:
    """The LightGBM Booster of a downloaded MLflow model folder, after checking its ``MLmodel``:
    a ``lightgbm`` flavour whose ``model_class`` is :data:`BOOSTER_CLASS` and whose data file lies
    inside the folder. Raises :class:`UntrustedModelError` otherwise; nothing is unpickled."""
    import lightgbm as lgb
    import yaml

    try:
        meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UntrustedModelError(f"{what}: no readable MLmodel file ({exc})") from None
    flavours = meta.get("flavors") if isinstance(meta, dict) else None
    conf = flavours.get("lightgbm") if isinstance(flavours, dict) else None
    if not isinstance(conf, dict):
        found = sorted(flavours) if isinstance(flavours, dict) else []
        raise UntrustedModelError(f"{what} has no lightgbm flavour (flavours: {found}); refusing to load it")
    if conf.get("model_class") != BOOSTER_CLASS:
        raise UntrustedModelError(
            f"{what} is logged as {conf.get('model_class')!r}, not {BOOSTER_CLASS!r} (MLflow would unpickle "
            "it); refusing to load it"
        )
    root = model_dir.resolve()
    data = (root / str(conf.get("data") or "")).resolve()
    if not data.is_relative_to(root) or not data.is_file():
        raise UntrustedModelError(f"{what}: model data {conf.get('data')!r} is not a file of the model")
    return lgb.Booster(model_file=str(data))  # LightGBM's text model format, parsed, not unpickled


def load_reranker(client: Any, name: str, version: str) -> tuple[Any, dict[str, Any]]:
    """(LightGBM booster, spec) of one registered reranker version; the logged model is checked
    by :func:`booster_from_model_dir` before it is read (never ``mlflow.lightgbm.load_model``)."""
    import tempfile

    import mlflow.artifacts

    spec = load_spec(client, name, version)
    if spec["kind"] != "lightgbm":
        raise ValueError(f"{name} version {version} is a {spec['kind']} version, not a LightGBM reranker")
    with tempfile.TemporaryDirectory(prefix="recsys_model_") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=tmp)
        return booster_from_model_dir(Path(local), f"{name} version {version}"), spec


def log_baseline(client: Any, baseline: str, spec: dict[str, Any], name: str) -> str:
    """Register a baseline (e.g. ``repeat``) as a version of the model, in the active run.

    A baseline has no weights: its version is the spec (which baseline, list length, rules) that
    :func:`ml.registry.champion.registered_recommender` turns into a recommender over the marts, so
    publish and refresh load it like any other version. Returns the new version.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("log_baseline needs an active MLflow run")
    folder = f"baseline_{baseline}"
    path = f"{folder}/{BASELINE_SPEC_FILE}"
    mlflow.log_dict({**spec, "kind": "baseline", "baseline": baseline}, path)
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
    mv = client.create_model_version(
        name,
        source=f"{run.info.artifact_uri}/{folder}",
        run_id=run.info.run_id,
        tags={"kind": "baseline", "baseline": baseline, SPEC_PATH_TAG: path},
    )
    return str(mv.version)


class NoChampionError(LookupError):
    """No version of the model holds the ``champion`` alias (train and promote one first)."""


def spec_json(spec: dict[str, Any]) -> str:
    """Stable JSON for logs and tests."""
    return json.dumps(spec, sort_keys=True, default=str)
