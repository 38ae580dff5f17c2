"""Business rules chosen from the data, not constants tuned on the simulator (issue: real logs).

Real shoppers re-view and re-buy what they bought and stay inside one category, so the rules that
suit a simulated shop (no already-bought item, at most 70% of a list from one category) can cost
real logs a lot. Here the repeat-buy categories are learned from the training window, the category
cap and the already-bought exclusion are chosen on the validation cut with the fitted reranker, and
an ablation on the test cut says what each rule costs every model and baseline.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Any

import pandas as pd

from ml.models.rerank import FitResult
from ml.models.rules import RuleConfig
from ml.training.config import Step, TrainConfig, noop
from ml.training.holdout import Holdout, evaluate_all

#: Candidate category caps (share of a list one category may fill) and repeat-rate thresholds.
CAPS: tuple[float, ...] = (0.5, 0.7, 1.0)
REPEAT_RATES: tuple[float, ...] = (0.05, 0.2)
METRIC = "ndcg@10"


def repeat_buy_categories(
    history: pd.DataFrame, items: pd.DataFrame, min_rate: float, min_purchases: int = 5
) -> tuple[int, ...]:
    """Categories where at least ``min_rate`` of the purchases (and ``min_purchases`` of them) re-buy
    an item the same user had already bought earlier in ``history``."""
    buys = history[(history["behavior_type"] == "purchase") & history["item_id"].notna()]
    if buys.empty:
        return ()
    buys = buys.sort_values("ts", kind="stable").assign(item_id=lambda d: d["item_id"].astype("int64"))
    buys = buys.assign(repeat=buys.duplicated(["user_id", "item_id"], keep="first").astype(float))
    cats = buys.merge(items[["item_id", "category_id"]].astype({"item_id": "int64"}), on="item_id")
    per = cats.groupby("category_id")["repeat"].agg(["size", "mean"])
    keep = per[(per["size"] >= min_purchases) & (per["mean"] >= min_rate)]
    return tuple(sorted(int(c) for c in keep.index))


def rule_grid(history: pd.DataFrame, items: pd.DataFrame, base: RuleConfig) -> list[RuleConfig]:
    """The rule sets tried on the validation cut, strictest first (ties keep the earlier one)."""
    exclusions: list[tuple[bool, tuple[int, ...]]] = [(True, ())]
    exclusions += [(True, repeat_buy_categories(history, items, r)) for r in REPEAT_RATES]
    exclusions.append((False, ()))
    grid: list[RuleConfig] = []
    for cap in CAPS:
        for exclude, categories in exclusions:
            cfg = replace(
                base, max_category_share=cap, exclude_purchased=exclude, repeat_buy_categories=categories
            )
            if cfg not in grid:
                grid.append(cfg)
    return grid


def describe(rules: RuleConfig) -> str:
    """One line for tables and logs."""
    bought = "bought allowed" if not rules.exclude_purchased else "bought excluded"
    if rules.exclude_purchased and rules.repeat_buy_categories:
        bought += f" (except {len(rules.repeat_buy_categories)} repeat-buy categories)"
    return f"cap {rules.max_category_share:g}, {bought}, {'in stock only' if rules.in_stock_only else 'any stock'}"


def choose_rules(
    fit: FitResult, validation: Holdout, base: RuleConfig, n: int, step: Step = noop
) -> tuple[RuleConfig, pd.DataFrame]:
    """The rule set under which the fitted reranker scores best on the validation cut, and the table
    of every tried set (``rules``, ``ndcg@10``, ``chosen``)."""
    cut = validation.cut
    rows: list[dict[str, Any]] = []
    for rules in rule_grid(cut.history, cut.items, base):
        step(f"validation: rules {describe(rules)}")
        rec = validation.two_stage(fit.scorer, rules)
        rows.append({"rules": describe(rules), METRIC: validation.evaluate(rec, n)[METRIC], "config": rules})
    table = pd.DataFrame(rows)
    best = int(table[METRIC].to_numpy().argmax())  # first maximum: the strictest of equals
    table["chosen"] = [i == best for i in range(len(table))]
    return rows[best]["config"], table.drop(columns="config")


def ablation_variants(rules: RuleConfig) -> dict[str, RuleConfig]:
    """The chosen rules and each rule switched off in turn (and all of them)."""
    return {
        "chosen": rules,
        "no_category_cap": replace(rules, max_category_share=1.0),
        "bought_allowed": replace(rules, exclude_purchased=False),
        "any_stock": replace(rules, in_stock_only=False),
        "no_rules": RuleConfig(max_category_share=1.0, in_stock_only=False, exclude_purchased=False),
    }


def rule_ablation(
    holdout: Holdout,
    fits: dict[str, FitResult],
    cfg: TrainConfig,
    chosen: dict[str, dict[str, float]],
    step: Step = noop,
) -> pd.DataFrame:
    """NDCG@10 of every model and baseline on ``holdout`` under each rule variant (rows: models,
    columns: variants). ``chosen`` holds the results already computed under ``cfg.rules``."""
    table: dict[str, dict[str, float]] = {"chosen": {m: r[METRIC] for m, r in chosen.items()}}
    for name, rules in ablation_variants(cfg.rules).items():
        if name == "chosen":
            continue
        step(f"rule ablation: {name}")
        results = evaluate_all(holdout, fits, replace(cfg, rules=rules))
        table[name] = {m: r[METRIC] for m, r in results.items()}
    return pd.DataFrame(table)


def rules_params(rules: RuleConfig) -> dict[str, str]:
    """The chosen rules as MLflow params."""
    return {f"chosen_rules_{k}": str(v) for k, v in asdict(rules).items()}
