"""The data contracts as code: GX suites, validation definitions and checkpoints per stage.

``build_contracts()`` writes the file-backed GX project under ``expectations/gx/`` — the committed,
reviewed JSON. Ids are derived from names (uuid5), so a rebuild is byte-identical unless a contract
changed, and ``tests/code/test_quality_contracts.py`` fails when the JSON and this module drift.

Suites are generic: no database name appears in them. Each SQL datasource connects through a
connection string read from an environment variable (``${RECSYS_GX_MARTS_URL}``, ...) that
``ml.quality`` fills from ``Settings`` at run time, so the ``RECSYS_DB_PREFIX`` is honoured.
Values known only at run time (previous row counts, N, "now") are suite parameters
(``{"$PARAMETER": name}``).

Where a batch cannot be a MySQL table, it is a DataFrame asset:
- raw events are checked as the batch that arrives (the loader's frame before the raw table's
  NOT NULL / ENUM constraints would reject it), or as the events landed after a watermark;
- the top-N is checked as a frame enriched with stock, purchase history and per-user counts, which
  needs the raw database (another prefixed name) and a table name chosen at run time.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.config import PROJECT_ROOT

#: GX project root (``gx/`` lives inside; ``get_context(project_root_dir=GX_PROJECT_DIR)``).
GX_PROJECT_DIR = PROJECT_ROOT / "expectations"
BEHAVIOR_TYPES = ["search", "browse", "cart", "fav", "purchase"]
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
TRAINING_COLUMNS_QUERY = (
    "SELECT LOWER(column_name) AS column_name FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name = 'ml_training_set'"
)

# environment variables the datasources read their connection string from
ENV_URL = {"marts": "RECSYS_GX_MARTS_URL", "pit": "RECSYS_GX_PIT_URL"}

_NS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/recsys-intent/expectations")


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NS, f"{kind}/{name}"))


def _exp(type_: str, description: str, **kwargs: Any) -> dict[str, Any]:
    """One expectation in GX's JSON form; the description says why it exists (shown in Data Docs)."""
    ident = json.dumps([type_, kwargs], sort_keys=True)
    return {
        "description": description,
        "id": _id("expectation", ident),
        "kwargs": kwargs,
        "meta": {},
        "severity": "critical",
        "type": type_,
    }


def _param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _not_null(col: str, why: str = "the model reads it", **kw: Any) -> dict[str, Any]:
    return _exp("expect_column_values_to_not_be_null", f"{col} is never NULL: {why}", column=col, **kw)


def _between(col: str, lo: Any, hi: Any, why: str, **kw: Any) -> dict[str, Any]:
    return _exp("expect_column_values_to_be_between", why, column=col, min_value=lo, max_value=hi, **kw)


def _unique(cols: list[str], why: str, **kw: Any) -> dict[str, Any]:
    if len(cols) == 1:
        return _exp("expect_column_values_to_be_unique", why, column=cols[0], **kw)
    return _exp("expect_compound_columns_to_be_unique", why, column_list=cols, **kw)


def _row_count(table: str) -> dict[str, Any]:
    return _exp(
        "expect_table_row_count_to_be_between",
        f"{table} row count within the range allowed around the previous successful run",
        min_value=_param(f"{table}_min_rows"),
        max_value=_param(f"{table}_max_rows"),
    )


def _mean(col: str, lo: float, hi: float, why: str) -> dict[str, Any]:
    return _exp("expect_column_mean_to_be_between", why, column=col, min_value=lo, max_value=hi)


def _varies(col: str) -> dict[str, Any]:
    return _exp(
        "expect_column_stdev_to_be_between",
        f"{col} is not constant (a feature collapsed to one value carries no signal)",
        column=col,
        min_value=1e-9,
    )


def _rows(query: str, why: str) -> dict[str, Any]:
    return _exp("unexpected_rows_expectation", why, unexpected_rows_query=query)


