"""`recsys user ...`: what is kept about a user (for now: forgetting one everywhere)."""

from __future__ import annotations

import typer

from ml.cli.common import console, fail

user_app = typer.Typer(help="Remove a user's data from every layer.", no_args_is_help=True)


@user_app.command("forget")
def forget_cmd(
    user_ids: list[int] = typer.Argument(
        ..., help="User ids as stored in recsys_raw (pseudonymous ids after --pseudonymize)."
    ),
) -> None:
    """Delete the users from raw (quarantine and source_keys too), the marts, the point-in-time tables
    and serving; keep only a keyed hash of each id so a re-import cannot bring them back."""
    from ml.config import get_settings
    from ml.publish.common import PublishBusy
    from ml.publish.forget import forget_users

    if any(u < 0 for u in user_ids):
        fail("user ids must be non-negative integers")
    s = get_settings()
    try:
        deleted = forget_users(user_ids, s)
    except (PublishBusy, RuntimeError) as exc:
        fail(exc)
    console.print(
        f"forgot {len(set(user_ids))} user(s): {sum(deleted.values()):,} rows deleted"
        + "".join(f"\n  {table}: {n:,}" for table, n in sorted(deleted.items())),
        highlight=False,
    )
