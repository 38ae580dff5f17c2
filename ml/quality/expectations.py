"""What each checked table must satisfy: one function per GX suite, returning its expectations.

Raw events (a batch as it arrives), the dbt marts, the point-in-time training set (its rows and its
column names, against label leakage) and a top-N before publishing. The thresholds a reviewer may
want to tune are the named constants at the top. Registered as suites, bound to their assets and
grouped into per-stage checkpoints by :mod:`ml.quality.suites`; each function's docstring becomes the
suite's ``notes`` in the committed JSON.
"""

from __future__ import annotations

from typing import Any

from ml import contracts
from ml.quality.builders import between, expect, mean, not_null, param, row_count, rows, unique, varies

BEHAVIOR_TYPES = list(contracts.BEHAVIOR_TYPES)
#: Share of a raw batch that may be bad (the loader quarantines those rows); more fails the batch.
RAW_MOSTLY = 0.99
EARLIEST_EVENT_TS = "2000-01-01T00:00:00"
#: Allowed share of positive labels (label > 0) in the training set.
LABEL_SHARE_MIN, LABEL_SHARE_MAX = 0.001, 0.5
#: Column-name fragments that must not appear in a training set except as the known label columns.
LABEL_COLUMNS = ("clicked", "carted", "purchased", "label")
#: A column named like a label: any "label"/"target"/"future"/"next_", or starting with a label name
#: (``purchased_next_day``); history features such as ``ui_carted_not_bought`` do not match.
LEAKY_NAME_PATTERN = "label|target|future|next_|^(clicked|carted|purchased|faved)"


def raw_suite() -> list[dict[str, Any]]:
    """A new batch of ``user_behavior`` events (DataFrame: incoming or landed after a watermark)."""
    m = RAW_MOSTLY
    share = f" (<= {1 - m:.0%} of a batch may be bad)"
    return [
        expect(
            "expect_table_columns_to_match_set",
            "the batch carries the raw contract's columns",
            column_set=["user_id", "item_id", "session_id", "behavior_type", "ts"],
            exact_match=False,
        ),
        not_null("user_id", "every event belongs to a user" + share, mostly=m),
        between("user_id", 0, None, "user ids are non-negative integers" + share, mostly=m),
        not_null("session_id", "sessionisation and session intent need it" + share, mostly=m),
        not_null(
            "item_id",
            "only a search has no item" + share,
            mostly=m,
            row_condition={
                "column": {"name": "behavior_type"},
                "operator": "!=",
                "parameter": "search",
                "type": "comparison",
            },
        ),
        expect(
            "expect_column_values_to_be_in_set",
            "behaviour type is one of the contract's ENUM values" + share,
            column="behavior_type",
            value_set=BEHAVIOR_TYPES,
            mostly=m,
        ),
        not_null("ts", "every event has a time" + share, mostly=m),
        between(
            "ts",
            EARLIEST_EVENT_TS,
            param("max_event_ts"),
            "timestamps are not before 2000 and not in the future (now + clock-skew tolerance)" + share,
            mostly=m,
        ),
        unique(
            ["user_id", "item_id", "behavior_type", "ts"],
            "events are unique on the loader's natural key (user, item, type, time)" + share,
            mostly=m,
        ),
    ]


_USER_COUNTS = list(contracts.USER_ACTIVITY_COUNTS)
_ITEM_POPS = list(contracts.ITEM_POPULARITY_COUNTS)
_ITEM_RATES = ["view_to_cart_rate", "cart_to_purchase_rate", "price_pct_in_category"]
_CANDIDATE_SCORES = list(contracts.CANDIDATE_SCORES)
_COVISIT_VARIANTS = list(contracts.CANDIDATE_COVISIT_VARIANTS)


