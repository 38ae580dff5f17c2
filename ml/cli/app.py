"""The `recsys` command line: one Typer app, one module per command group (``ml/cli/<group>.py``).

Heavy imports (TensorFlow, MLflow, GX) happen inside commands, so `recsys --help` stays fast.
Exit codes follow :mod:`ml.cli.common` (0 done, 1 a check said no, 2 could not run).
"""

from __future__ import annotations

import sys

import typer

from ml.cli.ab import ab_app
from ml.cli.common import EXIT_UNUSABLE, err_console
from ml.cli.data import data_app
from ml.cli.db import db_app
from ml.cli.dbt import dbt_app
from ml.cli.publish import publish_app, serve
from ml.cli.quality import quality_app
from ml.cli.report import report_app
from ml.cli.train import register as register_train_commands
from ml.cli.user import user_app
from ml.config import SettingsError
from ml.db import MigrationError, MySQLUnavailable

app = typer.Typer(
    help="Intent-aware e-commerce recommendations: data, features, models, publishing.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(data_app, name="data")
app.add_typer(dbt_app, name="dbt")
app.add_typer(quality_app, name="quality")
register_train_commands(app)  # recsys train | evaluate | promote
app.add_typer(publish_app, name="publish")
app.command("serve")(serve)
app.add_typer(user_app, name="user")
app.add_typer(report_app, name="report")
app.add_typer(ab_app, name="ab")


def main() -> None:
    """Console-script entry: known operational errors print one line, never a stack trace."""
    try:
        app()
    except (MySQLUnavailable, MigrationError, SettingsError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_UNUSABLE)


if __name__ == "__main__":
    main()
