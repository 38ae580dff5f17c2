"""Cosmos configuration shared by the DAGs: dbt rendered from the manifest, run from its own venv.

Rendering reads ``dbt_project/target/cosmos/manifest.json`` (built by ``scripts/setup.sh`` with
``dbt parse`` and no vars, so point-in-time models are disabled there): no database and no dbt process at DAG parse time.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ml.config import get_settings

#: Airflow pool (1 slot) of every dbt task of every DAG; created by scripts/demo.sh and compose's airflow-init.
DBT_POOL = "recsys_dbt"


def manifest_path() -> str:
    return str(get_settings().dbt_project_dir / "target" / "cosmos" / "manifest.json")


def dbt_task_group(group_id: str, select: list[str], exclude: list[str] | None = None, **operator_args: Any):
    """A Cosmos ``DbtTaskGroup`` over the selected models, one ``dbt build`` task per model (the model,
    then its own tests, in one dbt process: half the process start-ups of a run task + a test task,
    and a model whose tests fail still stops everything downstream of it).

    dbt runs as a subprocess of the dbt venv's executable (``RECSYS_DBT_VENV``); the profile is the
    project's ``profiles.yml`` (credentials from ``RECSYS_MYSQL_*`` through ``env_var()``).
    """
    from cosmos import DbtTaskGroup, ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import InvocationMode, LoadMode, TestBehavior, TestIndirectSelection

    s = get_settings()
    return DbtTaskGroup(
        group_id=group_id,
        project_config=ProjectConfig(
            dbt_project_path=s.dbt_project_dir,
            manifest_path=manifest_path(),
            project_name="recsys",
            install_dbt_deps=False,
        ),
        profile_config=ProfileConfig(
            profile_name="recsys",
            target_name="local",
            profiles_yml_filepath=s.dbt_project_dir / "profiles.yml",
        ),
        execution_config=ExecutionConfig(
            dbt_executable_path=str(s.dbt_executable),
            invocation_mode=InvocationMode.SUBPROCESS,
            # a model's own tests run in its build; tests spanning models (relationships) only
            # once all their parents are built, as separate tasks
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=select,
            exclude=exclude or [],
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=True,
            emit_datasets=False,
            enable_mock_profile=False,
        ),
        operator_args={
            "install_deps": False,
            # one dbt task at a time across DAGs: the train DAG's and the refresh DAG's groups both
            # build the realtime tables, and two builds of one table at once would race
            "pool": DBT_POOL,
            "retries": 2,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            **operator_args,
        },
    )
