"""`recsys report ...`: what the outcome marts measured of what was served (issue 17)."""

from __future__ import annotations

import typer

from ml.cli.common import console, fail

report_app = typer.Typer(help="Online metrics of served lists (outcome marts).", no_args_is_help=True)

#: the columns printed per row (rpt_model_online_metrics has more: the counts behind every rate)
KEYS = ("served_date", "model_version", "list_source", "arm", "endpoint")
COUNTS = ("impressions", "lists", "matured_impressions")


def _cell(value: object) -> str:
    if value is None or value != value:  # NULL or NaN: no matured impression, rate undefined
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@report_app.command("online")
def online_cmd(
    days: int = typer.Option(7, "--days", min=1, help="Served days to show, back from the newest one."),
) -> None:
    """Print rpt_model_online_metrics of the last DAYS served days (build it with `recsys dbt build`
    or the train DAG): one row per day x model version x list source x A/B arm x endpoint."""
    from rich.console import Console
    from rich.table import Table

    from ml.config import get_settings
    from ml.registry.online import RATES, SLICE_TABLE, read_report

    s = get_settings()
    try:
        frame = read_report(s, SLICE_TABLE, days)
    except Exception as exc:  # the usual cause: the outcome marts were never built
        fail(f"cannot read {s.marts_db}.{SLICE_TABLE} ({exc}); build the outcome marts first")
    if frame.empty:
        console.print(f"no impressions in {s.marts_db}.{SLICE_TABLE}")
        return
    table = Table(title=f"online metrics, last {days} served day(s) ({SLICE_TABLE})")
    columns = [*KEYS, *COUNTS, *RATES]
    for col in columns:
        table.add_column(col, justify="left" if col in KEYS else "right")
    for row in frame[columns].astype(object).itertuples(index=False):
        table.add_row(*(_cell(v) for v in row))
    # a wide table: never squeezed into ellipses on a narrow terminal (or a pipe), let it wrap there
    Console(width=max(console.width, 220)).print(table)
