"""`recsys quality ...`: run a stage's Great Expectations gate, regenerate the contracts.

GX is imported inside the commands (about 2.5 s), so ``recsys --help`` stays fast.
"""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path

import typer

from ml.cli.common import EXIT_FAILED, console, fail

quality_app = typer.Typer(
    help="Data-quality gates (Great Expectations checkpoints per stage).", no_args_is_help=True
)


class Stage(str, Enum):
    raw = "raw"
    marts = "marts"
    realtime = "realtime"
    training = "training"
    topn = "topn"


@quality_app.command("run")
def run(
    stage: Stage = typer.Argument(..., help="raw | marts | realtime | training | topn"),
    table: str = typer.Option(
        "user_topn_new", "--table", help="topn: the serving table to check before publishing."
    ),
    n: int | None = typer.Option(None, "--n", help="topn: rows per user (default RECSYS_TOPN)."),
    active_days: int = typer.Option(
        30, "--active-days", help="topn: users with events in these days must have rows."
    ),
    repeat_buy_category: list[int] = typer.Option(
        [], "--repeat-buy-category", help="topn: category ids whose items may be re-bought."
    ),
    since_event_id: int | None = typer.Option(
        None, "--since-event-id", help="raw: validate events after this id (default: the last validated)."
    ),
    database: str = typer.Option("pit", "--database", help="training: pit | marts | a database name."),
    docs: bool = typer.Option(True, "--docs/--no-docs", help="Render Data Docs after the run."),
    as_json: bool = typer.Option(False, "--json", help="Print the details as JSON instead of the summary."),
) -> None:
    """Run one stage's checkpoint, print the compact summary, exit 1 when the data breaks its contract."""
    from rich.markup import escape

    from ml.quality.gates import QualityUsageError, run_stage

    params: dict[str, object] = {}
    if stage is Stage.topn:
        params = {
            "table": table,
            "n": n,
            "active_days": active_days,
            "repeat_buy_category_ids": repeat_buy_category,
        }
    elif stage is Stage.raw:
        params = {"since_event_id": since_event_id}
    elif stage is Stage.training:
        params = {"database": database}
    with console.status(f"validating {stage.value} ..."):
        try:
            result = run_stage(stage.value, build_docs=docs, **params)
        except QualityUsageError as exc:
            fail(exc)
    if as_json:
        console.print_json(json.dumps(result.details, default=str))
    else:
        style = "green" if result.success else "bold red"
        first, *rest = result.summary.splitlines()
        console.print(f"[{style}]{escape(first)}[/]", highlight=False, soft_wrap=True)
        for line in rest:
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    if not result.success:
        raise typer.Exit(EXIT_FAILED)


@quality_app.command("contracts")
def contracts(
    out: Path = typer.Option(None, "--out", help="GX project dir (default: expectations/ of the repo)."),
) -> None:
    """Regenerate the committed GX suites, validation definitions and checkpoints from ml/quality/suites.py."""
    from ml.quality.suites import GX_PROJECT_DIR, build_contracts

    written = build_contracts(out or GX_PROJECT_DIR)
    console.print(f"wrote {len(written)} files under {(out or GX_PROJECT_DIR) / 'gx'}")


@quality_app.command("docs")
def docs_path() -> None:
    """Print where the Data Docs site is built (open index.html in a browser)."""
    from ml.config import get_settings
    from ml.quality.gates import docs_index

    path = docs_index(get_settings())
    console.print(
        str(path) + ("" if path.exists() else "  (not built yet: run `recsys quality run ...`)"),
        highlight=False,
    )
