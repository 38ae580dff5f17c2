"""One source of training defaults: the ``recsys train`` CLI, the ``recsys_train`` DAG's Params and
the benches all read :class:`TrainConfig`, so the CLI and the DAG train the same model by default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ml.models.rules import RuleConfig
from ml.models.tf.features import TOKEN_MIN_USERS

Step = Callable[[str], None]


@dataclass
class TrainConfig:
    """Everything a run can vary; logged as MLflow params. These defaults are the only ones: the CLI
    options and the DAG Params are generated from them (:data:`OPTIONS`)."""

    # evaluation task and label window; "auto" / 0 let the log decide (ml.features.protocol.choose_task)
    task: str = "auto"
    label_hours: float = 0.0
    n_train_cuts: int = 2
    history_days: int = 30
    n: int = 20
    rounds: int = 300
    early_stopping: int = 30
    margin: float = 0.02
    xgboost: bool = True
    use_tf: bool = True
    tf: dict[str, Any] = field(default_factory=dict)
    # a search-query token enters the TF vocabularies (logged to MLflow) only if this many users used it
    token_min_users: int = TOKEN_MIN_USERS
    # sample at most this many users in each training/validation cut (0 = all); the test cut never is
    max_users: int = 0
    # also evaluate OTTO's "rest of session" task on the test cut (ARCHITECTURE.md §3) ...
    session_task: bool = True
    # ... and fit the rerankers on rest-of-session frames of the training/validation cuts too
    session_train: bool = True
    # choose the business rules (category cap, already-bought exclusion, repeat-buy categories) on
    # the validation cut instead of using ``rules`` as given
    learn_rules: bool = True
    shuffle_labels: bool = False
    seed: int = 7
    rules: RuleConfig = field(default_factory=RuleConfig)
    register: bool = True
    # evaluate every model and baseline with each business rule switched off (report/rule_ablation)
    rule_ablation: bool = True
    # train, gate and register the personalised search ranker (ml.search.train); skipped with a
    # reason when the log has too few searches followed by an item engagement
    search: bool = True
    # candidates per search from each source (BM25, query behaviour + synonyms, semantic)
    search_k: int = 100
    # measure the MMR re-rank (ml.models.diversity) of the LightGBM list at each λ of ``mmr_grid`` on
    # the validation cut, choose λ there (the most diverse λ keeping NDCG@10 >= mmr_min_ndcg_ratio ×
    # its λ = 1 value) and report the trade-off on the test cut; publishing is not changed by it
    mmr: bool = True
    mmr_grid: str = "1.0,0.9,0.8,0.7,0.5"
    mmr_min_ndcg_ratio: float = 0.95
    # items re-ranked by MMR per user (the rest follow in score order); brands count as similar too
    mmr_pool: int = 100
    mmr_brand: bool = False

    def as_params(self) -> dict[str, str]:
        d = asdict(self)
        rules = d.pop("rules")
        tf_cfg = d.pop("tf")
        out = {k: str(v) for k, v in d.items()}
        out.update({f"rules_{k}": str(v) for k, v in rules.items()})
        out.update({f"tf_{k}": str(v) for k, v in tf_cfg.items()})
        return out


@dataclass(frozen=True)
class Option:
    """One user-facing setting: its help text and bounds, shared by the CLI option and the DAG Param."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()


#: The settings a person chooses when training (CLI flags of ``recsys train``, Params of the
#: ``recsys_train`` DAG); defaults come from :class:`TrainConfig`.
OPTIONS: dict[str, Option] = {
    "task": Option(
        "Task to evaluate and gate on: auto (from the log: next_basket for order histories, session for logs "
        "of hours, next_day otherwise) or one of next_day, session, next_basket.",
        choices=("auto", "next_day", "session", "next_basket"),
    ),
    "label_hours": Option(
        "Label window Δ after each cut in hours (cuts are Δ apart); 0 = chosen from the log for the task.",
        0,
        24 * 60,
    ),
    "history_days": Option("Days of history before each cut.", 1, 365),
    "n_train_cuts": Option(
        "Training cuts before the validation cut (with the TF stage, >= 2 keeps its score out-of-sample for the reranker).",
        1,
        7,
    ),
    "max_users": Option(
        "Sample at most this many users per training/validation cut (0 = all; the test cut is never sampled).",
        0,
    ),
    "use_tf": Option("Train the TF two-tower + DIN ranker and feed its score to the reranker."),
    "token_min_users": Option(
        "Keep a search-query token in the TF vocabularies (part of the model logged to MLflow) only if at "
        "least this many distinct users searched it (rare queries can identify a person).",
        1,
    ),
    "xgboost": Option("Also train XGBoost rank:ndcg for comparison."),
    "session_task": Option(
        "Also evaluate OTTO's rest-of-session task (users cut inside their session) on the test cut."
    ),
    "session_train": Option(
        "Fit the rankers on rest-of-session frames of the training cuts too (one more dbt build per cut)."
    ),
    "rounds": Option("Maximum boosting rounds (early stopping on the validation cut).", 1, 10000),
    "margin": Option(
        "Relative NDCG@10 gain the challenger needs over the champion (or the best baseline).", 0
    ),
    "learn_rules": Option(
        "Choose the business rules (category cap, already-bought exclusion) on the validation cut."
    ),
    "rule_ablation": Option(
        "Also evaluate every model with each business rule switched off (report/rule_ablation)."
    ),
    "search": Option(
        "Also train the personalised search ranker (its own MLflow experiment and registered model); "
        "skipped with a reason when the log has too few searches."
    ),
    "mmr": Option(
        "Measure the MMR diversity re-rank of the LightGBM list: choose its λ on the validation cut and "
        "report the NDCG/diversity trade-off on the test cut (report/diversity.md); published lists are unchanged."
    ),
    "mmr_grid": Option("Comma-separated λ values of the MMR trade-off (must include 1.0 = off)."),
    "mmr_min_ndcg_ratio": Option(
        "λ chosen = the most category-diverse λ whose validation NDCG@10 is at least this share of λ=1's.",
        0.01,
        1,
    ),
    "mmr_brand": Option("MMR treats items of the same brand as similar too (not only the same category)."),
}


def default(name: str) -> Any:
    """The default of one :class:`TrainConfig` field."""
    return TrainConfig.__dataclass_fields__[name].default


def param_specs() -> dict[str, dict[str, Any]]:
    """``{name: {default, type, description, minimum?, maximum?}}`` for Airflow ``Param(**spec)``."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string"}
    out: dict[str, dict[str, Any]] = {}
    for name, opt in OPTIONS.items():
        value = default(name)
        spec: dict[str, Any] = {"default": value, "type": kinds[type(value)], "description": opt.help}
        if opt.minimum is not None:
            spec["minimum"] = opt.minimum
        if opt.maximum is not None:
            spec["maximum"] = opt.maximum
        if opt.choices:
            spec["enum"] = list(opt.choices)
        out[name] = spec
    return out


def from_params(params: dict[str, Any]) -> TrainConfig:
    """A config from plain values (DAG Params, JSON); unknown names are an error, not ignored."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown training params {unknown}; TrainConfig accepts {sorted(known)}")
    return TrainConfig(**params)


def noop(_: str) -> None:
    """The default progress callback: say nothing."""
    return None
