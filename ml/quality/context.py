"""The Great Expectations context of the committed project (``expectations/gx``), bound at run
time to the settings' prefixed database URLs and ``RECSYS_HOME``, and the pruning of old results.

Apart from the stage runner (:mod:`ml.quality.gates`) because it is GX plumbing: which environment
the committed config reads, one cached context per binding, and keeping the results folders small.
"""

from __future__ import annotations

import json
import time
from typing import Any

from ml.config import Settings
from ml.quality.suites import ENV_URL, GX_PROJECT_DIR

#: Validation results and their Data Docs pages older than this are pruned (the refresh DAG runs a
#: gate every few minutes; without pruning the folders grow by ~300 runs a day).
KEEP_DAYS = 14

_CONTEXT: dict[str, Any] = {}


def gx_environment(settings: Settings, *, training_db: str | None = None) -> dict[str, str]:
    """The ``${VAR}`` values the committed GX config reads: prefixed database URLs and RECSYS_HOME."""
    from ml.features.datasets import pit_db

    return {
        "RECSYS_HOME": str(settings.home),
        ENV_URL["marts"]: settings.sqlalchemy_url(settings.marts_db),
        ENV_URL["pit"]: settings.sqlalchemy_url(training_db or pit_db(settings)),
    }


def get_context(settings: Settings, *, training_db: str | None = None) -> Any:
    """The file-backed GX context over ``expectations/gx``, bound to ``settings`` (cached per process
    and per binding: importing GX takes ~2.5 s, building a context ~0.05 s)."""
    import great_expectations as gx

    env = gx_environment(settings, training_db=training_db)
    key = json.dumps(env, sort_keys=True)
    if _CONTEXT.get("key") != key:
        _CONTEXT["ctx"] = gx.get_context(
            mode="file", project_root_dir=str(GX_PROJECT_DIR), runtime_environment=env
        )
        _CONTEXT["key"] = key
    return _CONTEXT["ctx"]


def prune_history(settings: Settings, keep_days: float = KEEP_DAYS, now: float | None = None) -> int:
    """Delete validation results and Data Docs validation pages older than ``keep_days``; returns
    how many files went. The next Data Docs build re-indexes what is left."""
    cutoff = (now if now is not None else time.time()) - keep_days * 86400
    removed = 0
    for sub in ("validations", "data_docs/validations"):
        root = settings.home / "gx" / sub
        if not root.is_dir():
            continue
        for p in root.rglob("*"):
            if p.is_file() and p.suffix in (".json", ".html") and p.stat().st_mtime < cutoff:
                p.unlink()
                removed += 1
    return removed