def dim_users_suite() -> list[dict[str, Any]]:
    """``dim_users``: one row per user with at least one event."""
    out = [row_count("dim_users"), not_null("user_id", "the key"), unique(["user_id"], "one row per user")]
    for c in _USER_COUNTS:
        out += [not_null(c), between(c, 0, None, f"{c} is a count")]
    out += [
        not_null("purchase_rate"),
        between("purchase_rate", 0, 1, "purchase_rate is a rate in [0, 1]"),
        not_null("hours_since_last_event"),
        between("hours_since_last_event", 0, None, "no event lies after the feature time"),
        not_null(
            "avg_price_viewed", "most users viewed something; all NULL means the feature broke", mostly=0.5
        ),
        not_null(
            "top_category_id", "search-only users may have none; all NULL means the feature broke", mostly=0.5
        ),
        mean("n_browse_30d", 0.01, 10_000, "users browse: a mean near 0 means the window or join broke"),
        mean("purchase_rate", 0, 0.9, "shops convert a small share of views"),
        varies("n_browse_30d"),
        varies("hours_since_last_event"),
    ]
    return out


def dim_items_suite() -> list[dict[str, Any]]:
    """``dim_items``: one row per item."""
    out = [
        row_count("dim_items"),
        not_null("item_id", "the key"),
        unique(["item_id"], "one row per item"),
        not_null("category_id"),
        not_null("price", "pricing features and the price level", mostly=0.99),
        between("price", 0, 1_000_000, "prices are non-negative and not absurd", mostly=0.999),
        expect(
            "expect_column_values_to_be_in_set", "in_stock is a 0/1 flag", column="in_stock", value_set=[0, 1]
        ),
    ]
    for c in _ITEM_POPS:
        out += [not_null(c), between(c, 0, None, f"{c} is a count")]
    for c in _ITEM_RATES:
        out += [not_null(c), between(c, 0, 1, f"{c} is a rate in [0, 1]")]
    for c in contracts.ITEM_TREND_FEATURES:
        out += [not_null(c), between(c, 0, None, f"{c} is a non-negative ratio")]
    out += [
        not_null("trend_1d_7d"),
        not_null("age_days"),
        between("age_days", 0, None, "items are not created after the feature time"),
        mean("pop_browse_7d", 0.001, 1_000_000, "items get views: a mean near 0 means the window broke"),
        varies("price"),
        varies("pop_browse_7d"),
    ]
    return out


def fct_session_intent_suite() -> list[dict[str, Any]]:
    """``fct_session_intent``: one row per user (the last session)."""
    return [
        row_count("fct_session_intent"),
        not_null("user_id", "the key"),
        unique(["user_id"], "one row per user (last session)"),
        not_null("session_id"),
        not_null("last_event_ts"),
        not_null("intent_strength"),
        between("intent_strength", 0, 1, "intent_strength is a share in [0, 1]"),
        not_null("intent_category_id", "sessions of searches only may have none", mostly=0.5),
        mean(
            "intent_strength", 0.01, 1, "a session mostly stays in its intent: a mean near 0 means it broke"
        ),
    ]


def ml_candidates_suite() -> list[dict[str, Any]]:
    """``ml_candidates``: one row per user x candidate item."""
    out = [
        row_count("ml_candidates"),
        not_null("user_id", "the key"),
        not_null("item_id", "the key"),
        unique(["user_id", "item_id"], "a candidate appears once per user"),
    ]
    for c in _CANDIDATE_SCORES:
        out += [not_null(c), between(c, 0, None, f"{c} is a non-negative score")]
    for c in _COVISIT_VARIANTS:
        out += [not_null(c), between(c, 0, None, f"{c} is a non-negative co-visitation sum")]
    out += [
        not_null("sources", "says where a candidate came from"),
        expect(
            "expect_column_values_to_match_regex",
            "sources is a comma list of repeat/covisit/intent_pop/global_pop",
            column="sources",
            regex="^(repeat|covisit|intent_pop|global_pop)(,(repeat|covisit|intent_pop|global_pop))*$",
        ),
    ]
    return out


