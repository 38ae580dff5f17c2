"""dbt's Jinja context for sqlfluff's jinja templater (dbt_project/.sqlfluff: library_path).

sqlfluff renders the models offline, without dbt or a database. Its dbt builtins cover ref,
source, config, this and is_incremental, and stub var() with a placeholder string; the models here
also read real var values (the event weight sets are iterated), so var() returns the values in
dbt_project.yml, and the rest of dbt's context that the macros touch is stubbed as dbt's parse
phase sees it (execute is False: no query runs). Renders the serving build (cut_ts unset).
"""

from __future__ import annotations

import datetime as _datetime
import os
import re as _re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

_PROJECT = Path(__file__).resolve().parent.parent / "dbt_project.yml"
_VARS: dict[str, Any] = (yaml.safe_load(_PROJECT.read_text()) or {}).get("vars", {}) or {}


def var(name: str, default: Any = None) -> Any:
    """The project's var value (dbt_project.yml), else the default given."""
    return _VARS.get(name, default)


def env_var(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def _raise_compiler_error(message: str) -> None:
    raise RuntimeError(message)


def run_query(sql: str) -> None:
    return None


execute = False
flags = SimpleNamespace(FULL_REFRESH=False)
modules = SimpleNamespace(re=_re, datetime=_datetime)
exceptions = SimpleNamespace(raise_compiler_error=_raise_compiler_error)
target = SimpleNamespace(schema="recsys_marts", name="local", type="mysql")
graph = SimpleNamespace(nodes={})
