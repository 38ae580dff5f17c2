"""What every `recsys` command shares: the consoles and one exit-code convention.

Exit codes: 0 done; 1 the command ran and a check said no (a quality gate, a dbt test, a publish
validation); 2 it could not run (bad arguments or input, no database, no champion, missing file).
Known errors print one line on stderr, never a stack trace.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2

console = Console()
err_console = Console(stderr=True)


def fail(exc: BaseException | str, code: int = EXIT_UNUSABLE) -> NoReturn:
    """Print ``error: <message>`` on stderr and leave with ``code``."""
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)
