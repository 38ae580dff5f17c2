"""`recsys publish full|refresh` and `recsys serve`: thin CLI over ml.publish.core and ml.serving."""

from __future__ import annotations

import typer

from ml.cli.common import EXIT_FAILED, console, fail

publish_app = typer.Typer(
    help="Publish the champion's top-N to the serving tables (full swap or per-user refresh).",
    no_args_is_help=True,
)


@publish_app.command("full")
def publish_full_cmd(
    n: int = typer.Option(None, "--n", min=1, help="Items per user (default RECSYS_TOPN)."),
    gx: bool = typer.Option(
        True, "--gx/--no-gx", help="Also run the GX top-N suite on user_topn_new before the swap."
    ),
) -> None:
    """Score every active user with the champion, validate, and swap all serving tables atomically."""
    from ml.config import get_settings
    from ml.publish.common import PublishError, ValidationFailed
    from ml.publish.run import publish_champion_full

    try:
        r = publish_champion_full(get_settings(), n, gx=gx, progress=True)
    except ValidationFailed as exc:
        fail(exc, EXIT_FAILED)
    except PublishError as exc:
        fail(exc)
    similar = "kept (no ml_covisitation mart)" if r["similar_rows"] is None else f"{r['similar_rows']:,}"
    console.print(
        f"published {r['rows']:,} rows for {r['users']:,} users (model {r['model_version']}, run {r['run_id']}); "
        f"popular {r['popular_rows']:,}, intent {r['intent_rows']:,}, similar {similar}; "
        f"write {r['rows'] / max(r['write_seconds'], 1e-9):,.0f} rows/s; {r['validation']}"
    )
    if r.get("experiment"):
        console.print(
            f"A/B {r['experiment']}: challenger {r['challenger_model_version']} published to user_topn_challenger"
        )


@publish_app.command("refresh")
def publish_refresh_cmd(
    batch_size: int = typer.Option(1000, "--batch-size", min=1, help="Users per transaction."),
    n: int = typer.Option(None, "--n", min=1, help="Items per user (default RECSYS_TOPN)."),
) -> None:
    """Rescore users with events after the watermark; replace their rows one transaction per batch."""
    from ml.config import get_settings
    from ml.publish.common import PublishError, ValidationFailed
    from ml.publish.run import publish_champion_refresh

    try:
        r = publish_champion_refresh(get_settings(), batch_size, n, progress=True)
    except ValidationFailed as exc:
        fail(exc, EXIT_FAILED)
    except PublishError as exc:
        fail(exc)
    console.print(r["message"])


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(
        2,
        "--workers",
        min=1,
        help="Worker processes, each with its own connection pool (2 keeps p99 under 10 ms at 500 req/s on 2 cores; one per core).",
    ),
) -> None:
    """Run the reference serving reader (GET /recommendations/{user_id}, /similar/{item_id}, /health)."""
    import uvicorn

    uvicorn.run(
        "ml.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )
