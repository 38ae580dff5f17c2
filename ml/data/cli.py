"""`recsys data ...`: simulate, import and feed behaviour events into ``recsys_raw``.

Heavy imports (numpy, pandas) happen inside the commands so ``recsys --help`` stays fast.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="Simulate, import and feed behaviour events into recsys_raw.", no_args_is_help=True)
console = Console()

_RAW_TABLES = ("user_behavior", "user_behavior_quarantine", "users", "items", "sim_session_intent")


def _default_start(days: int) -> datetime:
    """Midnight UTC ``days`` days ago, so a demo simulation ends today."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
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
    from ml.db import connect

    conn = connect(settings.raw_db, settings=settings)
    try:
        with conn.cursor() as cur:
            for t in _RAW_TABLES:
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
    append: bool = typer.Option(False, "--append", help="Add to events already in recsys_raw."),
) -> None:
    """Simulate shop traffic with planted session intent and load it into recsys_raw."""
    from rich.progress import Progress

    from ml.config import get_settings
    from ml.data.simulate import SimConfig, SimData, iter_simulation, load_simulation
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
    first_day = datetime.strptime(start, "%Y-%m-%d") if start else _default_start(days)
    cfg = SimConfig(users=users, items=items, days=days, seed=seed, start=first_day)
    blocks = -(-users // cfg.users_per_block)
    totals: list[SimData] = []
    with Progress(console=console) as progress:
        task = progress.add_task("simulate + load", total=blocks)
        for block in iter_simulation(cfg):
            load_simulation(block, s)
            # keep only what the summary needs, so memory stays bounded on big runs
            totals.append(SimData(block.users[["user_id"]], block.items, block.events[["behavior_type"]], block.intents[["is_switch"]]))
            progress.advance(task)
    _print_summary(totals, s.raw_db)


def _print_summary(blocks, raw_db: str) -> None:
    """One table of what was loaded: counts per type, funnel, search and switch shares."""
    import pandas as pd

    from ml.data.simulate import SimData

    merged = SimData(
        users=pd.concat([b.users for b in blocks]),
        items=blocks[0].items,
        events=pd.concat([b.events for b in blocks]),
        intents=pd.concat([b.intents for b in blocks]),
    )
    table = Table(title=f"loaded into {raw_db}")
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in merged.summary().items():
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else f"{value:,}")
    console.print(table)
