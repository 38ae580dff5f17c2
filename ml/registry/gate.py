"""The promotion gate: a challenger becomes champion only by beating the reference on one holdout.

The reference is the current champion re-evaluated on the challenger's own holdout or, when there
is no champion yet, the best of the named baselines. Pure logic plus the alias moves in MLflow.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ml.models.baselines import BASELINE_NAMES
from ml.registry.store import CHALLENGER, CHAMPION

PRIMARY_METRIC = "ndcg@10"


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
    must_beat: tuple[str, ...] = BASELINE_NAMES,
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


def best_baseline(
    baselines: dict[str, dict[str, float]],
    metric: str = PRIMARY_METRIC,
    names: tuple[str, ...] = BASELINE_NAMES,
) -> str:
    """The baseline with the highest ``metric`` (ties: the first in ``names``)."""
    present = [b for b in names if b in baselines and baselines[b].get(metric) is not None]
    if not present:
        raise ValueError(f"none of the baselines {names} was evaluated on {metric}")
    return max(present, key=lambda b: baselines[b][metric])


def set_aliases(client: Any, name: str, version: str, decision: GateDecision) -> None:
    """The new version is always the challenger; it becomes champion only through the gate."""
    client.set_registered_model_alias(name, CHALLENGER, version)
    client.set_model_version_tag(name, version, "gate", decision.reason)
    if decision.promoted:
        client.set_registered_model_alias(name, CHAMPION, version)
