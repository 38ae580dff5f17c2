"""Registration and promotion at the end of a training run.

The LightGBM reranker is always registered as the ``challenger``; it becomes ``champion`` only by
beating the reference (the champion re-evaluated on the same holdout, or the best baseline) by the
margin. When no champion exists and the reranker does not pass, the best baseline on the holdout is
registered as a version and made champion: a first install on real data publishes its lists at
once (serving is never empty), and a learned model replaces it only through the gate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.registry import gate, store
from ml.training.config import Step, TrainConfig, noop
from ml.training.holdout import Holdout
from ml.training.registered import champion_metrics


def register_and_gate(
    client: Any,
    name: str,
    reranker: Any,
    spec: dict[str, Any],
    sample: Any,
    results: dict[str, dict[str, float]],
    holdout: Holdout,
    cfg: TrainConfig,
    step: Step = noop,
) -> dict[str, Any]:
    """Register the reranker, run the gate on ``results`` (the primary task's holdout) and, with no
    champion yet, make the best baseline champion if the reranker fails. Runs inside the MLflow run.

    Returns ``{version, promoted, reason, gate, champion}``; ``champion`` says what serves now.
    """
    import mlflow

    version = store.log_reranker(reranker.booster, reranker.features, sample, spec, name)
    step("promotion gate")
    champion = champion_metrics(client, name, holdout, cfg)
    decision = gate.gate_decision(results["lightgbm"], champion, results, margin=cfg.margin)
    gate.set_aliases(client, name, version, decision)
    if champion is not None:
        mlflow.log_metrics(
            {store.mlflow_key(f"champion.{k}"): v for k, v in champion.items() if np.isfinite(v)}
        )
    serving: dict[str, Any] = (
        {"kind": "lightgbm", "version": version} if decision.promoted else {"kind": "previous"}
    )
    if not decision.promoted and champion is None:
        best = gate.best_baseline(results)
        step(f"no champion yet: register the best baseline ({best}) as champion")
        bspec = {key: spec[key] for key in ("n", "rules", "test_cut", "label_hours", "task") if key in spec}
        bversion = store.log_baseline(client, best, bspec, name)
        reason = (
            f"no champion yet and the reranker did not pass the gate: baseline '{best}' "
            f"({gate.PRIMARY_METRIC}={results[best][gate.PRIMARY_METRIC]:.4f}) serves until a model beats it"
        )
        client.set_model_version_tag(name, bversion, "gate", reason)
        client.set_registered_model_alias(name, store.CHAMPION, bversion)
        serving = {"kind": "baseline", "baseline": best, "version": bversion}
    mlflow.set_tags(
        {
            "gate_promoted": str(decision.promoted),
            "gate_reason": decision.reason,
            "model_version": version,
            "champion_kind": serving["kind"] if serving["kind"] != "previous" else "unchanged",
            **({"champion_baseline": serving["baseline"]} if serving["kind"] == "baseline" else {}),
        }
    )
    return {
        "version": version,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "gate": decision.as_dict(),
        "champion": serving,
    }
