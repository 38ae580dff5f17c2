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


def _profile_config():
    from cosmos import ProfileConfig

    s = get_settings()
    return ProfileConfig(
        profile_name="recsys",
        target_name="local",
        profiles_yml_filepath=s.dbt_project_dir / "profiles.yml",
    )


def _operator_args(**operator_args: Any) -> dict[str, Any]:
    return {
        "install_deps": False,
        # one dbt task at a time across DAGs: the train DAG's and the refresh DAG's dbt tasks both
        # build the realtime tables, and two builds of one table at once would race
        "pool": DBT_POOL,
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        **operator_args,
    }


def cross_model_tests() -> list[str]:
    """Names of the project's tests with more than one parent (relationships), from the manifest.

    Every one of them must be a ``relationships`` test: :func:`dbt_cross_model_tests` selects them by
    that test name, so a cross-model test of another kind would silently not run; fail loudly instead.
    """
    import json

    with open(manifest_path(), encoding="utf-8") as fh:
        nodes = json.load(fh)["nodes"]
    names: list[str] = []
    for node in nodes.values():
        if node["resource_type"] != "test":
            continue
        parents = [
            d
            for d in node["depends_on"]["nodes"]
            if d.split(".")[0] in ("model", "source", "seed", "snapshot")
        ]
        if len(parents) < 2:
            continue
        kind = (node.get("test_metadata") or {}).get("name")
        if kind != "relationships":
            raise ValueError(
                f"dbt test {node['name']} spans {len(parents)} nodes but is not a relationships test: "
                "dbt_cross_model_tests() runs only relationships tests; extend its selector"
            )
        names.append(node["name"])
    return sorted(names)


def dbt_task_group(group_id: str, select: list[str], exclude: list[str] | None = None, **operator_args: Any):
    """A Cosmos ``DbtTaskGroup`` over the selected models, one ``dbt build`` task per model (the model,
    then its own tests, in one dbt process: half the process start-ups of a run task + a test task,
    and a model whose tests fail still stops everything downstream of it).

    Tests spanning two models (relationships) are not in any model's build (cautious indirect
    selection): :func:`dbt_cross_model_tests` runs them all in one task after the group — one dbt
    process instead of one per test (~2 s each: 18 of them were a third of the group's time).

    dbt runs as a subprocess of the dbt venv's executable (``RECSYS_DBT_VENV``); the profile is the
    project's ``profiles.yml`` (credentials from ``RECSYS_MYSQL_*`` through ``env_var()``).
    """
    from cosmos import DbtTaskGroup, ExecutionConfig, ProjectConfig, RenderConfig
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
        profile_config=_profile_config(),
        execution_config=ExecutionConfig(
            dbt_executable_path=str(s.dbt_executable),
            invocation_mode=InvocationMode.SUBPROCESS,
            # a model's own tests run in its build; tests spanning models (relationships) in
            # dbt_cross_model_tests() once the whole group is built
            test_indirect_selection=TestIndirectSelection.CAUTIOUS,
        ),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            select=select,
            exclude=exclude or [],
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=False,
            emit_datasets=False,
            enable_mock_profile=False,
        ),
        operator_args=_operator_args(**operator_args),
    )


def _local_operator(cls, task_id: str, select: str, exclude: str | None, operator_args: dict[str, Any]):
    from cosmos.constants import InvocationMode

    s = get_settings()
    return cls(
        task_id=task_id,
        project_dir=str(s.dbt_project_dir),
        profile_config=_profile_config(),
        dbt_executable_path=str(s.dbt_executable),
        invocation_mode=InvocationMode.SUBPROCESS,
        select=select,
        exclude=exclude,
        emit_datasets=False,
        **_operator_args(**operator_args),
    )


def dbt_cross_model_tests(task_id: str, select: str, exclude: str | None = None, **operator_args: Any):
    """One Cosmos ``dbt test`` task for the relationships tests among the models of ``select``
    (minus ``exclude``), run after a :func:`dbt_task_group` over the same selection.

    ``select`` is intersected with ``test_name:relationships`` (dbt's comma), so the task runs
    exactly the tests :func:`cross_model_tests` lists for those models.
    """
    from cosmos.operators.local import DbtTestLocalOperator

    cross_model_tests()  # refuse a cross-model test this selector would miss
    return _local_operator(
        DbtTestLocalOperator, task_id, f"{select},test_name:relationships", exclude, operator_args
    )


def dbt_build_task(task_id: str, select: str, **operator_args: Any):
    """One Cosmos ``dbt build --select <select>`` task: the models in dependency order, each
    followed by its tests (any failure stops the models after it and fails the task), relationships
    tests included (eager indirect selection).

    For the refresh DAG, which runs every few minutes: one dbt process (~4 s on the small shop)
    instead of a task per model and per cross-model test (13 + 9 process start-ups, ~45 s), which
    was most of the event → refreshed-list latency. The task log lists every model and test.
    """
    from cosmos.operators.local import DbtBuildLocalOperator

    return _local_operator(DbtBuildLocalOperator, task_id, select, None, operator_args)
