"""The data contracts as code: GX suites, validation definitions and checkpoints per stage.

``build_contracts()`` writes the file-backed GX project under ``expectations/gx/`` — the committed,
reviewed JSON. Ids are derived from names (uuid5), so a rebuild is byte-identical unless a contract
changed, and ``tests/code/test_quality_contracts.py`` fails when the JSON and this module drift.

Suites are generic: no database name appears in them. Each SQL datasource connects through a
connection string read from an environment variable (``${RECSYS_GX_MARTS_URL}``, ...) that
``ml.quality.context`` fills from ``Settings`` at run time, so the ``RECSYS_DB_PREFIX`` is honoured.
Values known only at run time (previous row counts, N, "now") are suite parameters
(``{"$PARAMETER": name}``).

Where a batch cannot be a MySQL table, it is a DataFrame asset:
- raw events are checked as the batch that arrives (the loader's frame before the raw table's
  NOT NULL / ENUM constraints would reject it), or as the events landed after a watermark;
- the top-N is checked as a frame enriched with stock, purchase history and per-user counts, which
  needs the raw database (another prefixed name) and a table name chosen at run time.

The expectations themselves are stated in :mod:`ml.quality.expectations` (one function per suite,
built with :mod:`ml.quality.builders`); this module registers them as suites, binds them to assets
(validation definitions), groups them into per-stage checkpoints and renders the GX project files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.config import PROJECT_ROOT
from ml.quality.builders import gx_id
from ml.quality.expectations import (
    dim_items_suite,
    dim_users_suite,
    fct_session_intent_suite,
    ml_candidates_suite,
    ml_covisitation_suite,
    ml_training_set_suite,
    raw_suite,
    topn_suite,
    training_columns_suite,
)

#: GX project root (``gx/`` lives inside; ``get_context(project_root_dir=GX_PROJECT_DIR)``).
GX_PROJECT_DIR = PROJECT_ROOT / "expectations"
TRAINING_COLUMNS_QUERY = (
    "SELECT LOWER(column_name) AS column_name FROM information_schema.columns "
    "WHERE table_schema = DATABASE() AND table_name = 'ml_training_set'"
)

# environment variables the datasources read their connection string from
ENV_URL = {"marts": "RECSYS_GX_MARTS_URL", "pit": "RECSYS_GX_PIT_URL"}


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
        Validation(
            "training_ml_training_set_columns",
            "recsys_pit",
            "ml_training_set_columns",
            TRAINING_COLUMNS_QUERY,
        ),
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
        "recsys_marts": {"type": "sql", "connection_string": "${" + ENV_URL["marts"] + "}"},
        "recsys_pit": {"type": "sql", "connection_string": "${" + ENV_URL["pit"] + "}"},
        "frames": {"type": "pandas"},
    }
    for name, src in sources.items():
        src["id"] = gx_id("datasource", name)
        src["assets"] = {}
    for v in VALIDATIONS.values():
        asset: dict[str, Any] = {
            "type": "dataframe" if v.datasource == "frames" else "query" if v.query else "table",
            "id": gx_id("asset", f"{v.datasource}/{v.asset}"),
            "batch_metadata": {},
            "batch_definitions": {
                v.batch_definition: {
                    "id": gx_id("batch_definition", f"{v.datasource}/{v.asset}"),
                    "partitioner": None,
                }
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
# from ml/quality/suites.py: edit that module, regenerate, review the JSON diff.
# ${VAR} values are filled at run time by ml.quality.gates from ml.config.get_settings()
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
data_context_id: {context_id}
""".replace("{context_id}", gx_id("context", "recsys"))


def render_contracts() -> dict[str, str]:
    """Every generated file of the GX project, relative to ``expectations/gx/``, with its text."""
    import yaml

    def dump(obj: Any) -> str:
        return json.dumps(obj, indent=2, sort_keys=True) + "\n"

    files: dict[str, str] = {
        "great_expectations.yml": _YML_HEAD
        + yaml.safe_dump({"fluent_datasources": _datasources()}, sort_keys=False),
        ".gitignore": "uncommitted/\n",
    }
    for name, build in SUITES.items():
        suite = {
            "expectations": build(),
            "id": gx_id("suite", name),
            "meta": {"great_expectations_version": "1.24.1"},
            "name": name,
            "notes": (build.__doc__ or "").strip(),
        }
        files[f"expectations/{name}.json"] = dump(suite)
    for v in VALIDATIONS.values():
        vd = {
            "data": {
                "asset": {"id": gx_id("asset", f"{v.datasource}/{v.asset}"), "name": v.asset},
                "batch_definition": {
                    "id": gx_id("batch_definition", f"{v.datasource}/{v.asset}"),
                    "name": v.batch_definition,
                },
                "datasource": {"id": gx_id("datasource", v.datasource), "name": v.datasource},
            },
            "id": gx_id("validation_definition", v.name),
            "name": v.name,
            "suite": {"id": gx_id("suite", v.suite), "name": v.suite},
        }
        files[f"validation_definitions/{v.name}.json"] = dump(vd)
    for stage, names in STAGES.items():
        cp = {
            "actions": [{"name": "update_data_docs", "site_names": [], "type": "update_data_docs"}],
            "id": gx_id("checkpoint", stage),
            "name": stage,
            "result_format": "SUMMARY",
            "validation_definitions": [{"id": gx_id("validation_definition", n), "name": n} for n in names],
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
