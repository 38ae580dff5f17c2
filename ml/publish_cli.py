"""`recsys publish full|refresh` and `recsys serve`: thin CLI over ml.publish and ml.serving."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

publish_app = typer.Typer(help="Publish the champion's top-N to the serving tables (full swap or per-user refresh).", no_args_is_help=True)
console = Console()


class NoChampion(RuntimeError):
    """No registered champion model to publish from (printed as one line by the CLI)."""


def load_champion_recommender(settings: Any) -> tuple[Any, str]:
    """The champion recommender and its model version, from ``ml.registry.load_champion``.

    Raises :class:`NoChampion` with a message a person can act on when the registry module is
    not there yet or holds no champion.
    """
    try:
        from ml.registry import load_champion
    except ImportError as exc:
        raise NoChampion(
            f"no model registry available ({exc}): train and register a champion first (`recsys train ...`)"
        ) from None
    try:
        recommender = load_champion(settings)
    except LookupError as exc:
        raise NoChampion(f"no champion model registered: {exc}") from None
    if recommender is None:
        raise NoChampion("no champion model registered: train one and promote it to the 'champion' alias")
    version = getattr(recommender, "model_version", None)
    if not version:
        raise NoChampion("the champion recommender has no model_version attribute; cannot label published rows")
    return recommender, str(version)


def _fail(exc: Exception) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@publish_app.command("full")
def publish_full_cmd(
    n: int = typer.Option(None, "--n", min=1, help="Items per user (default RECSYS_TOPN)."),
    run_id: str = typer.Option(None, "--run-id", help="Run id recorded in publish_log (default: generated)."),
    batch_size: int = typer.Option(5000, "--batch-size", min=1, help="Users scored per recommender call."),
    gx: bool = typer.Option(True, "--gx/--no-gx", help="Also run the GX top-N suite on user_topn_new before the swap."),
) -> None:
    """Score every active user with the champion, validate, and swap all serving tables atomically."""
    from ml.config import get_settings
    from ml.publish import PublishError, gx_topn_validator, publish_full

    s = get_settings()
    try:
        rec, version = load_champion_recommender(s)
        validate = gx_topn_validator(s, n) if gx else None
        r = publish_full(rec, version, s, n=n, run_id=run_id, validate=validate, batch_size=batch_size, progress=True)
    except (NoChampion, PublishError) as exc:
        _fail(exc)
    console.print(
        f"published {r.rows:,} rows for {r.users:,} users (model {r.model_version}, run {r.run_id}); "
        f"popular {r.popular_rows:,}, intent {r.intent_rows:,}, similar "
        f"{'kept (no ml_covisitation mart)' if r.similar_rows is None else f'{r.similar_rows:,}'}; "
        f"write {r.write_rows_per_s:,.0f} rows/s; {r.validation}"
    )


@publish_app.command("refresh")
def publish_refresh_cmd(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Users per transaction."),
    n: int = typer.Option(None, "--n", min=1, help="Items per user (default RECSYS_TOPN)."),
) -> None:
    """Rescore users with events after the watermark; replace their rows one transaction per batch."""
    from ml.config import get_settings
    from ml.publish import PublishError, publish_refresh

    s = get_settings()
    try:
        rec, version = load_champion_recommender(s)
        r = publish_refresh(rec, version, s, batch_size=batch_size, n=n, progress=True)
    except (NoChampion, PublishError) as exc:
        _fail(exc)
    console.print(r.message)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes (each with its own connection pool)."),
) -> None:
    """Run the reference serving reader (GET /recommendations/{user_id}, /similar/{item_id}, /health)."""
    import uvicorn

    uvicorn.run("ml.serving.app:create_app", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="warning")
