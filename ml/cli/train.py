"""`recsys train | evaluate | promote`: thin CLI over ml.training (heavy imports inside the commands).

Every option's default and help text come from :mod:`ml.training.config`, the same source as the
``recsys_train`` DAG's Params, so the CLI and the DAG train the same model unless told otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ml.cli.common import console
from ml.training.config import OPTIONS, TrainConfig, default


def _opt(name: str, *flags: str) -> typer.models.OptionInfo:
    return typer.Option(default(name), *flags, help=OPTIONS[name].help)


@contextmanager
def _progress() -> Iterator[Callable[[str], None]]:
    """A rich spinner whose description follows the pipeline's current step."""
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
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


def _metrics_table(
    metrics: dict[str, dict[str, float | None]],
    title: str,
    cols: tuple[str, ...] = ("ndcg@10", "otto_recall@20", "intent_capture@10"),
) -> Table:
    table = Table(title=title)
    table.add_column("model")
    for c in cols:
        table.add_column(c, justify="right")
    for name, m in metrics.items():
        table.add_row(name, *("-" if m.get(c) is None else f"{m[c]:.4f}" for c in cols))
    return table


def _stage_table(stages: list[tuple[str, float]], beside: float | None = None) -> Table:
    table = Table(title="seconds per stage")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in stages:
        table.add_row(name, f"{seconds:.1f}")
    table.add_row("[bold]total[/]", f"{sum(s for _, s in stages):.1f}")
    if beside:  # ran on a second thread during the cut builds: inside the total, not added to it
        table.add_row("[dim]also run on a second thread during the cut builds[/]", f"[dim]{beside:.1f}[/]")
    return table


def train(
    task: str = _opt("task"),
    label_hours: float = _opt("label_hours"),
    history_days: int = _opt("history_days"),
    n_train_cuts: int = _opt("n_train_cuts"),
    rounds: int = _opt("rounds"),
    margin: float = _opt("margin"),
    xgboost: bool = _opt("xgboost", "--xgboost/--no-xgboost"),
    tf: bool = _opt("use_tf", "--tf/--no-tf"),
    token_min_users: int = _opt("token_min_users"),
    max_users: int = _opt("max_users"),
    session_task: bool = _opt("session_task", "--session-task/--no-session-task"),
    session_train: bool = _opt("session_train", "--session-train/--no-session-train"),
    learn_rules: bool = _opt("learn_rules", "--learn-rules/--no-learn-rules"),
    search: bool = _opt("search", "--search/--no-search"),
    mmr: bool = _opt("mmr", "--mmr/--no-mmr"),
    mmr_grid: str = _opt("mmr_grid"),
    mmr_min_ndcg_ratio: float = _opt("mmr_min_ndcg_ratio"),
    mmr_brand: bool = _opt("mmr_brand", "--mmr-brand/--no-mmr-brand"),
) -> None:
    """Whole chain: point-in-time builds, rerankers, evaluation vs baselines, MLflow run, registration, gate."""
    from ml.training.pipeline import train_pipeline

    if task not in OPTIONS["task"].choices:
        raise typer.BadParameter(f"--task must be one of {', '.join(OPTIONS['task'].choices)}")
    cfg = TrainConfig(
        task=task,
        label_hours=label_hours,
        history_days=history_days,
        n_train_cuts=n_train_cuts,
        rounds=rounds,
        margin=margin,
        xgboost=xgboost,
        use_tf=tf,
        token_min_users=token_min_users,
        max_users=max_users,
        session_task=session_task,
        session_train=session_train,
        learn_rules=learn_rules,
        search=search,
        mmr=mmr,
        mmr_grid=mmr_grid,
        mmr_min_ndcg_ratio=mmr_min_ndcg_ratio,
        mmr_brand=mmr_brand,
    )
    with _progress() as step:
        out = train_pipeline(config=cfg, step=step)
    console.print(
        _metrics_table(out["metrics"], f"test cut {out['split']['test_cut']}  (run {out['run_id']})")
    )
    console.print(
        f"version {out['version']}: {'[bold green]promoted[/]' if out['promoted'] else '[yellow]not promoted[/]'} — {out['reason']}"
    )
    if out.get("mmr"):
        console.print(f"MMR: λ={out['mmr']['lambda']} chosen on the validation cut — {out['mmr']['rule']}")
    found = out.get("search") or {}
    if found.get("skipped", True):
        console.print(f"search ranker: skipped — {found.get('reason', 'not run')}")
    else:
        console.print(
            _metrics_table(
                found["metrics"],
                f"search, test cut (run {found['run_id']})",
                ("ndcg@10", "mrr", "hitrate@10"),
            )
        )
        console.print(
            f"search version {found['version']}: "
            f"{'[bold green]promoted[/]' if found['promoted'] else '[yellow]not promoted[/]'} — {found['reason']}"
        )
    console.print(_stage_table(out["stage_seconds"], out.get("beside_builds_seconds")))


def evaluate(
    alias: str = typer.Option("champion", help="Registered alias to evaluate."),
    task: str = _opt("task"),
    label_hours: float = _opt("label_hours"),
) -> None:
    """Re-evaluate a registered model (by alias) and the baselines on the newest holdout."""
    from ml.training.registered import evaluate as run_evaluate

    with _progress() as step:
        out = run_evaluate(config=TrainConfig(task=task, label_hours=label_hours), alias=alias, step=step)
    console.print(_metrics_table(out["metrics"], f"{alias} v{out['version']} on test cut {out['test_cut']}"))


def promote(
    version: str = typer.Option(None, help="Registered version to gate (default: the challenger)."),
    margin: float = _opt("margin"),
) -> None:
    """Run the promotion gate for a version against the champion on the version's own holdout."""
    from ml.training.registered import promote as run_promote

    with _progress() as step:
        out = run_promote(version=version, config=TrainConfig(margin=margin), step=step)
    console.print(json.dumps(out, default=str, indent=2))


def register(app: typer.Typer) -> None:
    """Add the three commands at the top level of the `recsys` app."""
    app.command("train")(train)
    app.command("evaluate")(evaluate)
    app.command("promote")(promote)
