"""`recsys data ...`: simulate, import and feed behaviour events into ``recsys_raw``.

Heavy imports (numpy, pandas) happen inside the commands so ``recsys --help`` stays fast.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from ml.cli.common import console, fail

data_app = typer.Typer(
    help="Simulate, import and feed behaviour events into recsys_raw.", no_args_is_help=True
)


class ImportFormat(str, Enum):
    taobao = "taobao"
    retailrocket = "retailrocket"
    online_retail = "online_retail"


def _default_start(days: int) -> datetime:
    """Midnight UTC ``days`` days ago, so a demo simulation ends today."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    return today - timedelta(days=days)


def _existing_events(settings) -> int:
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM user_behavior")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def _truncate_raw(settings) -> None:
    from ml.data.sim_load import SIM_RAW_TABLES
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in SIM_RAW_TABLES:
                cur.execute(f"TRUNCATE TABLE `{t}`")
    finally:
        conn.close()


@data_app.command("simulate")
def simulate_cmd(
    users: int = typer.Option(2000, help="Number of users (about 100 events each at the defaults)."),
    items: int = typer.Option(1000, help="Number of items in the catalogue."),
    days: int = typer.Option(14, help="Days of traffic."),
    seed: int = typer.Option(42, help="Random seed (same seed and start → same data)."),
    start: str = typer.Option("", help="First day, YYYY-MM-DD (default: DAYS days before today, UTC)."),
    replace: bool = typer.Option(False, "--replace", help="Empty the raw tables first."),
    append: bool = typer.Option(
        False,
        "--append",
        help="Add to events already in recsys_raw: new users and items, numbered after the loaded ones.",
    ),
) -> None:
    """Simulate shop traffic with planted session intent and load it into recsys_raw."""
    from rich.progress import Progress

    from ml.config import get_settings
    from ml.data.sim_config import SimConfig, summarize
    from ml.data.sim_load import load_simulation, next_free_ids
    from ml.data.simulate import iter_simulation
    from ml.db import init_db

    s = get_settings()
    init_db(s)
    existing = _existing_events(s)
    if existing and not (replace or append):
        raise typer.BadParameter(
            f"{s.raw_db}.user_behavior already holds {existing:,} events; pass --replace to empty the raw "
            "tables first or --append to add to them"
        )
    if replace:
        _truncate_raw(s)
    first_user, first_item = next_free_ids(s)  # 1, 1 on empty tables; after loaded ids on --append
    first_day = datetime.strptime(start, "%Y-%m-%d") if start else _default_start(days)
    first = {"first_user_id": first_user, "first_item_id": first_item}
    cfg = SimConfig(users=users, items=items, days=days, seed=seed, start=first_day, **first)
    if first_user > 1 or first_item > 1:
        console.print(f"appending: new users from id {first_user:,}, new items from id {first_item:,}")
    blocks = -(-users // cfg.users_per_block)
    from collections import Counter

    from ml.data.ingest import LoadReport

    totals: Counter = Counter()
    report = LoadReport()
    with Progress(console=console) as progress:
        task = progress.add_task("simulate + load", total=blocks)
        for block in iter_simulation(cfg):
            report.add(load_simulation(block, s))
            totals.update(block.counts())  # additive counts only: memory stays bounded on big runs
            progress.advance(task)
    _print_summary(summarize(dict(totals)), s.raw_db)
    if report.quarantined:
        print_load_report(report, "validation")


def _print_summary(summary: dict[str, float], raw_db: str) -> None:
    """One table of what was loaded: counts per type, funnel, search and switch shares."""
    table = Table(title=f"loaded into {raw_db}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else f"{value:,}")
    console.print(table)


def print_load_report(report, title: str) -> None:
    """Events loaded and quarantine counts per reason."""
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("loaded", f"{report.loaded:,}")
    for reason, n in sorted(report.quarantined.items()):
        table.add_row(f"quarantined: {reason}", f"{n:,}")
    table.add_row("new users / items", f"{report.users:,} / {report.items:,}")
    table.add_row("batches committed", f"{report.batches:,}")
    if report.skipped:
        table.add_row("lines already imported (skipped)", f"{report.skipped:,}")
    console.print(table)


@data_app.command("import")
def import_cmd(
    fmt: ImportFormat = typer.Argument(
        ...,
        help="File format: taobao (UserBehavior.csv), retailrocket (events.csv) or online_retail "
        "(UCI Online Retail, Parquet or CSV with a header).",
    ),
    path: Path = typer.Argument(..., help="The CSV file (or Parquet, for online_retail)."),
    batch_rows: int = typer.Option(200_000, help="Lines per atomic batch."),
    pseudonymize: bool = typer.Option(
        False,
        "--pseudonymize",
        help="Store keyed pseudonyms (HMAC with RECSYS_PSEUDONYM_KEY) instead of the file's user ids.",
    ),
) -> None:
    """Import a Taobao UserBehavior or RetailRocket events CSV, or a UCI Online Retail Parquet/CSV,
    into recsys_raw (bad rows are quarantined; re-importing an Online Retail file adds nothing)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from ml.config import get_settings
    from ml.data.importers import import_file
    from ml.data.ingest import RawWriteBusy
    from ml.data.load import LoadWarning
    from ml.data.online_retail import import_online_retail
    from ml.data.pseudonym import PseudonymKeyMissing, key_from_env
    from ml.data.validate import FormatError
    from ml.db import init_db

    key = None
    if pseudonymize:
        try:
            key = key_from_env()
        except PseudonymKeyMissing as exc:
            fail(exc)
    s = get_settings()
    init_db(s, purpose="deployment")  # databases created for imported logs are never reset
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress:
        task = progress.add_task(f"importing {path.name}", total=None)

        def advance(rep) -> None:
            progress.update(task, description=f"importing {path.name}: {rep.loaded:,} rows in last batch")

        try:
            if fmt is ImportFormat.online_retail:
                report = import_online_retail(
                    path, s, batch_rows=batch_rows, on_batch=advance, pseudonym_key=key
                )
            else:
                report = import_file(
                    path, fmt.value, s, batch_rows=batch_rows, on_batch=advance, pseudonym_key=key
                )
        except (FormatError, FileNotFoundError, LoadWarning, RawWriteBusy) as exc:
            fail(exc)  # earlier batches stay committed; a re-run skips or deduplicates them
    print_load_report(report, f"{fmt.value} {path} → {s.raw_db}")


@data_app.command("feed")
def feed_cmd(
    rate: float = typer.Option(50.0, help="Events per second."),
    duration: float = typer.Option(60.0, help="Seconds to run."),
    batch_seconds: float = typer.Option(1.0, help="Seconds per committed batch."),
    seed: int = typer.Option(None, help="Random seed (default: fresh each run)."),
) -> None:
    """Append live simulated events (current timestamps) to recsys_raw in small committed batches."""
    from rich.progress import Progress

    from ml.data.feed import run_feed

    with Progress(console=console) as progress:
        task = progress.add_task("feeding", total=max(1, int(duration / batch_seconds)))

        def advance(rep) -> None:
            progress.update(task, advance=1, description=f"feeding: {rep.events:,} events")

        try:
            report = run_feed(rate, duration, seed=seed, batch_seconds=batch_seconds, on_batch=advance)
        except RuntimeError as exc:
            fail(exc)
    console.print(
        f"appended {report.events:,} events in {report.batches} batches over {report.seconds:.1f}s "
        f"({report.sessions_new} new sessions, {report.sessions_continued} continued, {report.users_new} new users)"
    )
    if report.quarantined:
        console.print(f"quarantined: {dict(report.quarantined)}")
