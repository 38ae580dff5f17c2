"""`recsys db init | status | reset`: the three MySQL databases, their tables and the reader account."""

from __future__ import annotations

import typer
from rich.table import Table

from ml.cli.common import console, fail

db_app = typer.Typer(
    help="Create and inspect the MySQL databases (recsys_raw, recsys_marts, recsys_serving).",
    no_args_is_help=True,
)


@db_app.command("init")
def db_init(
    purpose: str = typer.Option(
        "deployment",
        help="What databases this creates are for: deployment (never reset) or demo (`recsys db reset` may drop them).",
    ),
) -> None:
    """Create the databases, raw and serving tables, indexes and the read-only reader user (idempotent)."""
    from ml.db import PURPOSES, init_db

    if purpose not in ("deployment", "demo"):
        fail(f"--purpose must be deployment or demo, got {purpose!r} (known: {', '.join(PURPOSES)})")
    applied = init_db(purpose=purpose)
    if applied:
        console.print(f"applied {len(applied)} migration(s): {', '.join(applied)}")
    else:
        console.print("schema up to date: nothing to apply")


@db_app.command("status")
def db_status_cmd() -> None:
    """Row counts per table and the newest event time."""
    from ml.config import get_settings
    from ml.db import db_status

    st = db_status()
    s = get_settings()
    table = Table(title=f"MySQL {s.mysql_host}:{s.mysql_port}  schema v{st['schema_version']}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in st["tables"].items():  # type: ignore[union-attr]
        table.add_row(name, f"{n:,}")
    console.print(table)
    console.print(f"last event: {st['last_event_ts'] or 'none yet'}")


@db_app.command("reset")
def db_reset(yes: bool = typer.Option(False, "--yes", help="Confirm dropping all three databases.")) -> None:
    """Drop the three databases and re-create them empty for a demo (asks for --yes). Refuses
    (exit 2, nothing dropped) when one holds data without the demo/test mark of `recsys db init`."""
    from ml.config import get_settings
    from ml.db import ResetRefused, drop_databases, init_db
    from ml.quality.state import forget_databases

    if not yes:
        raise typer.BadParameter("refusing to drop databases without --yes")
    s = get_settings()
    try:
        drop_databases(s)
    except ResetRefused as exc:
        fail(exc)
    forget_databases(s, s.databases.values())  # the gates' watermarks of the dropped databases
    init_db(s, purpose="demo")
    console.print("databases dropped and re-created")
