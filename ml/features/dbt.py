"""Run dbt (its own venv, the project's profile) from Python: the ML, publish and Airflow code.

dbt reads its connection only from ``RECSYS_MYSQL_*`` and its database names from
``RECSYS_DB_PREFIX`` (``dbt_project/profiles.yml``), so :func:`run_dbt` hands it exactly the values
of the :class:`~ml.config.Settings` it is given: Python and dbt always agree on the databases.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from ml.config import ENV_DEFAULTS, Settings, get_settings

log = logging.getLogger(__name__)

#: lines of dbt's output quoted in a DbtError
ERROR_TAIL_LINES = 40
#: selection of a point-in-time build: the pit models and everything upstream, with their tests
PIT_SELECTION = ["+tag:pit"]
#: what a "rest of session" build changes and ``load_session_cut`` reads again
SESSION_TABLES = ("fct_session_intent", "ml_candidates", "ml_labels")
#: what a "rest of session" build recomputes over a plain build of the same cut: the models between
#: the session cuts and :data:`SESSION_TABLES` (not the search marts nor ml_training_set, which no
#: cut reads), with the tests of what it builds or reads (``--indirect-selection buildable``: the
#: leakage test included)
SESSION_SELECTION = [f"stg_recsys_pit__session_cuts+,+{table}" for table in SESSION_TABLES]
#: the session models that read ``int_realtime_user_events`` (a build of one of them rebuilt it)
REALTIME_READERS = ("fct_session_intent", "ml_candidates")
#: ``pit_build.realtime_rows`` when ``int_realtime_user_events`` holds the plain build's rows of the cut
PLAIN = "plain"
#: how a build with a narrowed selection picks tests: those whose parents it builds or reads (a test
#: of a model outside the selection, e.g. ml_training_set, would read a missing or stale table)
BUILDABLE_TESTS = ["--indirect-selection", "buildable"]


class DbtError(RuntimeError):
    """dbt exited non-zero (or could not start); the message ends with the tail of its output."""


def db_prefix(settings: Settings) -> str:
    """The database prefix the settings were built with (``raw_db`` minus its base name)."""
    base = os.environ.get("RECSYS_RAW_DB", ENV_DEFAULTS["RECSYS_RAW_DB"])
    if not settings.raw_db.endswith(base):
        raise ValueError(f"raw database {settings.raw_db!r} does not end with RECSYS_RAW_DB={base!r}")
    return settings.raw_db[: -len(base)]


def pit_database(settings: Settings) -> str:
    """``{prefix}recsys_pit``: where dbt writes whenever the var ``cut_ts`` is set."""
    return f"{db_prefix(settings)}recsys_pit"


def dbt_env(settings: Settings) -> dict[str, str]:
    """The environment for a dbt process: ours, with connection, prefix and profile from ``settings``."""
    env = dict(os.environ)
    env.update(
        {
            "RECSYS_MYSQL_HOST": settings.mysql_host,
            "RECSYS_MYSQL_PORT": str(settings.mysql_port),
            "RECSYS_MYSQL_USER": settings.mysql_user,
            "RECSYS_MYSQL_PASSWORD": settings.mysql_password,
            "RECSYS_DB_PREFIX": db_prefix(settings),
            "DBT_PROFILES_DIR": str(settings.dbt_project_dir),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
        }
    )
    return env


def _tail(text: str, lines: int = ERROR_TAIL_LINES) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_dbt(
    args: list[str],
    vars: dict[str, Any] | None = None,
    settings: Settings | None = None,
    warm: bool | None = None,
) -> None:
    """Run ``dbt <args>`` in ``dbt_project/`` with ``--vars`` (JSON) when given.

    ``warm`` runs it in this process's long-lived dbt worker (:mod:`ml.features.dbt_warm`) instead of
    a new ``dbt`` process: for the point-in-time builds, which a training run repeats per cut. ``None``
    (the default) follows ``RECSYS_DBT_WARM`` (off unless set: a one-shot process gains nothing; the test
    suite, dozens of dbt commands per pytest worker, sets it and skips ~2 s of dbt start-up for each).

    Unless ``DBT_TARGET_PATH`` is set, dbt writes its artifacts under ``$RECSYS_HOME/dbt/``, one
    folder per set of vars: the project's ``target/manifest.json`` is what Cosmos renders the DAGs
    from, and a build with ``cut_ts`` (which enables the pit models) must not rewrite it; a folder
    per vars keeps dbt's partial parsing (seconds per refresh) for repeated invocations.
    Raises :class:`DbtError` with the command and the tail of dbt's output when it fails.
    """
    s = settings or get_settings()
    exe = s.dbt_executable
    if not exe.exists():
        raise DbtError(f"dbt not found at {exe}: run scripts/setup.sh (or set RECSYS_DBT_VENV)")
    cmd = [str(exe), *args]
    if vars:
        cmd += ["--vars", json.dumps(vars, default=str)]
    env = dbt_env(s)
    log.info("running %s", " ".join(cmd))
    key = hashlib.sha256(json.dumps(vars or {}, sort_keys=True, default=str).encode()).hexdigest()[:12]
    env.setdefault("DBT_TARGET_PATH", str(s.home / "dbt" / f"target-{key}"))
    env.setdefault("DBT_LOG_PATH", str(s.home / "dbt" / "logs"))
    if s.dbt_warm if warm is None else warm:
        from ml.features.dbt_warm import warm_dbt

        worker = warm_dbt(exe, Path(env["DBT_LOG_PATH"]) / "dbt_worker.log")
        ok, output = worker.invoke(cmd[1:], env, s.dbt_project_dir)
        if not ok:
            raise DbtError(f"`dbt {' '.join(args)}` failed (warm dbt worker):\n{_tail(output)}")
        log.info("dbt %s: %s", args[0] if args else "", _tail(output, 2))
        return
    proc = subprocess.run(cmd, cwd=s.dbt_project_dir, env=env, capture_output=True, text=True, check=False)
    output = proc.stdout + (("\n" + proc.stderr) if proc.stderr else "")
    if proc.returncode != 0:
        raise DbtError(f"`dbt {' '.join(args)}` failed (exit {proc.returncode}):\n{_tail(output)}")
    log.info("dbt %s: %s", args[0] if args else "", _tail(output, 2))


def pit_vars(cut: str, label_hours: float, label_window_users: bool) -> dict[str, Any]:
    """The dbt vars of a point-in-time build (``label_window_users`` only when set: the vars also
    name dbt's target folder, so a build for every user keeps the folder, and partial parse, it had)."""
    out: dict[str, Any] = {"cut_ts": cut, "label_hours": _label_hours(label_hours)}
    if label_window_users:
        out["label_window_users"] = True
    return out


def _label_hours(hours: float) -> float:
    """The label window as dbt gets it: whole minutes, in hours (``int`` when whole, as before)."""
    minutes = round(float(hours) * 60)
    if minutes <= 0:
        raise ValueError(f"label_hours must be at least one minute, got {hours}")
    return minutes // 60 if minutes % 60 == 0 else minutes / 60


def format_cut(cut_ts: datetime | str) -> str:
    """``'YYYY-MM-DD HH:MM:SS'`` (the form dbt's ``cut_ts`` var takes); strings are checked."""
    if isinstance(cut_ts, str):
        try:
            parsed = datetime.fromisoformat(cut_ts)
        except ValueError:
            raise ValueError(f"cut_ts must look like 'YYYY-MM-DD HH:MM:SS', got {cut_ts!r}") from None
    else:
        parsed = cut_ts
    if parsed.tzinfo is not None:
        raise ValueError("cut_ts must be naive UTC (the raw tables store naive UTC DATETIME)")
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def build_point_in_time(
    cut_ts: datetime | str,
    label_hours: float = 24,
    settings: Settings | None = None,
    models: tuple[str, ...] | None = None,
    label_window_users: bool = False,
) -> str:
    """Build the point-in-time tables for one cut (features from events before ``cut_ts``, labels
    from ``[cut_ts, cut_ts + label_hours)``) with ``--full-refresh`` into ``{prefix}recsys_pit``,
    running their tests (the leakage test included). Returns the database name.

    ``label_window_users`` (a training cut) computes the per-user realtime models (session intent,
    candidates) only for the users with an event in the label window (dbt var ``label_window_users``,
    model ``int_label_window_users``): their rows are those of a build for everyone, and nobody else
    is learned from or evaluated. The batch marts (``dim_users`` …) keep every user.

    ``models`` narrows the build to those models and their upstream (a training cut: what
    ``load_cut`` reads), with the tests of what it builds; ``ml_training_set``, then not built,
    is dropped, so that no copy of another cut is left behind. Default: every pit model."""
    if label_hours <= 0:
        raise ValueError(f"label_hours must be positive, got {label_hours}")
    s = settings or get_settings()
    cut = format_cut(cut_ts)
    selection = PIT_SELECTION if models is None else [*(f"+{m}" for m in models), *BUILDABLE_TESTS]
    if models is not None and "ml_training_set" not in models:
        _drop_pit_table(s, "ml_training_set")
    _set_pit_build(s, None)  # unknown until this build succeeds
    run_dbt(
        ["build", "--select", *selection, "--full-refresh"],
        vars=pit_vars(cut, label_hours, label_window_users),
        settings=s,
        warm=True,
    )
    # the realtime models hold the plain build's rows when this selection built them
    reads = models is None or any(m in models for m in REALTIME_READERS)
    _set_pit_build(s, cut, _label_hours(label_hours), PLAIN if reads else None)
    return pit_database(s)


def build_session_cut(
    cut_ts: datetime | str, label_hours: float = 24, settings: Settings | None = None
) -> str:
    """The "rest of session" build of a cut: ``{prefix}recsys_pit.pit_session_cuts`` (written by the
    caller) reveals each listed user's session up to their own cut to the realtime models, and
    ``ml_labels`` becomes the rest of that session; tests included (the leakage test too).

    On top of the plain build of the same cut, only the session-dependent models
    (:data:`SESSION_SELECTION`) are rebuilt (``--full-refresh``), for the listed users alone: the
    realtime marts of a session build hold nobody else (no one else has a label in it, so no model
    learns from or is evaluated on anyone else; the plain build's realtime rows are replaced). When the
    pit database holds another cut (or an unknown state), everything is rebuilt.

    Right after the plain build, ``int_realtime_user_events`` still holds that build's rows (dbt var
    ``realtime_from_plain``): every event of a listed user the session build needs is among them (a
    user with a session cut acts in the label window, and revealing more of the session only moves
    the 30-day bound later), so it reads those instead of the cut's whole event table. After another
    session build of the cut (its rows hold that build's revealed events) it reads the event table."""
    s = settings or get_settings()
    cut = format_cut(cut_ts)
    have = _pit_build(s)
    same_cut = have is not None and have[:2] == (cut, _label_hours(label_hours))
    if same_cut:
        args = ["build", "--select", *SESSION_SELECTION, *BUILDABLE_TESTS, "--full-refresh"]
    else:
        args = ["build", "--select", *PIT_SELECTION, "+stg_recsys_pit__session_cuts+", "--full-refresh"]
    vars_ = {**pit_vars(cut, label_hours, True), "session_cuts": True}
    if same_cut and have[2] == PLAIN:
        vars_["realtime_from_plain"] = True
    # the batch marts stay the cut's (a failed build too): all that a later session build of the
    # same cut reuses; its session models are always rebuilt, and the realtime rows are no longer plain
    _set_pit_build(s, cut, _label_hours(label_hours))
    run_dbt(args, vars=vars_, settings=s, warm=True)
    return pit_database(s)


def _drop_pit_table(s: Settings, table: str) -> None:
    from ml.db import connect

    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS `{pit_database(s)}`.`{table}`")
    finally:
        conn.close()


def _pit_build(s: Settings) -> tuple[str, float, str | None] | None:
    """(cut, label hours, realtime rows) of the models now in the pit database, None when unknown;
    realtime rows :data:`PLAIN` when ``int_realtime_user_events`` holds the plain build's rows."""
    from ml.db import connect

    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name='pit_build'",
                (pit_database(s),),
            )
            if cur.fetchone()[0] == 0:
                return None
            cur.execute(
                f"SELECT DATE_FORMAT(cut_ts, '%Y-%m-%d %H:%i:%s'), label_hours, realtime_rows "
                f"FROM `{pit_database(s)}`.pit_build"
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return (row[0], float(row[1]), row[2]) if row else None


def _set_pit_build(s: Settings, cut: str | None, label_hours: float = 0, realtime: str | None = None) -> None:
    """Record what the pit database holds (:func:`_pit_build`); ``cut`` None: unknown."""
    from ml.db import connect

    conn = connect(settings=s)
    try:
        with conn.cursor() as cur:
            db = pit_database(s)
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{db}`")
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS `{db}`.pit_build (cut_ts DATETIME NOT NULL, label_hours DOUBLE NOT NULL)"
            )
            cur.execute(  # tables of older code: label_hours was INT before minutes, no realtime_rows
                f"ALTER TABLE `{db}`.pit_build MODIFY label_hours DOUBLE NOT NULL,"
                " ADD COLUMN IF NOT EXISTS realtime_rows VARCHAR(16) NULL"
            )
            cur.execute(f"DELETE FROM `{db}`.pit_build")
            if cut is not None:
                cur.execute(
                    f"INSERT INTO `{db}`.pit_build (cut_ts, label_hours, realtime_rows) VALUES (%s, %s, %s)",
                    (cut, label_hours, realtime),
                )
        conn.commit()
    finally:
        conn.close()