def ml_covisitation_suite() -> list[dict[str, Any]]:
    """``ml_covisitation``: one row per item pair, top 50 per item."""
    out = [
        row_count("ml_covisitation"),
        not_null("item_id", "the key"),
        not_null("similar_item_id", "the key"),
        unique(["item_id", "similar_item_id"], "a pair appears once"),
        unique(["item_id", "rank"], "one item per rank"),
        between("rank", 1, 50, "top 50 per item"),
        rows(
            "SELECT item_id, similar_item_id FROM {batch} WHERE item_id = similar_item_id",
            "an item is never its own neighbour",
        ),
    ]
    for c in ("score", "score_browse", "score_cart", "score_purchase", "score_cart_cart", "score_buy_buy"):
        out += [not_null(c), between(c, 0, None, f"{c} is a non-negative co-visitation weight")]
    out.append(varies("score"))
    return out


def ml_training_set_suite() -> list[dict[str, Any]]:
    """``ml_training_set``: candidates x features x labels for one cut time."""
    return [
        expect("expect_table_row_count_to_be_between", "a training set has rows", min_value=1),
        expect(
            "expect_table_columns_to_match_set",
            "keys and label columns are present",
            column_set=["user_id", "item_id", *LABEL_COLUMNS],
            exact_match=False,
        ),
        not_null("user_id", "the key"),
        not_null("item_id", "the key"),
        unique(["user_id", "item_id"], "one row per user x item"),
        expect(
            "expect_column_values_to_be_in_set", "graded label 0..3", column="label", value_set=[0, 1, 2, 3]
        ),
        *[
            expect("expect_column_values_to_be_in_set", f"{c} is a 0/1 label", column=c, value_set=[0, 1])
            for c in ("clicked", "carted", "purchased")
        ],
        expect(
            "expect_column_values_to_be_in_set",
            f"at most {LABEL_SHARE_MAX:.0%} positive labels (more: labels leaked into the candidates)",
            column="label",
            value_set=[0],
            mostly=1 - LABEL_SHARE_MAX,
        ),
        expect(
            "expect_column_values_to_be_in_set",
            f"at least {LABEL_SHARE_MIN:.1%} positive labels (fewer: the label window is empty)",
            column="label",
            value_set=[1, 2, 3],
            mostly=LABEL_SHARE_MIN,
        ),
    ]


def training_columns_suite() -> list[dict[str, Any]]:
    """The column names of ``ml_training_set`` (query asset on information_schema)."""
    return [
        expect("expect_table_row_count_to_be_between", "the training set exists", min_value=1),
        expect(
            "expect_column_values_to_not_match_regex",
            "no feature column is named like a label (leakage): only clicked, carted, purchased, label may be",
            column="column_name",
            regex=LEAKY_NAME_PATTERN,
            row_condition={
                "column": {"name": "column_name"},
                "operator": "NOT_IN",
                "parameter": list(LABEL_COLUMNS),
                "type": "comparison",
            },
        ),
    ]


def topn_suite() -> list[dict[str, Any]]:
    """A top-N before publishing (DataFrame built by ``ml.quality.gates.topn_frame``)."""
    has_rows = {"column": {"name": "user_rows"}, "operator": ">", "parameter": 0, "type": "comparison"}
    return [
        between(
            "user_rows",
            param("topn_n"),
            param("topn_n"),
            "every active user has exactly N rows (0 = an active user is missing)",
        ),
        not_null("item_id", "a recommendation names an item", row_condition=has_rows),
        between("rank", 1, param("topn_n"), "ranks run 1..N", row_condition=has_rows),
        unique(["user_id", "rank"], "one item per rank", row_condition=has_rows),
        unique(["user_id", "item_id"], "no duplicate items per user", row_condition=has_rows),
        not_null("score", "every recommendation has a score (NaN counts as NULL)", row_condition=has_rows),
        between("score", -1e300, 1e300, "scores are finite", row_condition=has_rows),
        expect(
            "expect_column_values_to_be_in_set",
            "scores do not increase with rank within a user",
            column="score_ordered",
            value_set=[1],
            row_condition=has_rows,
        ),
        expect(
            "expect_column_values_to_be_in_set",
            "only in-stock items (NULL = item unknown to the catalogue)",
            column="in_stock",
            value_set=[1],
            row_condition=has_rows,
        ),
        expect(
            "expect_column_values_to_be_in_set",
            "no item the user already purchased, unless its category allows repeat buys",
            column="already_purchased",
            value_set=[0],
            row_condition=has_rows,
        ),
    ]