def raw_suite() -> list[dict[str, Any]]:
    """A new batch of ``user_behavior`` events (DataFrame: incoming or landed after a watermark)."""
    m = RAW_MOSTLY
    share = f" (<= {1 - m:.0%} of a batch may be bad)"
    return [
        _exp(
            "expect_table_columns_to_match_set",
            "the batch carries the raw contract's columns",
            column_set=["user_id", "item_id", "session_id", "behavior_type", "ts"],
            exact_match=False,
        ),
        _not_null("user_id", "every event belongs to a user" + share, mostly=m),
        _between("user_id", 0, None, "user ids are non-negative integers" + share, mostly=m),
        _not_null("session_id", "sessionisation and session intent need it" + share, mostly=m),
        _not_null(
            "item_id",
            "only a search has no item" + share,
            mostly=m,
            row_condition={"column": {"name": "behavior_type"}, "operator": "!=", "parameter": "search", "type": "comparison"},
        ),
        _exp(
            "expect_column_values_to_be_in_set",
            "behaviour type is one of the contract's ENUM values" + share,
            column="behavior_type",
            value_set=BEHAVIOR_TYPES,
            mostly=m,
        ),
        _not_null("ts", "every event has a time" + share, mostly=m),
        _between(
            "ts",
            EARLIEST_EVENT_TS,
            _param("max_event_ts"),
            "timestamps are not before 2000 and not in the future (now + clock-skew tolerance)" + share,
            mostly=m,
        ),
        _unique(
            ["user_id", "item_id", "behavior_type", "ts"],
            "events are unique on the loader's natural key (user, item, type, time)" + share,
            mostly=m,
        ),
    ]


_USER_COUNTS = ["n_browse_1d", "n_browse_7d", "n_browse_30d", "n_cart_7d", "n_cart_30d", "n_fav_30d",
                "n_purchase_30d", "n_search_7d", "n_sessions_30d"]
_ITEM_POPS = ["pop_browse_1d", "pop_browse_7d", "pop_cart_7d", "pop_purchase_7d"]
_ITEM_RATES = ["view_to_cart_rate", "cart_to_purchase_rate", "price_pct_in_category"]
_CANDIDATE_SCORES = ["repeat_score", "covisit_score", "intent_pop_score", "global_pop_score"]


def dim_users_suite() -> list[dict[str, Any]]:
    """``dim_users``: one row per user with at least one event."""
    out = [_row_count("dim_users"), _not_null("user_id", "the key"), _unique(["user_id"], "one row per user")]
    for c in _USER_COUNTS:
        out += [_not_null(c), _between(c, 0, None, f"{c} is a count")]
    out += [
        _not_null("purchase_rate"),
        _between("purchase_rate", 0, 1, "purchase_rate is a rate in [0, 1]"),
        _not_null("hours_since_last_event"),
        _between("hours_since_last_event", 0, None, "no event lies after the feature time"),
        _not_null("avg_price_viewed", "most users viewed something; all NULL means the feature broke", mostly=0.5),
        _not_null("top_category_id", "search-only users may have none; all NULL means the feature broke", mostly=0.5),
        _mean("n_browse_30d", 0.01, 10_000, "users browse: a mean near 0 means the window or join broke"),
        _mean("purchase_rate", 0, 0.9, "shops convert a small share of views"),
        _varies("n_browse_30d"),
        _varies("hours_since_last_event"),
    ]
    return out


def dim_items_suite() -> list[dict[str, Any]]:
    """``dim_items``: one row per item."""
    out = [_row_count("dim_items"), _not_null("item_id", "the key"), _unique(["item_id"], "one row per item"),
           _not_null("category_id"), _not_null("price", "pricing features and the price level", mostly=0.99),
           _between("price", 0, 1_000_000, "prices are non-negative and not absurd", mostly=0.999),
           _exp("expect_column_values_to_be_in_set", "in_stock is a 0/1 flag", column="in_stock", value_set=[0, 1])]
    for c in _ITEM_POPS:
        out += [_not_null(c), _between(c, 0, None, f"{c} is a count")]
    for c in _ITEM_RATES:
        out += [_not_null(c), _between(c, 0, 1, f"{c} is a rate in [0, 1]")]
    out += [
        _not_null("trend_1d_7d"),
        _not_null("age_days"),
        _between("age_days", 0, None, "items are not created after the feature time"),
        _mean("pop_browse_7d", 0.001, 1_000_000, "items get views: a mean near 0 means the window broke"),
        _varies("price"),
        _varies("pop_browse_7d"),
    ]
    return out


