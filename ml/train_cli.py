"""`recsys train | evaluate | promote`: thin CLI over ml.train (heavy imports inside the commands)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console()


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A rich spinner whose description follows the pipeline's current step."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("starting", total=None)
        last: list[str] = []

        def step(msg: str) -> None:
            if last:
                console.log(f"[green]done[/] {last[-1]}")
            last.append(msg)
            bar.update(task, description=msg)

        yield step
        if last:
            console.log(f"[green]done[/] {last[-1]}")


def _config(label_hours: int, n_train_cuts: int, rounds: int, margin: float, xgboost: bool, use_tf: bool, max_users: int = 0) -> Any:
    from ml.train import TrainConfig

    return TrainConfig(label_hours=label_hours, n_train_cuts=n_train_cuts, rounds=rounds, margin=margin, xgboost=xgboost, use_tf=use_tf,
                       max_users=max_users)


def _metrics_table(metrics: dict[str, dict[str, float | None]], title: str) -> Table:
    table = Table(title=title)
    cols = ["ndcg@10", "otto_recall@20", "intent_capture@10"]
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    for name, m in metrics.items():
        table.add_row(name, *("-" if m.get(c) is None else f"{m[c]:.4f}" for c in cols))
    return table


LABEL_HOURS = typer.Option(24, help="Label window Δ in hours (test, validation and train cuts are Δ apart).")
MARGIN = typer.Option(0.02, help="Relative margin the challenger must win by at the promotion gate.")


def train(
    label_hours: int = LABEL_HOURS,
    n_train_cuts: int = typer.Option(1, help="How many training cuts before the validation cut."),
    rounds: int = typer.Option(300, help="Maximum boosting rounds (early stopping on the validation cut)."),
    margin: float = MARGIN,
    xgboost: bool = typer.Option(True, help="Also fit XGBoost rank:ndcg for comparison."),
    tf: bool = typer.Option(False, "--tf/--no-tf", help="Train the TF two-tower and DIN ranker stage."),
    max_users: int = typer.Option(0, help="Sample at most this many users per training/validation cut (0 = all; test cut never sampled)."),
) -> None:
    """Whole chain: point-in-time builds, rerankers, evaluation vs baselines, MLflow run, registration, gate."""
    from ml.train import train_pipeline

    with _progress() as step:
        out = train_pipeline(config=_config(label_hours, n_train_cuts, rounds, margin, xgboost, tf, max_users), step=step)
    console.print(_metrics_table(out["metrics"], f"test cut {out['split']['test_cut']}  (run {out['run_id']})"))
    console.print(f"version {out['version']}: {'[bold green]promoted[/]' if out['promoted'] else '[yellow]not promoted[/]'} — {out['reason']}")


def evaluate(
    alias: str = typer.Option("champion", help="Registered alias to evaluate."),
    label_hours: int = LABEL_HOURS,
) -> None:
    """Re-evaluate a registered model (by alias) and the baselines on the newest holdout."""
    from ml.train import evaluate as run_evaluate

    with _progress() as step:
        out = run_evaluate(config=_config(label_hours, 1, 0, 0.0, False, False), alias=alias, step=step)
    console.print(_metrics_table(out["metrics"], f"{alias} v{out['version']} on test cut {out['test_cut']}"))


def promote(
    version: str = typer.Option(None, help="Registered version to gate (default: the challenger)."),
    margin: float = MARGIN,
) -> None:
    """Run the promotion gate for a version against the champion on the version's own holdout."""
    from ml.train import promote as run_promote

    with _progress() as step:
        out = run_promote(version=version, config=_config(24, 1, 0, margin, False, False), step=step)
    console.print(json.dumps(out, default=str, indent=2))


def register(app: typer.Typer) -> None:
    """Add the three commands at the top level of the `recsys` app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("promote")(promote)
