"""`recsys dbt ...`: build the feature marts, refresh the realtime models, build a point-in-time set.

dbt runs as a subprocess of its own venv (``ml.features.dbt``); nothing heavy is imported here.
"""

from __future__ import annotations

import typer

from ml.cli.common import EXIT_FAILED, console, fail

dbt_app = typer.Typer(
    help="Build the dbt feature marts (recsys_marts) and point-in-time sets (recsys_pit).",
    no_args_is_help=True,
)


def _run(args: list[str], vars: dict | None = None) -> None:
    from ml.features.dbt import DbtError, run_dbt

    try:
        with console.status(f"dbt {' '.join(args)} ..."):
            run_dbt(args, vars=vars)
    except DbtError as exc:
        fail(exc, EXIT_FAILED)


@dbt_app.command("build")
def build(
    select: list[str] = typer.Option(None, "--select", "-s", help="dbt selection, e.g. tag:batch"),
    full_refresh: bool = typer.Option(
        False, "--full-refresh", help="rebuild incremental models from scratch"
    ),
) -> None:
    """Build the marts and run their tests (all models, or --select)."""
    args = (
        ["build"] + (["--select", *select] if select else []) + (["--full-refresh"] if full_refresh else [])
    )
    _run(args)
    console.print("dbt build: done")


@dbt_app.command("refresh")
def refresh() -> None:
    """Incremental run of the realtime models (session intent, candidates) for users with new events."""
    _run(["run", "--select", "tag:realtime"])
    console.print("realtime models refreshed")


@dbt_app.command("pit")
def pit(
    cut: str = typer.Option(
        ..., help="cut time 'YYYY-MM-DD HH:MM:SS' (naive UTC): features use events before it"
    ),
    label_hours: int = typer.Option(24, help="label window length after the cut"),
) -> None:
    """Build the point-in-time training set for one cut into {prefix}recsys_pit (tests included)."""
    from ml.features.dbt import DbtError, build_point_in_time, format_cut

    try:
        cut_ts = format_cut(cut)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    try:
        with console.status(f"point-in-time build at {cut_ts} ..."):
            database = build_point_in_time(cut_ts, label_hours)
    except DbtError as exc:
        fail(exc, EXIT_FAILED)
    console.print(f"built {database} (cut {cut_ts}, labels {label_hours} h)")