def fct_session_intent_suite() -> list[dict[str, Any]]:
    """``fct_session_intent``: one row per user (the last session)."""
    return [
        _row_count("fct_session_intent"),
        _not_null("user_id", "the key"),
        _unique(["user_id"], "one row per user (last session)"),
        _not_null("session_id"),
        _not_null("last_event_ts"),
        _not_null("intent_strength"),
        _between("intent_strength", 0, 1, "intent_strength is a share in [0, 1]"),
        _not_null("intent_category_id", "sessions of searches only may have none", mostly=0.5),
        _mean("intent_strength", 0.01, 1, "a session mostly stays in its intent: a mean near 0 means it broke"),
    ]


def ml_candidates_suite() -> list[dict[str, Any]]:
    """``ml_candidates``: one row per user x candidate item."""
    out = [_row_count("ml_candidates"), _not_null("user_id", "the key"), _not_null("item_id", "the key"),
           _unique(["user_id", "item_id"], "a candidate appears once per user")]
    for c in _CANDIDATE_SCORES:
        out += [_not_null(c), _between(c, 0, None, f"{c} is a non-negative score")]
    out += [
        _not_null("sources", "says where a candidate came from"),
        _exp(
            "expect_column_values_to_match_regex",
            "sources is a comma list of repeat/covisit/intent_pop/global_pop",
            column="sources",
            regex="^(repeat|covisit|intent_pop|global_pop)(,(repeat|covisit|intent_pop|global_pop))*$",
        ),
    ]
    return out


def ml_covisitation_suite() -> list[dict[str, Any]]:
    """``ml_covisitation``: one row per item pair, top 50 per item."""
    out = [_row_count("ml_covisitation"), _not_null("item_id", "the key"), _not_null("similar_item_id", "the key"),
           _unique(["item_id", "similar_item_id"], "a pair appears once"),
           _unique(["item_id", "rank"], "one item per rank"),
           _between("rank", 1, 50, "top 50 per item"),
           _rows("SELECT item_id, similar_item_id FROM {batch} WHERE item_id = similar_item_id",
                 "an item is never its own neighbour")]
    for c in ("score", "score_browse", "score_cart", "score_purchase"):
        out += [_not_null(c), _between(c, 0, None, f"{c} is a non-negative co-visitation weight")]
    out.append(_varies("score"))
    return out


def ml_training_set_suite() -> list[dict[str, Any]]:
    """``ml_training_set``: candidates x features x labels for one cut time."""
    return [
        _exp("expect_table_row_count_to_be_between", "a training set has rows", min_value=1),
        _exp("expect_table_columns_to_match_set", "keys and label columns are present",
             column_set=["user_id", "item_id", *LABEL_COLUMNS], exact_match=False),
        _not_null("user_id", "the key"),
        _not_null("item_id", "the key"),
        _unique(["user_id", "item_id"], "one row per user x item"),
        _exp("expect_column_values_to_be_in_set", "graded label 0..3", column="label", value_set=[0, 1, 2, 3]),
        *[_exp("expect_column_values_to_be_in_set", f"{c} is a 0/1 label", column=c, value_set=[0, 1])
          for c in ("clicked", "carted", "purchased")],
        _exp("expect_column_values_to_be_in_set",
             f"at most {LABEL_SHARE_MAX:.0%} positive labels (more: labels leaked into the candidates)",
             column="label", value_set=[0], mostly=1 - LABEL_SHARE_MAX),
        _exp("expect_column_values_to_be_in_set",
             f"at least {LABEL_SHARE_MIN:.1%} positive labels (fewer: the label window is empty)",
             column="label", value_set=[1, 2, 3], mostly=LABEL_SHARE_MIN),
    ]


def training_columns_suite() -> list[dict[str, Any]]:
    """The column names of ``ml_training_set`` (query asset on information_schema)."""
    return [
        _exp("expect_table_row_count_to_be_between", "the training set exists", min_value=1),
        _exp(
            "expect_column_values_to_not_match_regex",
            "no feature column is named like a label (leakage): only clicked, carted, purchased, label may be",
            column="column_name",
            regex=LEAKY_NAME_PATTERN,
            row_condition={"column": {"name": "column_name"}, "operator": "NOT_IN",
                           "parameter": list(LABEL_COLUMNS), "type": "comparison"},
        ),
    ]


