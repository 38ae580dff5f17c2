"""MLflow: tracking set-up, model registration with signatures, aliases and the promotion gate.

The registered reranker is the LightGBM booster (``mlflow.lightgbm``, signature inferred from the
feature frame) plus ``reranker_spec.json`` in the same run: the feature list, list length, rules and
the TF models it depends on. Models are picked by alias (``champion``/``challenger``), never by id.
Tracking is configured inside functions from the settings (local SQLite by default), never at import.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from ml.config import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
SPEC_FILE = "reranker_spec.json"
PRIMARY_METRIC = "ndcg@10"


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


def log_reranker(booster: Any, features: list[str], sample: pd.DataFrame, spec: dict[str, Any], name: str) -> str:
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


def load_reranker(client: Any, name: str, version: str) -> tuple[Any, dict[str, Any]]:
    """(LightGBM booster, spec) of one registered version."""
    import mlflow
    import mlflow.lightgbm

    mv = client.get_model_version(name, version)
    booster = mlflow.lightgbm.load_model(f"models:/{name}/{version}")
    spec = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/{SPEC_FILE}")
    return booster, spec


class NoChampionError(LookupError):
    """No version of the model holds the ``champion`` alias (train and promote one first)."""


def load_champion(settings: Settings | None = None):
    """The champion recommender over the current marts (``recommend(user_ids, n)``, ``model_version``).

    Raises :class:`NoChampionError` (a ``LookupError``) when nothing has been promoted yet.
    """
    from ml.train import load_champion as _load

    return _load(settings)


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger may become champion, and why, on one holdout."""

    promoted: bool
    reason: str
    metric: str
    challenger: float
    reference: float
    reference_name: str
    margin: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gate_decision(
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    baselines: dict[str, dict[str, float]],
    *,
    margin: float,
    metric: str = PRIMARY_METRIC,
    must_beat: tuple[str, ...] = ("covisit", "repeat"),
) -> GateDecision:
    """Challenger must reach ``reference · (1 + margin)`` on ``metric``.

    The reference is the current champion re-evaluated on the challenger's holdout; without a
    champion it is the best of the ``must_beat`` baselines on that holdout.
    """
    if margin < 0:
        raise ValueError(f"margin must be ≥ 0, got {margin}")
    if champion is not None:
        ref_name, ref = CHAMPION, champion[metric]
    else:
        present = {b: baselines[b][metric] for b in must_beat if b in baselines}
        if not present:
            raise ValueError(f"no champion and none of the baselines {must_beat} evaluated: cannot gate")
        ref_name = max(present, key=present.__getitem__)
        ref = present[ref_name]
    value = challenger[metric]
    needed = ref * (1 + margin)
    ok = value >= needed and value > 0
    verdict = "beats" if ok else "does not beat"
    reason = f"challenger {metric}={value:.4f} {verdict} {ref_name} {ref:.4f} by the margin {margin:.0%} (needs ≥ {needed:.4f})"
    return GateDecision(ok, reason, metric, float(value), float(ref), ref_name, float(margin))


def set_aliases(client: Any, name: str, version: str, decision: GateDecision) -> None:
    """The new version is always the challenger; it becomes champion only through the gate."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "gate", decision.reason)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)


def spec_json(spec: dict[str, Any]) -> str:
    """Stable JSON for logs and tests."""
    return json.dumps(spec, sort_keys=True, default=str)
