"""Names shared across stages, declared once: behaviour types, the top-N row, and the named event
weights, decays and windows.

The weights that SQL needs live in ``dbt_project/dbt_project.yml`` (``vars``); this module reads the
same file, so dbt models and Python baselines cannot drift apart: change a weight there, once.
Reading is lazy (a small YAML file, cached per process), never at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ml.config import PROJECT_ROOT

#: Event types of ``recsys_raw.user_behavior.behavior_type`` (``browse`` is a product view).
BEHAVIOR_TYPES: tuple[str, ...] = ("search", "browse", "cart", "fav", "purchase")
#: Event types that carry an item (a search has none).
ITEM_BEHAVIORS: tuple[str, ...] = ("browse", "cart", "fav", "purchase")

#: One ranked row of a recommender's answer and of ``recsys_serving.user_topn`` (which adds
#: ``model_version`` and ``generated_at`` when published).
TOPN_COLUMNS: tuple[str, ...] = ("user_id", "rank", "item_id", "score", "source")
#: One ranked row of a search-list provider's query lists (``recsys_serving.query_topn``, which adds
#: ``model_version`` and ``generated_at``) and of its personalised lists (``user_query_topn``).
QUERY_TOPN_COLUMNS: tuple[str, ...] = ("query_norm", "rank", "item_id", "score", "source")
USER_QUERY_TOPN_COLUMNS: tuple[str, ...] = ("user_id", "query_norm", "rank", "item_id", "score", "source")
#: Why a published ``user_topn`` row is there (issue 17): a code of :data:`REASON_CODES` and its
#: argument, added by the publisher (:mod:`ml.models.reasons`), never by a recommender.
TOPN_REASON_COLUMNS: tuple[str, ...] = ("reason", "reason_arg")
#: Reason codes in precedence order (the first that holds for a row is its reason): the item is in
#: the user's cart (not bought since), matches a query of their last session (arg: the query), is
#: co-visited with one of their recent items (arg: that item's id), was bought / viewed by them
#: before, is in their session's intent category / a recently viewed category (arg: its name), or
#: is popular overall. The reader's popularity fallback says ``popular_in`` / ``popular`` too.
REASON_CODES: tuple[str, ...] = (
    "carted",
    "searched",
    "viewed_with",
    "bought_before",
    "viewed_before",
    "session_intent",
    "popular_in",
    "popular",
)
#: Longest ``reason_arg`` (``user_topn.reason_arg`` is VARCHAR(100)).
MAX_REASON_ARG_CHARS = 100

#: Per-source score columns of the ``ml_candidates`` mart (0 when the source did not propose the item).
CANDIDATE_SCORES: tuple[str, ...] = ("repeat_score", "covisit_score", "intent_pop_score", "global_pop_score")
#: Typed co-visitation sums of every ``ml_candidates`` row over the user's recent items (view→view,
#: cart/buy→cart/buy, buy→buy; 0 when the item is no neighbour of them): features, not sources.
CANDIDATE_COVISIT_VARIANTS: tuple[str, ...] = ("covisit_view_view", "covisit_cart_cart", "covisit_buy_buy")
#: User × item features of ``int_user_items_aggregated`` beyond the counts: hours since the last
#: event of each type (NULL when never) and the repeat-purchase rhythm (NULL when undefined).
USER_ITEM_RECENCY: tuple[str, ...] = (
    "hours_since_last_browse",
    "hours_since_last_cart",
    "hours_since_last_fav",
    "hours_since_last_purchase",
    "n_purchase_sessions",
    "n_purchase_days",
    "purchase_gap_hours_mean",
    "purchase_due_ratio",
)
#: Activity counts of ``dim_users`` (windows relative to the mart's reference time).
USER_ACTIVITY_COUNTS: tuple[str, ...] = (
    "n_browse_1d",
    "n_browse_7d",
    "n_browse_30d",
    "n_cart_7d",
    "n_cart_30d",
    "n_fav_30d",
    "n_purchase_30d",
    "n_search_7d",
    "n_sessions_30d",
)
#: Recent popularity counts of ``dim_items`` per behaviour and window.
ITEM_POPULARITY_COUNTS: tuple[str, ...] = ("pop_browse_1d", "pop_browse_7d", "pop_cart_7d", "pop_purchase_7d")
#: Numeric item features of ``dim_items`` that rankers read.
ITEM_FEATURES: tuple[str, ...] = (
    *ITEM_POPULARITY_COUNTS,
    "popularity_score",
    "trend_1d_7d",
    "view_to_cart_rate",
    "cart_to_purchase_rate",
    "price_pct_in_category",
    "age_days",
)

#: Short-scale trends and re-buying of ``dim_items`` (the reranker reads every numeric column; the
#: TF ranker reads :data:`ITEM_FEATURES`).
ITEM_TREND_FEATURES: tuple[str, ...] = (
    "trend_short_1d",
    "trend_purchase_short_1d",
    "trend_purchase_1d_7d",
    "repeat_buyer_rate",
)

#: The named weight sets of ``vars.event_weights`` (what each is for is said in dbt_project.yml).
WEIGHT_SETS: tuple[str, ...] = ("popularity", "intent", "affinity", "repeat", "covisit")

DBT_PROJECT_FILE = PROJECT_ROOT / "dbt_project" / "dbt_project.yml"


class ContractError(ValueError):
    """dbt_project.yml lacks a var the Python side needs, or holds a malformed one."""


@lru_cache(maxsize=4)
def _dbt_vars(path: Path) -> Mapping[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ContractError(
            f"{path} not found: the dbt project holds the shared weights and windows"
        ) from None
    found = data.get("vars")
    if not isinstance(found, dict):
        raise ContractError(f"{path} has no `vars:` mapping")
    return MappingProxyType(found)


def dbt_var(name: str, path: Path = DBT_PROJECT_FILE) -> Any:
    """One var of the dbt project, as dbt itself would see it without ``--vars`` overrides."""
    found = _dbt_vars(path)
    if name not in found:
        raise ContractError(f"dbt var {name!r} is not declared in {path}")
    return found[name]


def event_weights(weight_set: str, path: Path = DBT_PROJECT_FILE) -> dict[str, float]:
    """Behaviour → weight of one named set (types absent from the set weigh 0)."""
    sets = dbt_var("event_weights", path)
    if not isinstance(sets, dict) or weight_set not in sets:
        raise ContractError(
            f"event_weights.{weight_set} is not declared in {path}; sets: {sorted(sets or {})}"
        )
    weights = {str(k): float(v) for k, v in sets[weight_set].items()}
    unknown = set(weights) - set(ITEM_BEHAVIORS)
    if unknown:
        raise ContractError(f"event_weights.{weight_set} names unknown behaviours {sorted(unknown)}")
    return weights


def number_var(name: str, path: Path = DBT_PROJECT_FILE) -> float:
    """A numeric window or half-life var (hours or days, as its name says)."""
    value = dbt_var(name, path)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ContractError(f"dbt var {name!r} must be a number, got {value!r}") from None