def topn_suite() -> list[dict[str, Any]]:
    """A top-N before publishing (DataFrame built by ``ml.quality.topn_frame``)."""
    has_rows = {"column": {"name": "user_rows"}, "operator": ">", "parameter": 0, "type": "comparison"}
    return [
        _between("user_rows", _param("topn_n"), _param("topn_n"),
                 "every active user has exactly N rows (0 = an active user is missing)"),
        _not_null("item_id", "a recommendation names an item", row_condition=has_rows),
        _between("rank", 1, _param("topn_n"), "ranks run 1..N", row_condition=has_rows),
        _unique(["user_id", "rank"], "one item per rank", row_condition=has_rows),
        _unique(["user_id", "item_id"], "no duplicate items per user", row_condition=has_rows),
        _not_null("score", "every recommendation has a score (NaN counts as NULL)", row_condition=has_rows),
        _between("score", -1e300, 1e300, "scores are finite", row_condition=has_rows),
        _exp("expect_column_values_to_be_in_set", "scores do not increase with rank within a user",
             column="score_ordered", value_set=[1], row_condition=has_rows),
        _exp("expect_column_values_to_be_in_set", "only in-stock items (NULL = item unknown to the catalogue)",
             column="in_stock", value_set=[1], row_condition=has_rows),
        _exp("expect_column_values_to_be_in_set",
             "no item the user already purchased, unless its category allows repeat buys",
             column="already_purchased", value_set=[0], row_condition=has_rows),
    ]


@dataclass(frozen=True)
class Validation:
    """One validation definition: a suite on one asset of one datasource."""

    suite: str
    datasource: str
    asset: str
    query: str | None = None  # a query asset instead of the table named ``asset``

    @property
    def name(self) -> str:
        return f"{self.suite}__{self.asset}"

    @property
    def batch_definition(self) -> str:
        return "whole_frame" if self.datasource == "frames" else "whole_table"


SUITES = {
    "raw_user_behavior": raw_suite,
    "marts_dim_users": dim_users_suite,
    "marts_dim_items": dim_items_suite,
    "marts_fct_session_intent": fct_session_intent_suite,
    "marts_ml_candidates": ml_candidates_suite,
    "marts_ml_covisitation": ml_covisitation_suite,
    "training_ml_training_set": ml_training_set_suite,
    "training_ml_training_set_columns": training_columns_suite,
    "serving_topn": topn_suite,
}

VALIDATIONS = {
    v.name: v
    for v in (
        Validation("raw_user_behavior", "frames", "user_behavior_batch"),
        Validation("marts_dim_users", "recsys_marts", "dim_users"),
        Validation("marts_dim_items", "recsys_marts", "dim_items"),
        Validation("marts_fct_session_intent", "recsys_marts", "fct_session_intent"),
        Validation("marts_ml_candidates", "recsys_marts", "ml_candidates"),
        Validation("marts_ml_covisitation", "recsys_marts", "ml_covisitation"),
        Validation("training_ml_training_set", "recsys_pit", "ml_training_set"),
        Validation("training_ml_training_set_columns", "recsys_pit", "ml_training_set_columns", TRAINING_COLUMNS_QUERY),
        Validation("serving_topn", "frames", "topn_batch"),
    )
}

#: stage -> validations its checkpoint runs. ``realtime`` is the refresh DAG's light check.
STAGES: dict[str, list[str]] = {
    "raw": ["raw_user_behavior__user_behavior_batch"],
    "marts": [
        "marts_dim_users__dim_users",
        "marts_dim_items__dim_items",
        "marts_fct_session_intent__fct_session_intent",
        "marts_ml_candidates__ml_candidates",
        "marts_ml_covisitation__ml_covisitation",
    ],
    "realtime": ["marts_fct_session_intent__fct_session_intent", "marts_ml_candidates__ml_candidates"],
    "training": [
        "training_ml_training_set__ml_training_set",
        "training_ml_training_set_columns__ml_training_set_columns",
    ],
    "topn": ["serving_topn__topn_batch"],
}

#: mart tables whose row counts are compared with the previous successful run
COUNTED_TABLES = ["dim_users", "dim_items", "fct_session_intent", "ml_candidates", "ml_covisitation"]


def _datasources() -> dict[str, Any]:
    """The ``fluent_datasources`` block: SQL sources read their URL from the environment."""
    sources: dict[str, dict[str, Any]] = {
        "recsys_marts": {"type": "sql", "connection_string": "${%s}" % ENV_URL["marts"]},
        "recsys_pit": {"type": "sql", "connection_string": "${%s}" % ENV_URL["pit"]},
        "frames": {"type": "pandas"},
    }
    for name, src in sources.items():
        src["id"] = _id("datasource", name)
        src["assets"] = {}
    for v in VALIDATIONS.values():
        asset: dict[str, Any] = {
            "type": "dataframe" if v.datasource == "frames" else "query" if v.query else "table",
            "id": _id("asset", f"{v.datasource}/{v.asset}"),
            "batch_metadata": {},
            "batch_definitions": {
                v.batch_definition: {"id": _id("batch_definition", f"{v.datasource}/{v.asset}"), "partitioner": None}
            },
        }
        if v.query:
            asset["query"] = v.query
        elif v.datasource != "frames":
            asset["table_name"] = v.asset
        sources[v.datasource]["assets"][v.asset] = asset
    return sources


_YML_HEAD = """\
# Great Expectations project of the recsys pipeline. GENERATED by `recsys quality contracts`
# from ml/quality_contracts.py: edit that module, regenerate, review the JSON diff.
# ${VAR} values are filled at run time by ml.quality from ml.config.get_settings()
# (RECSYS_HOME for results and Data Docs, RECSYS_GX_*_URL with the prefixed database names).
config_version: 4.0
config_variables_file_path: uncommitted/config_variables.yml
plugins_directory: plugins/
analytics_enabled: false
progress_bars:
  globally: false
  metric_calculations: false
stores:
  expectations_store:
    class_name: ExpectationsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: expectations/
  validation_results_store:
    class_name: ValidationResultsStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${RECSYS_HOME}/gx/validations/
  checkpoint_store:
    class_name: CheckpointStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: checkpoints/
  validation_definition_store:
    class_name: ValidationDefinitionStore
    store_backend:
      class_name: TupleFilesystemStoreBackend
      suppress_store_backend_id: true
      base_directory: validation_definitions/
expectations_store_name: expectations_store
validation_results_store_name: validation_results_store
checkpoint_store_name: checkpoint_store
data_docs_sites:
  local_site:
    class_name: SiteBuilder
    show_how_to_buttons: false
    store_backend:
      class_name: TupleFilesystemStoreBackend
      base_directory: ${RECSYS_HOME}/gx/data_docs/
    site_index_builder:
      class_name: DefaultSiteIndexBuilder
data_context_id: %s
""" % _id("context", "recsys")


def render_contracts() -> dict[str, str]:
    """Every generated file of the GX project, relative to ``expectations/gx/``, with its text."""
    import yaml

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"

    files: dict[str, str] = {
        "great_expectations.yml": _YML_HEAD + yaml.safe_dump({"fluent_datasources": _datasources()}, sort_keys=False),
        ".gitignore": "uncommitted/\n",
    }
    for name, build in SUITES.items():
        suite = {"expectations": build(), "id": _id("suite", name), "meta": {"great_expectations_version": "1.24.1"},
                 "name": name, "notes": (build.__doc__ or "").strip()}
        files[f"expectations/{name}.json"] = dump(suite)
    for v in VALIDATIONS.values():
        vd = {
            "data": {
                "asset": {"id": _id("asset", f"{v.datasource}/{v.asset}"), "name": v.asset},
                "batch_definition": {"id": _id("batch_definition", f"{v.datasource}/{v.asset}"), "name": v.batch_definition},
                "datasource": {"id": _id("datasource", v.datasource), "name": v.datasource},
            },
            "id": _id("validation_definition", v.name),
            "name": v.name,
            "suite": {"id": _id("suite", v.suite), "name": v.suite},
        }
        files[f"validation_definitions/{v.name}.json"] = dump(vd)
    for stage, names in STAGES.items():
        cp = {
            "actions": [{"name": "update_data_docs", "site_names": [], "type": "update_data_docs"}],
            "id": _id("checkpoint", stage),
            "name": stage,
            "result_format": "SUMMARY",
            "validation_definitions": [{"id": _id("validation_definition", n), "name": n} for n in names],
        }
        files[f"checkpoints/{stage}.json"] = dump(cp)
    return files


def build_contracts(project_dir: Path = GX_PROJECT_DIR) -> list[Path]:
    """Write the GX project under ``project_dir/gx``; stale generated JSON files are removed."""
    root = project_dir / "gx"
    files = render_contracts()
    for sub in ("expectations", "validation_definitions", "checkpoints"):
        d = root / sub
        if d.is_dir():
            for old in d.glob("*.json"):
                if f"{sub}/{old.name}" not in files:
                    old.unlink()
    written = []
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
